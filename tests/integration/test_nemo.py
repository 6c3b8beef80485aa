"""NeMo end to end: the real apiserver, the operator as a process, the NeMo Models simulator.

The control plane has no kube-controller-manager, so deleting a namespace does
not delete what is in it: every test deletes its own Models, ModelServices and
registries on teardown (``cleanup``) and scopes its assertions to its own
entities, so objects of earlier tests that would keep resyncing against the
module's simulator cannot make a test pass or fail.
"""
from __future__ import annotations

import datetime
import secrets
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from kubernetes.client.rest import ApiException

from modelsync import api
from modelsync.backends.base import RegistryConnection, Resource
from modelsync.vendors.nemo.mapping import OWNER_KEY, RESOURCE_KEY, entity_name, owner_marker
from modelsync.testing import K8s, OperatorProcess, eventually
from modelsync.testing.k8s import condition

from .conftest import RESYNC_SECONDS, Sim, model, service, start_sim

pytestmark = pytest.mark.integration

MODELS = "/apis/models/v2/workspaces/default/models"
TOKEN = "t0ken-XYZ"
WRONG_TOKEN = "wr0ng-T0KEN-abc"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "nemo"
#: every fault knob off (PUT /_sim/faults), without emptying the simulator's models
CALM = dict(latency=0.0, latency_jitter=0.0, error_rate=0.0, throttle_rate=0.0, lose_rate=0.0,
            fail_next=0, throttle_next=0, lose_next=0, match="")


# ---------------------------------------------------------------- fixtures


#: a Hugging Face config.json, what the simulator's model-spec job reads from a fileset
HF_CONFIG = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
             "tie_word_embeddings": False, "torch_dtype": "bfloat16", "max_position_embeddings": 131072}
#: the filesets the tests' and the examples' Models name: a model may only name one that exists
FILESETS = {
    "default/llama-support-lora": {"adapter_model.safetensors": b"\0"},
    "default/llama-3-1-8b-support-lora": {"adapter_model.safetensors": b"\0"},
    "default/llama-ckpt": {"config.json": HF_CONFIG, "model.safetensors": b"\0"},
}


@pytest.fixture(scope="module")
def nsim() -> Iterator[Sim]:
    yield from start_sim("nemo", filesets=FILESETS)


@pytest.fixture(scope="module")
def nsim_auth() -> Iterator[Sim]:
    """Every API request needs ``Authorization: Bearer t0ken-XYZ``."""
    yield from start_sim("nemo", token=TOKEN, filesets=FILESETS)


@pytest.fixture
def nsim_fresh() -> Iterator[Sim]:
    """A simulator no other test's objects point at: its journal is this test's alone."""
    yield from start_sim("nemo", filesets=FILESETS)


@pytest.fixture
def cleanup(k8s: K8s, ns: str, operator: OperatorProcess) -> Iterator[str]:
    """Delete this namespace's objects at the end, so they stop resyncing and rechecking."""
    yield ns
    k8s.empty_namespace(ns)


def registry(k8s: K8s, ns: str, sim: Sim, name: str = "nemo", token: str | None = None) -> None:
    spec: dict[str, Any] = {"backend": "nemo", "endpoint": sim.url, "nemo": {"workspace": "default"},
                            "requestTimeout": "10s"}
    if token is not None:
        k8s.secret(f"{name}-token", ns, {"token": token})
        spec["credentialsSecretRef"] = {"name": f"{name}-token"}
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": name}, "spec": spec}, ns)


def settle(k8s: K8s, ns: str, name: str) -> dict[str, Any]:
    """The registry once the operator has checked it (its own Ready=True): tests that count
    requests start after its probe and status write."""
    return k8s.wait_condition("ModelRegistry", name, ns, "Ready")


@pytest.fixture
def nns(k8s: K8s, cleanup: str, nsim: Sim) -> Iterator[str]:
    nsim.faults(**CALM)
    registry(k8s, cleanup, nsim)
    settle(k8s, cleanup, "nemo")
    nsim.clear_journal()
    yield cleanup
    nsim.faults(**CALM)


# ---------------------------------------------------------------- helpers


def entities(sim: Sim) -> dict[str, dict[str, Any]]:
    """The simulator's entities in workspace ``default``, by name (a copy)."""
    return {n: dict(e) for n, e in dict(sim.app["nemo"].models["default"]).items()}


def no_nulls(value: Any) -> Any:
    """``value`` as the apiserver stores it in status: ``null`` members dropped."""
    if isinstance(value, dict):
        return {k: no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [no_nulls(v) for v in value]
    return value


def owned_by(sim: Sim, ns: str, name: str) -> list[dict[str, Any]]:
    """Entities whose custom_fields say they were made for Model ns/name."""
    return [e for e in entities(sim).values() if (e.get("custom_fields") or {}).get(RESOURCE_KEY) == f"{ns}/{name}"]


def about(sim: Sim, entity: str) -> list[dict[str, Any]]:
    """Journal entries for one entity: requests on its path, and creates naming it."""
    path = f"{MODELS}/{entity}"
    return [e for e in sim.journal() if e["path"] == path
            or (e["method"] == "POST" and e["path"] == MODELS and isinstance(e["body"], dict)
                and e["body"].get("name") == entity)]


def conn(ns: str, sim: Sim, registry_name: str = "nemo") -> RegistryConnection:
    """The connection the operator builds for a ModelRegistry (same key format as the core)."""
    return RegistryConnection(key=f"ModelRegistry/{ns}/{registry_name}", name=registry_name,
                              kind="ModelRegistry", backend="nemo", endpoint=sim.url)


def as_resource(obj: dict[str, Any]) -> Resource:
    meta = obj["metadata"]
    return Resource(kind="Model", name=meta["name"], namespace=meta["namespace"], uid=meta["uid"],
                    generation=int(meta.get("generation") or 1), spec=api.parse_spec("Model", obj["spec"]))


def at_generation(k8s: K8s, name: str, ns: str, generation: int, timeout: float = 60) -> dict[str, Any]:
    return k8s.wait("Model", name, ns, lambda o: o.get("status", {}).get("observedGeneration") == generation
                    and condition(o, "Ready").get("status") == "True"
                    and condition(o, "Ready").get("observedGeneration") == generation,
                    timeout=timeout, what=f"generation {generation} synced")


def sim_create(sim: Sim, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    """Create an entity through the simulator's own API, as another client would."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = sim.http.post(MODELS, json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


def wait_journal(sim: Sim, predicate: Any, timeout: float = 20) -> dict[str, Any]:
    found: dict[str, Any] = eventually(lambda: next((e for e in sim.journal() if predicate(e)), None),
                                       "such request at the simulator", timeout=timeout, interval=0.05)
    return found


LLAMA = dict(
    description="Llama 3.1 8B instruct, support fine-tune",
    vendor="Meta", version="3.1", task="text-generation", license="llama3.1",
    nemo={"fileset": "default/llama-support-lora", "base_model": "default/llama-3.1-8b-instruct",
          "finetuning_type": "lora",
          "api_endpoint": {"url": "http://nim-llama.nim.svc:8000/v1", "model_id": "support-lora", "format": "nim"},
          "custom_fields": {"team": "support"}},
)


# ---------------------------------------------------------------- tests


def test_model_created_with_entity_as_inventory(k8s: K8s, nns: str, nsim: Sim) -> None:
    k8s.create(model("llama", ["nemo"], **LLAMA), nns)
    obj = k8s.wait_condition("Model", "llama", nns, "Ready")
    assert condition(obj, "Synced")["status"] == "True"
    entry = obj["status"]["registries"][0]
    assert entry["synced"] and entry["backend"] == "nemo" and entry["reason"] == "Synced"

    # the entity name: <namespace>-<name>-<8 hex>, the same the backend derives
    name = entry["externalId"]
    assert name == entity_name(as_resource(obj), conn(nns, nsim))
    prefix, _, digest = name.rpartition("-")
    assert prefix == f"{nns}-llama" and len(digest) == 8 and int(digest, 16) >= 0

    stored = entities(nsim)[name]
    inv = entry["inventory"]
    assert inv == no_nulls(stored)  # status carries the registry's own record (the apiserver drops nulls)
    assert inv["name"] == name and inv["workspace"] == "default" and inv["id"].startswith("model-")
    assert inv["description"] == LLAMA["description"]
    assert inv["fileset"] == "default/llama-support-lora" and inv["base_model"] == "default/llama-3.1-8b-instruct"
    assert inv["finetuning_type"] == "lora"
    assert inv["api_endpoint"]["url"] == "http://nim-llama.nim.svc:8000/v1"
    assert inv["api_endpoint"]["model_id"] == "support-lora"
    cf = inv["custom_fields"]
    assert cf[OWNER_KEY] == owner_marker(as_resource(obj), conn(nns, nsim))
    assert cf[RESOURCE_KEY] == f"{nns}/llama"
    assert cf["team"] == "support" and cf["modelsync.io/vendor"] == "Meta"
    assert cf["modelsync.io/license"] == "llama3.1" and cf["modelsync.io/task"] == "text-generation"
    assert len(owned_by(nsim, nns, "llama")) == 1
    posts = [e for e in about(nsim, name) if e["method"] == "POST"]
    assert len(posts) == 1 and posts[0]["body"]["name"] == name
    assert not [e for e in k8s.events(nns, "llama") if e.reason == "Created"]  # the status says it


def test_update_sends_only_changed_fields(k8s: K8s, nns: str, nsim: Sim) -> None:
    k8s.create(model("upd", ["nemo"], **LLAMA), nns)
    name = k8s.wait_condition("Model", "upd", nns, "Ready")["status"]["registries"][0]["externalId"]
    nsim.clear_journal()
    k8s.patch("Model", "upd", nns, {"spec": {"description": "now with tools",
                                             "nemo": {"base_model": "default/llama-3.1-8b-base"}}})
    obj = at_generation(k8s, "upd", nns, 2)
    time.sleep(RESYNC_SECONDS * 1.5)  # a quiet period: a resync after the update must not send it again
    writes = [e for e in about(nsim, name) if e["method"] not in ("GET", "HEAD")]
    assert len(writes) == 1, writes
    assert writes[0]["method"] == "PATCH"
    assert writes[0]["body"] == {"description": "now with tools", "base_model": "default/llama-3.1-8b-base"}
    inv = obj["status"]["registries"][0]["inventory"]
    assert inv["description"] == "now with tools" and inv["base_model"] == "default/llama-3.1-8b-base"
    stored = entities(nsim)[name]
    assert stored["description"] == "now with tools" and stored["fileset"] == "default/llama-support-lora"


def _watch_streams(op: OperatorProcess) -> int:
    return op.log().count("Starting the watch-stream")


def test_unchanged_resync_and_restart_write_nothing(k8s: K8s, nns: str, nsim: Sim, operator: OperatorProcess) -> None:
    k8s.create(model("calm", ["nemo"], **LLAMA), nns)
    k8s.wait_condition("Model", "calm", nns, "Ready")
    time.sleep(1)  # a settling period: the create's own follow-ups land before the journal is cleared
    before = k8s.get("Model", "calm", nns)
    name = before["status"]["registries"][0]["externalId"]
    nsim.clear_journal()
    time.sleep(RESYNC_SECONDS * 3)  # a quiet period: several resync timers fire and must not write
    reads = [e for e in about(nsim, name) if e["method"] == "GET"]
    assert len(reads) >= 2, "the resyncs did not look at the registry"
    # the resume handler runs on restart: it must not write either
    streams = _watch_streams(operator)
    operator.restart()
    eventually(lambda: _watch_streams(operator) > streams, "watch streams of the restarted operator", timeout=60)
    time.sleep(RESYNC_SECONDS * 2)  # a quiet period: the restarted operator looks again and must not write
    journal = nsim.journal()
    assert len([e for e in about(nsim, name) if e["method"] == "GET"]) > len(reads)
    assert [e for e in journal if e["method"] not in ("GET", "HEAD")] == []
    after = k8s.get("Model", "calm", nns)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_description_too_long_for_nemo_is_terminal(k8s: K8s, nns: str, nsim: Sim) -> None:
    # The CRD admits 4096 characters; NeMo takes at most 1000. The backend knows and sends nothing.
    k8s.create(model("wordy", ["nemo"], description="x" * 1500), nns)
    obj = k8s.wait_condition("Model", "wordy", nns, "Synced", status="False")
    synced = condition(obj, "Synced")
    assert synced["reason"] == "InvalidSpec"
    assert "spec.description" in synced["message"] and "1000" in synced["message"]
    assert condition(obj, "Ready")["status"] == "False"
    name = entity_name(as_resource(obj), conn(nns, nsim))
    time.sleep(RESYNC_SECONDS * 3)  # a quiet period: the refused spec is never sent
    assert about(nsim, name) == [] and owned_by(nsim, nns, "wordy") == []
    # fixing the spec retries
    k8s.patch("Model", "wordy", nns, {"spec": {"description": "short"}})
    obj = at_generation(k8s, "wordy", nns, 2)
    assert entities(nsim)[name]["description"] == "short"


def test_registry_422_is_terminal_naming_the_field(k8s: K8s, nns: str, nsim: Sim) -> None:
    # Admitted by the CRD and by the backend's own checks, rejected by NeMo's URL validation.
    nemo = {"api_endpoint": {"url": "http://nim.example.com:99999/v1", "model_id": "m"}}
    k8s.create(model("badport", ["nemo"], nemo=nemo), nns)
    obj = k8s.wait_condition("Model", "badport", nns, "Synced", status="False")
    synced = condition(obj, "Synced")
    assert synced["reason"] == "InvalidSpec"
    assert "HTTP 422" in synced["message"] and "api_endpoint.url" in synced["message"]
    assert obj["status"]["registries"][0]["reason"] == "InvalidSpec"
    name = entity_name(as_resource(obj), conn(nns, nsim))
    time.sleep(RESYNC_SECONDS * 3)  # a quiet period: several resyncs, a rejected spec is not sent again
    posts = [e for e in about(nsim, name) if e["method"] == "POST"]
    assert len(posts) == 1, posts
    assert name not in entities(nsim)
    k8s.patch("Model", "badport", nns, {"spec": {"nemo": {"api_endpoint": {"url": "http://nim.example.com:8000/v1"}}}})
    at_generation(k8s, "badport", nns, 2)
    assert entities(nsim)[name]["api_endpoint"]["url"] == "http://nim.example.com:8000/v1"


def test_entity_with_our_marker_is_adopted(k8s: K8s, cleanup: str, nsim: Sim) -> None:
    ns = cleanup
    nsim.faults(**CALM)
    name = f"adopt-{ns}"
    # The marker needs the Model's uid: create the Model first, naming a registry that does not exist yet.
    obj = k8s.create(model("adoptee", ["nemo-late"], description="from kubernetes", nemo={"name": name}), ns)
    marker = owner_marker(as_resource(obj), conn(ns, nsim, "nemo-late"))
    pre = sim_create(nsim, {"name": name, "description": "made by hand",
                            "custom_fields": {OWNER_KEY: marker, "team": "kept"}})
    nsim.clear_journal()
    registry(k8s, ns, nsim, name="nemo-late")
    obj = k8s.wait_condition("Model", "adoptee", ns, "Ready", timeout=90)
    entry = obj["status"]["registries"][0]
    assert entry["externalId"] == name
    stored = entities(nsim)[name]
    assert stored["id"] == pre["id"]  # the same entity, not a new one
    assert stored["description"] == "from kubernetes"
    assert stored["custom_fields"]["team"] == "kept"  # keys others set survive our update
    assert stored["custom_fields"][RESOURCE_KEY] == f"{ns}/adoptee"
    assert [e["name"] for e in owned_by(nsim, ns, "adoptee")] == [name]  # no second entity
    journal = about(nsim, name)
    # a first try creates without reading first: at most that one POST, answered 409 and adopted
    assert len([e for e in journal if e["method"] == "POST"]) <= 1
    assert [e["method"] for e in journal if e["method"] not in ("GET", "POST")] == ["PATCH"]
    assert entry["inventory"]["id"] == pre["id"]


@pytest.mark.parametrize("ours", [True, False], ids=["ours-adopted", "foreign-name-taken"])
def test_create_conflict_409(k8s: K8s, nns: str, nsim: Sim, ours: bool) -> None:
    """The entity appears between the operator's GET (404) and its POST: the POST answers 409."""
    name = f"race-{nns}"
    nsim.faults(latency=3, match=f"POST {MODELS}")  # holds the operator's POST before the handler runs
    obj = k8s.create(model("racer", ["nemo"], description="from kubernetes", nemo={"name": name}), nns)
    wait_journal(nsim, lambda e: e["method"] == "POST" and e["path"] == MODELS
                 and isinstance(e["body"], dict) and e["body"].get("name") == name)
    cf = {OWNER_KEY: owner_marker(as_resource(obj), conn(nns, nsim))} if ours else {"owner": "team-b"}
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    injected = {"id": f"model-{secrets.token_hex(11)}", "name": name, "workspace": "default", "project": None,
                "created_at": now, "updated_at": now, "description": "raced in", "spec": None,
                "finetuning_type": None, "fileset": None, "trust_remote_code": False, "base_model": None,
                "api_endpoint": None, "backend_format": None, "adapters": None, "prompt": None,
                "custom_fields": cf, "ownership": None, "model_providers": []}
    nsim.app["nemo"].models["default"][name] = injected  # while the POST waits
    if ours:
        obj = k8s.wait_condition("Model", "racer", nns, "Ready", timeout=60)
        assert entities(nsim)[name]["id"] == injected["id"]
        assert entities(nsim)[name]["description"] == "from kubernetes"
        assert obj["status"]["registries"][0]["externalId"] == name
    else:
        obj = k8s.wait_condition("Model", "racer", nns, "Synced", status="False", timeout=60)
        assert condition(obj, "Synced")["reason"] == "NameTaken", condition(obj, "Synced")
        assert "not managed by this resource" in condition(obj, "Synced")["message"]
        assert entities(nsim)[name]["description"] == "raced in"
    posts = [e for e in about(nsim, name) if e["method"] == "POST"]
    assert len(posts) == 1  # the one that got the 409
    assert len(entities(nsim)) == len({e["id"] for e in entities(nsim).values()})
    assert [e for e in about(nsim, name) if e["method"] == "DELETE"] == []


def test_model_service_is_unsupported(k8s: K8s, cleanup: str, nsim_fresh: Sim) -> None:
    ns = cleanup
    registry(k8s, ns, nsim_fresh)
    reg = k8s.wait_condition("ModelRegistry", "nemo", ns, "Ready")  # the registry itself is fine
    assert "workspace default reachable" in condition(reg, "Ready")["message"]
    k8s.create(service("vllm", ["nemo"], description="vLLM", framework="vLLM"), ns)
    obj = k8s.wait("ModelService", "vllm", ns, lambda o: condition(o, "Synced").get("status") == "False",
                   what="Synced=False")
    synced = condition(obj, "Synced")
    assert synced["reason"] == "Unsupported"
    assert "nemo" in synced["message"].lower() and "no counterpart" in synced["message"]
    assert "ModelService" in synced["message"]
    assert condition(obj, "Ready")["status"] == "False"
    assert obj["status"]["registries"][0]["reason"] == "Unsupported"
    time.sleep(RESYNC_SECONDS * 2)  # a quiet period: nothing is asked of the registry for it
    # The only requests are the registry's own Ready probe (GET .../models?page_size=1, by
    # ModelRegistry's check): nothing was read, created or changed for the ModelService.
    journal = nsim_fresh.journal()
    assert journal, "the registry probe did not run: the assertion below would prove nothing"
    assert [e for e in journal if (e["method"], e["path"]) != ("GET", MODELS)] == []


def test_bearer_token_used_and_never_shown(k8s: K8s, cleanup: str, nsim_auth: Sim, operator: OperatorProcess) -> None:
    ns = cleanup
    nsim_auth.faults(**CALM)
    registry(k8s, ns, nsim_auth, name="nemo-auth", token=TOKEN)
    registry(k8s, ns, nsim_auth, name="nemo-wrong", token=WRONG_TOKEN)
    good = settle(k8s, ns, "nemo-auth")
    assert "with the Secret's token" in condition(good, "Ready")["message"]
    wrong = k8s.wait_condition("ModelRegistry", "nemo-wrong", ns, "Ready", status="False")
    assert condition(wrong, "Ready")["reason"] == "CredentialsRejected"
    k8s.create(model("secured", ["nemo-auth"], **LLAMA), ns)
    k8s.create(model("denied", ["nemo-wrong"], description="d"), ns)
    ok = k8s.wait_condition("Model", "secured", ns, "Ready")
    name = ok["status"]["registries"][0]["externalId"]
    assert name in entities(nsim_auth)
    # the simulator really requires the token
    assert nsim_auth.http.get(f"{MODELS}/{name}").status_code == 401
    assert nsim_auth.http.get(f"{MODELS}/{name}", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    bad = k8s.wait("Model", "denied", ns, lambda o: condition(o, "Synced").get("reason") == "CredentialsRejected",
                   what="Synced=False/CredentialsRejected")
    assert condition(bad, "Synced")["status"] == "False"
    assert "401" in condition(bad, "Synced")["message"]
    # the warning Event of the rejected sync is posted after the status
    eventually(lambda: [e for e in k8s.events(ns, "denied") if e.reason == "CredentialsRejected"],
               "CredentialsRejected Event", timeout=10)
    texts = [str(k8s.get("Model", "secured", ns)), str(k8s.get("Model", "denied", ns)),
             " ".join(f"{e.reason} {e.message}" for n in ("secured", "denied") for e in k8s.events(ns, n)),
             operator.log()]
    for text in texts:
        assert TOKEN not in text
        assert WRONG_TOKEN not in text
    for reg in ("nemo-auth", "nemo-wrong"):
        text = str(k8s.get("ModelRegistry", reg, ns)) + " ".join(f"{e.reason} {e.message}" for e in k8s.events(ns, reg))
        assert TOKEN not in text and WRONG_TOKEN not in text


def test_examples_sync_ready(k8s: K8s, cleanup: str, nsim: Sim) -> None:
    """Every manifest of examples/nemo is admitted and its Models turn Ready against the faithful
    simulator (the fileset they name exists there, as it must on the platform)."""
    ns = cleanup
    nsim.faults(**CALM)
    docs = [d for f in sorted(EXAMPLES.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert "ModelRegistry" in kinds and "Model" in kinds
    models = []
    for doc in docs:
        if doc["kind"] == "Secret":
            k8s.core.create_namespaced_secret(ns, doc)
            continue
        assert doc["apiVersion"] == api.API_VERSION
        if doc["kind"] == "ModelRegistry":
            assert doc["spec"]["backend"] == "nemo"
            doc = {**doc, "spec": {**doc["spec"], "endpoint": nsim.url}}
        try:
            k8s.create({k: v for k, v in doc.items() if k != "apiVersion"}, ns)
        except ApiException as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']} not admitted: {exc.body}")
        if doc["kind"] == "Model":
            models.append(doc)
    for doc in models:
        obj = k8s.wait_condition("Model", doc["metadata"]["name"], ns, "Ready")
        entry = obj["status"]["registries"][0]
        inv = entry["inventory"]
        nemo = doc["spec"].get("nemo") or {}
        for field in ("fileset", "base_model", "finetuning_type", "backend_format"):
            if field in nemo:
                assert inv[field] == nemo[field], field
        if "name" in nemo:
            assert entry["externalId"] == nemo["name"]
        assert not entry.get("notSettable"), entry.get("notSettable")  # the examples set nothing NeMo drops
        assert no_nulls(entities(nsim)[inv["name"]]) == inv


#: a Model setting every field the CRD allows for a NeMo registry
EVERY = dict(
    description="every field", installPath="s3://models/llama", vendor="Meta", version="3.1",
    parameters="8B", architecture="LlamaForCausalLM", frameworkVersion="transformers 4.44",
    task="text-generation", license="llama3.1", readme="# Llama\nnot a NeMo field",
    defaultServiceRef={"name": "vllm"},
    gpu={"minMemory": "16Gi", "recommendedMemory": "24Gi", "recommendedCount": [1, 2],
         "constraintDescription": "Ampere or newer", "accelerator": "cuda:12.4"},
    nemo={
        "fileset": "default/llama-ckpt", "base_model": "default/llama-3.1-8b", "finetuning_type": "lora",
        "api_endpoint": {"url": "http://nim.nim.svc:8000/v1", "model_id": "llama", "format": "nim"},
        "backend_format": "OPENAI_CHAT",
        "prompt": {"system_prompt": "be brief", "system_prompt_template": "{{icl_few_shot_examples}}",
                   "icl_few_shot_examples": "Q: a\nA: b", "inference_params": {"temperature": 0.2}},
        "custom_fields": {"team": "ml"}, "ownership": {"created_by": "ops"},
        "model_providers": ["default/nim-llama"], "trust_remote_code": True,
        "spec": {"base_num_parameters": 8030261248, "ffn_hidden_size": 14336, "hidden_size": 4096,
                 "num_attention_heads": 32, "num_kv_heads": 8, "num_layers": 32, "vocab_size": 128256,
                 "checkpoint_model_name": "meta-llama/Llama-3.1-8B", "family": "llama-mine", "precision": "bf16",
                 "gated_mlp": True, "tied_embeddings": False, "context_size": 8192, "num_virtual_tokens": 0,
                 "minimum_gpus_all_weights": 2, "minimum_gpus_lora": 1, "is_chat": True,
                 "is_embedding_model": False, "chat_template": "{{ messages }}", "head_type": "causal_lm"},
    },
)


def test_every_field_lands_or_is_reported_and_is_written_once(k8s: K8s, nns: str, nsim: Sim) -> None:
    k8s.create(model("every", ["nemo"], **EVERY), nns)
    obj = k8s.wait_condition("Model", "every", nns, "Ready", timeout=90)
    entry = obj["status"]["registries"][0]
    name = entry["externalId"]
    # the fileset started NeMo's model-spec job, which rewrote spec; the user's keys are set back
    # once, and from then on nothing is written again
    eventually(lambda: not nsim.app["nemo"].pending_jobs() and entities(nsim)[name]["spec"].get("family") == "llama-mine",
               "model-spec job done and the family set back", timeout=30)
    assert [j["status"] for j in nsim.app["nemo"].jobs if j["model"] == f"default/{name}"] == ["completed"]
    time.sleep(RESYNC_SECONDS * 1.5)  # a settling period: the set-back and its status write land
    nsim.clear_journal()
    time.sleep(RESYNC_SECONDS * 3)  # a quiet period: resyncs look and must not write
    assert [e for e in about(nsim, name) if e["method"] == "GET"], "no resync ran"
    assert [e for e in about(nsim, name) if e["method"] not in ("GET", "HEAD")] == []
    assert condition(k8s.get("Model", "every", nns), "Ready")["status"] == "True"

    stored = entities(nsim)[name]
    nemo = EVERY["nemo"]
    assert isinstance(nemo, dict)
    for field in ("fileset", "base_model", "finetuning_type", "backend_format", "ownership", "model_providers",
                  "trust_remote_code"):
        assert stored[field] == nemo[field], field
    assert stored["description"] == EVERY["description"]
    assert {k: v for k, v in stored["api_endpoint"].items() if v is not None} == nemo["api_endpoint"]
    assert {k: v for k, v in stored["prompt"].items() if v is not None} == nemo["prompt"]
    want_spec = {k: v for k, v in nemo["spec"].items() if k != "head_type"}
    assert {k: stored["spec"].get(k) for k in want_spec} == want_spec  # minimum_gpus_* too: stored, read as null
    assert "head_type" not in stored["spec"]
    cf = stored["custom_fields"]
    assert cf["team"] == "ml"
    for attr, key in (("vendor", "vendor"), ("version", "version"), ("parameters", "parameters"),
                      ("architecture", "architecture"), ("frameworkVersion", "framework-version"),
                      ("task", "task"), ("license", "license"), ("installPath", "install-path")):
        assert cf[f"modelsync.io/{key}"] == EVERY[attr], attr
    assert cf["modelsync.io/gpu"] == EVERY["gpu"]
    # what NeMo has no field for is in status, with why
    reported = {n["field"]: n["message"] for n in entry.get("notSettable") or []}
    assert set(reported) == {"spec.readme", "spec.defaultServiceRef", "spec.nemo.spec.head_type"}, reported
    assert all(reported.values())


def test_missing_workspace_is_registry_misconfigured(k8s: K8s, cleanup: str, nsim_fresh: Sim) -> None:
    """The platform answers 500 to a list and 422 to a create in a workspace that does not exist;
    the entity store's 404 for the workspace tells the registry is misconfigured."""
    ns = cleanup
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "ghost"}, "spec": {
        "backend": "nemo", "endpoint": nsim_fresh.url, "nemo": {"workspace": "ghost"}, "requestTimeout": "10s"}}, ns)
    reg = k8s.wait_condition("ModelRegistry", "ghost", ns, "Ready", status="False")
    assert condition(reg, "Ready")["reason"] == "RegistryMisconfigured"
    assert "ghost" in condition(reg, "Ready")["message"] and "HTTP 500" in condition(reg, "Ready")["message"]
    k8s.create(model("lost-ws", ["ghost"], description="d"), ns)
    obj = k8s.wait("Model", "lost-ws", ns, lambda o: condition(o, "Synced").get("reason") == "RegistryMisconfigured",
                   what="Synced=False/RegistryMisconfigured")
    assert "spec.nemo.workspace" in condition(obj, "Synced")["message"]


def test_registry_status_write_does_not_abort_requests_in_flight(
        k8s: K8s, nns: str, nsim: Sim, operator: OperatorProcess) -> None:
    """A registry change that is not its spec (its own status, a label) must not rebuild the
    cached backend and so close the connection of a request in flight (was: ReadError, then
    RegistryUnavailable and a retry, when the pool keyed backends on resourceVersion)."""
    name = f"inflight-{nns}"
    nsim.faults(latency=5, match=f"POST {MODELS}")  # the create is in flight for 5 s
    k8s.create(model("inflight", ["nemo"], description="d", nemo={"name": name}), nns)
    wait_journal(nsim, lambda e: e["method"] == "POST" and e["path"] == MODELS
                 and isinstance(e["body"], dict) and e["body"].get("name") == name)
    # a change to the registry that is not its spec (a label; the operator's own status
    # writes do the same): registry rechecks run every RESYNC_SECONDS during the POST
    k8s.patch("ModelRegistry", "nemo", nns, {"metadata": {"labels": {"touched": "yes"}}})
    k8s.wait_condition("Model", "inflight", nns, "Ready", timeout=60)
    assert f"create model default/{name}: connection failed" not in operator.log()


def test_unchanged_resync_sends_no_status_patch(k8s: K8s, nns: str, nsim: Sim, operator: OperatorProcess) -> None:
    k8s.create(model("still", ["nemo"], **LLAMA), nns)
    name = k8s.wait_condition("Model", "still", nns, "Ready")["status"]["registries"][0]["externalId"]
    time.sleep(1)  # a settling period: the create's own follow-ups land first
    start = len(operator.log())
    nsim.clear_journal()
    time.sleep(RESYNC_SECONDS * 3)  # a quiet period: resyncs look and must not patch status
    assert len([e for e in about(nsim, name) if e["method"] == "GET"]) >= 2, "no resync ran"
    patches = [line for line in operator.log()[start:].splitlines()
               if line.startswith("Merge-patching the status") and name in line]
    assert patches == [], f"{len(patches)} status patches for an unchanged Model"


def test_recreated_registry_uses_its_new_endpoint(k8s: K8s, nns: str, nsim: Sim, nsim_fresh: Sim) -> None:
    # Nothing may look the registry up while it terminates (its deletion bumps its generation,
    # which would hide the bug), so the first Model is gone before the registry is deleted.
    k8s.create(model("first", ["nemo"], description="d"), nns)
    k8s.wait_condition("Model", "first", nns, "Ready")  # the operator now caches a backend for nemo
    k8s.delete("Model", "first", nns)
    k8s.wait_gone("Model", "first", nns)
    k8s.delete("ModelRegistry", "nemo", nns)
    k8s.wait_gone("ModelRegistry", "nemo", nns)
    registry(k8s, nns, nsim_fresh)  # the same name, another endpoint
    name = f"second-{nns}"
    k8s.create(model("second", ["nemo"], description="d", nemo={"name": name}), nns)
    k8s.wait_condition("Model", "second", nns, "Ready")
    assert name not in entities(nsim), "the Model was synced to the deleted registry's endpoint"
    assert name in entities(nsim_fresh)


def test_admission_refuses_a_relative_endpoint_url_and_admits_empties(k8s: K8s, cleanup: str) -> None:
    """NeMo's api_endpoint.url is an absolute URL (pydantic AnyUrl): the apiserver refuses
    another, naming the field; the empty values NeMo's PATCH applies are admitted."""
    ns = cleanup
    with pytest.raises(ApiException) as ei:
        k8s.create(model("relative", ["nemo"], nemo={"api_endpoint": {"url": "nim:8000/v1", "model_id": "m"}}), ns)
    assert ei.value.status == 422
    assert "spec.nemo.api_endpoint.url" in ei.value.body and "absolute URL" in ei.value.body
    k8s.create(model("empties", ["nemo"], description="", nemo={
        "api_endpoint": {}, "prompt": {}, "ownership": {}, "custom_fields": {}, "model_providers": [],
        "base_model": ""}), ns)
