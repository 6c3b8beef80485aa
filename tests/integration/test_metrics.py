"""What an operator of the operator sees, on the real apiserver: /metrics scraped over HTTP after a
sync, the liveness probe's content (kopf's --liveness endpoint), /readyz and /leader, timestamped
plain logs, and ``kubectl wait --for=condition=Ready`` on a Model the operator syncs.

The module runs its own control plane and operator (with its metrics and probe ports), so no other
operator writes to what it counts.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelsync.simulators.server import free_port
from modelsync.testing import ControlPlane, K8s, OperatorProcess, ensure_binaries

from .conftest import Sim, model, start_sim

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"
PASSWORD = "m3tr1cs-Pa55"
QWEN = dict(description="Qwen3 8B", installPath="/models/qwen3-8b", vendor="Qwen", version="1.0.0",
            task="text-generation")


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    with ControlPlane(crds=ROOT / "crds") as plane:
        yield plane


@pytest.fixture(scope="module")
def kube(cp: ControlPlane) -> K8s:
    return K8s(str(cp.kubeconfig))


@pytest.fixture(scope="module")
def zsim() -> Iterator[Sim]:
    yield from start_sim("zstack", account="admin", password=PASSWORD, model_center_uuid=CENTER)


class Ports:
    metrics = free_port()
    health = free_port()


@pytest.fixture(scope="module")
def op(cp: ControlPlane) -> Iterator[OperatorProcess]:
    with OperatorProcess(cp.kubeconfig, verbose=False, args=(
            f"--metrics-addr=127.0.0.1:{Ports.metrics}", f"--liveness=http://127.0.0.1:{Ports.health}/healthz")) as proc:
        proc.wait_for_log("serving /metrics", timeout=60)
        yield proc


@pytest.fixture(scope="module")
def synced(kube: K8s, zsim: Sim, op: OperatorProcess) -> str:
    """A namespace with a Ready registry and a Ready Model, and a Model naming a missing registry."""
    ns = f"m-{uuid.uuid4().hex[:8]}"
    kube.create_namespace(ns)
    kube.secret("zstack-creds", ns, {"accountName": "admin", "password": PASSWORD})
    kube.create({"kind": "ModelRegistry", "metadata": {"name": "zstack"}, "spec": {
        "backend": "zstack", "endpoint": zsim.url, "credentialsSecretRef": {"name": "zstack-creds"},
        "zstack": {"modelCenterUuid": CENTER}, "requestTimeout": "5s"}}, ns)
    kube.create(model("qwen", ["zstack"], **QWEN), ns)
    kube.create(model("orphan", ["nowhere"], **QWEN), ns)
    kube.wait_condition("Model", "qwen", ns, "Ready", timeout=30)
    kube.wait_condition("ModelRegistry", "zstack", ns, "Ready", timeout=30)
    kube.wait_condition("Model", "orphan", ns, "Synced", status="False", timeout=30)
    # resources can be Ready before every watch has listed (a fresh apiserver answers a first
    # list with 429 "storage is (re)initializing" and kopf retries after a second): wait for
    # readiness, which says every listing is done
    deadline = time.monotonic() + 30
    while httpx.get(f"http://127.0.0.1:{Ports.metrics}/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the operator's watches did not list within 30 s"
        time.sleep(0.2)
    return ns


def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"http://127.0.0.1:{Ports.metrics}/metrics", timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_after_a_sync(synced: str) -> None:
    deadline = time.monotonic() + 5
    s = scrape()
    # a registry check is counted after its status write returns, which the test may see first
    while not sample(s, "modelsync_reconciles_total", kind="ModelRegistry", backend="zstack", result="ok"):
        assert time.monotonic() < deadline, "no registry check counted"
        time.sleep(0.2)
        s = scrape()
    assert sample(s, "modelsync_reconciles_total", kind="Model", backend="zstack", result="ok") >= 1
    assert sample(s, "modelsync_reconciles_total", kind="ModelRegistry", backend="zstack", result="ok") >= 1
    assert sample(s, "modelsync_reconciles_total", kind="Model", backend="unknown", result="retry") >= 1
    assert sample(s, "modelsync_reconcile_duration_seconds_count", kind="Model", backend="zstack") >= 1
    assert sample(s, "modelsync_reconcile_duration_seconds_bucket", kind="Model", backend="zstack", le="+Inf") >= 1
    requests = {dict(labels)["method"]: v for (name, labels), v in s.items()
                if name == "modelsync_registry_requests_total" and dict(labels)["backend"] == "zstack"
                and dict(labels)["status"] == "200"}
    assert requests.get("POST", 0) >= 1, requests  # the model's create
    assert sample(s, "modelsync_registry_request_duration_seconds_count", backend="zstack", method="POST") >= 1
    assert sample(s, "modelsync_resources", kind="Model", condition="Ready", status="True") == 1
    assert sample(s, "modelsync_resources", kind="Model", condition="Synced", status="False") == 1
    assert sample(s, "modelsync_resources", kind="ModelRegistry", condition="Ready", status="True") == 1
    assert sample(s, "modelsync_resources", kind="ModelService", condition="Ready", status="True") == 0
    assert sample(s, "modelsync_reconciles_in_flight") is not None
    assert sample(s, "modelsync_reconciles_queued") >= 2  # both Models wait for their next look
    assert sample(s, "modelsync_leader") == 1  # no election: this replica always reconciles
    assert any(name.startswith("process_") for name, _ in s)


def test_liveness_reports_watches_queue_registries_and_leadership(synced: str) -> None:
    r = httpx.get(f"http://127.0.0.1:{Ports.health}/healthz", timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"watches", "queue", "registries", "leader"}
    assert {body["watches"][k] for k in ("models", "modelservices", "modelregistries", "clustermodelregistries",
                                         "secrets")} == {"watching"}
    assert body["queue"]["objects"] >= 3 and body["queue"]["queued"] >= 2
    assert body["registries"] == {f"ModelRegistry {synced}/zstack": "True"}
    assert body["leader"] == {"election": False, "leader": True}


def test_readiness_and_leadership_endpoints(synced: str) -> None:
    r = httpx.get(f"http://127.0.0.1:{Ports.metrics}/readyz", timeout=5)
    assert r.status_code == 200 and r.json()["listed"] is True
    r = httpx.get(f"http://127.0.0.1:{Ports.metrics}/leader", timeout=5)
    assert r.status_code == 200 and r.json() == {"election": False, "leader": True}


def test_plain_log_lines_carry_a_timestamp(synced: str, op: OperatorProcess) -> None:
    lines = [line for line in op.log().splitlines() if line.strip()]
    stamped = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+\S+: ")
    assert lines and all(stamped.match(line) for line in lines), [ln for ln in lines if not stamped.match(ln)][:5]


def test_kubectl_wait_for_ready(kube: K8s, synced: str) -> None:
    """What README's `kubectl wait --for=condition=Ready` promises, with the real kubectl."""
    kube.create(model("waited", ["zstack"], **{**QWEN, "installPath": "/models/waited"}), synced)
    r = subprocess.run([str(ensure_binaries() / "kubectl"), "wait", "--for=condition=Ready", "model/waited",
                        "-n", synced, "--timeout=60s"], capture_output=True, text=True, timeout=90,
                       env={**os.environ, "KUBECONFIG": kube.kubeconfig_path})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "model.modelsync.io/waited condition met"
