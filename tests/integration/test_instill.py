"""Instill AI end to end: the real apiserver (with the CRD's CEL rules), the operator as a
process, the Instill simulator in-process, serving each generation of the model API in turn
(``legacy``: model-backend v0.38.5, the client's ids; ``aip``: model-backend main, the server's
ids, displayName and slug). Each test's registry is new, so the operator finds the generation
from the server itself."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from kubernetes.client.rest import ApiException

from modelsync.backends.base import deterministic_id
from modelsync.vendors.instill.mapping import counted
from modelsync.testing import K8s, OperatorProcess
from modelsync.testing.k8s import condition

from .conftest import RESYNC_SECONDS, Sim, model, service, start_sim

pytestmark = pytest.mark.integration

TOKEN = "instill_sk_local"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODELS = "/v1alpha/namespaces/local/models"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "instill"

INST = {
    "modelDefinition": "model-definitions/container",
    "configuration": {},
    "task": "TASK_CHAT",
    "region": "REGION_GCP_EUROPE_WEST4",
    "hardware": "CPU",
}
#: what the simulator leaves out of status (large or echoed fields), as the backend does
INVENTORY_OMIT = {"readme", "profileImage", "inputSchema", "outputSchema"}
LICENSE = "https://llama.meta.com/llama3_1/license/"


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module", params=["legacy", "aip"])
def isim(request: pytest.FixtureRequest) -> Iterator[Sim]:
    for sim in start_sim("instill", generation=request.param):
        sim.generation = request.param  # type: ignore[attr-defined]
        yield sim


def aip(sim: Sim) -> bool:
    return bool(getattr(sim, "generation", "legacy") == "aip")


def ident(sim: Sim, external_id: str) -> str:
    """What names a model in a create: the id on legacy, the slug on aip (where ``externalId`` is
    the server's id)."""
    return str(stored(sim)[external_id]["slug"]) if aip(sim) else external_id


def registry(k8s: K8s, ns: str, sim: Sim, name: str = "instill", token: str = TOKEN) -> None:
    k8s.secret(f"{name}-token", ns, {"token": token})
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": name}, "spec": {
        "backend": "instill", "endpoint": sim.url, "credentialsSecretRef": {"name": f"{name}-token"},
        "instill": {"namespace": "local"}, "requestTimeout": "10s"}}, ns)


@pytest.fixture
def fresh(k8s: K8s, ns: str, isim: Sim, operator: OperatorProcess) -> Iterator[str]:
    """A namespace and an empty simulator (no models, no faults, empty journal)."""
    isim.reset()
    yield ns
    k8s.empty_namespace(ns)


def settled(k8s: K8s, ns: str, name: str = "instill") -> None:
    """Wait until the registry is Ready and its object stops changing.

    The operator's backend pool keys its clients on the registry's resourceVersion, so
    the status writes of the registry's own check rebuild the backend and abort whatever
    request is in flight then (a spurious ReadError and retry). Tests that count requests
    or hold one in the simulator start after that has settled.
    """
    k8s.wait_condition("ModelRegistry", name, ns, "Ready")
    last, deadline = None, time.monotonic() + 30
    while time.monotonic() < deadline:
        rv = k8s.get("ModelRegistry", name, ns)["metadata"]["resourceVersion"]
        if rv == last:
            return
        last = rv
        time.sleep(1)
    raise TimeoutError(f"ModelRegistry {ns}/{name} kept changing")


@pytest.fixture
def ins(k8s: K8s, fresh: str, isim: Sim) -> str:
    """``fresh`` plus ModelRegistry ``instill`` on the simulator with the right token, settled."""
    registry(k8s, fresh, isim)
    settled(k8s, fresh)
    return fresh


def stored(sim: Sim) -> dict[str, dict[str, Any]]:
    """The simulator's models in namespace local, by id (full view)."""
    state = sim.app["instill"]
    return {mid: dict(m) for (n, mid), m in list(state.models.items()) if n == "local"}


def posts(sim: Sim, name: str) -> list[dict[str, Any]]:
    """The creates that name ``name``: as the id (legacy; also the body sent while the generation is
    not known) or as the slug (aip)."""
    return [e for e in sim.journal() if e["method"] == "POST" and e["path"] == MODELS
            and isinstance(e["body"], dict) and name in (e["body"].get("id"), e["body"].get("slug"))]


def posts_all(sim: Sim) -> list[dict[str, Any]]:
    return [e for e in sim.journal() if e["method"] == "POST" and e["path"] == MODELS]


def writes(sim: Sim, model_id: str) -> list[dict[str, Any]]:
    """Every write that concerns ``model_id`` (the registry's id): creates naming it and writes to its URL."""
    name = ident(sim, model_id) if model_id in stored(sim) else model_id
    return posts(sim, name) + sim.writes(f"{MODELS}/{model_id}")


def owner(uid: str, ns: str, reg: str = "instill") -> str:
    return str(deterministic_id(uid, f"ModelRegistry/{ns}/{reg}"))


def marker(uid: str, ns: str, name: str, reg: str = "instill") -> str:
    return f"<!-- managed-by: modelsync.io; owner: {owner(uid, ns, reg)}; resource: Model {ns}/{name} -->"


def synced_at(k8s: K8s, name: str, ns: str, generation: int, timeout: float = 60) -> dict[str, Any]:
    return k8s.wait("Model", name, ns, lambda o: o["status"].get("observedGeneration") == generation
                    and condition(o, "Ready").get("status") == "True", timeout, what=f"generation {generation} synced")


def failed(k8s: K8s, name: str, ns: str, reason: str, kind: str = "Model", timeout: float = 60) -> dict[str, Any]:
    return k8s.wait(kind, name, ns, lambda o: condition(o, "Synced").get("status") == "False"
                    and condition(o, "Synced").get("reason") == reason
                    and condition(o, "Synced").get("observedGeneration") == o["metadata"]["generation"],
                    timeout, what=f"Synced=False/{reason}")


def sim_create(sim: Sim, model_id: str, **fields: Any) -> dict[str, Any]:
    """Create a model through the simulator's own API, as another Instill user would (on aip,
    ``model_id`` is the slug; the display name is the same)."""
    name = {"displayName": model_id, "slug": model_id} if aip(sim) else {"id": model_id}
    body = {**name, "visibility": "VISIBILITY_PRIVATE", **INST, **fields}
    resp = sim.http.post(MODELS, json=body, headers=AUTH)
    assert resp.status_code == 201, resp.text
    return dict(resp.json()["model"])


def without_nulls(value: Any) -> Any:
    """A JSON value as the status keeps it: the reply's nulls (EmitUnpopulated) are not stored."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


def api_message(exc: ApiException) -> str:
    return str(json.loads(exc.body)["message"])


# ---------------------------------------------------------------- create, update, resync


def test_model_created_with_inventory_in_status(k8s: K8s, ins: str, isim: Sim) -> None:
    obj = k8s.create(model("llama", ["instill"], description="Llama 3.1 8B instruct", license=LICENSE,
                           readme="# Llama 3.1 8B\n", instill=INST), ins)
    uid = obj["metadata"]["uid"]
    mdl = k8s.wait_condition("Model", "llama", ins, "Ready")
    assert condition(mdl, "Synced")["status"] == "True"
    entry = mdl["status"]["registries"][0]
    assert entry["synced"] and entry["backend"] == "instill" and entry["reason"] == "Synced"

    # the id rule: ms-<name>-<first 8 hex of uuid5(uid, registry key)>; on aip that is the slug, and
    # the id (what status records) is the server's
    name = f"ms-llama-{deterministic_id(uid, f'ModelRegistry/{ins}/instill').hex[:8]}"
    model_id = entry["externalId"]
    models = stored(isim)
    assert list(models) == [model_id]
    sim_model = models[model_id]
    if aip(isim):
        assert model_id.startswith("mod-") and sim_model["slug"] == name
        assert sim_model["displayName"] == "llama"  # spec.instill.displayName defaults to the resource's name
        assert entry["inventory"]["slug"] == name and entry["inventory"]["displayName"] == "llama"
    else:
        assert model_id == name and "displayName" not in sim_model

    # status carries Instill's own object, as stored (minus the large fields)
    inv = entry["inventory"]
    assert inv == without_nulls({k: v for k, v in sim_model.items() if k not in INVENTORY_OMIT})
    assert inv["id"] == model_id and inv["name"] == f"namespaces/local/models/{model_id}"
    assert inv["uid"] == sim_model["uid"]
    assert inv["configuration"] == INST["configuration"]  # read with view=VIEW_FULL
    assert (inv["modelDefinition"], inv["task"], inv["region"], inv["hardware"], inv["visibility"]) == (
        "model-definitions/container", "TASK_CHAT", "REGION_GCP_EUROPE_WEST4", "CPU", "VISIBILITY_PRIVATE")
    assert inv["description"] == "Llama 3.1 8B instruct" and inv["license"] == LICENSE
    # the ownership marker trails the user's readme
    assert sim_model["readme"] == f"# Llama 3.1 8B\n\n{marker(uid, ins, 'llama')}"
    assert "readme" not in inv

    assert len(posts(isim, name)) == 1
    reasons = [e.reason for e in k8s.events(ins, "llama")]
    assert "Created" not in reasons, reasons  # a create is in the status, not worth an Event


def test_update_sends_only_changed_mutable_fields(k8s: K8s, ins: str, isim: Sim) -> None:
    obj = k8s.create(model("upd", ["instill"], description="v1", readme="# Upd\n", instill=INST), ins)
    uid = obj["metadata"]["uid"]
    model_id = k8s.wait_condition("Model", "upd", ins, "Ready")["status"]["registries"][0]["externalId"]
    isim.clear_journal()
    k8s.patch("Model", "upd", ins, {"spec": {"description": "v2, now on GPU", "readme": "# Upd\nServed on an L4.",
                                             "instill": {"hardware": "NVIDIA_L4"}}})
    mdl = synced_at(k8s, "upd", ins, 2)

    changed = writes(isim, model_id)
    assert len(changed) == 1, changed
    assert changed[0]["method"] == "PATCH" and changed[0]["path"] == f"{MODELS}/{model_id}"
    body = changed[0]["body"]
    # only what changed: the update mask is the body; never an immutable field
    assert set(body) == {"description", "hardware", "readme"}, body
    assert body["description"] == "v2, now on GPU" and body["hardware"] == "NVIDIA_L4"
    assert body["readme"] == f"# Upd\nServed on an L4.\n\n{marker(uid, ins, 'upd')}"
    assert not [e for e in isim.journal() if isinstance(e["body"], dict) and "configuration" in e["body"]]

    inv = mdl["status"]["registries"][0]["inventory"]
    assert inv["description"] == "v2, now on GPU" and inv["hardware"] == "NVIDIA_L4"
    assert stored(isim)[model_id]["hardware"] == "NVIDIA_L4"
    assert inv["configuration"] == INST["configuration"] and inv["task"] == "TASK_CHAT"


def test_unchanged_resync_writes_nothing(k8s: K8s, ins: str, isim: Sim) -> None:
    k8s.create(model("calm", ["instill"], description="steady", instill=INST), ins)
    k8s.wait_condition("Model", "calm", ins, "Ready")
    time.sleep(1)  # let the create's own follow-ups (diff-base, event) settle
    before = k8s.get("Model", "calm", ins)
    model_id = before["status"]["registries"][0]["externalId"]
    isim.clear_journal()
    time.sleep(RESYNC_SECONDS * 4)  # several resync timers fire
    journal = isim.journal()
    reads = [e for e in journal if e["method"] == "GET" and e["path"] == f"{MODELS}/{model_id}"]
    assert len(reads) >= 2, "the resyncs did not look at the registry"
    assert [e for e in journal if e["method"] not in ("GET", "HEAD")] == []
    after = k8s.get("Model", "calm", ins)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_lost_create_replies_at_a_rate_never_leave_two_models(k8s: K8s, ins: str, isim: Sim) -> None:
    """Half the create replies lost (the --lose-rate knob), several Models at once: each ends with
    exactly one model in Instill, the one its status names."""
    isim.faults(lose_rate=0.5, match=f"POST {MODELS}")
    names = [f"lossy-{i}" for i in range(6)]
    uids = {n: k8s.create(model(n, ["instill"], instill=INST), ins)["metadata"]["uid"] for n in names}
    ids = {n: k8s.wait_condition("Model", n, ins, "Ready", timeout=120)["status"]["registries"][0]["externalId"]
           for n in names}
    isim.faults(lose_rate=0.0)
    models = stored(isim)
    assert sorted(models) == sorted(ids.values())
    for n in names:
        owners = [mid for mid, m in models.items() if owner(uids[n], ins) in m["readme"]]
        assert owners == [ids[n]], (n, owners)
    assert len(posts_all(isim)) >= len(names)


# ---------------------------------------------------------------- immutable fields: the CEL rule


def test_immutable_fields_rejected_by_apiserver_once_created(k8s: K8s, ins: str, isim: Sim) -> None:
    k8s.create(model("fixed", ["instill"], instill=INST), ins)
    created = k8s.wait_condition("Model", "fixed", ins, "Ready")
    model_id = created["status"]["registries"][0]["externalId"]
    isim.clear_journal()

    for field, value in (("task", "TASK_COMPLETION"),
                         ("configuration", None),  # removed: {} is the only value the CRD admits
                         ("region", "REGION_LOCAL"), ("modelDefinition", "container"),
                         ("id", "another-id")):
        with pytest.raises(ApiException) as info:
            k8s.patch("Model", "fixed", ins, {"spec": {"instill": {field: value}}})
        assert info.value.status == 422, info.value.body
        message = api_message(info.value)
        assert f"spec.instill.{field} cannot change after the model is created in Instill" in message, message
        assert "create a new Model" in message

    # nothing was admitted, so nothing reached Instill
    obj = k8s.get("Model", "fixed", ins)
    assert obj["metadata"]["generation"] == created["metadata"]["generation"]
    assert obj["spec"]["instill"] == {**INST, "visibility": "VISIBILITY_PRIVATE"}
    assert writes(isim, model_id) == []
    # the mutable fields of the same section still change
    k8s.patch("Model", "fixed", ins, {"spec": {"instill": {"hardware": "NVIDIA_A100"}}})
    synced_at(k8s, "fixed", ins, created["metadata"]["generation"] + 1)


def test_immutable_fields_editable_before_creation(k8s: K8s, fresh: str, isim: Sim) -> None:
    """The rule is tied to creation: while no Instill registry has an externalId in status,
    the same edits are admitted, and the model is created with the edited values."""
    k8s.create(model("early", ["instill-late"], instill=INST), fresh)
    obj = k8s.wait("Model", "early", fresh, lambda o: any(
        e.get("reason") == "RegistryNotFound" for e in (o.get("status") or {}).get("registries") or []),
        what="RegistryNotFound")
    assert not obj["status"]["registries"][0].get("externalId")
    k8s.patch("Model", "early", fresh, {"spec": {"instill": {"task": "TASK_COMPLETION"}}})
    k8s.patch("Model", "early", fresh, {"spec": {"instill": {"region": "REGION_LOCAL"}}})
    assert k8s.get("Model", "early", fresh)["metadata"]["generation"] == 3

    registry(k8s, fresh, isim, name="instill-late")
    mdl = k8s.wait_condition("Model", "early", fresh, "Ready", timeout=90)
    model_id = mdl["status"]["registries"][0]["externalId"]
    sim_model = stored(isim)[model_id]
    assert sim_model["task"] == "TASK_COMPLETION"
    assert sim_model["region"] == "REGION_LOCAL"
    # and now that it exists, the same kind of edit is refused
    with pytest.raises(ApiException) as info:
        k8s.patch("Model", "early", fresh, {"spec": {"instill": {"task": "TASK_CHAT"}}})
    assert info.value.status == 422
    assert "spec.instill.task cannot change after the model is created in Instill" in api_message(info.value)


# ---------------------------------------------------------------- errors → conditions


def test_spec_rejected_by_instill_is_terminal_until_fixed(k8s: K8s, ins: str, isim: Sim) -> None:
    # the CRD's URI pattern admits a bad %-escape that Go's url.Parse (the server's format: uri) refuses
    k8s.create(model("hf", ["instill"], instill={**INST, "sourceUrl": "https://example.com/%zz"}), ins)
    obj = failed(k8s, "hf", ins, "InvalidSpec")
    synced = condition(obj, "Synced")
    assert "HTTP 400: Model spec is invalid: /source_url:" in synced["message"], synced["message"]
    assert condition(obj, "Ready")["status"] == "False"
    entry = obj["status"]["registries"][0]
    assert entry["reason"] == "InvalidSpec" and not entry.get("externalId")
    name = next(e["body"].get("id") or e["body"]["slug"] for e in isim.journal() if e["method"] == "POST")
    assert name.startswith("ms-hf-")
    assert len(posts(isim, name)) == 1

    time.sleep(RESYNC_SECONDS * 3)  # resyncs do not call Instill again for a rejected spec
    assert len(posts(isim, name)) == 1
    assert stored(isim) == {}

    k8s.patch("Model", "hf", ins, {"spec": {"instill": {"sourceUrl": "https://example.com/%20"}}})
    mdl = synced_at(k8s, "hf", ins, 2)
    model_id = mdl["status"]["registries"][0]["externalId"]
    assert ident(isim, model_id) == name
    assert stored(isim)[model_id]["sourceUrl"] == "https://example.com/%20"


def test_wrong_token_is_credentials_rejected_and_never_shown(
        k8s: K8s, ins: str, isim: Sim, operator: OperatorProcess) -> None:
    wrong = "ist-wrong-9c4e71b2d05a"  # not instill_sk_-shaped: only the Secret-value scrub can hide it
    registry(k8s, ins, isim, name="instill-badtoken", token=wrong)
    k8s.create(model("locked", ["instill-badtoken"], instill=INST), ins)
    obj = failed(k8s, "locked", ins, "CredentialsRejected")
    synced = condition(obj, "Synced")
    assert "rejected the API token" in synced["message"] and "HTTP 401" in synced["message"]
    assert condition(obj, "Ready")["status"] == "False"
    entry = obj["status"]["registries"][0]
    assert entry["reason"] == "CredentialsRejected" and not entry.get("externalId")
    # Instill was asked (its 401 is in the message above): the first request is the read that tells
    # the generation (GET …/models?pageSize=1), so nothing was created
    assert not [e for e in isim.journal() if e["method"] == "POST" and e["path"] == MODELS]
    assert stored(isim) == {}
    # the registry itself reports the rejected token on its own Ready condition
    reg = k8s.wait("ModelRegistry", "instill-badtoken", ins,
                   lambda o: condition(o, "Ready").get("reason") == "CredentialsRejected", what="Ready=False")
    assert condition(reg, "Ready")["status"] == "False"
    time.sleep(RESYNC_SECONDS)  # let resyncs and rechecks log and post what they will
    obj = k8s.get("Model", "locked", ins)
    reg = k8s.get("ModelRegistry", "instill-badtoken", ins)
    events = " ".join(f"{e.reason} {e.message}" for e in k8s.core.list_namespaced_event(ins).items)
    log = operator.log()
    assert "rejected the API token" in log  # the failure was logged, so the log check below looks at real text
    for text in (json.dumps(obj), json.dumps(reg), events, log):
        assert wrong not in text
        assert TOKEN not in text


def test_model_with_our_marker_is_adopted(k8s: K8s, fresh: str, isim: Sim) -> None:
    """A model at the id that carries this resource's ownership marker (say, created before
    a status was lost) is ours: adopted and brought in line, never created twice."""
    obj = k8s.create(model("adopt", ["instill-late"], description="wanted", instill={**INST, "id": "adopt-me"}), fresh)
    uid = obj["metadata"]["uid"]
    before = sim_create(isim, "adopt-me", description="stale", readme=marker(uid, fresh, "adopt", "instill-late"))
    isim.clear_journal()
    registry(k8s, fresh, isim, name="instill-late")
    mdl = k8s.wait_condition("Model", "adopt", fresh, "Ready", timeout=90)
    entry = mdl["status"]["registries"][0]
    assert entry["externalId"] == before["id"]
    assert list(stored(isim)) == [before["id"]]
    assert stored(isim)[before["id"]]["uid"] == before["uid"] == entry["inventory"]["uid"]
    # a first try creates without reading first: at most that one POST, answered 409 and adopted
    # (aip: the create looks the slug up first, so none)
    assert len(posts(isim, "adopt-me")) <= (0 if aip(isim) else 1)
    patches = [e for e in writes(isim, before["id"]) if e["method"] != "POST"]
    # the display name defaults to the resource's name (aip only)
    expected = {"displayName": "adopt", "description": "wanted"} if aip(isim) else {"description": "wanted"}
    assert [(e["method"], e["body"]) for e in patches] == [("PATCH", expected)]


@pytest.mark.parametrize("ours", [False, True], ids=["foreign", "ours"])
def test_create_conflict_409_adopts_ours_refuses_foreign(
        k8s: K8s, ins: str, isim: Sim, operator: OperatorProcess, ours: bool) -> None:
    """The model appears between the operator's read and its create, so the POST gets 409:
    the backend reads the model and adopts it only if it carries our marker."""
    if aip(isim):
        pytest.skip("the aip generation never answers 409: its ids are the server's (the slug is looked up "
                    "before the create instead)")
    model_id = "race-ours" if ours else "race-foreign"
    hold = 3.0
    isim.faults(latency=hold, match=f"POST {MODELS}")  # hold the operator's POST in the simulator
    obj = k8s.create(model("racer", ["instill"], instill={**INST, "id": model_id}), ins)
    deadline = time.monotonic() + 30
    while not posts(isim, model_id):
        assert time.monotonic() < deadline, "the operator never sent its create"
        time.sleep(0.05)
    held_until = time.monotonic() + hold
    isim.faults(latency=0)  # our own create goes through at once, ahead of the held one
    readme = marker(obj["metadata"]["uid"], ins, "racer") if ours else "# someone else's"
    first = sim_create(isim, model_id, readme=readme)

    if ours:
        mdl = k8s.wait_condition("Model", "racer", ins, "Ready")
        assert mdl["status"]["registries"][0]["externalId"] == model_id
        assert mdl["status"]["registries"][0]["inventory"]["uid"] == first["uid"]
    else:
        mdl = failed(k8s, "racer", ins, "NameTaken")
        assert f"local/{model_id} exists and is not managed by this resource" in condition(mdl, "Synced")["message"]
    time.sleep(max(0.0, held_until - time.monotonic()) + 0.5)  # the held request is answered by now
    assert list(stored(isim)) == [model_id]
    assert stored(isim)[model_id]["uid"] == first["uid"]
    # two creates (the test's and the operator's, answered 409), and the operator wrote nothing else
    assert len(posts(isim, model_id)) == 2
    assert isim.writes(f"{MODELS}/{model_id}") == []
    # decided on the 409 itself: one attempt, no transport error and retry
    log = operator.log()
    assert not [line for line in log.splitlines() if "failed temporarily" in line and f"local/{model_id}" in line]
    if ours:
        assert f"Instill model local/{model_id}: already exists and is ours; adopting it" in log


def test_throttling_and_server_errors_back_off_and_recover(
        k8s: K8s, ins: str, isim: Sim, operator: OperatorProcess) -> None:
    isim.faults(fail_next=2, throttle_next=1, retry_after=1, match=f"POST {MODELS}")
    k8s.create(model("flaky", ["instill"], instill=INST), ins)
    mdl = k8s.wait_condition("Model", "flaky", ins, "Ready", timeout=120)
    model_id = mdl["status"]["registries"][0]["externalId"]
    name = ident(isim, model_id)
    assert len(posts(isim, name)) == 4  # 429, 503, 503, then the create
    assert list(stored(isim)) == [model_id]
    # each failure was retried as transient, with the registry's reply in words
    retried = [line for line in operator.log().splitlines()
               if "will retry" in line and f"creating Instill model local/{name}" in line]
    assert [("HTTP 429" in line, "HTTP 503" in line) for line in retried] == [(True, False), (False, True), (False, True)]


def test_model_service_on_instill_is_unsupported(k8s: K8s, ins: str, isim: Sim) -> None:
    k8s.create(service("vllm", ["instill"], description="vLLM server", framework="vLLM", ports=[8000]), ins)
    obj = failed(k8s, "vllm", ins, "Unsupported", kind="ModelService")
    message = condition(obj, "Synced")["message"]
    assert "instill" in message.lower() and "no counterpart" in message, message
    assert condition(obj, "Ready")["status"] == "False"
    time.sleep(RESYNC_SECONDS * 2)
    # Instill was never called for it (the registry's own check lists models; nothing else)
    assert [(e["method"], e["path"]) for e in isim.journal() if (e["method"], e["path"]) != ("GET", MODELS)] == []


# ---------------------------------------------------------------- examples


def test_examples_sync_ready(k8s: K8s, fresh: str, isim: Sim) -> None:
    """Every example manifest is admitted and every Model in them turns Ready against the
    faithful simulator (the published JSON Schema checks every create)."""
    assert isim.app["instill"].strict
    docs = [d for f in sorted(EXAMPLES.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    assert {d["kind"] for d in docs} >= {"Secret", "ModelRegistry", "Model"}
    models = []
    for doc in docs:
        if doc["kind"] == "Secret":
            k8s.core.create_namespaced_secret(fresh, doc)
            continue
        if doc["kind"] == "ModelRegistry":
            assert doc["spec"]["endpoint"] == "http://127.0.0.1:8081"
            doc["spec"]["endpoint"] = isim.url
        k8s.create({k: v for k, v in doc.items() if k != "apiVersion"}, fresh)
        if doc["kind"] == "Model":
            models.append(doc)
    assert models
    for doc in models:
        name = doc["metadata"]["name"]
        mdl = k8s.wait_condition("Model", name, fresh, "Ready")
        model_id = mdl["status"]["registries"][0]["externalId"]
        sim_model = stored(isim)[model_id]
        assert sim_model["task"] == doc["spec"]["instill"]["task"]
        assert sim_model["configuration"] == doc["spec"]["instill"]["configuration"]


# ---------------------------------------------------------------- fidelity to model-backend v0.38.5 (issue 14)


IMAGE = "data:image/png;base64,iVBORw0KGgo="
#: every field of the Model CRD the Instill backend can be given (the zstack and nemo sections are other registries')
EVERY_FIELD = {
    "description": "every field", "installPath": "oci://registry.example.com/every:v1", "vendor": "Example",
    "version": "1.0", "parameters": "8B", "architecture": "LlamaForCausalLM", "frameworkVersion": "vLLM 0.6",
    "task": "text-generation", "license": LICENSE, "readme": "# Every field\n",
    "gpu": {"minMemory": "16Gi", "recommendedMemory": "24Gi", "recommendedCount": [1, 2],
            "constraintDescription": "Ampere or newer", "accelerator": "cuda:12.1"},
    "defaultServiceRef": {"name": "vllm"},
    "instill": {"id": "every-field", "modelDefinition": "model-definitions/container", "configuration": {},
                "task": "TASK_CHAT", "visibility": "VISIBILITY_PUBLIC", "region": "REGION_GCP_EUROPE_WEST4",
                "hardware": "NVIDIA_L4", "sourceUrl": "https://github.com/example/every",
                "documentationUrl": "https://docs.example.com/every", "profileImage": IMAGE},
}
NOT_SETTABLE = {"spec.installPath", "spec.vendor", "spec.version", "spec.parameters", "spec.architecture",
                "spec.frameworkVersion", "spec.task", "spec.defaultServiceRef", "spec.gpu.minMemory",
                "spec.gpu.recommendedMemory", "spec.gpu.recommendedCount", "spec.gpu.constraintDescription",
                "spec.gpu.accelerator"}


def test_every_field_lands_or_is_reported_and_is_written_once(k8s: K8s, ins: str, isim: Sim) -> None:
    obj = k8s.create(model("every", ["instill"], **EVERY_FIELD), ins)
    mdl = k8s.wait_condition("Model", "every", ins, "Ready", timeout=90)
    entry = mdl["status"]["registries"][0]
    model_id = entry["externalId"]
    assert ident(isim, model_id) == "every-field"
    sim_model = stored(isim)[model_id]
    # landed: what the simulator stored is what the spec says
    inst = EVERY_FIELD["instill"]
    for field in ("modelDefinition", "configuration", "task", "visibility", "region", "hardware", "sourceUrl",
                  "documentationUrl", "profileImage"):
        assert sim_model[field] == inst[field], field
    assert (sim_model["description"], sim_model["license"]) == (EVERY_FIELD["description"], LICENSE)
    assert sim_model["readme"] == f"# Every field\n\n{marker(obj['metadata']['uid'], ins, 'every')}"
    # the rest: listed as not settable, with why
    reported = {n["field"]: n for n in entry["notSettable"]}
    assert set(reported) == NOT_SETTABLE
    assert all("Instill" in n["message"] for n in reported.values())
    # the create fitted the schema's 12 properties (of either generation: the namespace was empty, so the
    # body carried the legacy id and the aip displayName and slug); the rest followed in one PATCH
    [post] = posts(isim, "every-field")
    assert counted(post["body"], "Legacy") <= 12 and counted(post["body"], "AIP") <= 12
    assert [e["body"] for e in isim.writes(f"{MODELS}/{model_id}")] == [
        {"profileImage": IMAGE, "documentationUrl": EVERY_FIELD["instill"]["documentationUrl"]}]
    # the image reads back as a URL: recorded as sent, never sent again for the same spec
    assert "profileImage" in entry.get("unobservedFields", {})
    isim.clear_journal()
    time.sleep(RESYNC_SECONDS * 4)
    journal = isim.journal()
    assert [e for e in journal if e["method"] == "GET" and e["path"] == f"{MODELS}/{model_id}"], "no resync read"
    assert [e for e in journal if e["method"] not in ("GET", "HEAD")] == []
    # a new image is sent, once
    other = "data:image/png;base64,AAAA"
    k8s.patch("Model", "every", ins, {"spec": {"instill": {"profileImage": other}}})
    synced_at(k8s, "every", ins, 2)
    assert [e["body"] for e in isim.writes(f"{MODELS}/{model_id}")] == [{"profileImage": other}]
    assert stored(isim)[model_id]["profileImage"] == other


@pytest.mark.parametrize("spec, field", [
    ({"license": "apache-2.0"}, "spec.license"),
    ({"description": "d" * 1024}, "spec.description"),
    ({"instill": {**INST, "sourceUrl": "https://example.com/" + "a" * 44}}, "spec.instill.sourceUrl"),
    ({"instill": {**INST, "documentationUrl": "docs.example.com"}}, "spec.instill.documentationUrl"),
    ({"instill": {**INST, "configuration": {"image": "registry.example.com/x:v1"}}}, "spec.instill.configuration"),
    ({"instill": {**INST, "hardware": "GPU"}}, "spec.instill.hardware"),
    ({"instill": {**INST, "task": "TASK_SPEECH_RECOGNITION"}}, "spec.instill.task"),
    ({"instill": {**INST, "region": "REGION_MARS"}}, "spec.instill.region"),
    ({"instill": {**INST, "modelDefinition": "model-definitions/huggingface"}}, "spec.instill.modelDefinition"),
    ({"instill": {**INST, "profileImage": "https://example.com/logo.png"}}, "spec.instill.profileImage"),
])
def test_admission_knows_the_published_limits(k8s: K8s, fresh: str, spec: dict[str, Any], field: str) -> None:
    full = {"instill": INST, **spec}
    with pytest.raises(ApiException) as info:
        k8s.create(model("limits", ["instill"], **full), fresh)
    assert info.value.status == 422, info.value.body
    assert field in api_message(info.value), api_message(info.value)
    # the same values without an Instill section are not Instill's business
    if "instill" not in spec:
        k8s.create(model("limits-other", ["zstack"], **spec), fresh)


def test_missing_namespace_is_registry_misconfigured(k8s: K8s, fresh: str, isim: Sim) -> None:
    """The real server answers 500 for a namespace that does not exist; check-namespace tells."""
    k8s.secret("instill-nons-token", fresh, {"token": TOKEN})
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "instill-nons"}, "spec": {
        "backend": "instill", "endpoint": isim.url, "credentialsSecretRef": {"name": "instill-nons-token"},
        "instill": {"namespace": "nope"}, "requestTimeout": "10s"}}, fresh)
    reg = k8s.wait("ModelRegistry", "instill-nons", fresh, lambda o: condition(o, "Ready").get("reason")
                   == "RegistryMisconfigured", 60, what="Ready=False/RegistryMisconfigured")
    message = condition(reg, "Ready")["message"]
    assert "HTTP 500: namespace error" in message and "namespace 'nope' does not exist" in message, message


# ---------------------------------------------------------------- the two generations (issue 17)


def test_registry_pinned_to_the_wrong_generation_is_registry_misconfigured(k8s: K8s, fresh: str, isim: Sim) -> None:
    """spec.instill.apiGeneration names the other generation: the registry's Ready condition says so
    (its check reads a model), and so does a Model's create in an empty namespace."""
    wrong, right = ("Legacy", "AIP") if aip(isim) else ("AIP", "Legacy")
    k8s.secret("instill-pin-token", fresh, {"token": TOKEN})
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "instill-pin"}, "spec": {
        "backend": "instill", "endpoint": isim.url, "credentialsSecretRef": {"name": "instill-pin-token"},
        "instill": {"namespace": "local", "apiGeneration": wrong}, "requestTimeout": "10s"}}, fresh)
    k8s.create(model("pinned", ["instill-pin"], instill=INST), fresh)
    obj = failed(k8s, "pinned", fresh, "RegistryMisconfigured")
    message = condition(obj, "Synced")["message"]
    assert f"pinned to spec.instill.apiGeneration: {wrong}" in message, message
    assert f"set spec.instill.apiGeneration to {right}" in message, message
    assert stored(isim) == {}
    sim_create(isim, "someone-elses")
    reg = k8s.wait("ModelRegistry", "instill-pin", fresh, lambda o: condition(o, "Ready").get("reason")
                   == "RegistryMisconfigured", 60, what="Ready=False/RegistryMisconfigured")
    assert f"pinned to spec.instill.apiGeneration: {wrong}" in condition(reg, "Ready")["message"]
    # the right pin heals both
    k8s.patch("ModelRegistry", "instill-pin", fresh, {"spec": {"instill": {"apiGeneration": right}}})
    k8s.wait_condition("Model", "pinned", fresh, "Ready", timeout=90)
    reg = k8s.wait_condition("ModelRegistry", "instill-pin", fresh, "Ready")
    assert f"model API generation {right} (pinned)" in condition(reg, "Ready")["message"]


def test_generation_found_from_the_server(k8s: K8s, ins: str, isim: Sim) -> None:
    """Auto (the default): once the namespace holds a model, the registry's Ready condition names the
    generation the server speaks; a Model's displayName lands on aip and is not settable on legacy."""
    k8s.create(model("named", ["instill"], instill={**INST, "displayName": "Llama 3.1 8B Instruct"}), ins)
    entry = k8s.wait_condition("Model", "named", ins, "Ready")["status"]["registries"][0]
    generation = "AIP" if aip(isim) else "Legacy"
    reg = k8s.wait("ModelRegistry", "instill", ins, lambda o: f"model API generation {generation}"
                   in condition(o, "Ready").get("message", ""), 60, what=f"Ready names {generation}")
    assert "(found from its models)" in condition(reg, "Ready")["message"]
    if aip(isim):
        assert stored(isim)[entry["externalId"]]["displayName"] == "Llama 3.1 8B Instruct"
        assert "spec.instill.displayName" not in {n["field"] for n in entry.get("notSettable", [])}
    else:
        [reported] = [n for n in entry["notSettable"] if n["field"] == "spec.instill.displayName"]
        assert "no display name" in reported["message"]


def test_adoption_by_server_id_or_slug(k8s: K8s, fresh: str, isim: Sim) -> None:
    """spec.registries[].externalId names an entry: on aip either its server id or its slug."""
    theirs = sim_create(isim, "by-hand", description="made by hand")
    registry(k8s, fresh, isim)
    settled(k8s, fresh)
    names = [theirs["id"]] + ([theirs["slug"]] if aip(isim) else [])
    for i, external in enumerate(names):
        name = f"adopter-{i}"
        obj = model(name, ["instill"], description=f"adopted {i}", deletionPolicy="Orphan", instill=INST)
        obj["spec"]["registries"][0]["externalId"] = external
        k8s.create(obj, fresh)
        entry = k8s.wait_condition("Model", name, fresh, "Ready")["status"]["registries"][0]
        assert entry["externalId"] == theirs["id"]
        assert stored(isim)[theirs["id"]]["description"] == f"adopted {i}"
        k8s.delete("Model", name, fresh)
        k8s.wait_gone("Model", name, fresh)
    assert list(stored(isim)) == [theirs["id"]]
