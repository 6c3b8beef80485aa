"""The Argo CD health checks in deploy/argocd/, run by a real Lua interpreter on objects read from
the real apiserver: each object is created, its status written through the status subresource the
way the operator writes conditions, read back with `kubectl get -o json` and handed to the script
as Argo CD does (the global table `obj`; the script returns `{status, message}`).

lua5.4 (and lua5.1, the dialect of Argo CD's gopher-lua, when present) come from Debian:
`make test` installs them (tools/ensure-lua.sh); without lua5.4 these tests skip.

Its own control plane: the suite's session operator would rewrite these objects' status."""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from modelsync.api import GROUP, VERSION
from modelsync.testing import ControlPlane, K8s
from modelsync.testing.k8s import PLURALS

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd"
KINDS = ("Model", "ModelService", "ModelRegistry", "ClusterModelRegistry")
INTERPRETERS = [lua for lua in ("lua5.4", "lua5.1") if shutil.which(lua)]
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif("lua5.4" not in INTERPRETERS, reason="lua5.4 is not installed: `make test` installs it as root "
                       "(tools/ensure-lua.sh), or apt-get install lua5.4"),
]
T0 = "2025-11-24T16:00:00Z"
SPECS: dict[str, dict[str, Any]] = {
    "Model": {"registries": [{"name": "z"}], "installPath": "/models/m"},
    "ModelService": {"registries": [{"name": "z"}], "framework": "vllm"},
    "ModelRegistry": {"backend": "nemo", "endpoint": "http://nemo.example.com"},
    "ClusterModelRegistry": {"backend": "nemo", "endpoint": "http://nemo.example.com"},
}
SPEC_CHANGE: dict[str, dict[str, Any]] = {
    "Model": {"description": "changed"}, "ModelService": {"description": "changed"},
    "ModelRegistry": {"requestTimeout": "45s"}, "ClusterModelRegistry": {"requestTimeout": "45s"},
}


def lua_literal(value: Any) -> str:
    """A JSON value as a Lua table constructor (objects and arrays become tables, null nil),
    the shape Argo CD gives `obj`."""
    if value is None:
        return "nil"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        assert math.isfinite(value)
        return repr(value)
    if isinstance(value, str):
        out = []
        for b in value.encode():
            ch = chr(b)
            out.append(ch if 32 <= b < 127 and ch not in '"\\' else f"\\{b:03d}")
        return '"' + "".join(out) + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_literal(str(k))}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def run_health(script: Path, obj: dict[str, Any], lua: str = "lua5.4") -> tuple[str, str]:
    harness = (f"obj = {lua_literal(obj)}\n"
               f"local hs = dofile({lua_literal(str(script))})\n"
               "io.write(tostring(hs.status), '\\n', tostring(hs.message), '\\n')\n")
    r = subprocess.run([lua, "-"], input=harness, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    status, message = r.stdout.split("\n", 1)
    assert status in ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"), status
    return status, message.rstrip("\n")


def script(kind: str) -> Path:
    """The check Argo CD runs for ``kind``: one file serves the four kinds (see the kustomization)."""
    return ARGOCD / "health.lua"


def cond(type_: str, status: str, reason: str, message: str = "", generation: int = 1) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": T0}


@dataclasses.dataclass
class Case:
    id: str
    conditions: list[dict[str, Any]] | None
    expected: str
    message: str
    spec_changed: bool = False  # the spec changes after the status was written: the status is stale
    kinds: tuple[str, ...] = KINDS


READY = cond("Ready", "True", "ReconcileSuccess", "every registry holds generation 1")
SYNCED = cond("Synced", "True", "ReconcileSuccess", "reconciled")
CASES = [
    Case("no-status", None, "Progressing", "Waiting for the operator to report status"),
    Case("ready", [READY, SYNCED], "Healthy", "Ready=True ReconcileSuccess: every registry holds generation 1"),
    Case("stale", [READY, SYNCED], "Progressing", "Waiting for the operator to observe generation 2",
         spec_changed=True),
    Case("invalid-spec", [cond("Ready", "False", "InvalidSpec", "z: spec.installPath: required"),
                          cond("Synced", "False", "InvalidSpec", "z: spec.installPath: required")],
         "Degraded", "Synced=False InvalidSpec: z: spec.installPath: required", kinds=("Model", "ModelService")),
    Case("unsupported", [cond("Ready", "False", "Unsupported", "nemo has no services"),
                         cond("Synced", "False", "Unsupported", "nemo has no services")],
         "Degraded", "Synced=False Unsupported: nemo has no services", kinds=("ModelService",)),
    Case("outage", [cond("Ready", "False", "RegistryUnavailable", "1 of 1 registries not synced"),
                    cond("Synced", "False", "RegistryUnavailable", "z: 503 Service Unavailable")],
         "Progressing", "Synced=False RegistryUnavailable: z: 503 Service Unavailable"),
    Case("outage-stalled", [cond("Ready", "False", "RegistryUnavailable", "1 of 1 registries not synced"),
                            cond("Synced", "False", "RegistryUnavailable", "z: 503 Service Unavailable"),
                            cond("Stalled", "True", "RetriesExhausted", "no progress for 1h")],
         "Degraded", "Stalled=True RetriesExhausted: no progress for 1h"),
    Case("stalled-false", [READY, SYNCED, cond("Stalled", "False", "Progressing")], "Healthy",
         "Ready=True ReconcileSuccess: every registry holds generation 1"),
    Case("ready-resync-failing", [READY, cond("Synced", "False", "RegistryUnavailable", "z: timed out")],
         "Progressing", "Synced=False RegistryUnavailable: z: timed out"),
    Case("ready-credentials-rejected", [READY, cond("Synced", "False", "CredentialsRejected", "z: 401")],
         "Degraded", "Synced=False CredentialsRejected: z: 401"),
    Case("waiting-for-dependency", [cond("Ready", "False", "DependencyNotReady", "ModelService vllm not Ready"),
                                    cond("Synced", "True", "ReconcileSuccess")],
         "Progressing", "Ready=False DependencyNotReady: ModelService vllm not Ready"),
    Case("unknown", [cond("Ready", "Unknown", "Reconciling")], "Progressing", "Ready=Unknown Reconciling"),
    Case("synced-only", [SYNCED], "Progressing", "Waiting for the Ready condition"),
    # registries have Ready only
    Case("registry-connected", [cond("Ready", "True", "Connected", "logged in; model center found")],
         "Healthy", "Ready=True Connected: logged in; model center found"),
    Case("registry-credentials", [cond("Ready", "False", "CredentialsRejected", "login refused")],
         "Degraded", "Ready=False CredentialsRejected: login refused"),
    Case("registry-misconfigured", [cond("Ready", "False", "RegistryMisconfigured", "no model center abc")],
         "Degraded", "Ready=False RegistryMisconfigured: no model center abc"),
    Case("registry-down", [cond("Ready", "False", "RegistryUnavailable", "connection refused")],
         "Progressing", "Ready=False RegistryUnavailable: connection refused"),
]


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    with ControlPlane(crds=ROOT / "crds") as plane:
        K8s(str(plane.kubeconfig)).create_namespace("argo")
        yield plane


def _from_apiserver(cp: ControlPlane, kind: str, case: Case) -> dict[str, Any]:
    """Create the object, write the case's status through /status, change the spec if asked,
    and read it back as kubectl shows it."""
    k8s = K8s(str(cp.kubeconfig))
    name = f"{kind.lower()}-{case.id}"
    namespaced = kind != "ClusterModelRegistry"
    k8s.create({"kind": kind, "metadata": {"name": name}, "spec": SPECS[kind]}, "argo" if namespaced else None)
    if case.conditions is not None:
        body = {"status": {"observedGeneration": 1, "conditions": case.conditions}}
        if namespaced:
            k8s.custom.patch_namespaced_custom_object_status(GROUP, VERSION, "argo", PLURALS[kind], name, body,
                                                             _content_type="application/merge-patch+json")
        else:
            k8s.custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURALS[kind], name, body,
                                                          _content_type="application/merge-patch+json")
    if case.spec_changed:
        cp.kubectl_run("patch", f"{PLURALS[kind]}.{GROUP}", name, *(["-n", "argo"] if namespaced else []),
                       "--type=merge", "-p", json.dumps({"spec": SPEC_CHANGE[kind]}))
    return json.loads(cp.kubectl_run("get", f"{PLURALS[kind]}.{GROUP}", name,
                                     *(["-n", "argo"] if namespaced else []), "-o", "json").stdout)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_health_of_objects_from_the_apiserver(cp: ControlPlane, case: Case) -> None:
    for kind in case.kinds:
        obj = _from_apiserver(cp, kind, case)
        if case.conditions is not None:
            assert [c["type"] for c in obj["status"]["conditions"]] == [c["type"] for c in case.conditions]
        for lua in INTERPRETERS:
            assert run_health(script(kind), obj, lua) == (case.expected, case.message), f"{kind} with {lua}"


def test_one_logic_for_the_four_kinds() -> None:
    kustomization = (ARGOCD / "kustomization.yaml").read_text()
    for kind in KINDS:
        assert f"resource.customizations.health.{GROUP}_{kind}=health.lua" in kustomization


def test_terminal_reasons_include_the_operators() -> None:
    """Every reason the operator treats as terminal makes Argo CD say Degraded."""
    from modelsync import reconcile

    obj = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": []}}
    for reason in sorted(reconcile.TERMINAL_REASONS):
        obj["status"]["conditions"] = [cond("Ready", "False", reason, "x"), cond("Synced", "False", reason, "x")]
        assert run_health(script("Model"), obj)[0] == "Degraded", reason


def test_argocd_cm_is_generated_from_the_scripts(cp: ControlPlane) -> None:
    (cm,) = [d for d in yaml.safe_load_all(cp.kubectl_run("kustomize", str(ARGOCD)).stdout) if d]
    assert (cm["kind"], cm["metadata"]["name"], cm["metadata"]["namespace"]) == ("ConfigMap", "argocd-cm", "argocd")
    assert cm["data"] == {f"resource.customizations.health.{GROUP}_{k}": script(k).read_text() for k in KINDS}


def test_server_side_apply_adds_the_keys_to_an_existing_argocd_cm(cp: ControlPlane) -> None:
    """The README's `kubectl apply --server-side -k deploy/argocd` keeps Argo CD's other settings."""
    cp.kubectl_run("create", "namespace", "argocd")
    cp.kubectl_run("create", "configmap", "argocd-cm", "-n", "argocd", "--from-literal=url=https://argocd.example.com",
                   "--from-literal=resource.customizations.health.example.com_Thing=hs = {status='Healthy'} return hs")
    cp.kubectl_run("apply", "--server-side", "--field-manager=modelsync", "-k", str(ARGOCD))
    data = json.loads(cp.kubectl_run("get", "configmap", "argocd-cm", "-n", "argocd", "-o", "json").stdout)["data"]
    assert data["url"] == "https://argocd.example.com"
    assert "resource.customizations.health.example.com_Thing" in data
    assert data[f"resource.customizations.health.{GROUP}_Model"] == script("Model").read_text()
    # the stored script still works when read back from the ConfigMap
    stored = cp.workdir / "health.lua"  # type: ignore[operator]
    stored.write_text(data[f"resource.customizations.health.{GROUP}_ModelRegistry"])
    obj = {"metadata": {"generation": 3}, "status": {"observedGeneration": 3, "conditions": [
        cond("Ready", "True", "Connected", "ok", 3)]}}
    assert run_health(stored, obj) == ("Healthy", "Ready=True Connected: ok")
