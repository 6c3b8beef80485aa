"""Scale behaviour at small N on the real apiserver (the figures at 1,000 and 10,000 objects
come from bench/scale.py): a burst larger than the bound on work in flight completes without
a request timing out, and a restart over Ready objects writes nothing."""
from __future__ import annotations

import time
from typing import Iterator

import pytest

from modelsync.testing import K8s, OperatorProcess, eventually
from modelsync.testing.k8s import condition

from .conftest import RESYNC_SECONDS, WORKERS, Sim, model, start_sim

pytestmark = pytest.mark.integration

CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"
PASSWORD = "sc4le-Pa55"
N = 6 * WORKERS


@pytest.fixture(scope="module")
def zsim() -> Iterator[Sim]:
    yield from start_sim("zstack", account="admin", password=PASSWORD, model_center_uuid=CENTER)


def registry(k8s: K8s, ns: str, sim: Sim, timeout: str) -> None:
    k8s.secret("creds", ns, {"accountName": "admin", "password": PASSWORD})
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "z"}, "spec": {
        "backend": "zstack", "endpoint": sim.url, "credentialsSecretRef": {"name": "creds"},
        "zstack": {"modelCenterUuid": CENTER}, "requestTimeout": timeout}}, ns)
    k8s.wait_condition("ModelRegistry", "z", ns, "Ready")


def all_ready(k8s: K8s, ns: str, n: int, timeout: float) -> list[dict]:
    items: list[dict] = []

    def ready() -> list[dict]:
        nonlocal items
        items = k8s.custom.list_namespaced_custom_object("modelsync.io", "v1alpha1", ns, "models")["items"]
        return items if len(items) == n and all(condition(o, "Ready").get("status") == "True" for o in items) else []

    try:
        return eventually(ready, f"{n} Models Ready", timeout=timeout, interval=0.5)
    except TimeoutError:
        done = sum(1 for o in items if condition(o, "Ready").get("status") == "True")
        raise TimeoutError(f"{done}/{n} Ready after {timeout}s") from None


def test_a_burst_beyond_the_bound_completes_without_request_timeouts(
        k8s: K8s, ns: str, zsim: Sim, operator: OperatorProcess) -> None:
    zsim.reset()
    # every request takes 0.4 s against a 1 s timeout: a request that waited for a
    # connection inside its own timeout would fail; one queued before it starts does not
    registry(k8s, ns, zsim, timeout="1s")
    zsim.faults(latency=0.4, match="POST /zstack/v1/ai/models")
    log_before = len(operator.log())
    for i in range(N):
        k8s.create(model(f"b{i:03d}", ["z"], installPath=f"/m/{i}", gpu={"minMemory": "1Gi"}), ns)
    items = all_ready(k8s, ns, N, timeout=120)
    zsim.faults(latency=0.0)
    assert "timed out" not in operator.log()[log_before:]
    posts = [e for e in zsim.writes("/zstack/v1/ai/models") if e["method"] == "POST"]
    assert len(posts) == N  # each created once: nothing failed and was retried
    assert all(condition(o, "Synced")["status"] == "True" for o in items)


def test_restart_over_ready_objects_writes_nothing(
        k8s: K8s, ns: str, zsim: Sim, operator: OperatorProcess) -> None:
    zsim.reset()
    registry(k8s, ns, zsim, timeout="10s")
    n = 3 * WORKERS
    for i in range(n):
        k8s.create(model(f"r{i:03d}", ["z"], installPath=f"/m/{i}", gpu={"minMemory": "1Gi"}), ns)
    all_ready(k8s, ns, n, timeout=60)
    time.sleep(1)  # a settling period: what follows the last Ready lands before the versions are read
    before = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in
              k8s.custom.list_namespaced_custom_object("modelsync.io", "v1alpha1", ns, "models")["items"]}
    zsim.clear_journal()
    operator.restart()
    operator.wait_for_log("Starting the watch-stream", timeout=60)
    time.sleep(RESYNC_SECONDS * 3)  # a quiet period: every object is looked at again and must not be written
    after = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in
             k8s.custom.list_namespaced_custom_object("modelsync.io", "v1alpha1", ns, "models")["items"]}
    assert after == before  # not one write to any of them
    assert [e for e in k8s.core.list_namespaced_event(ns).items if e.involved_object.kind == "Model"] == []
    journal = zsim.journal()
    assert [e for e in journal if e["method"] not in ("GET", "HEAD") and "/accounts/" not in e["path"]] == []
    looked = {e["path"].rsplit("/", 1)[-1] for e in journal if e["method"] == "GET" and "/ai/models/" in e["path"]}
    assert len(looked) >= n  # and it did look at every one of them (the resync ran)
