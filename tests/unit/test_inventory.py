"""``Backend.list_entries`` of each backend against its simulator (in-process), ZStack's
QueryUserTag in the simulator, and the classification ``modelsync inventory`` prints."""
from __future__ import annotations

import argparse
import io
from typing import Any, Iterator

import httpx
import pytest

from modelsync import api, cli
from modelsync.__main__ import parser
from modelsync.backends.base import Backend, Entry, RegistryConnection, Resource, Unsupported
from modelsync.vendors.instill import mapping as instill
from modelsync.vendors.instill import simulator as instill_sim
from modelsync.vendors.instill.client import InstillBackend
from modelsync.vendors.nemo import mapping as nemo
from modelsync.vendors.nemo import simulator as nemo_sim
from modelsync.vendors.nemo.client import NemoBackend
from modelsync.vendors.zstack import simulator as zstack_sim
from modelsync.vendors.zstack.client import ZStackBackend
from modelsync.simulators.server import serve_in_thread

CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"
PASSWORD = "password"
INSTILL_TOKEN = "instill_sk_local"


def res(kind: str, name: str, uid: str, **spec: Any) -> Resource:
    return Resource(kind=kind, name=name, namespace="ml", uid=uid, generation=1,  # type: ignore[arg-type]
                    spec=api.parse_spec(kind, {"registries": [{"name": "reg"}], **spec}))


def conn(backend: str, url: str, **kw: Any) -> RegistryConnection:
    return RegistryConnection(key="ModelRegistry/ml/reg", name="reg", kind="ModelRegistry", backend=backend,
                              endpoint=url, timeout=5.0, **kw)


# ---------------------------------------------------------------- the interface


async def test_default_is_unsupported() -> None:
    class Bare(Backend):
        name = "bare"

        async def observe(self, res: Resource) -> Any: ...
        async def create(self, res: Resource) -> Any: ...
        async def update(self, res: Resource, obs: Any) -> Any: ...
        async def delete(self, res: Resource) -> None: ...
        async def check(self) -> str:
            return ""

    with pytest.raises(Unsupported, match="bare backend cannot list"):
        await Bare(conn("bare", "http://x")).list_entries()


# ---------------------------------------------------------------- ZStack


SVC = {"config": "services: []\n", "resources": {"cpu": 1, "memory": "1Gi"}, "startCommand": "python3 app.py",
       "zstack": {"installPath": "/opt/svc"}}


@pytest.fixture
def zsim() -> Iterator[tuple[str, Any]]:
    app = zstack_sim.create_app(password=PASSWORD, model_center_uuid=CENTER)
    with serve_in_thread(app) as url:
        yield url, app


def zstack_login(http: httpx.Client) -> dict[str, str]:
    import hashlib

    body = {"logInByAccount": {"accountName": "admin", "password": hashlib.sha512(PASSWORD.encode()).hexdigest()}}
    session = http.put("/zstack/v1/accounts/login", json=body).json()["inventory"]["uuid"]
    return {"Authorization": f"OAuth {session}"}


async def test_zstack_lists_models_and_services_with_owner_tags(zsim: tuple[str, Any]) -> None:
    url, app = zsim
    b = ZStackBackend(conn("zstack", url, credentials={"accountName": "admin", "password": PASSWORD},
                                  settings={"modelCenterUuid": CENTER}))
    b.list_page_size = 2  # three models: two pages
    try:
        m1 = await b.create(res("Model", "qwen", "uid-1", installPath="/m/qwen"))
        m2 = await b.create(res("Model", "llama", "uid-2", installPath="/m/llama"))
        s1 = await b.create(res("ModelService", "vllm", "uid-3", **SVC))
        with httpx.Client(base_url=url, timeout=5) as http:
            auth = zstack_login(http)
            r = http.post("/zstack/v1/ai/models", headers=auth, json={"param": {
                "name": "by-hand", "installPath": "/m/hand", "modelCenterUuid": CENTER}, "userTags": ["team::ml"]})
            assert r.status_code == 200, r.text
            hand = r.json()["inventory"]
            http.delete("/_sim/requests").raise_for_status()
            entries = await b.list_entries()
            journal = [e for e in http.get("/_sim/requests").json() if "/zstack/v1/" in e["path"]]
    finally:
        await b.aclose()
    assert sorted(entries, key=lambda e: e.name) == sorted([
        Entry("Model", m1["uuid"], "qwen", "ml/qwen", "modelsync.io/owner::ml/qwen"),
        Entry("Model", m2["uuid"], "llama", "ml/llama", "modelsync.io/owner::ml/llama"),
        Entry("ModelService", s1["uuid"], "vllm", "ml/vllm", "modelsync.io/owner::ml/vllm"),
        Entry("Model", hand["uuid"], "by-hand"),  # another user tag is no owner marker
    ], key=lambda e: e.name)
    # read-only, paged with start/limit: 3 models in pages of 2, 1 service, 4 user tags
    assert {e["method"] for e in journal} == {"GET"}
    paths = [e["path"] for e in journal]
    assert (paths.count("/zstack/v1/ai/models"), paths.count("/zstack/v1/ai/model-services"),
            paths.count("/zstack/v1/user-tags")) == (2, 1, 3)
    assert app["zstack"].models  # nothing was removed


def test_zstack_simulator_query_user_tags(zsim: tuple[str, Any]) -> None:
    url, _ = zsim
    with httpx.Client(base_url=url, timeout=5) as http:
        auth = zstack_login(http)
        made = http.post("/zstack/v1/ai/models", headers=auth, json={
            "param": {"name": "m", "installPath": "/m", "modelCenterUuid": CENTER},
            "userTags": ["modelsync.io/owner::ml/m", "other"]}).json()["inventory"]
        # a session is needed, as for every query (RestServer refuses a missing header with 400)
        assert http.get("/zstack/v1/user-tags").status_code == 400
        found = http.get("/zstack/v1/user-tags", headers=auth, params={"q": f"resourceUuid={made['uuid']}"}).json()
        tags = found["inventories"]
        assert [t["tag"] for t in tags] == ["modelsync.io/owner::ml/m", "other"]
        assert {(t["resourceUuid"], t["resourceType"], t["type"]) for t in tags} == {(made["uuid"], "ModelVO", "User")}
        assert set(tags[0]) == set(zstack_sim.USER_TAG_INVENTORY_FIELDS)
        one = http.get(f"/zstack/v1/user-tags/{tags[1]['uuid']}", headers=auth).json()["inventories"]
        assert one == [tags[1]]
        page = http.get("/zstack/v1/user-tags", headers=auth,
                        params=[("q", "resourceType=ModelVO"), ("start", "1"), ("limit", "5")]).json()
        assert page["inventories"] == [tags[1]]
        assert http.get("/zstack/v1/user-tags", headers=auth,
                        params={"q": "resourceType=ModelServiceVO"}).json()["inventories"] == []
        bad = http.get("/zstack/v1/user-tags", headers=auth, params={"q": "nope=1"})
        assert bad.status_code == 503 and bad.json()["error"]["code"] == "SYS.1007"
        http.delete(f"/zstack/v1/ai/models/{made['uuid']}", headers=auth).raise_for_status()
        assert http.get("/zstack/v1/user-tags", headers=auth).json()["inventories"] == []


# ---------------------------------------------------------------- NeMo


async def test_nemo_lists_every_page_with_markers() -> None:
    app = nemo_sim.create_app()
    with serve_in_thread(app) as url:
        b = NemoBackend(conn("nemo", url, settings={"workspace": "default"}))
        b.list_page_size = 2
        try:
            made = [await b.create(res("Model", f"m{i}", f"uid-{i}", description=f"d{i}")) for i in range(3)]
            with httpx.Client(base_url=url, timeout=5) as http:
                http.post("/apis/models/v2/workspaces/default/models", json={
                    "name": "by-hand", "custom_fields": {"team": "ml"}}).raise_for_status()
                http.post("/apis/models/v2/workspaces/system/models", json={"name": "elsewhere"}).raise_for_status()
                http.delete("/_sim/requests")
                entries = await b.list_entries()
                pages = [e for e in http.get("/_sim/requests").json() if e["path"].startswith("/apis/")]
        finally:
            await b.aclose()
    by_name = {e.name: e for e in entries}
    assert set(by_name) == {m["name"] for m in made} | {"by-hand"}  # the workspace only
    for i, m in enumerate(made):
        assert by_name[m["name"]] == Entry("Model", m["name"], m["name"], f"ml/m{i}",
                                           m["custom_fields"][nemo.OWNER_KEY])
    assert by_name["by-hand"].owner is None and by_name["by-hand"].marker is None
    assert len(pages) == 2 and all(p["method"] == "GET" for p in pages)


async def test_nemo_missing_workspace_is_misconfigured() -> None:
    with serve_in_thread(nemo_sim.create_app()) as url:
        b = NemoBackend(conn("nemo", url, settings={"workspace": "absent"}))
        try:
            with pytest.raises(Exception, match="workspace 'absent' not found"):
                await b.list_entries()
        finally:
            await b.aclose()


# ---------------------------------------------------------------- Instill


INSTILL = {"modelDefinition": "container", "configuration": {}, "task": "TASK_CHAT",
           "region": "REGION_LOCAL", "hardware": "CPU"}


async def test_instill_lists_models_with_readme_markers() -> None:
    app = instill_sim.create_app()
    with serve_in_thread(app) as url:
        b = InstillBackend(conn("instill", url, credentials={"token": INSTILL_TOKEN},
                                        settings={"namespace": "local"}))
        try:
            made = await b.create(res("Model", "llama", "uid-1", readme="# Llama", instill=INSTILL))
            with httpx.Client(base_url=url, timeout=5, headers={"Authorization": f"Bearer {INSTILL_TOKEN}"}) as http:
                r = http.post("/v1alpha/namespaces/local/models", json={
                    "id": "by-hand", "visibility": "VISIBILITY_PRIVATE", "readme": "# mine",
                    **{k: v for k, v in INSTILL.items()}, "modelDefinition": "model-definitions/container"})
                assert r.status_code == 201, r.text
                entries = await b.list_entries()
        finally:
            await b.aclose()
    marker = instill.owner_token(res("Model", "llama", "uid-1", instill=INSTILL), b.conn)
    assert sorted(entries, key=lambda e: e.name) == [
        Entry("Model", "by-hand", "by-hand"),
        Entry("Model", made["id"], made["id"], "ml/llama", marker),
    ]


async def test_instill_follows_page_tokens() -> None:
    seen: list[dict[str, str]] = []
    readme = "x\n\n<!-- managed-by: modelsync.io; owner: 0b4c3a5e-8d1f-4e2a-9c67-5f3e2d1a0b98; resource: Model a/b -->"

    def handler(request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        seen.append(q)
        if not q.get("pageToken"):
            return httpx.Response(200, json={"models": [{"id": "one", "readme": readme}], "nextPageToken": "t2"})
        return httpx.Response(200, json={"models": [{"id": "two"}], "nextPageToken": ""})

    b = InstillBackend(conn("instill", "http://instill", credentials={"token": "t"},
                                    settings={"namespace": "ns"}), transport=httpx.MockTransport(handler))
    try:
        entries = await b.list_entries()
    finally:
        await b.aclose()
    assert entries == [Entry("Model", "one", "one", "a/b", "0b4c3a5e-8d1f-4e2a-9c67-5f3e2d1a0b98"),
                       Entry("Model", "two", "two")]
    assert [q.get("pageToken") for q in seen] == [None, "t2"]
    assert all(q["view"] == "VIEW_FULL" and q["pageSize"] == "100" for q in seen)


# ---------------------------------------------------------------- classification and output


def obj(kind: str, ns: str, name: str, *registries: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"namespace": ns, "name": name}, "status": {"registries": list(registries)}}


def test_classify_entries() -> None:
    entries = [
        Entry("Model", "u1", "qwen", "ml/qwen", "modelsync.io/owner::ml/qwen"),
        Entry("Model", "u2", "adopted"),
        Entry("Model", "u3", "gone", "ml/gone", "modelsync.io/owner::ml/gone"),
        Entry("Model", "u4", "hand"),
        Entry("Model", "u5", "recreated", "ml/re", "modelsync.io/owner::ml/re"),
        Entry("ModelService", "u6", "svc", "other/svc", "modelsync.io/owner::other/svc"),
        Entry("Model", "u7", "qwen-copy", "ml/qwen", "m"),  # same owner, another id: not the one recorded
        Entry("ModelService", "u1", "same id, other kind"),
    ]
    objects = [
        obj("Model", "ml", "qwen", {"name": "reg", "kind": "ModelRegistry", "externalId": "u1"}),
        obj("Model", "ml", "own", {"name": "reg", "externalId": "u2", "adopted": True}),
        obj("Model", "ml", "re", {"name": "reg", "kind": "ModelRegistry", "externalId": "other"}),
        obj("Model", "ml", "elsewhere", {"name": "reg", "kind": "ClusterModelRegistry", "externalId": "u4"}),
    ]
    looked: list[tuple[str, str, str]] = []

    def lookup(kind: str, ns: str, name: str) -> dict[str, Any] | None:
        looked.append((kind, ns, name))
        if name == "gone":
            return None
        return obj(kind, ns, name, {"name": "shared", "kind": "ClusterModelRegistry", "externalId": "u6"})

    rows = {r["id"] + r["kind"]: r for r in cli.classify_entries(entries, objects, reg_kind="ModelRegistry",
                                                                  reg_name="reg", lookup=lookup)}
    state = {k: (r["state"], r["resource"]) for k, r in rows.items()}
    assert state == {
        "u1Model": ("managed", "ml/qwen"),
        "u2Model": ("managed", "ml/own"),
        "u3Model": ("orphaned", "ml/gone"),
        "u4Model": ("unmanaged", None),  # recorded for another registry: not this one's
        "u5Model": ("orphaned", "ml/re"),
        "u6ModelService": ("managed", "other/svc"),
        "u7Model": ("orphaned", "ml/qwen"),
        "u1ModelService": ("unmanaged", None),
    }
    assert rows["u2Model"]["adopted"] and "adopted" in rows["u2Model"]["note"]
    assert rows["u3Model"]["gone"] and not rows["u5Model"]["gone"]
    assert "ClusterModelRegistry/shared" in rows["u6ModelService"]["note"]
    # only names outside the listed objects are looked up, once each
    assert sorted(looked) == [("Model", "ml", "gone"), ("ModelService", "other", "svc")]


def test_classify_without_lookup_means_gone() -> None:
    rows = cli.classify_entries([Entry("Model", "u", "m", "a/b", "x")], [], reg_kind="ModelRegistry", reg_name="r")
    assert (rows[0]["state"], rows[0]["gone"]) == ("orphaned", True)


def test_inventory_table() -> None:
    rows = cli.classify_entries(
        [Entry("Model", "u1", "qwen", "ml/qwen", "t1"), Entry("Model", "u3", "old", "ml/old", "t3"),
         Entry("Model", "u2", "hand")],
        [obj("Model", "ml", "qwen", {"name": "reg", "externalId": "u1"})], reg_kind="ModelRegistry", reg_name="reg")
    assert cli.inventory_table(rows) == [
        "ID   NAME   KIND    STATE       RESOURCE",
        "u2   hand   Model   unmanaged   -",
        "u3   old    Model   orphaned    ml/old (gone)",
        "u1   qwen   Model   managed     ml/qwen",
    ]
    wide = cli.inventory_table(rows, wide=True)
    assert wide[0].split() == ["ID", "NAME", "KIND", "STATE", "RESOURCE", "MARKER", "NOTE"]
    assert wide[2].endswith("t3       ml/old is gone")


def test_parser_wires_inventory() -> None:
    args = parser().parse_args(["inventory", "zstack", "-n", "ml", "-o", "json"])
    assert (args.command, args.registry, args.namespace, args.cluster, args.output) == (
        "inventory", "zstack", "ml", False, "json")
    assert args.handler is cli.inventory
    args = parser().parse_args(["inventory", "shared", "--cluster"])
    assert args.cluster and args.output is None


def test_inventory_without_kubeconfig_fails_cleanly(tmp_path: Any) -> None:
    args = argparse.Namespace(registry="r", namespace="ml", cluster=False, output=None,
                              kubeconfig=str(tmp_path / "absent"), context=None)
    out, err = io.StringIO(), io.StringIO()
    assert cli.inventory(args, stdout=out, stderr=err) == 2
    assert "no Kubernetes configuration" in err.getvalue() and out.getvalue() == ""
