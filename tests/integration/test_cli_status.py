"""`modelsync status` against the real apiserver: status written through the status
subresource the way the operator writes it, read back by the CLI from $KUBECONFIG.

Its own control plane: the suite's session operator (when another module started it)
would reconcile these objects and rewrite their status."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from modelsync.api import GROUP, VERSION
from modelsync.testing import ControlPlane, K8s

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
T0 = "2025-11-24T16:00:00Z"


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    with ControlPlane(crds=ROOT / "crds") as plane:
        yield plane


def _status(cp: ControlPlane, *args: str, namespace_in_context: str | None = None) -> subprocess.CompletedProcess[str]:
    kubeconfig = cp.kubeconfig
    if namespace_in_context:
        kubeconfig = cp.workdir / "kubeconfig-ns"  # type: ignore[operator]
        kubeconfig.write_text(cp.kubeconfig.read_text().replace("namespace: default", f"namespace: {namespace_in_context}"))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([sys.executable, "-m", "modelsync", "status", *args], env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def _cond(type_: str, status: str, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": T0}


def test_status_prints_conditions_and_registry_entries(cp: ControlPlane) -> None:
    k8s = K8s(str(cp.kubeconfig))
    k8s.create_namespace("ml")
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "zstack-prod"}, "spec": {
        "backend": "zstack", "endpoint": "https://zstack.example.com:8080", "credentialsSecretRef": {"name": "c"},
        "zstack": {"modelCenterUuid": "ebf96ce1de2c46fa8af9d503c29bb93d"}}}, "ml")
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "nemo"}, "spec": {
        "backend": "nemo", "endpoint": "http://nemo.example.com"}}, "ml")
    k8s.create({"kind": "Model", "metadata": {"name": "llama"}, "spec": {
        "registries": [{"name": "zstack-prod"}, {"name": "nemo"}], "installPath": "/models/llama"}}, "ml")
    k8s.custom.patch_namespaced_custom_object_status(GROUP, VERSION, "ml", "models", "llama", {"status": {
        "observedGeneration": 1,
        "conditions": [
            _cond("Ready", "False", "RegistryUnavailable", "1 of 2 registries hold generation 1", 1),
            _cond("Synced", "False", "RegistryUnavailable", "nemo: 503 Service Unavailable;\nretrying", 1)],
        "registries": [
            {"name": "zstack-prod", "kind": "ModelRegistry", "backend": "zstack",
             "externalId": "a7b31fd3855f5cec9b3b5bf97f3e0209", "synced": True, "reason": "Created",
             "message": "created", "lastSyncTime": T0, "observedGeneration": 1},
            {"name": "nemo", "kind": "ModelRegistry", "backend": "nemo", "synced": False,
             "reason": "RegistryUnavailable", "message": "503 Service Unavailable"}]}},
        _content_type="application/merge-patch+json")
    k8s.custom.patch_namespaced_custom_object_status(GROUP, VERSION, "ml", "modelregistries", "zstack-prod", {
        "status": {"observedGeneration": 1, "conditions": [
            _cond("Ready", "True", "Connected", "logged in; model center found", 1)]}},
        _content_type="application/merge-patch+json")

    r = _status(cp, "-n", "ml", "model/llama")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "Model ml/llama  generation 1, observed 1",
        "├── Conditions",
        "│   ├── Ready   False   RegistryUnavailable: 1 of 2 registries hold generation 1",
        "│   └── Synced  False   RegistryUnavailable: nemo: 503 Service Unavailable; retrying",
        "└── Registries",
        "    ├── ModelRegistry/zstack-prod  backend=zstack  externalId=a7b31fd3855f5cec9b3b5bf97f3e0209  "
        f"synced=True  reason=Created  lastSyncTime={T0}",
        "    │       created",
        "    └── ModelRegistry/nemo  backend=nemo  externalId=-  synced=False  reason=RegistryUnavailable  "
        "lastSyncTime=-",
        "            503 Service Unavailable",
    ]

    # every ModelSync kind in the kubeconfig context's namespace; a spec change makes the status stale
    k8s.patch("Model", "llama", "ml", {"spec": {"description": "new"}})
    r = _status(cp, namespace_in_context="ml")
    assert r.returncode == 0, r.stderr
    blocks = r.stdout.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [
        "Model ml/llama  generation 2, observed 1 (status is stale)",
        "ModelRegistry ml/nemo  generation 1",
        "ModelRegistry ml/zstack-prod  generation 1, observed 1",
    ]
    assert "(generation 1)" in blocks[0].splitlines()[2]
    assert blocks[1].splitlines()[1:] == ["└── Conditions", "    └── none yet (is the operator running?)"]
    assert blocks[2].splitlines()[1:] == ["└── Conditions", "    └── Ready  True    Connected: logged in; model center found"]


def test_status_kinds_namespaces_and_errors(cp: ControlPlane) -> None:
    k8s = K8s(str(cp.kubeconfig))
    k8s.create_namespace("other")
    k8s.create({"kind": "ModelService", "metadata": {"name": "vllm"}, "spec": {"registries": [{"name": "z"}]}}, "other")
    k8s.create({"kind": "ClusterModelRegistry", "metadata": {"name": "shared"}, "spec": {
        "backend": "nemo", "endpoint": "http://nemo.example.com"}})

    r = _status(cp, "-A", "msvc")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "ModelService other/vllm  generation 1",
        "├── Conditions",
        "│   └── none yet (is the operator running?)",
        "└── Registries",
        "    └── none yet",
    ]
    r = _status(cp, "clustermodelregistry/shared")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "ClusterModelRegistry shared  generation 1"
    r = _status(cp, "-n", "other", "models")
    assert r.returncode == 0 and r.stdout == "" and "No ModelSync resources found in namespace other." in r.stderr
    r = _status(cp, "-n", "other", "model/absent")
    assert r.returncode == 1 and "Model absent: not found" in r.stderr
    r = _status(cp, "pods")
    assert r.returncode == 2 and "unknown kind 'pods'" in r.stderr
