"""The CRDs on a real kube-apiserver: established, explained, and rejecting bad manifests
at admission with the offending field named."""
from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from modelsync.testing import ControlPlane, K8s

pytestmark = pytest.mark.integration

REG = [{"name": "r"}]


def test_crds_established(control_plane: ControlPlane) -> None:
    out = control_plane.kubectl_run("get", "crd", "-o", "json").stdout
    crds = {c["metadata"]["name"]: c for c in json.loads(out)["items"]}
    for name in ("models.modelsync.io", "modelservices.modelsync.io", "modelregistries.modelsync.io",
                 "clustermodelregistries.modelsync.io"):
        conds = {c["type"]: c["status"] for c in crds[name]["status"]["conditions"]}
        assert conds.get("Established") == "True", name
        assert conds.get("NamesAccepted") == "True", name


def test_explain_and_category(control_plane: ControlPlane) -> None:
    out = control_plane.kubectl_run("explain", "model.spec.gpu.minMemory").stdout
    assert "exact bytes" in out
    out = control_plane.kubectl_run("explain", "modelservice.spec.resources.memory").stdout
    assert "MiB" in out
    # every kind answers to the modelsync category and its short name
    assert control_plane.kubectl_run("get", "modelsync", "-A").returncode == 0
    assert control_plane.kubectl_run("get", "mdl,msvc,mreg,cmreg", "-A").returncode == 0


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("no registries", {"kind": "Model", "spec": {"description": "x"}}, "spec.registries: Required value"),
    ("empty registries", {"kind": "Model", "spec": {"registries": []}}, "spec.registries"),
    ("registry kind", {"kind": "Model", "spec": {"registries": [{"name": "r", "kind": "Registry"}]}},
     "spec.registries[0].kind: Unsupported value"),
    ("duplicate registry", {"kind": "Model", "spec": {"registries": [{"name": "r"}, {"name": "r"}]}},
     "spec.registries must not name the same registry twice"),
    ("gpu memory not a quantity", {"kind": "Model", "spec": {"registries": REG, "gpu": {"minMemory": "lots"}}},
     "spec.gpu.minMemory"),
    ("recommended below minimum", {"kind": "Model", "spec": {"registries": REG,
                                   "gpu": {"minMemory": "16Gi", "recommendedMemory": "8Gi"}}},
     "spec.gpu.recommendedMemory must be at least spec.gpu.minMemory"),
    ("nemo finetuning enum", {"kind": "Model", "spec": {"registries": REG, "nemo": {"finetuning_type": "some"}}},
     "spec.nemo.finetuning_type: Unsupported value"),
    ("nemo partial spec", {"kind": "Model", "spec": {"registries": REG, "nemo": {"spec": {"context_size": 4096}}}},
     "spec.nemo.spec.base_num_parameters: Required value"),
    ("instill task enum", {"kind": "Model", "spec": {"registries": REG, "instill": {"task": "TASK_DREAMING"}}},
     "spec.instill.task: Unsupported value"),
    ("instill id rule", {"kind": "Model", "spec": {"registries": REG, "instill": {"id": "Bad_Id"}}},
     "spec.instill.id"),
    ("registry backend enum", {"kind": "ModelRegistry", "spec": {"backend": "mlflow", "endpoint": "http://x"}},
     "spec.backend: Unsupported value"),
    ("registry endpoint scheme", {"kind": "ModelRegistry", "spec": {"backend": "nemo", "endpoint": "ftp://x"}},
     "spec.endpoint"),
    ("zstack needs model center", {"kind": "ModelRegistry", "spec": {"backend": "zstack", "endpoint": "http://x",
                                   "credentialsSecretRef": {"name": "s"}}},
     "spec.zstack.modelCenterUuid is required when spec.backend is zstack"),
    ("registry timeout", {"kind": "ModelRegistry", "spec": {"backend": "nemo", "endpoint": "http://x",
                          "requestTimeout": "soon"}}, "spec.requestTimeout"),
    ("fractional cpu", {"kind": "ModelService", "spec": {"registries": REG, "resources": {"cpu": "500m"}}},
     "spec.resources.cpu must be a whole number of CPUs"),
    ("memory not whole MiB", {"kind": "ModelService", "spec": {"registries": REG, "resources": {"memory": "1000000"}}},
     "spec.resources.memory must be a whole number of MiB"),
    ("port range", {"kind": "ModelService", "spec": {"registries": REG, "ports": [8000, 70000]}},
     "spec.ports[1]: Invalid value: 70000"),
    ("compute capability", {"kind": "ModelService", "spec": {"registries": REG, "gpuComputeCapability": "eight"}},
     "spec.gpuComputeCapability"),
    ("image architecture", {"kind": "ModelService", "spec": {"registries": REG,
                            "images": [{"cpuArchitecture": "riscv", "image": "x"}]}},
     "spec.images[0].cpuArchitecture: Unsupported value"),
]


@pytest.mark.parametrize("case,obj,field", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_manifest_rejected(k8s: K8s, ns: str, case: str, obj: dict[str, Any], field: str) -> None:
    body = {**obj, "metadata": {"name": "bad"}}
    with pytest.raises(ApiException) as info:
        k8s.create(body, ns)
    assert info.value.status == 422, info.value.body
    message = json.loads(info.value.body)["message"]
    assert field in message, message


def test_valid_manifests_accepted(k8s: K8s, ns: str) -> None:
    """The counterpart of the rejections: the same kinds, written right, are admitted."""
    k8s.create({"kind": "Model", "metadata": {"name": "ok"}, "spec": {
        "registries": REG, "gpu": {"minMemory": "16Gi", "recommendedMemory": "24Gi", "recommendedCount": [1, 2]},
        "nemo": {"finetuning_type": "lora", "spec": {
            "base_num_parameters": 8_000_000_000, "ffn_hidden_size": 14336, "hidden_size": 4096,
            "num_attention_heads": 32, "num_kv_heads": 8, "num_layers": 32, "vocab_size": 128256,
            "checkpoint_model_name": "llama-3.1-8b", "family": "llama", "precision": "bf16",
            "gated_mlp": True, "tied_embeddings": False, "context_size": 4096}},
        "instill": {"id": "ok-model", "task": "TASK_CHAT"}}}, ns)
    k8s.create({"kind": "ModelService", "metadata": {"name": "ok"}, "spec": {
        "registries": REG, "resources": {"cpu": 2, "memory": "8Gi"}, "ports": [8000],
        "gpuComputeCapability": "8.0", "images": [{"cpuArchitecture": "x86_64", "image": "vllm:1"}]}}, ns)
