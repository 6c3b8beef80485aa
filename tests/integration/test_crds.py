"""The CRDs on a real kube-apiserver: established, explained, and rejecting bad manifests
at admission with the offending field named."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from modelsync import api
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


def _explain(control_plane: ControlPlane, path: str, timeout: float = 30) -> str:
    """kubectl explain, waiting for the CRDs' OpenAPI: the apiserver publishes it a moment after
    the CRDs are Established ("couldn't find resource" until then)."""
    deadline = time.monotonic() + timeout
    while True:
        run = control_plane.kubectl_run("explain", path, check=False)
        if run.returncode == 0 or time.monotonic() > deadline:
            assert run.returncode == 0, run.stderr
            return run.stdout
        time.sleep(0.25)


def test_explain_and_category(control_plane: ControlPlane) -> None:
    assert "exact bytes" in _explain(control_plane, "model.spec.gpu.minMemory")
    assert "MiB" in _explain(control_plane, "modelservice.spec.resources.memory")
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
    ("registry backend enum", {"kind": "ModelRegistry", "spec": {"backend": "acme", "endpoint": "http://x"}},
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


def _nemo_registry(kind: str = "ModelRegistry", **spec: Any) -> dict[str, Any]:
    return {"kind": kind, "spec": {"backend": "nemo", "endpoint": "http://nemo.example.com", **spec}}


def _nemo_spec(**ints: int) -> dict[str, Any]:
    return {"base_num_parameters": 8_000_000_000, "ffn_hidden_size": 14336, "hidden_size": 4096,
            "num_attention_heads": 32, "num_kv_heads": 8, "num_layers": 32, "vocab_size": 128256,
            "checkpoint_model_name": "llama-3.1-8b", "family": "llama", "precision": "bf16",
            "gated_mlp": True, "tied_embeddings": False, **ints}


BAD_ENDPOINT = 'spec.endpoint: Invalid value: "string": must be an http:// or https:// URL'
BAD_TIMEOUT = 'spec.requestTimeout: Invalid value: "string": must be a duration between 100ms and 10m'
TOO_LONG = 'Invalid value: "string": must be at most 262144 bytes in UTF-8'

# the registry settings and sizes the hardening refuses, each at admission with the field named
HARDENING: list[tuple[str, dict[str, Any], str]] = [
    *[(f"endpoint {case}", _nemo_registry(kind, endpoint=url), BAD_ENDPOINT) for kind in ("ModelRegistry",
      "ClusterModelRegistry") for case, url in [
        ("user and password", "https://user:pass@nemo.example.com"),
        ("user", "https://user@nemo.example.com"),
        ("NUL", "http://nemo.example.com/a\x00b"),
        ("control char", "http://nemo.example.com/a\x1fb"),
        ("DEL", "http://nemo.example.com/\x7f"),
        ("newline", "http://nemo.example.com\n"),
        ("port 65536", "http://nemo.example.com:65536"),
        ("port 0", "http://nemo.example.com:0"),
        ("unclosed IPv6", "http://[::1"),
        ("unopened IPv6", "http://::1]"),
        ("IPv6 with a bad port", "http://[::1]:65536"),
    ]],
    *[(f"request timeout {t!r}", _nemo_registry(requestTimeout=t), BAD_TIMEOUT)
      for t in ("0s", "0ms", "0.0s", "0m", "99ms", "10m1s", "11m", "999999m", "soon")],
    ("cluster registry secret without namespace",
     _nemo_registry("ClusterModelRegistry", credentialsSecretRef={"name": "creds"}),
     "spec.credentialsSecretRef.namespace: Required value"),
    ("cluster registry CA secret without namespace",
     _nemo_registry("ClusterModelRegistry", tls={"caSecretRef": {"name": "ca"}}),
     "spec.tls.caSecretRef.namespace: Required value"),
    ("registry secret with a namespace",
     _nemo_registry(credentialsSecretRef={"name": "creds", "namespace": "other"}),
     "spec.credentialsSecretRef.namespace: Forbidden: must not be set: a ModelRegistry reads its Secrets"),
    ("registry CA secret with a namespace",
     _nemo_registry(tls={"caSecretRef": {"name": "ca", "namespace": "other"}}),
     "spec.tls.caSecretRef.namespace: Forbidden: must not be set"),
    ("int32 over range", {"kind": "Model", "spec": {"registries": REG, "nemo": {"spec": _nemo_spec(
        ffn_hidden_size=2**31)}}}, "spec.nemo.spec.ffn_hidden_size: Invalid value: 2147483648"),
    ("int32 over range, optional", {"kind": "Model", "spec": {"registries": REG, "nemo": {"spec": _nemo_spec(
        context_size=2**31)}}}, "spec.nemo.spec.context_size: Invalid value: 2147483648"),
    ("int64 over range", {"kind": "Model", "spec": {"registries": REG, "zstack": {"size": 2**63}}},
     "spec.zstack.size: Invalid value"),
    ("gpu count over range", {"kind": "Model", "spec": {"registries": REG, "gpu": {"recommendedCount": [1, 1025]}}},
     "spec.gpu.recommendedCount[1]: Invalid value: 1025"),
    ("port 65536", {"kind": "ModelService", "spec": {"registries": REG, "ports": [65536]}},
     "spec.ports[0]: Invalid value: 65536"),
    ("cpu over int32", {"kind": "ModelService", "spec": {"registries": REG, "resources": {"cpu": 2**31}}},
     "spec.resources.cpu must be a whole number of CPUs, 1 to 2147483647"),
    ("gpu memory over int64", {"kind": "Model", "spec": {"registries": REG, "gpu": {"minMemory": "8Ei"}}},
     "spec.gpu.minMemory must be less than 8Ei"),
    ("recommended gpu memory over int64", {"kind": "Model", "spec": {"registries": REG, "gpu": {
        "minMemory": "16Gi", "recommendedMemory": "10E"}}}, "spec.gpu.recommendedMemory must be less than 8Ei"),
    ("readme over 256 KiB in UTF-8", {"kind": "Model", "spec": {"registries": REG, "readme": "\U0001F600" * 65537}},
     f"spec.readme: {TOO_LONG}"),
    ("service readme over 256 KiB", {"kind": "ModelService", "spec": {"registries": REG, "readme": "é" * 131073}},
     f"spec.readme: {TOO_LONG}"),
    ("service config over 256 KiB", {"kind": "ModelService", "spec": {"registries": REG, "config": "字" * 87382}},
     f"spec.config: {TOO_LONG}"),
    ("readme over 262144 characters", {"kind": "Model", "spec": {"registries": REG, "readme": "a" * 262145}},
     "spec.readme: Too long: may not be more than 262144"),
]
INVALID += HARDENING


@pytest.mark.parametrize("case,obj,field", INVALID, ids=[f"{c[1]['kind']}: {c[0]}" for c in INVALID])
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


def test_kubectl_apply_names_the_field(control_plane: ControlPlane, ns: str) -> None:
    """What a user sees: kubectl apply of a registry with a password in its URL is refused."""
    manifest = json.dumps({"apiVersion": "modelsync.io/v1alpha1", "kind": "ModelRegistry",
                           "metadata": {"name": "leaky", "namespace": ns},
                           "spec": {"backend": "nemo", "endpoint": "https://admin:hunter2@nemo.example.com"}})
    out = control_plane.kubectl_run("apply", "-f", "-", input=manifest, check=False)
    assert out.returncode != 0
    assert BAD_ENDPOINT in out.stderr, out.stderr


def test_good_registry_settings_admitted(k8s: K8s, ns: str) -> None:
    """The hardening's counterpart: IPv6, the timeout bounds, Secret namespaces where each kind wants
    them, integers at their bounds and a readme of exactly 256 KiB are all admitted."""
    for i, (endpoint, timeout) in enumerate([("http://[::1]:8080", "100ms"), ("https://[fd00:10:96::a]/api", "10m"),
                                              ("http://127.0.0.1:65535", "0.1s"), ("https://nemo.example.com.:1/x?y=z", "600s"),
                                              ("http://localhost", "2m")]):
        k8s.create({**_nemo_registry(endpoint=endpoint, requestTimeout=timeout, credentialsSecretRef={"name": "c"},
                                     tls={"caSecretRef": {"name": "ca", "key": "bundle.pem"}}),
                    "metadata": {"name": f"ok-{i}"}}, ns)
    name = f"ok-{ns}"
    k8s.create({**_nemo_registry("ClusterModelRegistry", endpoint="http://[::1]:8080",
                                 credentialsSecretRef={"name": "c", "namespace": ns},
                                 tls={"caSecretRef": {"name": "ca", "namespace": ns}}), "metadata": {"name": name}})
    try:
        got = k8s.get("ClusterModelRegistry", name)["spec"]
        assert got["credentialsSecretRef"]["namespace"] == ns and got["tls"]["caSecretRef"]["namespace"] == ns
    finally:
        k8s.custom.delete_cluster_custom_object(api.GROUP, api.VERSION, "clustermodelregistries", name)
    k8s.create({"kind": "Model", "metadata": {"name": "bounds"}, "spec": {
        "registries": REG, "readme": "a" * 262144, "zstack": {"size": 2**63 - 1},
        "gpu": {"recommendedCount": [1, 1024], "minMemory": "1.5Gi", "recommendedMemory": "9E"},
        "nemo": {"spec": _nemo_spec(base_num_parameters=2**63 - 1, ffn_hidden_size=2**31 - 1, context_size=2**31 - 1,
                                    num_virtual_tokens=0)}}}, ns)
    k8s.create({"kind": "Model", "metadata": {"name": "emoji"}, "spec": {"registries": REG, "readme": "\U0001F600" * 65536}}, ns)
    k8s.create({"kind": "ModelService", "metadata": {"name": "bounds"}, "spec": {
        "registries": REG, "ports": [1, 65535], "bootupTimeSeconds": 86400, "resources": {"cpu": 2147483647},
        "config": "字" * 87381}}, ns)
