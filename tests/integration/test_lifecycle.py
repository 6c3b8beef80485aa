"""Lifecycle, end to end on the real apiserver with the three simulators: deletion policies,
releasing a registry dropped from the spec, adoption, ObserveOnly, pause, sync on request,
drift, and one Model fanned out to ZStack + NeMo + Instill with one registry failing."""
from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

from modelsync.testing import K8s, OperatorProcess, eventually
from modelsync.testing.k8s import condition

from .conftest import RESYNC_SECONDS, Sim, model, start_sim

pytestmark = pytest.mark.integration

CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"
PASSWORD = "l1fe-Pa55"
TOKEN = "instill_sk_local"
NEMO_MODELS = "/apis/models/v2/workspaces/default/models"
INSTILL_MODELS = "/v1alpha/namespaces/local/models"
INST = {"modelDefinition": "model-definitions/container", "configuration": {},
        "task": "TASK_CHAT", "region": "REGION_GCP_EUROPE_WEST4", "hardware": "CPU"}
SPECS: dict[str, dict[str, Any]] = {
    "zstack": dict(installPath="/models/m", description="one", gpu={"minMemory": "8Gi"}),
    "nemo": dict(description="one", nemo={"base_model": "default/llama-3.1-8b-instruct"}),
    "instill": dict(description="one", instill=INST),
}


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, Sim]]:
    z = start_sim("zstack", account="admin", password=PASSWORD, model_center_uuid=CENTER)
    n = start_sim("nemo")
    i = start_sim("instill")
    out = {"zstack": next(z), "nemo": next(n), "instill": next(i)}
    yield out
    for gen in (z, n, i):
        gen.close()


@pytest.fixture
def lns(k8s: K8s, ns: str, sims: dict[str, Sim], operator: OperatorProcess) -> str:
    for sim in sims.values():
        sim.reset()
    k8s.secret("zcreds", ns, {"accountName": "admin", "password": PASSWORD})
    k8s.secret("itoken", ns, {"token": TOKEN})
    registries = {
        "zstack": {"backend": "zstack", "endpoint": sims["zstack"].url, "credentialsSecretRef": {"name": "zcreds"},
                   "zstack": {"modelCenterUuid": CENTER}},
        "nemo": {"backend": "nemo", "endpoint": sims["nemo"].url, "nemo": {"workspace": "default"}},
        "instill": {"backend": "instill", "endpoint": sims["instill"].url, "credentialsSecretRef": {"name": "itoken"},
                    "instill": {"namespace": "local"}},
    }
    for name, spec in registries.items():
        k8s.create({"kind": "ModelRegistry", "metadata": {"name": name}, "spec": {**spec, "requestTimeout": "5s"}}, ns)
    for name in registries:
        k8s.wait_condition("ModelRegistry", name, ns, "Ready")
    return ns


# ---------------------------------------------------------------- registry contents


def entries(sims: dict[str, Sim], backend: str) -> dict[str, dict[str, Any]]:
    """The simulator's entries by their external id."""
    state = sims[backend].app[backend]
    if backend == "zstack":
        return {u: state.model_inventory(u) for u in list(state.models)}
    if backend == "nemo":
        return {e["name"]: e for e in sims[backend].http.get(NEMO_MODELS).json()["data"]}
    return {mid: dict(m) for (n, mid), m in list(state.models.items()) if n == "local"}


def make_by_hand(sims: dict[str, Sim], backend: str, name: str) -> str:
    """An entry made outside ModelSync, with description "by hand"; its external id."""
    sim = sims[backend]
    if backend == "zstack":
        inv = sim.app["zstack"].add_model({"param": {"name": name, "installPath": "/models/hand",
                                                     "modelCenterUuid": CENTER, "description": "by hand"}})
        return (inv.get("inventory") or inv)["uuid"]
    if backend == "nemo":
        sim.http.post(NEMO_MODELS, json={"name": name, "description": "by hand"}).raise_for_status()
        return name
    sim.http.post(INSTILL_MODELS, json={"id": name, "visibility": "VISIBILITY_PRIVATE", "description": "by hand",
                                        **INST}, headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
    return name


def writes(sim: Sim) -> list[dict[str, Any]]:
    return [e for e in sim.writes() if not e["path"].startswith("/zstack/v1/accounts")]


def external_id(obj: dict[str, Any], registry: str) -> str:
    return next(e["externalId"] for e in obj["status"]["registries"] if e["name"] == registry)


# ---------------------------------------------------------------- deletion


@pytest.mark.parametrize("backend", ["zstack", "nemo", "instill"])
@pytest.mark.parametrize("policy", ["Delete", "Orphan"])
def test_delete_with_each_policy(k8s: K8s, lns: str, sims: dict[str, Sim], backend: str, policy: str) -> None:
    k8s.create(model("gone", [backend], deletionPolicy=policy, **SPECS[backend]), lns)
    obj = k8s.wait_condition("Model", "gone", lns, "Ready")
    eid = external_id(obj, backend)
    assert eid in entries(sims, backend)
    # a finalizer only while something must be removed
    assert ("modelsync.io/finalizer" in (obj["metadata"].get("finalizers") or [])) == (policy == "Delete")
    k8s.delete("Model", "gone", lns)
    k8s.wait_gone("Model", "gone", lns)
    assert (eid in entries(sims, backend)) == (policy == "Orphan")


def test_delete_while_the_registry_fails_then_recovers(k8s: K8s, lns: str, sims: dict[str, Sim]) -> None:
    k8s.create(model("stuck", ["zstack"], **SPECS["zstack"]), lns)
    eid = external_id(k8s.wait_condition("Model", "stuck", lns, "Ready"), "zstack")
    sims["zstack"].faults(error_rate=1.0, error_status=500, match="DELETE ")
    k8s.delete("Model", "stuck", lns)
    obj = k8s.wait("Model", "stuck", lns, lambda o: "deletionPolicy: Orphan" in condition(o, "Synced").get("message", ""),
                   what="a condition saying why the resource stays and what to do")
    assert obj["metadata"].get("deletionTimestamp") and eid in entries(sims, "zstack")
    sims["zstack"].faults(error_rate=0.0)
    k8s.wait_gone("Model", "stuck", lns, timeout=45)  # no stuck finalizer
    assert eid not in entries(sims, "zstack")


def test_orphan_releases_a_resource_stuck_on_a_failing_registry(k8s: K8s, lns: str, sims: dict[str, Sim]) -> None:
    k8s.create(model("freed", ["zstack"], **SPECS["zstack"]), lns)
    eid = external_id(k8s.wait_condition("Model", "freed", lns, "Ready"), "zstack")
    sims["zstack"].faults(error_rate=1.0, error_status=503, match="DELETE ")
    k8s.delete("Model", "freed", lns)
    k8s.wait("Model", "freed", lns, lambda o: condition(o, "Synced").get("status") == "False", what="blocked")
    k8s.patch("Model", "freed", lns, {"spec": {"deletionPolicy": "Orphan"}})
    k8s.wait_gone("Model", "freed", lns)
    sims["zstack"].faults(error_rate=0.0)
    assert eid in entries(sims, "zstack")


def test_a_registry_dropped_from_the_spec_is_released(k8s: K8s, lns: str, sims: dict[str, Sim]) -> None:
    k8s.create(model("two", ["nemo", "instill"], **{**SPECS["nemo"], **SPECS["instill"]}), lns)
    obj = k8s.wait_condition("Model", "two", lns, "Ready")
    nemo_id, instill_id = external_id(obj, "nemo"), external_id(obj, "instill")
    k8s.patch("Model", "two", lns, {"spec": {"registries": [{"name": "instill"}]}})
    obj = k8s.wait("Model", "two", lns, lambda o: [e["name"] for e in o.get("status", {}).get("registries", [])] == ["instill"]
                   and condition(o, "Ready").get("observedGeneration") == 2, what="only instill left")
    assert nemo_id not in entries(sims, "nemo") and instill_id in entries(sims, "instill")


# ---------------------------------------------------------------- adoption, ObserveOnly


@pytest.mark.parametrize("backend", ["zstack", "nemo", "instill"])
def test_adopt_an_entry_made_by_hand(k8s: K8s, lns: str, sims: dict[str, Sim], backend: str) -> None:
    eid = make_by_hand(sims, backend, f"hand-{backend}-{lns}")
    sims[backend].clear_journal()
    spec = {**SPECS[backend], "description": "adopted"}
    k8s.create({"kind": "Model", "metadata": {"name": "adopter"},
                "spec": {"registries": [{"name": backend, "externalId": eid}], **spec}}, lns)
    obj = k8s.wait_condition("Model", "adopter", lns, "Ready")
    entry = obj["status"]["registries"][0]
    assert entry["externalId"] == eid and entry["adopted"] is True
    assert entries(sims, backend)[eid]["description"] == "adopted"
    # (other tests' Models share the simulator: only calls about this entry count)
    created = [e for e in writes(sims[backend]) if e["method"] == "POST" and eid in str(e.get("body"))]
    assert created == [], "an adopted entry is never created"
    assert [e for e in writes(sims[backend]) if eid in e["path"]], "the adopted entry was updated in place"


def test_observe_only_reports_a_difference_and_never_writes(k8s: K8s, lns: str, sims: dict[str, Sim]) -> None:
    eid = make_by_hand(sims, "instill", f"watched-{lns}")
    sims["instill"].clear_journal()
    k8s.create({"kind": "Model", "metadata": {"name": "watcher"},
                "spec": {"registries": [{"name": "instill", "externalId": eid}], "managementPolicy": "ObserveOnly",
                         **SPECS["instill"]}}, lns)
    obj = k8s.wait("Model", "watcher", lns, lambda o: any(e.get("differences") for e in o.get("status", {}).get("registries", [])),
                   what="differences reported")
    entry = obj["status"]["registries"][0]
    assert entry["reason"] == "Differs" and "description" in entry["differences"]
    # observed and reported is what ObserveOnly asks for: Ready=True reason Differs (kubectl wait,
    # kstatus and Argo CD finish), the fields in its message and in the entry
    ready = condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Differs") and "description" in ready["message"]
    assert condition(obj, "Synced")["status"] == "True" and condition(obj, "Stalled")["status"] == "False"
    assert "finalizers" not in obj["metadata"] or "modelsync.io/finalizer" not in obj["metadata"]["finalizers"]
    time.sleep(RESYNC_SECONDS * 2)  # a quiet period: resyncs look again and must not write

    def mine(e: dict[str, Any]) -> bool:  # other tests' Models share the simulator
        return eid in e["path"] or eid in str(e.get("body"))

    assert [e for e in writes(sims["instill"]) if mine(e)] == []
    assert [e for e in sims["instill"].journal() if e["method"] == "GET" and mine(e)], "it did observe"
    k8s.delete("Model", "watcher", lns)
    k8s.wait_gone("Model", "watcher", lns)
    assert eid in entries(sims, "instill") and [e for e in writes(sims["instill"]) if mine(e)] == []


def test_name_taken_says_how_to_adopt(k8s: K8s, lns: str, sims: dict[str, Sim]) -> None:
    make_by_hand(sims, "instill", f"taken-{lns}")
    k8s.create(model("clash", ["instill"], **{**SPECS["instill"], "instill": {**INST, "id": f"taken-{lns}"}}), lns)
    obj = k8s.wait("Model", "clash", lns, lambda o: condition(o, "Synced").get("reason") == "NameTaken", what="NameTaken")
    assert f"spec.registries[].externalId: taken-{lns}" in condition(obj, "Synced")["message"]
    assert condition(obj, "Stalled")["status"] == "True"  # kstatus: failed, not in progress


# ---------------------------------------------------------------- per-resource control and drift


def test_pause_makes_no_registry_call(k8s: K8s, lns: str, sims: dict[str, Sim]) -> None:
    k8s.create(model("nap", ["zstack"], **SPECS["zstack"]), lns)
    eid = external_id(k8s.wait_condition("Model", "nap", lns, "Ready"), "zstack")
    k8s.patch("Model", "nap", lns, {"metadata": {"annotations": {"modelsync.io/paused": "true"}}})
    k8s.wait_condition("Model", "nap", lns, "Paused")
    sims["zstack"].clear_journal()
    k8s.patch("Model", "nap", lns, {"spec": {"description": "while paused"}})
    time.sleep(RESYNC_SECONDS * 2)  # a quiet period: a paused resource makes no registry call
    # (other tests' Models in other namespaces share the simulator: only this one's calls count)
    assert [e for e in sims["zstack"].journal() if eid in e["path"] or eid in str(e.get("body"))] == []
    k8s.patch("Model", "nap", lns, {"metadata": {"annotations": {"modelsync.io/paused": None}}})
    obj = k8s.wait("Model", "nap", lns, lambda o: condition(o, "Ready").get("observedGeneration") == 2
                   and condition(o, "Ready").get("status") == "True", what="synced after the pause")
    assert condition(obj, "Paused")["status"] == "False"


def test_drift_is_corrected_and_reported_and_sync_requested_at_is_prompt(
        k8s: K8s, lns: str, sims: dict[str, Sim]) -> None:
    k8s.create({"kind": "Model", "metadata": {"name": "drifty", "annotations": {"modelsync.io/resync-interval": "1h"}},
                "spec": {"registries": [{"name": "zstack"}], **SPECS["zstack"]}}, lns)
    eid = external_id(k8s.wait_condition("Model", "drifty", lns, "Ready"), "zstack")
    state = sims["zstack"].app["zstack"]
    state.models[eid].fields["description"] = "changed in the UI"
    state.models[eid].fields["vendor"] = "someone"
    time.sleep(RESYNC_SECONDS * 2)  # a quiet period: with the 1h interval nothing looks yet
    assert state.model_inventory(eid)["description"] == "changed in the UI"
    asked = time.monotonic()
    k8s.patch("Model", "drifty", lns, {"metadata": {"annotations": {"modelsync.io/sync-requested-at": "now-1"}}})
    eventually(lambda: state.model_inventory(eid)["description"] == "one", "drift corrected", timeout=10)
    took = time.monotonic() - asked
    print(f"synced {took:.2f}s after sync-requested-at")
    assert took < 2.0 + 1.0  # within 2 s (plus the poll's granularity)
    obj = k8s.wait("Model", "drifty", lns, lambda o: o.get("status", {}).get("driftCount") == 1, what="driftCount 1")
    assert obj["status"]["registries"][0]["lastDrift"] == ["description"]
    events = [e for e in k8s.events(lns, "drifty") if e.reason == "Drift"]
    eventually(lambda: bool([e for e in k8s.events(lns, "drifty") if e.reason == "Drift"]), "Drift event")
    events = [e for e in k8s.events(lns, "drifty") if e.reason == "Drift"]
    assert events[0].type == "Warning" and "description" in events[0].message


# ---------------------------------------------------------------- fan-out


def test_one_model_in_three_registries_with_one_failing(k8s: K8s, lns: str, sims: dict[str, Sim]) -> None:
    spec = {**SPECS["zstack"], **SPECS["nemo"], **SPECS["instill"]}
    sims["nemo"].faults(error_rate=1.0, error_status=503, retry_after=1, match="")
    k8s.create(model("wide", ["zstack", "nemo", "instill"], **spec), lns)
    obj = k8s.wait("Model", "wide", lns, lambda o: sum(1 for e in o.get("status", {}).get("registries", []) if e.get("synced")) == 2,
                   what="two registries synced while one fails")
    by = {e["name"]: e for e in obj["status"]["registries"]}
    assert by["zstack"]["synced"] and by["instill"]["synced"] and not by["nemo"]["synced"]
    assert by["nemo"]["reason"] == "RegistryUnavailable"
    assert condition(obj, "Ready")["status"] == "False" and condition(obj, "Synced")["reason"] == "RegistryUnavailable"
    assert condition(obj, "Reconciling")["status"] == "True" and condition(obj, "Stalled")["status"] == "False"
    sims["nemo"].faults(error_rate=0.0)
    obj = k8s.wait_condition("Model", "wide", lns, "Ready", timeout=45)
    assert all(e["synced"] for e in obj["status"]["registries"])


def test_mixed_terminal_and_recoverable_failures(k8s: K8s, lns: str, sims: dict[str, Sim]) -> None:
    make_by_hand(sims, "instill", f"mixed-{lns}")  # a foreign model at the id: terminal NameTaken
    spec = {**SPECS["zstack"], **SPECS["nemo"], "instill": {**INST, "id": f"mixed-{lns}"}}
    sims["nemo"].faults(error_rate=1.0, error_status=503, retry_after=1, match="")
    k8s.create(model("mixed", ["zstack", "nemo", "instill"], description="one", **{
        k: v for k, v in spec.items() if k != "description"}), lns)
    obj = k8s.wait("Model", "mixed", lns, lambda o: {e["name"]: e.get("reason") for e in o.get("status", {}).get("registries", [])}
                   == {"zstack": "Synced", "nemo": "RegistryUnavailable", "instill": "NameTaken"},
                   what="zstack synced, nemo retrying, instill refused")
    assert condition(obj, "Synced")["reason"] == "NameTaken"  # the terminal one is named first
    assert condition(obj, "Stalled")["status"] == "True"
    sims["nemo"].faults(error_rate=0.0)
    obj = k8s.wait("Model", "mixed", lns, lambda o: {e["name"]: e.get("reason") for e in o["status"]["registries"]}
                   .get("nemo") == "Synced", what="nemo recovered while instill stays refused", timeout=45)
    assert condition(obj, "Ready")["status"] == "False"
