"""MLflow Model Registry end to end: the real apiserver (with the CRD's rules), the operator as a process,
and the REAL MLflow server (tests/conftest.py's ``mlflow_server``), reached through the fault proxy of
modelsync.vendors.mlflow.simulator, which forwards every request and can drop a reply or answer 5xx/429."""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import yaml
from kubernetes.client.rest import ApiException

from modelsync.simulators.server import ThreadedServer
from modelsync.testing import K8s, OperatorProcess
from modelsync.testing.k8s import condition
from modelsync.vendors.mlflow.simulator import create_app

from .conftest import RESYNC_SECONDS, Sim, model, service

pytestmark = pytest.mark.integration

API = "/api/2.0/mlflow"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mlflow"
SPEC = {"description": "Qwen3 8B", "installPath": "hf://Qwen/Qwen3-8B", "task": "text-generation",
        "license": "apache-2.0", "readme": "# Qwen3", "gpu": {"minMemory": "16Gi", "recommendedCount": [1, 2]},
        "mlflow": {"tags": [{"key": "team", "value": "nlp"}], "alias": "champion"}}


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def msim(mlflow_server: str) -> Iterator[Sim]:
    """The fault proxy in front of the real MLflow server (a Sim: journal and fault knobs)."""
    server = ThreadedServer(create_app(upstream=mlflow_server)).start()
    try:
        yield Sim(server)
    finally:
        server.stop()


def registry(k8s: K8s, ns: str, sim: Sim, name: str = "mlflow") -> None:
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": name}, "spec": {
        "backend": "mlflow", "endpoint": sim.url, "requestTimeout": "10s"}}, ns)


def settled(k8s: K8s, ns: str, name: str = "mlflow") -> None:
    """The registry Ready and its object no longer changing (see test_instill.settled)."""
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
def mns(k8s: K8s, ns: str, msim: Sim, operator: OperatorProcess) -> Iterator[str]:
    """A namespace with ModelRegistry ``mlflow`` on the proxy, Ready; faults off, journal empty."""
    msim.reset()
    registry(k8s, ns, msim)
    settled(k8s, ns)
    yield ns
    k8s.empty_namespace(ns)


def get_model(sim: Sim, name: str) -> dict[str, Any] | None:
    r = httpx.get(f"{sim.server.app['upstream']}{API}/registered-models/get", params={"name": name}, timeout=30)
    if r.status_code == 404:
        return None
    r.raise_for_status()
    return dict(r.json()["registered_model"])


def tags(obj: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in obj.get("tags") or []}


def versions(sim: Sim, name: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{sim.server.app['upstream']}{API}/model-versions/search",
                  params={"filter": f"name = '{name}'"}, timeout=30)
    r.raise_for_status()
    return sorted(r.json().get("model_versions") or [], key=lambda v: int(v["version"]))


def direct(sim: Sim, method: str, path: str, body: dict[str, Any]) -> Any:
    """A call on the real server itself (not through the proxy), as another MLflow user would."""
    r = httpx.request(method, f"{sim.server.app['upstream']}{API}{path}", json=body, timeout=30)
    r.raise_for_status()
    return r.json()


def writes(sim: Sim) -> list[tuple[str, str]]:
    return [(e["method"], e["path"].removeprefix(API)) for e in sim.journal() if e["method"] not in ("GET", "HEAD")]


def synced_at(k8s: K8s, name: str, ns: str, generation: int, timeout: float = 60) -> dict[str, Any]:
    return k8s.wait("Model", name, ns, lambda o: o["status"].get("observedGeneration") == generation
                    and condition(o, "Ready").get("status") == "True", timeout, what=f"generation {generation} synced")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# ---------------------------------------------------------------- create, resync, update


def test_create_lands_everything_and_a_resync_writes_nothing(k8s: K8s, mns: str, msim: Sim) -> None:
    obj = k8s.create(model("qwen", ["mlflow"], **SPEC), mns)
    mdl = k8s.wait_condition("Model", "qwen", mns, "Ready")
    entry = mdl["status"]["registries"][0]
    name = entry["externalId"]
    assert entry["backend"] == "mlflow" and name.startswith(f"{mns}-qwen-")
    stored = get_model(msim, name)
    assert stored is not None and stored["description"] == "Qwen3 8B"
    assert tags(stored) == {
        "modelsync.io/owner": f"{mns}/qwen", "modelsync.io/uid": obj["metadata"]["uid"], "team": "nlp",
        "modelsync.io/task": "text-generation", "modelsync.io/license": "apache-2.0",
        "modelsync.io/gpu.minMemory": "17179869184", "modelsync.io/gpu.recommendedCount": "1,2"}
    [v] = versions(msim, name)
    assert v["source"] == "hf://Qwen/Qwen3-8B" and tags(v)["modelsync.io/generation"] == "1"
    assert stored["aliases"] == [{"alias": "champion", "version": "1"}]
    # status: the registered model and its version; readme cannot be held and is listed, not sent
    inv = entry["inventory"]
    assert inv["name"] == name and inv["version"] == "1" and inv["aliases"] == {"champion": "1"}
    assert [(x["version"], x["source"]) for x in inv["versions"]] == [("1", "hf://Qwen/Qwen3-8B")]
    assert [n["field"] for n in entry["notSettable"]] == ["spec.readme"]
    assert writes(msim) == [("POST", "/registered-models/create"), ("POST", "/model-versions/create"),
                            ("POST", "/registered-models/alias")]

    msim.clear_journal()
    before = k8s.get("Model", "qwen", mns)["metadata"]["resourceVersion"]
    time.sleep(RESYNC_SECONDS * 4)
    reads = [e for e in msim.journal() if e["path"] == f"{API}/registered-models/get"]
    assert len(reads) >= 2, "the resyncs did not look at MLflow"
    assert writes(msim) == []
    assert k8s.get("Model", "qwen", mns)["metadata"]["resourceVersion"] == before


def test_update_tags_description_and_a_new_version(k8s: K8s, mns: str, msim: Sim) -> None:
    k8s.create(model("upd", ["mlflow"], **SPEC), mns)
    name = k8s.wait_condition("Model", "upd", mns, "Ready")["status"]["registries"][0]["externalId"]
    msim.clear_journal()
    k8s.patch("Model", "upd", mns, {"spec": {
        "description": "Qwen3 8B, AWQ", "installPath": "s3://models/qwen3-8b-awq",
        "mlflow": {"tags": [{"key": "team", "value": "nlp-serving"}, {"key": "quant", "value": "awq"}]}}})
    mdl = synced_at(k8s, "upd", mns, 2)
    assert writes(msim) == [("PATCH", "/registered-models/update"), ("POST", "/registered-models/set-tag"),
                            ("POST", "/registered-models/set-tag"), ("POST", "/model-versions/create"),
                            ("POST", "/registered-models/alias")]
    stored = get_model(msim, name)
    assert stored is not None and stored["description"] == "Qwen3 8B, AWQ"
    assert tags(stored)["team"] == "nlp-serving" and tags(stored)["quant"] == "awq"
    assert [(v["version"], v["source"]) for v in versions(msim, name)] == [
        ("1", "hf://Qwen/Qwen3-8B"), ("2", "s3://models/qwen3-8b-awq")]
    assert stored["aliases"] == [{"alias": "champion", "version": "2"}]  # moved to the new version
    inv = mdl["status"]["registries"][0]["inventory"]
    assert inv["version"] == "2" and [x["version"] for x in inv["versions"]] == ["2", "1"]
    assert tags(versions(msim, name)[1])["modelsync.io/generation"] == "2"


def test_lost_reply_on_version_create_leaves_one_version(k8s: K8s, mns: str, msim: Sim) -> None:
    msim.faults(lose_next=1, match=f"POST {API}/model-versions/create")
    k8s.create(model("lost", ["mlflow"], **SPEC), mns)
    mdl = k8s.wait_condition("Model", "lost", mns, "Ready", timeout=90)
    name = mdl["status"]["registries"][0]["externalId"]
    assert msim.app["faults"].lose_next == 0  # the reply was dropped, the version made
    assert len(versions(msim, name)) == 1
    assert [w for w in writes(msim) if w[1] == "/model-versions/create"] == [("POST", "/model-versions/create")]
    stored = get_model(msim, name)
    assert stored is not None and stored["aliases"] == [{"alias": "champion", "version": "1"}]


def test_throttling_and_5xx_back_off_and_recover(k8s: K8s, mns: str, msim: Sim) -> None:
    msim.faults(throttle_next=1, fail_next=1, retry_after=1, match=f"POST {API}/registered-models/create")
    k8s.create(model("flaky", ["mlflow"], **SPEC), mns)
    mdl = k8s.wait_condition("Model", "flaky", mns, "Ready", timeout=90)
    assert len(versions(msim, mdl["status"]["registries"][0]["externalId"])) == 1
    assert [w for w in writes(msim) if w[1] == "/registered-models/create"] == [
        ("POST", "/registered-models/create")] * 3  # 429, 503, then the create


# ---------------------------------------------------------------- drift, adopt, ObserveOnly, delete


def test_drift_is_set_back(k8s: K8s, mns: str, msim: Sim) -> None:
    k8s.create(model("drift", ["mlflow"], **SPEC), mns)
    name = k8s.wait_condition("Model", "drift", mns, "Ready")["status"]["registries"][0]["externalId"]
    direct(msim, "PATCH", "/registered-models/update", {"name": name, "description": "edited in the UI"})
    direct(msim, "POST", "/registered-models/set-tag", {"name": name, "key": "team", "value": "someone"})
    direct(msim, "POST", "/registered-models/alias", {"name": name, "alias": "champion", "version": "1"})
    direct(msim, "POST", "/model-versions/create", {"name": name, "source": "s3://other/model"})
    direct(msim, "POST", "/registered-models/alias", {"name": name, "alias": "champion", "version": "2"})
    mdl = k8s.wait("Model", "drift", mns, lambda o: (o["status"].get("driftCount") or 0) >= 1, 60, what="drift")
    entry = mdl["status"]["registries"][0]
    assert set(entry["lastDrift"]) == {"description", "tags.team", "alias"}
    stored = get_model(msim, name)
    assert stored is not None and stored["description"] == "Qwen3 8B" and tags(stored)["team"] == "nlp"
    assert {a["alias"]: a["version"] for a in stored["aliases"]} == {"champion": "1"}
    assert len(versions(msim, name)) == 2  # the other version is left; the alias is back on ours
    assert "Drift" in [e.reason for e in k8s.events(mns, "drift")]


def test_adopt_an_existing_registered_model(k8s: K8s, mns: str, msim: Sim) -> None:
    name = unique("by-hand")
    direct(msim, "POST", "/registered-models/create", {"name": name, "description": "made by hand",
                                                       "tags": [{"key": "team", "value": "old"}]})
    direct(msim, "POST", "/model-versions/create", {"name": name, "source": "hf://Qwen/Qwen3-8B"})
    msim.clear_journal()
    obj = model("adopted", [], **SPEC)
    obj["spec"]["registries"] = [{"name": "mlflow", "externalId": name}]
    k8s.create(obj, mns)
    mdl = k8s.wait_condition("Model", "adopted", mns, "Ready")
    entry = mdl["status"]["registries"][0]
    assert entry["externalId"] == name and entry["adopted"]
    assert ("POST", "/registered-models/create") not in writes(msim)  # never created
    stored = get_model(msim, name)
    assert stored is not None and stored["description"] == "Qwen3 8B" and tags(stored)["team"] == "nlp"
    # the version holding installPath already existed: none made, the alias put on it
    assert len(versions(msim, name)) == 1 and stored["aliases"] == [{"alias": "champion", "version": "1"}]
    # an adopted entry that does not exist is never created
    missing = model("ghost", [], **SPEC)
    missing["spec"]["registries"] = [{"name": "mlflow", "externalId": unique("nowhere")}]
    k8s.create(missing, mns)
    ghost = k8s.wait("Model", "ghost", mns, lambda o: condition(o, "Synced").get("reason") == "ExternalNotFound",
                     60, what="ExternalNotFound")
    assert condition(ghost, "Ready")["status"] == "False"


def test_observe_only_reports_and_never_writes(k8s: K8s, mns: str, msim: Sim) -> None:
    name = unique("watched")
    direct(msim, "POST", "/registered-models/create", {"name": name, "description": "as it is"})
    direct(msim, "POST", "/model-versions/create", {"name": name, "source": "hf://Qwen/Qwen3-8B"})
    msim.clear_journal()
    obj = model("watched", [], managementPolicy="ObserveOnly", **{**SPEC, "description": "as we want it"})
    obj["spec"]["registries"] = [{"name": "mlflow", "externalId": name}]
    k8s.create(obj, mns)
    mdl = k8s.wait("Model", "watched", mns, lambda o: condition(o, "Ready").get("reason") == "Differs", 60,
                   what="Ready/Differs")
    entry = mdl["status"]["registries"][0]
    assert entry["reason"] == "Differs"
    assert entry["differences"] == sorted(["alias", "description", "tags.modelsync.io/gpu.minMemory",
                                           "tags.modelsync.io/gpu.recommendedCount", "tags.modelsync.io/license",
                                           "tags.modelsync.io/task", "tags.team"])
    assert entry["inventory"]["version"] == "1"  # the version holding installPath is found, whoever made it
    time.sleep(RESYNC_SECONDS * 2)
    assert writes(msim) == []
    stored = get_model(msim, name)
    assert stored is not None and stored["description"] == "as it is"
    # deleting an ObserveOnly resource leaves the entry
    k8s.delete("Model", "watched", mns)
    k8s.wait_gone("Model", "watched", mns)
    assert get_model(msim, name) is not None


def test_delete_removes_the_registered_model_and_orphan_leaves_it(k8s: K8s, mns: str, msim: Sim) -> None:
    k8s.create(model("gone", ["mlflow"], **SPEC), mns)
    k8s.create(model("kept", ["mlflow"], deletionPolicy="Orphan", **SPEC), mns)
    gone = k8s.wait_condition("Model", "gone", mns, "Ready")["status"]["registries"][0]["externalId"]
    kept = k8s.wait_condition("Model", "kept", mns, "Ready")["status"]["registries"][0]["externalId"]
    k8s.delete("Model", "gone", mns)
    k8s.delete("Model", "kept", mns)
    k8s.wait_gone("Model", "gone", mns)
    k8s.wait_gone("Model", "kept", mns)
    assert get_model(msim, gone) is None and versions(msim, gone) == []
    assert get_model(msim, kept) is not None


# ---------------------------------------------------------------- refusals


def test_a_source_mlflow_refuses_is_invalid_spec(k8s: K8s, mns: str, msim: Sim) -> None:
    k8s.create(model("local", ["mlflow"], installPath="/var/models/qwen"), mns)
    mdl = k8s.wait("Model", "local", mns, lambda o: condition(o, "Synced").get("reason") == "InvalidSpec", 60,
                   what="InvalidSpec")
    message = condition(mdl, "Synced")["message"]
    assert "INVALID_PARAMETER_VALUE" in message and "spec.installPath" in message, message


@pytest.mark.parametrize("section, field", [
    ({"alias": "latest"}, "spec.mlflow.alias"),
    ({"tags": [{"key": "mlflow.user", "value": "x"}]}, "spec.mlflow.tags[0].key"),
    ({"tags": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]}, "spec.mlflow.tags"),
    ({"name": "a/b"}, "spec.mlflow.name"),
])
def test_admission_refuses_what_mlflow_would(k8s: K8s, ns: str, section: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiException) as info:
        k8s.create(model("refused", ["mlflow"], mlflow=section), ns)
    assert info.value.status == 422 and field in info.value.body, info.value.body


def test_model_service_is_unsupported(k8s: K8s, mns: str, msim: Sim) -> None:
    k8s.create(service("vllm", ["mlflow"], framework="vLLM"), mns)
    svc = k8s.wait("ModelService", "vllm", mns, lambda o: condition(o, "Synced").get("reason") == "Unsupported",
                   60, what="Unsupported")
    assert "no counterpart" in condition(svc, "Synced")["message"]
    assert writes(msim) == []


def test_examples_sync_ready(k8s: K8s, mns: str, msim: Sim) -> None:
    docs = [d for f in sorted(EXAMPLES.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    assert {d["kind"] for d in docs} >= {"ModelRegistry", "Model"}
    names = {}
    for doc in docs:
        doc = {k: v for k, v in doc.items() if k != "apiVersion"}
        if doc["kind"] == "ModelRegistry":
            assert doc["spec"]["endpoint"] == "http://127.0.0.1:5000"
            doc["spec"]["endpoint"] = msim.url
            doc["metadata"]["name"] = "mlflow-example"
        elif doc["kind"] == "Model":
            doc["spec"]["registries"] = [{"name": "mlflow-example"}]
            doc["spec"]["mlflow"]["name"] = names[doc["metadata"]["name"]] = unique(doc["spec"]["mlflow"]["name"])
        k8s.create(doc, mns)
    assert names
    for resource, name in names.items():
        mdl = k8s.wait_condition("Model", resource, mns, "Ready", timeout=90)
        assert mdl["status"]["registries"][0]["externalId"] == name
        assert len(versions(msim, name)) == 1
