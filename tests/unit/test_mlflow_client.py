"""MlflowBackend against the REAL MLflow server (tests/conftest.py's ``mlflow_server``), through the fault
proxy (modelsync.vendors.mlflow.simulator) where a test counts requests or injects a fault."""
from __future__ import annotations

import base64
import uuid
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest

from modelsync.api import ModelSpec
from modelsync.backends import backend_class
from modelsync.backends.base import (
    CredentialsRejected, NameTaken, Recoverable, RegistryConnection, Resource, Terminal,
)
from modelsync.simulators.server import ThreadedServer
from modelsync.vendors.mlflow.client import API, MlflowBackend
from modelsync.vendors.mlflow.simulator import create_app


class Proxy:
    def __init__(self, server: ThreadedServer) -> None:
        self.server, self.url, self.app = server, server.url, server.app
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def faults(self, **knobs: Any) -> None:
        self.http.put("/_sim/faults", json=knobs).raise_for_status()

    def journal(self) -> list[dict[str, Any]]:
        return self.http.get("/_sim/requests").json()

    def writes(self) -> list[tuple[str, str]]:
        return [(e["method"], e["path"].removeprefix(API)) for e in self.journal() if e["method"] != "GET"]

    def clear(self) -> None:
        self.http.post("/_sim/reset").raise_for_status()


@pytest.fixture(scope="module")
def proxy(mlflow_server: str) -> Iterator[Proxy]:
    server = ThreadedServer(create_app(upstream=mlflow_server)).start()
    try:
        p = Proxy(server)
        yield p
    finally:
        server.stop()


@pytest.fixture
async def backend(proxy: Proxy) -> AsyncIterator[MlflowBackend]:
    proxy.clear()
    backend = make_backend(proxy.url)
    yield backend
    await backend.aclose()


def make_backend(url: str, **credentials: str) -> MlflowBackend:
    return MlflowBackend(RegistryConnection(key="ModelRegistry/ml/mlflow", name="mlflow", kind="ModelRegistry",
                                            backend="mlflow", endpoint=url, credentials=credentials, timeout=10))


def resource(generation: int = 1, uid: str | None = None, kind: str = "Model", external_id: str | None = None,
             adopted: bool = False, **spec: Any) -> Resource:
    name = f"m-{uuid.uuid4().hex[:6]}"
    return Resource(kind=kind, name=name, namespace="ml", uid=uid or str(uuid.uuid4()), generation=generation,  # type: ignore[arg-type]
                    spec=ModelSpec.model_validate({"registries": [{"name": "mlflow"}], **spec}),
                    external_id=external_id, adopted=adopted)


def with_spec(res: Resource, generation: int, **spec: Any) -> Resource:
    merged = {**res.spec.model_dump(exclude_none=True), **spec}
    return Resource(kind=res.kind, name=res.name, namespace=res.namespace, uid=res.uid, generation=generation,
                    spec=ModelSpec.model_validate(merged), external_id=res.external_id, adopted=res.adopted)


def raw(url: str, method: str, path: str, **kw: Any) -> Any:
    r = httpx.request(method, f"{url}{API}{path}", timeout=30, **kw)
    r.raise_for_status()
    return r.json()


def versions(url: str, name: str) -> list[dict[str, Any]]:
    body = raw(url, "GET", "/model-versions/search", params={"filter": f"name = '{name}'"})
    return sorted(body.get("model_versions") or [], key=lambda v: int(v["version"]))


SPEC = {"description": "Qwen3 8B", "installPath": "hf://Qwen/Qwen3-8B", "task": "text-generation",
        "gpu": {"minMemory": "16Gi"}, "mlflow": {"tags": [{"key": "team", "value": "nlp"}], "alias": "champion"}}


def test_registered_as_backend() -> None:
    assert backend_class("mlflow") is MlflowBackend
    assert MlflowBackend.kinds == frozenset({"Model"})


async def test_create_then_nothing_differs(backend: MlflowBackend, proxy: Proxy) -> None:
    res = resource(**SPEC)
    inv = await backend.create(res)
    name = inv["name"]
    assert name.startswith(f"ml-{res.name}-")
    # one registered model, one version, one alias: nothing looked up before (a new model has no versions)
    assert proxy.writes() == [("POST", "/registered-models/create"), ("POST", "/model-versions/create"),
                              ("POST", "/registered-models/alias")]
    model = raw(proxy.url, "GET", "/registered-models/get", params={"name": name})["registered_model"]
    tags = {t["key"]: t.get("value", "") for t in model["tags"]}
    assert tags == {"modelsync.io/owner": f"ml/{res.name}", "modelsync.io/uid": res.uid, "team": "nlp",
                    "modelsync.io/task": "text-generation", "modelsync.io/gpu.minMemory": "17179869184"}
    assert model["description"] == "Qwen3 8B"
    [v] = versions(proxy.url, name)
    assert v["source"] == "hf://Qwen/Qwen3-8B" and v["version"] == "1"
    assert {t["key"]: t["value"] for t in v["tags"]} == {
        "modelsync.io/owner": f"ml/{res.name}", "modelsync.io/uid": res.uid, "modelsync.io/generation": "1"}
    assert model["aliases"] == [{"alias": "champion", "version": "1"}]
    # the reply is the observation, and a fresh read agrees: nothing left to send
    assert backend.observation(res, inv).up_to_date  # type: ignore[union-attr]
    obs = await backend.observe(res)
    assert obs.up_to_date and obs.external_id == name and obs.inventory == inv
    assert inv["version"] == "1" and inv["aliases"] == {"champion": "1"}


async def test_update_sends_only_what_differs_and_moves_the_alias(backend: MlflowBackend, proxy: Proxy) -> None:
    res = resource(**SPEC)
    name = (await backend.create(res))["name"]
    changed = with_spec(res, 2, description="Qwen3 8B, now quantized", installPath="s3://models/qwen3-8b-awq",
                        mlflow={"tags": [{"key": "team", "value": "nlp"}, {"key": "quant", "value": "awq"}],
                                "alias": "champion"})
    obs = await backend.observe(changed)
    assert obs.diff == ("description", "tags.quant", "source", "alias")
    proxy.clear()
    inv = await backend.update(changed, obs)
    assert proxy.writes() == [("PATCH", "/registered-models/update"), ("POST", "/registered-models/set-tag"),
                              ("POST", "/model-versions/create"), ("POST", "/registered-models/alias")]
    # versions are immutable: a new one for the new installPath, the alias moved to it
    assert [(v["version"], v["source"]) for v in versions(proxy.url, name)] == [
        ("1", "hf://Qwen/Qwen3-8B"), ("2", "s3://models/qwen3-8b-awq")]
    assert {t["key"]: t["value"] for t in versions(proxy.url, name)[1]["tags"]}["modelsync.io/generation"] == "2"
    assert inv["aliases"] == {"champion": "2"} and inv["version"] == "2"
    assert inv["description"] == "Qwen3 8B, now quantized" and inv["tags"]["quant"] == "awq"
    assert (await backend.observe(changed)).up_to_date
    # back to the first artifact: its version holds it again, no third version
    back = with_spec(changed, 3, installPath="hf://Qwen/Qwen3-8B")
    obs = await backend.observe(back)
    assert obs.diff == ("alias",)
    await backend.update(back, obs)
    assert len(versions(proxy.url, name)) == 2
    assert (await backend.observe(back)).inventory["aliases"] == {"champion": "1"}  # type: ignore[index]


async def test_lost_reply_on_version_create_leaves_one_version(backend: MlflowBackend, proxy: Proxy) -> None:
    res = resource(**SPEC)
    proxy.faults(lose_next=1, match=f"POST {API}/model-versions/create")
    with pytest.raises(Recoverable, match="may have been processed"):
        await backend.create(res)
    # the next try observes: the version is there (found by its source), only the alias is missing
    obs = await backend.observe(res)
    assert obs.exists and obs.diff == ("alias",)
    inv = await backend.update(res, obs)
    assert len(versions(proxy.url, inv["name"])) == 1
    assert inv["aliases"] == {"champion": "1"}
    assert [w for w in proxy.writes() if w[1] == "/model-versions/create"] == [("POST", "/model-versions/create")]


async def test_lost_reply_on_model_create_is_adopted(backend: MlflowBackend, proxy: Proxy) -> None:
    res = resource(**SPEC)
    proxy.faults(lose_next=1, match=f"POST {API}/registered-models/create")
    with pytest.raises(Recoverable):
        await backend.create(res)
    # a retried create meets RESOURCE_ALREADY_EXISTS, finds its own uid and carries on
    inv = await backend.create(res)
    assert inv["version"] == "1" and len(versions(proxy.url, inv["name"])) == 1
    assert (await backend.observe(res)).up_to_date


async def test_lost_reply_on_update_version_create(backend: MlflowBackend, proxy: Proxy) -> None:
    res = resource(**SPEC)
    name = (await backend.create(res))["name"]
    changed = with_spec(res, 2, installPath="s3://models/v2")
    stale = await backend.observe(changed)
    proxy.faults(lose_next=1, match=f"POST {API}/model-versions/create")
    with pytest.raises(Recoverable):
        await backend.update(changed, stale)
    assert (await backend.observe(changed)).diff == ("alias",)  # the version was made; a read finds it
    # even sent with the observation from before the lost reply, the update looks before making one
    await backend.update(changed, stale)
    assert [v["source"] for v in versions(proxy.url, name)] == ["hf://Qwen/Qwen3-8B", "s3://models/v2"]
    assert (await backend.observe(changed)).up_to_date


async def test_foreign_model_is_name_taken_ours_is_adopted(backend: MlflowBackend, proxy: Proxy) -> None:
    taken = f"taken-{uuid.uuid4().hex[:6]}"
    raw(proxy.url, "POST", "/registered-models/create", json={"name": taken, "description": "someone else's"})
    res = resource(mlflow={"name": taken}, description="mine")
    with pytest.raises(NameTaken) as info:
        await backend.create(res)
    assert "spec.mlflow.name" in info.value.message and f"externalId: {taken}" in info.value.message
    with pytest.raises(NameTaken):
        await backend.observe(res)
    await backend.delete(res)  # not ours: left in place
    assert raw(proxy.url, "GET", "/registered-models/get", params={"name": taken})["registered_model"]

    # the same model adopted with externalId is ours: brought in line, the marker left off
    adopt = resource(external_id=taken, adopted=True, description="now managed", installPath="s3://bucket/adopted")
    obs = await backend.observe(adopt)
    assert obs.exists and obs.diff == ("description", "source")
    inv = await backend.update(adopt, obs)
    assert inv["description"] == "now managed" and inv["version"] == "1"
    assert "modelsync.io/uid" not in inv["tags"]

    # one that carries our uid (a create whose status was lost) is adopted by the create itself
    uid = str(uuid.uuid4())
    ours = f"ours-{uuid.uuid4().hex[:6]}"
    raw(proxy.url, "POST", "/registered-models/create",
        json={"name": ours, "tags": [{"key": "modelsync.io/uid", "value": uid}]})
    inv = await backend.create(resource(uid=uid, mlflow={"name": ours}, description="ours"))
    assert inv["description"] == "ours"


async def test_invalid_source_is_invalid_spec_naming_install_path(backend: MlflowBackend) -> None:
    res = resource(installPath="/var/models/qwen")  # MLflow refuses a local path without a run
    with pytest.raises(Terminal) as info:
        await backend.create(res)
    assert info.value.reason == "InvalidSpec" and info.value.fields == ("spec.installPath",)
    assert "INVALID_PARAMETER_VALUE" in info.value.message and "source" in info.value.message


async def test_wrong_endpoint_is_misconfigured(proxy: Proxy) -> None:
    backend = make_backend(proxy.url + "/not-mlflow")
    try:
        with pytest.raises(Terminal) as info:
            await backend.check()
        assert info.value.reason == "RegistryMisconfigured" and "MLflow API address" in info.value.message
        with pytest.raises(Terminal) as info:
            await backend.observe(resource(**SPEC))  # a 404 that is not MLflow's is not "absent"
        assert info.value.reason == "RegistryMisconfigured"
    finally:
        await backend.aclose()


async def test_list_entries_pages(backend: MlflowBackend) -> None:
    made = [(await backend.create(resource(description="listed")))["name"] for _ in range(3)]
    backend_small = backend
    import modelsync.vendors.mlflow.client as client

    old, client.PAGE = client.PAGE, 2
    try:
        entries = {e.name: e for e in await backend_small.list_entries()}
    finally:
        client.PAGE = old
    for name in made:
        assert entries[name].owner and entries[name].owner.startswith("ml/m-")  # type: ignore[union-attr]


@pytest.mark.parametrize("creds, header", [
    ({"token": "tok-123456"}, "Bearer tok-123456"),
    ({"username": "alice", "password": "s3cret"}, "Basic " + base64.b64encode(b"alice:s3cret").decode()),
    ({}, None),
])
async def test_auth_headers(creds: dict[str, str], header: str | None) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200, json={"registered_models": []})

    conn = RegistryConnection(key="k", name="mlflow", kind="ModelRegistry", backend="mlflow",
                              endpoint="http://mlflow.example", credentials=creds)
    await MlflowBackend(conn, transport=httpx.MockTransport(handler)).check()
    assert seen == [header]


async def test_half_basic_credentials_are_rejected() -> None:
    conn = RegistryConnection(key="k", name="mlflow", kind="ModelRegistry", backend="mlflow",
                              endpoint="http://mlflow.example", credentials={"username": "alice"})
    with pytest.raises(CredentialsRejected, match="both"):
        await MlflowBackend(conn, transport=httpx.MockTransport(lambda r: httpx.Response(200))).check()


async def test_401_is_credentials_rejected_and_scrubbed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error_code": "UNAUTHENTICATED", "message": "bad token tok-123456"})

    conn = RegistryConnection(key="k", name="mlflow", kind="ModelRegistry", backend="mlflow",
                              endpoint="http://mlflow.example", credentials={"token": "tok-123456"})
    with pytest.raises(CredentialsRejected) as info:
        await MlflowBackend(conn, transport=httpx.MockTransport(handler)).check()
    assert "tok-123456" not in info.value.message and "rejected the token" in info.value.message
