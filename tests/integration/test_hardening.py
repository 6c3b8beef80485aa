"""Hardening, end to end: the real apiserver, the operator as a process, the simulators.

Secrets that could leak, registries that accept without echoing, outages, an apiserver
restart, a Secret fixed while resources wait, and a large readme.
"""
from __future__ import annotations

import json
import time
from typing import Iterator

import pytest

from modelsync.testing import ControlPlane, K8s, OperatorProcess, eventually
from modelsync.testing.k8s import condition

from .conftest import RESYNC_SECONDS, Sim, model, service, start_sim

pytestmark = pytest.mark.integration

CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"
PASSWORD = "h4rd-Pa55-x7"
QWEN = dict(description="Qwen3 8B", installPath="/models/qwen3-8b", vendor="Qwen", version="1.0.0",
            gpu={"minMemory": "16Gi", "recommendedMemory": "24Gi", "accelerator": "cuda:12.1"},
            architecture="Qwen3ForCausalLM", task="text-generation")


@pytest.fixture(scope="module")
def zsim() -> Iterator[Sim]:
    yield from start_sim("zstack", account="admin", password=PASSWORD, model_center_uuid=CENTER)


@pytest.fixture(scope="module")
def tagless() -> Iterator[Sim]:
    """ZStack as it is: UpdateModelService's service* fields are stored, and no inventory shows them."""
    yield from start_sim("zstack", account="admin", password=PASSWORD, model_center_uuid=CENTER)


@pytest.fixture(scope="module")
def isim() -> Iterator[Sim]:
    yield from start_sim("instill")


def zregistry(k8s: K8s, ns: str, sim: Sim, name: str = "zstack", password: str = PASSWORD,
              endpoint: str | None = None) -> None:
    k8s.secret(f"{name}-creds", ns, {"accountName": "admin", "password": password})
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": name}, "spec": {
        "backend": "zstack", "endpoint": endpoint or sim.url, "credentialsSecretRef": {"name": f"{name}-creds"},
        "zstack": {"modelCenterUuid": CENTER}, "requestTimeout": "5s"}}, ns)


def model_writes(sim: Sim) -> list[dict]:
    return [e for e in sim.writes("/zstack/v1/ai/models")]


def gen_ready(k8s: K8s, kind: str, name: str, ns: str, generation: int, timeout: float = 30) -> dict:
    return k8s.wait(kind, name, ns, lambda o: condition(o, "Ready").get("status") == "True"
                    and condition(o, "Ready").get("observedGeneration") == generation,
                    what=f"Ready at generation {generation}", timeout=timeout)


# ---------------------------------------------------------------- no write loops


SVC = dict(config="services: []\n", resources={"cpu": 1, "memory": "1Gi"}, startCommand="python3 app.py",
           zstack={"installPath": "/opt/svc"}, ports=[8000], livenessPath="/health", bootupTimeSeconds=30)


def test_fields_stored_but_not_reflected_are_written_once(
        k8s: K8s, ns: str, tagless: Sim, operator: OperatorProcess) -> None:
    tagless.reset()
    zregistry(k8s, ns, tagless)
    k8s.create(service("tags", ["zstack"], **SVC), ns)
    start = time.monotonic()
    obj = k8s.wait_condition("ModelService", "tags", ns, "Ready", timeout=10)
    print(f"Ready after {time.monotonic() - start:.1f}s")
    entry = obj["status"]["registries"][0]
    assert {"servicePorts", "serviceLivez", "serviceBootupTime"} <= set(entry["unobservedFields"])
    assert "servicePorts" not in entry["inventory"]
    time.sleep(RESYNC_SECONDS * 3)  # a quiet period: resyncs look again and must not write
    writes = tagless.writes("/zstack/v1/ai/model-services")
    # AddModelService, then the one UpdateModelService with what only it takes
    assert [w["method"] for w in writes] == ["POST", "PUT"], writes
    # the registry did store what it does not show
    state = tagless.app["zstack"]
    assert state.services[entry["externalId"]].fields["servicePorts"] == [8000]
    # a new value for one of them is sent once, and only that
    tagless.clear_journal()
    k8s.patch("ModelService", "tags", ns, {"spec": {"ports": [9000]}})
    gen_ready(k8s, "ModelService", "tags", ns, 2, timeout=10)
    time.sleep(RESYNC_SECONDS * 2)  # a quiet period: resyncs must not send it again
    writes = tagless.writes("/zstack/v1/ai/model-services")
    assert len(writes) == 1 and writes[0]["method"] == "PUT", writes
    assert writes[0]["body"] == {"updateModelService": {"servicePorts": [9000]}}


# ---------------------------------------------------------------- secrets


def _leaks(k8s: K8s, ns: str, operator: OperatorProcess, *values: str) -> list[str]:
    texts = {"log": operator.log(),
             "events": " ".join(f"{e.reason} {e.message}" for e in k8s.core.list_namespaced_event(ns).items)}
    for plural in ("models", "modelregistries"):
        texts[plural] = json.dumps(k8s.custom.list_namespaced_custom_object("modelsync.io", "v1alpha1", ns, plural))
    return [f"{v!r} in {where}" for v in values for where, text in texts.items() if v in text]


def test_token_with_trailing_newline_works_and_odd_characters_are_refused_unseen(
        k8s: K8s, ns: str, isim: Sim, operator: OperatorProcess) -> None:
    isim.reset()
    # `kubectl create secret --from-file` keeps the file's newline: it is dropped
    k8s.secret("nl-token", ns, {"token": "instill_sk_local\n"})
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "nl"}, "spec": {
        "backend": "instill", "endpoint": isim.url, "credentialsSecretRef": {"name": "nl-token"},
        "instill": {"namespace": "local"}}}, ns)
    k8s.wait_condition("ModelRegistry", "nl", ns, "Ready")
    # a character no header may carry: refused when read, naming the Secret and key only
    odd = "Zq7odd\x01Tok3n-4471"
    k8s.secret("odd-token", ns, {"token": odd})
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "odd"}, "spec": {
        "backend": "instill", "endpoint": isim.url, "credentialsSecretRef": {"name": "odd-token"},
        "instill": {"namespace": "local"}}}, ns)
    reg = k8s.wait("ModelRegistry", "odd", ns, lambda o: condition(o, "Ready").get("reason") == "CredentialsInvalid",
                   what="Ready=False CredentialsInvalid")
    message = condition(reg, "Ready")["message"]
    assert f"Secret {ns}/odd-token" in message and "'token'" in message
    k8s.create(model("oddm", ["odd"], instill={"modelDefinition": "model-definitions/container",
                                               "configuration": {}, "task": "TASK_CHAT",
                                               "region": "REGION_GCP_EUROPE_WEST4"}), ns)
    obj = k8s.wait("Model", "oddm", ns, lambda o: condition(o, "Synced").get("reason") == "CredentialsInvalid",
                   what="Synced=False CredentialsInvalid")
    assert condition(obj, "Ready")["status"] == "False"
    assert not [e for e in isim.journal() if "Zq7odd" in json.dumps(e)]
    time.sleep(RESYNC_SECONDS)  # a quiet period: retries and resyncs must not leak it either
    for fragment in ("Zq7odd", "Tok3n-4471", "instill_sk_local"):
        assert not _leaks(k8s, ns, operator, fragment)


def test_url_userinfo_is_refused_at_admission_and_never_logged(
        k8s: K8s, ns: str, zsim: Sim, operator: OperatorProcess) -> None:
    from kubernetes.client.rest import ApiException

    with pytest.raises(ApiException) as err:
        zregistry(k8s, ns, zsim, name="userinfo", endpoint=zsim.url.replace("http://", "http://admin:Us3rInf0Pw@"))
    assert "spec.endpoint" in err.value.body
    time.sleep(1)  # a quiet period: the operator never sees the refused object, so never logs it
    assert "Us3rInf0Pw" not in operator.log()


# ---------------------------------------------------------------- registries that fail


def test_endpoint_without_zstack_answers_is_misconfigured_registry_not_invalid_spec(
        k8s: K8s, ns: str, zsim: Sim, operator: OperatorProcess) -> None:
    zregistry(k8s, ns, zsim, name="nozstack", endpoint=zsim.url + "/not-zstack")
    reg = k8s.wait("ModelRegistry", "nozstack", ns,
                   lambda o: condition(o, "Ready").get("reason") == "RegistryMisconfigured", what="misconfigured")
    assert "spec.endpoint" in condition(reg, "Ready")["message"]
    k8s.create(model("victim", ["nozstack"], **QWEN), ns)
    obj = k8s.wait("Model", "victim", ns, lambda o: condition(o, "Synced").get("status") == "False",
                   what="Synced=False")
    assert condition(obj, "Synced")["reason"] == "RegistryMisconfigured"


def test_retry_after_is_a_floor_and_an_outage_ends_in_ready_soon(
        k8s: K8s, ns: str, zsim: Sim, operator: OperatorProcess) -> None:
    zsim.reset()
    zregistry(k8s, ns, zsim)
    k8s.wait_condition("ModelRegistry", "zstack", ns, "Ready")
    outage = 20.0
    zsim.faults(error_rate=1.0, error_status=503, retry_after=1, match="")
    names = [f"out{i}" for i in range(5)]
    for n in names:
        k8s.create(model(n, ["zstack"], **QWEN), ns)
    time.sleep(outage)  # the outage lasts this long (not a wait for a state)
    zsim.faults(error_rate=0.0)
    recovered = time.monotonic()
    # Retry-After: 1 did not turn into one request a second per object
    model_reads = [e for e in zsim.journal() if e["method"] == "GET" and e["path"].startswith("/zstack/v1/ai/models/")]
    per_object = len(model_reads) / len(names)
    print(f"{per_object:.1f} reads per object in a {outage:.0f}s outage")
    assert per_object <= outage / 2
    for n in names:
        k8s.wait_condition("Model", n, ns, "Ready", timeout=40)
    took = time.monotonic() - recovered
    print(f"all Ready {took:.1f}s after the registry recovered")
    reg = k8s.get("ModelRegistry", "zstack", ns)
    assert condition(reg, "Ready")["status"] == "True"


def test_fixing_a_secret_heals_at_once(k8s: K8s, ns: str, zsim: Sim, operator: OperatorProcess) -> None:
    zsim.reset()
    zregistry(k8s, ns, zsim, name="pw", password="wrong-one")
    k8s.create(model("locked", ["pw"], **QWEN), ns)
    k8s.wait("Model", "locked", ns, lambda o: condition(o, "Synced").get("reason") == "CredentialsRejected",
             what="CredentialsRejected")
    k8s.core.patch_namespaced_secret("pw-creds", ns, {"stringData": {"password": PASSWORD}})
    fixed = time.monotonic()
    k8s.wait_condition("Model", "locked", ns, "Ready", timeout=15)  # the retry without the watch is 300 s away
    print(f"Ready {time.monotonic() - fixed:.1f}s after the Secret was fixed")


def test_waiting_for_a_dependency_is_a_normal_event(k8s: K8s, ns: str, zsim: Sim, operator: OperatorProcess) -> None:
    zregistry(k8s, ns, zsim)
    k8s.create(model("waits", ["zstack"], defaultServiceRef={"name": "later"}, **QWEN), ns)
    k8s.wait("Model", "waits", ns, lambda o: condition(o, "Synced").get("reason") == "DependencyNotReady",
             what="DependencyNotReady")
    events = eventually(lambda: [e for e in k8s.events(ns, "waits") if e.reason == "DependencyNotReady"],
                        "DependencyNotReady Event", timeout=10)
    assert all(e.type == "Normal" for e in events)


# ---------------------------------------------------------------- the apiserver restarts


def test_changes_made_after_an_apiserver_restart_are_picked_up(
        k8s: K8s, ns: str, zsim: Sim, operator: OperatorProcess, control_plane: ControlPlane) -> None:
    zregistry(k8s, ns, zsim)
    k8s.create(model("survivor", ["zstack"], **QWEN), ns)
    k8s.wait_condition("Model", "survivor", ns, "Ready")
    control_plane.restart_apiserver(down=3)
    back = time.monotonic()
    k8s.patch("Model", "survivor", ns, {"spec": {"description": "after the restart"}})
    gen_ready(k8s, "Model", "survivor", ns, 2, timeout=10)
    print(f"change synced {time.monotonic() - back:.1f}s after the apiserver answered again")


# ---------------------------------------------------------------- status size


def test_large_readme_is_bounded_and_never_loops(k8s: K8s, ns: str, zsim: Sim, operator: OperatorProcess) -> None:
    from kubernetes.client.rest import ApiException

    zregistry(k8s, ns, zsim)
    with pytest.raises(ApiException) as err:
        k8s.create(model("huge", ["zstack"], readme="r" * 600_000, **QWEN), ns)
    assert "spec.readme" in err.value.body
    k8s.create(model("big", ["zstack"], readme="r" * 60_000, **QWEN), ns)
    obj = k8s.wait_condition("Model", "big", ns, "Ready")
    status = json.dumps(obj["status"])
    assert len(status) < 16_000, len(status)  # the introduction echoing the readme is not copied
    assert "kopf" not in obj["status"]
    time.sleep(1)  # a settling period: whatever follows Ready lands before the resourceVersion is read
    rv = k8s.get("Model", "big", ns)["metadata"]["resourceVersion"]
    time.sleep(RESYNC_SECONDS * 2)  # a quiet period: resyncs must not write
    assert k8s.get("Model", "big", ns)["metadata"]["resourceVersion"] == rv
