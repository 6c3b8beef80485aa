"""Instill's two model API generations (issue 17): the simulator serving the AIP one (model-backend
main: server ids, displayName, slug), and the backend finding which one a registry speaks, keeping
one model per resource on either, and refusing a pin to the wrong one."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import httpx
import pytest

from modelsync.api import ModelSpec
from modelsync.backends.base import RegistryConnection, Resource, Terminal
from modelsync.vendors.instill.client import InstillBackend
from modelsync.vendors.instill.mapping import default_model_id, marker_line, not_settable
from modelsync.vendors.instill.simulator import create_app, slug_from
from modelsync.simulators.server import serve_in_thread

TOKEN = "instill_sk_local"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODELS = "/v1alpha/namespaces/local/models"
INST = {"modelDefinition": "container", "configuration": {}, "task": "TASK_CHAT", "region": "REGION_LOCAL",
        "hardware": "CPU"}
WIRE = {"modelDefinition": "model-definitions/container", "configuration": {}, "task": "TASK_CHAT",
        "visibility": "VISIBILITY_PRIVATE", "region": "REGION_LOCAL", "hardware": "CPU"}


class Sim:
    def __init__(self, app: Any, url: str) -> None:
        self.app, self.url = app, url
        self.http = httpx.Client(base_url=url, headers=AUTH)

    @property
    def models(self) -> dict[str, dict[str, Any]]:
        return {mid: m for (ns, mid), m in self.app["instill"].models.items() if ns == "local"}

    def journal(self) -> list[dict[str, Any]]:
        return list(self.http.get("/_sim/requests").json())

    def posts(self) -> list[dict[str, Any]]:
        return [e for e in self.journal() if e["method"] == "POST" and e["path"] == MODELS]

    def faults(self, **knobs: Any) -> None:
        self.http.put("/_sim/faults", json=knobs).raise_for_status()

    def conn(self, generation: str | None = None) -> RegistryConnection:
        settings = {"namespace": "local", **({"apiGeneration": generation} if generation else {})}
        return RegistryConnection(key="ModelRegistry/team/reg", name="reg", kind="ModelRegistry", backend="instill",
                                  endpoint=self.url, credentials={"token": TOKEN}, settings=settings, timeout=5.0)


def start(**options: Any) -> Iterator[Sim]:
    app = create_app(**options)
    with serve_in_thread(app) as url:
        sim = Sim(app, url)
        yield sim
        sim.http.close()


@pytest.fixture
def aip() -> Iterator[Sim]:
    yield from start(generation="aip")


@pytest.fixture
def legacy() -> Iterator[Sim]:
    yield from start()


def make_res(instill: dict[str, Any] | None = None, *, name: str = "llama", uid: str = "uid-1",
             external_id: str | None = None, adopted: bool = False, **common: Any) -> Resource:
    spec = {"registries": [{"name": "reg"}], "instill": {**INST, **(instill or {})}, **common}
    return Resource(kind="Model", name=name, namespace="team", uid=uid, generation=1,
                    spec=ModelSpec.model_validate(spec), external_id=external_id, adopted=adopted)


# ---------------------------------------------------------------- the simulator's AIP generation


def test_aip_create_ignores_id_and_generates_one(aip: Sim) -> None:
    resp = aip.http.post(MODELS, json={"id": "my-id", "displayName": "Llama 3.1 (8B)", **WIRE})
    assert resp.status_code == 201, resp.text
    model = resp.json()["model"]
    assert model["id"].startswith("mod-") and len(model["id"]) == 12 and model["id"] != "my-id"
    assert model["name"] == f"namespaces/local/models/{model['id']}"
    assert (model["displayName"], model["slug"], model["aliases"]) == ("Llama 3.1 (8B)", "llama-31-8b", [])
    # addressed by the id only, never by slug (GetModelByID: id = ?)
    assert aip.http.get(f"{MODELS}/{model['id']}").status_code == 200
    assert aip.http.get(f"{MODELS}/llama-31-8b").status_code == 404
    assert aip.http.get(f"{MODELS}/my-id").status_code == 404


@pytest.mark.parametrize("name, slug", [("Llama 3.1 (8B)", "llama-31-8b"), ("  --A  B--", "a-b"), ("日本", "model"),
                                         ("x_y z", "xy-z")])
def test_slug_from_display_name(name: str, slug: str) -> None:
    assert slug_from(name) == slug


def test_aip_create_needs_display_name_and_never_conflicts(aip: Sim) -> None:
    resp = aip.http.post(MODELS, json={"id": "only-an-id", **WIRE})
    assert resp.status_code == 400 and "display_name" in resp.json()["message"], resp.text
    # slugs are not unique: the same body twice makes two models
    for _ in range(2):
        assert aip.http.post(MODELS, json={"displayName": "x", "slug": "same", **WIRE}).status_code == 201
    assert sorted(m["slug"] for m in aip.models.values()) == ["same", "same"]


def test_aip_patch_slug_keeps_the_old_one_in_aliases(aip: Sim) -> None:
    model = aip.http.post(MODELS, json={"displayName": "x", "slug": "first", **WIRE}).json()["model"]
    url = f"{MODELS}/{model['id']}"
    resp = aip.http.patch(url, json={"slug": "second", "displayName": "y", "id": "ignored"})
    assert resp.status_code == 200, resp.text
    got = resp.json()["model"]
    assert (got["id"], got["slug"], got["aliases"], got["displayName"]) == (model["id"], "second", ["first"], "y")
    resp = aip.http.patch(url, json={"task": "TASK_COMPLETION"})
    assert resp.status_code == 400 and "`task` is immutable" in resp.json()["message"]
    assert aip.http.patch(url, json={"id": "x", "aliases": ["y"]}).status_code == 400  # an empty mask


def test_aip_empty_create_reply() -> None:
    for sim in start(generation="aip", empty_create_reply=True):
        resp = sim.http.post(MODELS, json={"displayName": "x", **WIRE})
        assert resp.status_code == 201 and resp.json() == {"model": None}
        assert len(sim.models) == 1


def test_legacy_ignores_display_name_and_slug(legacy: Sim) -> None:
    resp = legacy.http.post(MODELS, json={"id": "chat", "displayName": "x", "slug": "y", **WIRE})
    assert resp.status_code == 201, resp.text
    assert not {"displayName", "slug", "aliases"} & set(resp.json()["model"])


def test_lists_page_like_the_server(aip: Sim) -> None:
    for i in range(12):
        aip.http.post(MODELS, json={"displayName": f"m{i}", **WIRE})
    first = aip.http.get(MODELS).json()
    assert len(first["models"]) == 10 and first["totalSize"] == 12 and first["nextPageToken"]
    second = aip.http.get(MODELS, params={"pageToken": first["nextPageToken"]}).json()
    assert len(second["models"]) == 2 and second["nextPageToken"] == ""
    assert len(aip.http.get(MODELS, params={"pageSize": 500}).json()["models"]) == 12


_made: list[InstillBackend] = []


def backend(conn: RegistryConnection) -> InstillBackend:
    """A backend closed after the test, whatever it raised."""
    b = InstillBackend(conn)
    _made.append(b)
    return b


@pytest.fixture(autouse=True)
async def close_backends() -> Any:
    yield
    while _made:
        await _made.pop().aclose()


# ---------------------------------------------------------------- the backend on the AIP generation


async def test_aip_create_sends_display_name_and_slug_and_records_the_server_id(aip: Sim) -> None:
    b = backend(aip.conn())
    res = make_res(description="d")
    slug = default_model_id(res, aip.conn())
    await b.create(res)
    [post] = aip.posts()
    # the namespace was empty: a body either generation takes (id, displayName, slug), and the reply told
    assert post["body"]["displayName"] == "llama" and post["body"]["slug"] == slug
    assert b.generation == "AIP"
    [(model_id, model)] = aip.models.items()
    assert model_id.startswith("mod-") and model["slug"] == slug
    obs = await b.observe(dataclasses.replace(res, external_id=model_id))
    assert obs.exists and obs.external_id == model_id and obs.up_to_date, obs.diff
    assert not [n for n in obs.not_settable if n.field == "spec.instill.displayName"]
    # a second resource: the generation is known, so the body is AIP's own (no id)
    await b.create(make_res(name="other", uid="uid-2"))
    assert "id" not in aip.posts()[-1]["body"]
    await b.aclose()


async def test_aip_display_name_from_spec_is_managed(aip: Sim) -> None:
    b = backend(aip.conn("AIP"))
    res = make_res({"displayName": "Llama 3.1 8B"})
    await b.create(res)
    [model] = aip.models.values()
    assert model["displayName"] == "Llama 3.1 8B"
    aip.http.patch(f"{MODELS}/{model['id']}", json={"displayName": "renamed in the UI"})
    obs = await b.observe(res)
    assert obs.diff == ("displayName",)
    await b.update(res, obs)
    assert model["displayName"] == "Llama 3.1 8B"
    await b.aclose()


async def test_aip_create_reply_without_the_model_is_found_by_slug() -> None:
    for sim in start(generation="aip", empty_create_reply=True):
        b = backend(sim.conn())
        res = make_res()
        inventory = await b.create(res)
        [model_id] = sim.models
        assert inventory["id"] == model_id and b.generation == "AIP"
        await b.aclose()


@pytest.mark.parametrize("by", ["id", "slug"])
async def test_aip_adoption_by_id_or_slug(aip: Sim, by: str) -> None:
    theirs = aip.http.post(MODELS, json={"displayName": "theirs", "slug": "made-by-hand", **WIRE}).json()["model"]
    b = backend(aip.conn())
    external = theirs["id"] if by == "id" else "made-by-hand"
    res = make_res(external_id=external, adopted=True, description="adopted")
    obs = await b.observe(res)
    assert obs.exists and obs.external_id == theirs["id"]
    assert "slug" not in obs.diff  # an adopted model keeps its slug unless spec.instill.id names one
    await b.update(res, obs)
    assert aip.models[theirs["id"]]["description"] == "adopted" and len(aip.models) == 1
    await b.aclose()


async def test_aip_delete_finds_the_model_by_slug(aip: Sim) -> None:
    b = backend(aip.conn("AIP"))
    res = make_res()
    await b.create(res)
    aip.http.post(MODELS, json={"displayName": "other", "slug": "other", **WIRE})
    await backend(aip.conn("AIP")).delete(res)  # no status, no cached id
    assert [m["slug"] for m in aip.models.values()] == ["other"]
    await b.aclose()


async def test_legacy_reports_display_name_as_not_settable(legacy: Sim) -> None:
    b = backend(legacy.conn())
    res = make_res({"displayName": "Llama"})
    await b.create(res)
    obs = await b.observe(res)
    assert b.generation == "Legacy" and obs.up_to_date
    [entry] = [n for n in obs.not_settable if n.field == "spec.instill.displayName"]
    assert "no display name" in entry.why and "80d2c12" in entry.why
    # without the field set there is nothing to report
    assert not [n for n in not_settable(make_res(), "Legacy") if n.field == "spec.instill.displayName"]
    await b.aclose()


# ---------------------------------------------------------------- detection and wrong pins


async def test_detection_reads_a_model_and_is_cached(aip: Sim) -> None:
    aip.http.post(MODELS, json={"displayName": "x", **WIRE})
    b = backend(aip.conn())
    assert "model API generation AIP (found from its models)" in await b.check()
    before = len(aip.journal())
    await b.observe(make_res(external_id=next(iter(aip.models))))
    # known: no second detection, only the read by the recorded id
    assert [(e["method"], e["path"]) for e in aip.journal()[before:]] == [("GET", f"{MODELS}/{next(iter(aip.models))}")]
    await b.aclose()


async def test_check_says_when_the_generation_is_not_known_yet(legacy: Sim) -> None:
    b = backend(legacy.conn())
    assert "not known yet" in await b.check()
    assert b.generation is None
    await b.aclose()


async def test_pinned_legacy_on_an_aip_server_is_misconfigured(aip: Sim) -> None:
    b = backend(aip.conn("Legacy"))
    # empty namespace: the create (a Legacy body, no display_name) is refused, and said why
    with pytest.raises(Terminal) as info:
        await b.create(make_res())
    assert info.value.reason == "RegistryMisconfigured"
    assert "pinned to spec.instill.apiGeneration: Legacy" in info.value.message
    assert "set spec.instill.apiGeneration to AIP" in info.value.message
    assert aip.models == {}
    # with a model to read, the registry's own check says it
    aip.http.post(MODELS, json={"displayName": "x", **WIRE})
    with pytest.raises(Terminal) as info:
        await backend(aip.conn("Legacy")).check()
    assert info.value.reason == "RegistryMisconfigured" and "displayName" in info.value.message
    await b.aclose()


async def test_pinned_aip_on_a_legacy_server_is_misconfigured(legacy: Sim) -> None:
    b = backend(legacy.conn("AIP"))
    with pytest.raises(Terminal) as info:
        await b.create(make_res())
    assert info.value.reason == "RegistryMisconfigured"
    assert "pinned to spec.instill.apiGeneration: AIP" in info.value.message
    assert legacy.models == {}
    legacy.http.post(MODELS, json={"id": "someone", **WIRE})
    with pytest.raises(Terminal) as info:
        await backend(legacy.conn("AIP")).observe(make_res())
    assert info.value.reason == "RegistryMisconfigured" and "no displayName or slug" in info.value.message
    await b.aclose()


def test_marker_is_the_same_on_both_generations(aip: Sim) -> None:
    res = make_res()
    assert marker_line(res, aip.conn("AIP")) == marker_line(res, aip.conn("Legacy"))
