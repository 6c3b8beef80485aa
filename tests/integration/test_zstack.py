"""ZStack end to end: the real apiserver, the operator as a process, the ZStack simulator."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from modelsync import api
from modelsync.testing import K8s, OperatorProcess
from modelsync.testing.k8s import condition

from .conftest import RESYNC_SECONDS, Sim, model, service, start_sim

pytestmark = pytest.mark.integration

CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"
PASSWORD = "s3cret-Pa55"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "zstack"


@pytest.fixture(scope="module")
def zsim() -> Iterator[Sim]:
    yield from start_sim("zstack", account="admin", password=PASSWORD, model_center_uuid=CENTER)


@pytest.fixture(scope="module")
def zsim_async() -> Iterator[Sim]:
    """Every write answers 202 with an api-jobs location."""
    yield from start_sim("zstack", account="admin", password=PASSWORD, model_center_uuid=CENTER,
                         async_mode=True, job_delay=0.3)


def registry(k8s: K8s, ns: str, sim: Sim, name: str = "zstack") -> None:
    k8s.secret(f"{name}-creds", ns, {"accountName": "admin", "password": PASSWORD})
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": name}, "spec": {
        "backend": "zstack", "endpoint": sim.url, "credentialsSecretRef": {"name": f"{name}-creds"},
        "zstack": {"modelCenterUuid": CENTER}, "requestTimeout": "10s"}}, ns)


@pytest.fixture
def zns(k8s: K8s, ns: str, zsim: Sim, operator: OperatorProcess) -> str:
    zsim.reset()
    registry(k8s, ns, zsim)
    return ns


def sim_models(sim: Sim) -> dict[str, dict[str, Any]]:
    state = sim.app["zstack"]
    return {u: state.model_inventory(u) for u in list(state.models)}


def sim_services(sim: Sim) -> dict[str, dict[str, Any]]:
    state = sim.app["zstack"]
    return {u: state.model_service_inventory(u) for u in list(state.services)}


QWEN = dict(description="Qwen3 8B instruct", installPath="/models/qwen3-8b", vendor="Qwen", version="1.0.0",
            gpu={"minMemory": "16Gi", "recommendedMemory": "24Gi", "recommendedCount": [1, 2],
                 "accelerator": "cuda:12.1"},
            architecture="Qwen3ForCausalLM", task="text-generation")


def test_model_and_service_created_with_inventory_in_status(k8s: K8s, zns: str, zsim: Sim) -> None:
    k8s.create(service("vllm", ["zstack"], resources={"cpu": 4, "memory": "16Gi"}, framework="vLLM",
                       startCommand="python3 -m vllm.entrypoints.openai.api_server",
                       zstack={"installPath": "/opt/vllm"},
                       ports=[8000], livenessPath="/health", config="services:\n  - name: vllm\n",
                       images=[{"cpuArchitecture": "x86_64", "image": "vllm:0.6"}]), zns)
    k8s.create(model("qwen", ["zstack"], defaultServiceRef={"name": "vllm"}, **QWEN), zns)
    svc = k8s.wait_condition("ModelService", "vllm", zns, "Ready")
    mdl = k8s.wait_condition("Model", "qwen", zns, "Ready")

    s_entry, m_entry = svc["status"]["registries"][0], mdl["status"]["registries"][0]
    assert s_entry["synced"] and m_entry["synced"]
    assert condition(mdl, "Synced")["status"] == "True"
    # status carries the registry's own inventory, and it is what the simulator stores
    stored = sim_models(zsim)[m_entry["externalId"]]
    assert m_entry["inventory"]["uuid"] == m_entry["externalId"] == stored["uuid"]
    inv = m_entry["inventory"]
    assert inv["recommendedGpuNum"] == [1, 2]
    assert inv["modelCenterUuid"] == CENTER and inv["installPath"] == "/models/qwen3-8b"
    # no ZStack API sets GPU memory, accelerator, architecture or pipeline tag: never sent, shown
    not_settable = {n["field"] for n in m_entry["notSettable"]}
    assert not_settable == {"spec.gpu.minMemory", "spec.gpu.recommendedMemory", "spec.gpu.accelerator",
                            "spec.architecture", "spec.task"}
    assert all("::" not in str(e["body"].get("systemTags")) for e in zsim.writes("/zstack/v1/ai/models"))
    assert inv["defaultModelServiceUuid"] == s_entry["externalId"]
    sinv = sim_services(zsim)[s_entry["externalId"]]
    assert sinv["requestCpu"] == 4 and sinv["requestMemory"] == 16384
    assert [i["dockerImage"] for i in sinv["modelServiceImages"]] == ["vllm:0.6"]
    # the table a user sees
    out = k8s_table(k8s, zns)
    assert "qwen" in out and m_entry["externalId"] in out


def k8s_table(k8s: K8s, ns: str) -> str:
    import subprocess

    from modelsync.testing import ensure_binaries

    return subprocess.run([str(ensure_binaries() / "kubectl"), "get", "models", "-n", ns],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "KUBECONFIG": k8s.kubeconfig_path}).stdout


def test_update_sends_only_changed_fields(k8s: K8s, zns: str, zsim: Sim) -> None:
    k8s.create(model("upd", ["zstack"], **QWEN), zns)
    k8s.wait_condition("Model", "upd", zns, "Ready")
    zsim.clear_journal()
    k8s.patch("Model", "upd", zns, {"spec": {"description": "now with tools", "gpu": {"minMemory": "20Gi"}}})
    obj = k8s.wait(
        "Model", "upd", zns, lambda o: o["status"].get("observedGeneration") == 2
        and condition(o, "Ready").get("status") == "True", what="generation 2 synced")
    puts = zsim.writes("/zstack/v1/ai/models")
    assert len(puts) == 1, puts
    assert puts[0]["method"] == "PUT"
    # GPU memory cannot be set through UpdateModel: only the description travels
    assert puts[0]["body"] == {"updateModel": {"description": "now with tools"}}
    entry = obj["status"]["registries"][0]
    assert entry["inventory"]["description"] == "now with tools"
    (mem,) = [n for n in entry["notSettable"] if n["field"] == "spec.gpu.minMemory"]
    assert "UpdateModel" in mem["message"] and "registryValue" not in mem


def test_unchanged_resync_and_restart_write_nothing(k8s: K8s, zns: str, zsim: Sim, operator: OperatorProcess) -> None:
    k8s.create(model("calm", ["zstack"], **QWEN), zns)
    before = k8s.wait_condition("Model", "calm", zns, "Ready")
    time.sleep(1)  # let the create's own follow-up (diff-base) settle
    before = k8s.get("Model", "calm", zns)
    zsim.clear_journal()
    time.sleep(RESYNC_SECONDS * 3)  # several resync timers fire
    operator.restart()  # and the resume handler runs on restart
    operator.wait_for_log("Starting the watch-stream", timeout=60)
    time.sleep(RESYNC_SECONDS * 2)
    journal = zsim.journal()
    uuid = before["status"]["registries"][0]["externalId"]
    reads = [e for e in journal if e["method"] == "GET" and e["path"].endswith(uuid)]
    assert len(reads) >= 2, "the resyncs did not look at the registry"
    assert [e for e in journal if e["method"] not in ("GET", "HEAD") and "/accounts/" not in e["path"]] == []
    after = k8s.get("Model", "calm", zns)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_expired_session_renewed(k8s: K8s, zns: str, zsim: Sim) -> None:
    k8s.create(model("sess", ["zstack"], **QWEN), zns)
    k8s.wait_condition("Model", "sess", zns, "Ready")
    zsim.http.post("/_sim/zstack/expire-sessions").raise_for_status()
    zsim.clear_journal()
    k8s.patch("Model", "sess", zns, {"spec": {"vendor": "Alibaba"}})
    k8s.wait("Model", "sess", zns, lambda o: o["status"].get("observedGeneration") == 2
             and condition(o, "Ready").get("status") == "True", what="generation 2 synced")
    paths = [(e["method"], e["path"]) for e in zsim.journal()]
    login = ("PUT", "/zstack/v1/accounts/login")
    assert login in paths
    update = next(i for i, p in enumerate(paths) if p[0] == "PUT" and p[1].startswith("/zstack/v1/ai/models/"))
    assert paths.index(login) < update


def test_async_jobs_followed(k8s: K8s, ns: str, zsim_async: Sim, operator: OperatorProcess) -> None:
    registry(k8s, ns, zsim_async, name="zasync")
    k8s.create(model("slow", ["zasync"], **QWEN), ns)
    obj = k8s.wait_condition("Model", "slow", ns, "Ready", timeout=90)
    assert obj["status"]["registries"][0]["inventory"]["installPath"] == QWEN["installPath"]
    polls = [e for e in zsim_async.journal() if e["path"].startswith("/zstack/v1/api-jobs/")]
    assert polls, "no api-jobs location was polled"
    k8s.patch("Model", "slow", ns, {"spec": {"description": "async update"}})
    obj = k8s.wait("Model", "slow", ns, lambda o: o["status"].get("observedGeneration") == 2
                   and condition(o, "Ready").get("status") == "True", what="generation 2 synced")
    assert obj["status"]["registries"][0]["inventory"]["description"] == "async update"


def test_rejected_spec_is_terminal_until_it_changes(k8s: K8s, zns: str, zsim: Sim) -> None:
    # installPath is required by ZStack: the condition says so, and nothing is sent
    k8s.create(model("nopath", ["zstack"], description="d"), zns)
    obj = k8s.wait_condition("Model", "nopath", zns, "Synced", status="False")
    synced = condition(obj, "Synced")
    assert synced["reason"] == "InvalidSpec" and "spec.installPath" in synced["message"]
    assert condition(obj, "Ready")["status"] == "False"
    time.sleep(RESYNC_SECONDS * 2)
    assert not [m for m in sim_models(zsim).values() if m["name"] == "nopath"]
    assert zsim.writes("/zstack/v1/ai/models") == []
    k8s.patch("Model", "nopath", zns, {"spec": {"installPath": "/models/fixed"}})
    k8s.wait_condition("Model", "nopath", zns, "Ready")


def test_registry_envelope_becomes_the_condition_message(k8s: K8s, zns: str, zsim: Sim) -> None:
    # ZStack caps descriptions at 2048 characters; the CRD allows longer ones for other registries
    k8s.create(model("wordy", ["zstack"], installPath="/m", description="x" * 3000), zns)
    obj = k8s.wait("Model", "wordy", zns, lambda o: condition(o, "Synced").get("status") == "False",
                   what="Synced=False")
    synced = condition(obj, "Synced")
    assert synced["reason"] == "InvalidSpec"
    assert "SYS.1007" in synced["message"] and "field[description]" in synced["message"]
    assert "max length" in obj["status"]["registries"][0]["message"]


def test_server_errors_and_throttling_back_off_and_recover(k8s: K8s, zns: str, zsim: Sim) -> None:
    zsim.faults(fail_next=2, throttle_next=1, retry_after=1, match="POST /zstack/v1/ai/models")
    k8s.create(model("flaky", ["zstack"], **QWEN), zns)
    k8s.wait_condition("Model", "flaky", zns, "Ready", timeout=120)
    posts = [e for e in zsim.writes("/zstack/v1/ai/models") if e["method"] == "POST"]
    assert len(posts) == 4  # 429, 503, 503, then the create
    assert len([m for m in sim_models(zsim).values() if m["name"] == "flaky"]) == 1


def test_no_secret_in_status_events_or_log(k8s: K8s, zns: str, zsim: Sim, operator: OperatorProcess) -> None:
    k8s.create(model("quiet", ["zstack"], **QWEN), zns)
    obj = k8s.wait_condition("Model", "quiet", zns, "Ready")
    zsim.faults(fail_next=1, match="GET /zstack/v1/ai/models")
    k8s.patch("Model", "quiet", zns, {"spec": {"vendor": "v2"}})
    k8s.wait("Model", "quiet", zns, lambda o: o["status"].get("observedGeneration") == 2
             and condition(o, "Ready").get("status") == "True", what="generation 2 synced")
    obj = k8s.get("Model", "quiet", zns)
    sessions = list(zsim.app["zstack"].sessions)
    events = " ".join(f"{e.reason} {e.message}" for e in k8s.events(zns, "quiet"))
    for text in (str(obj), events, operator.log()):
        assert PASSWORD not in text
        for s in sessions:
            assert s not in text


def test_registry_ready_condition(k8s: K8s, ns: str, zsim: Sim, operator: OperatorProcess) -> None:
    registry(k8s, ns, zsim, name="good")
    good = k8s.wait_condition("ModelRegistry", "good", ns, "Ready")
    assert "model center" in condition(good, "Ready")["message"]
    k8s.secret("wrong-creds", ns, {"accountName": "admin", "password": "not-it"})
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "wrongpw"}, "spec": {
        "backend": "zstack", "endpoint": zsim.url, "credentialsSecretRef": {"name": "wrong-creds"},
        "zstack": {"modelCenterUuid": CENTER}}}, ns)
    bad = k8s.wait_condition("ModelRegistry", "wrongpw", ns, "Ready", status="False")
    assert condition(bad, "Ready")["reason"] == "CredentialsRejected"
    assert "not-it" not in str(bad)
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "nocenter"}, "spec": {
        "backend": "zstack", "endpoint": zsim.url, "credentialsSecretRef": {"name": "good-creds"},
        "zstack": {"modelCenterUuid": "0" * 32}}}, ns)
    missing = k8s.wait_condition("ModelRegistry", "nocenter", ns, "Ready", status="False")
    assert condition(missing, "Ready")["reason"] == "RegistryMisconfigured"
    assert "0" * 32 in condition(missing, "Ready")["message"]


def test_rejection_caused_by_the_registry_heals_when_the_registry_is_fixed(
        k8s: K8s, ns: str, zsim: Sim, operator: OperatorProcess) -> None:
    k8s.secret("fixme-creds", ns, {"accountName": "admin", "password": PASSWORD})
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "fixme"}, "spec": {
        "backend": "zstack", "endpoint": zsim.url, "credentialsSecretRef": {"name": "fixme-creds"},
        "zstack": {"modelCenterUuid": "1" * 32}}}, ns)
    k8s.create(model("center", ["fixme"], installPath="/m"), ns)
    # ZStack answers SYS.1003 naming modelCenterUuid: the registry object is what is wrong
    obj = k8s.wait("Model", "center", ns, lambda o: condition(o, "Synced").get("reason") == "RegistryMisconfigured",
                   what="Synced=False RegistryMisconfigured")
    assert "1" * 32 in condition(obj, "Synced")["message"]
    k8s.custom.patch_namespaced_custom_object(
        "modelsync.io", "v1alpha1", ns, "modelregistries", "fixme", {"spec": {"zstack": {"modelCenterUuid": CENTER}}},
        _content_type="application/merge-patch+json")
    obj = k8s.wait_condition("Model", "center", ns, "Ready", timeout=60)
    assert obj["metadata"]["generation"] == 1  # the Model itself never changed


# ---------------------------------------------------------------- fidelity: issue 14


@pytest.fixture(scope="module")
def zsim_examples() -> Iterator[Sim]:
    """The faithful simulator as examples/zstack/00-registry.yaml describes it (its account)."""
    yield from start_sim("zstack", model_center_uuid=CENTER)


def test_examples_sync_ready(k8s: K8s, ns: str, zsim_examples: Sim, operator: OperatorProcess) -> None:
    """Every manifest of examples/zstack is admitted and every Model and ModelService turns Ready
    against the faithful simulator; what ZStack cannot set is listed, never sent."""
    zsim = zsim_examples
    docs = [d for f in sorted(EXAMPLES.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert {"Secret", "ModelRegistry", "Model", "ModelService"} <= set(kinds)
    synced = []
    for doc in docs:
        if doc["kind"] == "Secret":
            k8s.core.create_namespaced_secret(ns, doc)
            continue
        assert doc["apiVersion"] == api.API_VERSION
        if doc["kind"] == "ModelRegistry":
            assert doc["spec"]["backend"] == "zstack" and doc["spec"]["zstack"]["modelCenterUuid"] == CENTER
            doc = {**doc, "spec": {**doc["spec"], "endpoint": zsim.url}}
        try:
            k8s.create({k: v for k, v in doc.items() if k != "apiVersion"}, ns)
        except ApiException as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']} not admitted: {exc.body}")
        if doc["kind"] in ("Model", "ModelService"):
            synced.append(doc)
    for doc in synced:
        obj = k8s.wait_condition(doc["kind"], doc["metadata"]["name"], ns, "Ready", timeout=60)
        entry = obj["status"]["registries"][0]
        assert entry["reason"] == "Synced" and entry["externalId"]
    writes = zsim.writes("/zstack/v1/ai/")
    assert writes and all(not e["body"].get("systemTags") for e in writes if e["method"] == "POST")


def wait_generation(k8s: K8s, kind: str, name: str, ns: str, generation: int, **kw: Any) -> dict[str, Any]:
    return k8s.wait(kind, name, ns, lambda o: o["status"].get("observedGeneration") == generation
                    and condition(o, "Ready").get("status") == "True", what=f"generation {generation} Ready", **kw)


#: every field the Model CRD allows for a ZStack registry: the common fields and spec.zstack
EVERY_MODEL_FIELD: dict[str, Any] = dict(
    description="Qwen3 8B instruct", installPath="/models/qwen3-8b", vendor="Qwen", version="1.0.0",
    parameters="8B, bf16", architecture="Qwen3ForCausalLM", frameworkVersion="PyTorch 2.4.0+cu121",
    task="text-generation", license="apache-2.0", readme="# Qwen3 8B",
    gpu={"minMemory": "16Gi", "recommendedMemory": "24Gi", "recommendedCount": [1, 2],
         "constraintDescription": "Ampere or newer", "accelerator": "cuda:12.1"},
    defaultServiceRef={"name": "every-svc"},
    zstack={"name": "Qwen3 8B", "modelId": "Qwen/Qwen3-8B", "logo": "aGVsbG8=", "introduction": "Qwen3, 8B",
            "size": 16384000000, "shareMode": "Private", "pipelineTag": "text-generation",
            "systemTags": ["resourceConfig::ai::gpuOvercommit::true"]},
)
#: every field the ModelService CRD allows for a ZStack registry
EVERY_SERVICE_FIELD: dict[str, Any] = dict(
    description="vLLM server", readme="# vLLM", config="services:\n  - name: vllm\n    ports: [8000]\n",
    resources={"cpu": 4, "memory": "16Gi"}, gpuComputeCapability="8.0", startCommand="python3 -m vllm",
    framework="vLLM", pythonVersion="3.10.12", command=["python3", "-m", "vllm"], args=["--port", "8000"],
    images=[{"cpuArchitecture": "x86_64", "image": "vllm:0.6.3"}, {"cpuArchitecture": "aarch64", "image": "vllm-arm:0.6.3"}],
    ports=[8000], livenessPath="/health", readinessPath="/ready", bootupTimeSeconds=120, supportDistributed=True,
    zstack={"name": "vllm", "type": "Endpoint", "source": "custom", "installPath": "/opt/vllm", "serviceName": "vllm"},
)


def test_every_field_lands_or_is_listed_and_nothing_is_written_twice(k8s: K8s, zns: str, zsim: Sim) -> None:
    k8s.create(service("every-svc", ["zstack"], **EVERY_SERVICE_FIELD), zns)
    k8s.create(model("every", ["zstack"], **EVERY_MODEL_FIELD), zns)
    svc = k8s.wait_condition("ModelService", "every-svc", zns, "Ready", timeout=60)
    mdl = k8s.wait_condition("Model", "every", zns, "Ready", timeout=60)
    state = zsim.app["zstack"]
    s_entry, m_entry = svc["status"]["registries"][0], mdl["status"]["registries"][0]

    # the model: each value is in the simulator's store, or listed as not settable
    stored = state.models[m_entry["externalId"]]
    assert stored.fields == {
        "name": "Qwen3 8B", "installPath": "/models/qwen3-8b", "description": "Qwen3 8B instruct",
        "parameters": "8B, bf16", "modelCenterUuid": CENTER, "vendor": "Qwen", "version": "1.0.0",
        "modelId": "Qwen/Qwen3-8B", "logo": "aGVsbG8=", "introduction": "Qwen3, 8B",
        "gpuConstraintDescription": "Ampere or newer", "recommendedGpuNum": [1, 2], "size": 16384000000,
        "shareMode": "Private"}
    assert stored.default_service == s_entry["externalId"]
    assert stored.tags.system == ["resourceConfig::ai::gpuOvercommit::true"]
    # (spec.readme too: spec.zstack.introduction takes ZStack's one text field)
    assert {n["field"] for n in m_entry["notSettable"]} == {
        "spec.gpu.minMemory", "spec.gpu.recommendedMemory", "spec.gpu.accelerator", "spec.architecture",
        "spec.frameworkVersion", "spec.task", "spec.zstack.pipelineTag", "spec.license", "spec.readme"}

    # the service: the same
    srec = state.services[s_entry["externalId"]]
    assert {k: srec.fields.get(k) for k in (
        "name", "description", "yaml", "requestCpu", "requestMemory", "gpuComputeCapability", "startCommand",
        "framework", "pythonVersion", "containerCommand", "containerArgs", "supportDistributed", "type", "source",
        "installPath", "serviceName", "servicePorts", "serviceLivez", "serviceReadyz", "serviceBootupTime")} == {
        "name": "vllm", "description": "vLLM server", "yaml": EVERY_SERVICE_FIELD["config"], "requestCpu": 4,
        "requestMemory": 16384, "gpuComputeCapability": "8.0", "startCommand": "python3 -m vllm", "framework": "vLLM",
        "pythonVersion": "3.10.12", "containerCommand": "python3 -m vllm", "containerArgs": "--port 8000",
        "supportDistributed": True, "type": "Endpoint", "source": "custom", "installPath": "/opt/vllm",
        "serviceName": "vllm", "servicePorts": [8000], "serviceLivez": "/health", "serviceReadyz": "/ready",
        "serviceBootupTime": 120}
    assert sorted((i.cpu_architecture, i.docker_image) for i in srec.images) == [
        ("aarch64", "vllm-arm:0.6.3"), ("x86_64", "vllm:0.6.3")]
    assert [n["field"] for n in s_entry["notSettable"]] == ["spec.readme"]

    # resyncs read and never write again for the same spec
    time.sleep(1)
    zsim.clear_journal()
    time.sleep(RESYNC_SECONDS * 3)
    journal = zsim.journal()
    assert [e for e in journal if e["path"].endswith(m_entry["externalId"]) and e["method"] == "GET"]
    assert [e for e in journal if e["method"] not in ("GET", "HEAD") and "/accounts/" not in e["path"]] == []


def test_a_create_only_change_is_a_condition_not_a_silent_no_op(k8s: K8s, zns: str, zsim: Sim) -> None:
    k8s.create(model("ver", ["zstack"], installPath="/m", version="1.0.0"), zns)
    k8s.wait_condition("Model", "ver", zns, "Ready")
    zsim.clear_journal()
    k8s.patch("Model", "ver", zns, {"spec": {"version": "2.0.0", "description": "v2"}})
    obj = k8s.wait("Model", "ver", zns, lambda o: condition(o, "Synced").get("reason") == "InvalidSpec",
                   what="Synced=False InvalidSpec")
    message = condition(obj, "Synced")["message"]
    assert "spec.version" in message and "cannot change after create" in message and "'1.0.0'" in message
    assert condition(obj, "Ready")["status"] == "False"
    assert zsim.writes("/zstack/v1/ai/models") == []  # refused before anything was sent
    k8s.patch("Model", "ver", zns, {"spec": {"version": "1.0.0"}})
    wait_generation(k8s, "Model", "ver", zns, 3)
    (put,) = zsim.writes("/zstack/v1/ai/models")
    assert put["body"] == {"updateModel": {"description": "v2"}}


def test_a_system_tag_zstack_has_not_registered_is_invalid_spec(k8s: K8s, zns: str, zsim: Sim) -> None:
    k8s.create(model("tagged", ["zstack"], installPath="/m", zstack={"systemTags": ["minGpuMemory::1"]}), zns)
    obj = k8s.wait("Model", "tagged", zns, lambda o: condition(o, "Synced").get("reason") == "InvalidSpec",
                   what="Synced=False InvalidSpec")
    assert "SYS.1007" in condition(obj, "Synced")["message"]
    assert "no system tag matches minGpuMemory::1" in condition(obj, "Synced")["message"]
    assert not [m for m in sim_models(zsim).values() if m["name"] == "tagged"]
