"""What GitOps tools make of ModelSync's objects, judged by the tools' own code on objects read
from the real apiserver: Argo CD's health check (deploy/argocd/health.lua run by gopher-lua with
the libraries Argo CD opens for an argocd-cm script, no string/math/os; an object being deleted is
Argo CD's own "Pending deletion") and kstatus (sigs.k8s.io/cli-utils, what Flux uses). Both come
from tools/gitopscheck, a Go program built once into ~/.cache/modelsync.

Each state's status is the one the operator's core writes (``modelsync.status.build`` for a resource
with one registry entry of that reason, ``Reconciler.check_registry`` for a registry failing with
it), written through the status subresource and read back with kubectl. Every reason of the
README's table, and the paused, stale and deleting states, must give the verdict the README's
Argo CD section lists, through both tools, and the two must agree.

Its own control plane: the suite's session operator would rewrite these objects' status."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from modelsync import reconcile, status
from modelsync.api import GROUP, VERSION
from modelsync.backends.base import (
    BackendError, CredentialsInvalid, CredentialsRejected, Recoverable, Terminal,
)
from modelsync.testing import ControlPlane, K8s
from modelsync.testing.k8s import PLURALS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd"
SCRIPT = ARGOCD / "health.lua"
KINDS = ("Model", "ModelService", "ModelRegistry", "ClusterModelRegistry")
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
#: what agreeing means: each kstatus verdict and the Argo CD health it goes with
AGREE = {("Current", "Healthy"), ("InProgress", "Progressing"), ("Failed", "Degraded"),
         ("Terminating", "Progressing"), ("Current", "Suspended"), ("InProgress", "Suspended")}
#: registry errors by reason, as the backends raise them
REGISTRY_ERRORS: dict[str, BackendError] = {
    "RegistryMisconfigured": Terminal("no model center abc", reason="RegistryMisconfigured"),
    "CredentialsRejected": CredentialsRejected("login refused"),
    "CredentialsInvalid": CredentialsInvalid("Secret ns/z key 'token' holds a character that cannot be sent"),
    "RegistryUnavailable": Recoverable("503 Service Unavailable"),
}


# ---------------------------------------------------------------- the tools


@pytest.fixture(scope="module")
def gitopscheck() -> Path:
    r = subprocess.run(["bash", str(ROOT / "tools" / "gitopscheck" / "build.sh")], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr
    return Path(r.stdout.strip().splitlines()[-1])


def judge(tool: Path, obj: dict[str, Any], script: Path = SCRIPT) -> tuple[tuple[str, str], tuple[str, str]]:
    """((kstatus status, message), (Argo CD health, message)) of one object."""
    out = []
    for argv in ([str(tool), "kstatus"], [str(tool), "health", str(script)]):
        r = subprocess.run(argv, input=json.dumps(obj), capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        v = json.loads(r.stdout)
        assert not v.get("error"), f"{argv[1]}: {v['error']}"  # a script error is Argo CD's Unknown
        out.append((v["status"], v["message"]))
    return out[0], out[1]


# ---------------------------------------------------------------- statuses as the operator's core writes them


class _Backend:
    name = "memory"

    def __init__(self, fail: BackendError | None) -> None:
        self.fail = fail

    async def check(self) -> str:
        if self.fail is not None:
            raise self.fail
        return "logged in; model center found"


class _Pool:
    def __init__(self, fail: BackendError | None) -> None:
        self.fail = fail

    async def backend(self, ref: Any, namespace: str) -> tuple[Any, str]:
        return _Backend(self.fail), "v1"


def resource_status(reason: str, generation: int = 1) -> dict[str, Any]:
    """The status the core writes for a resource whose one registry entry has ``reason``."""
    entry: dict[str, Any] = {"name": "z", "kind": "ModelRegistry", "reason": reason, "synced": reason == "Synced",
                             "observedGeneration": generation, "message": f"z: {reason.lower()} details"}
    if reason == "Differs":
        entry["differences"] = ["description"]
    return status.build({}, generation, [entry])


def registry_status(reason: str, generation: int = 1) -> dict[str, Any]:
    """The status the core writes for a registry whose check ends in ``reason`` (Connected: it works)."""
    core = reconcile.Reconciler(reader=None, pool=_Pool(REGISTRY_ERRORS.get(reason)))  # type: ignore[arg-type]
    body = {"metadata": {"name": "z", "namespace": "argo", "generation": generation}, "status": {}}
    return asyncio.run(core.check_registry("ModelRegistry", body)).status_patch


# ---------------------------------------------------------------- the README's tables


def readme_reasons() -> list[str]:
    """The reasons of the README's table under "When something goes wrong"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## When something goes wrong", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)`", section, re.M)


def readme_verdicts() -> dict[str, tuple[str, str]]:
    """State → (kstatus, Argo CD) from the README's Argo CD section: one key per reason in
    backticks, plus "ready", "stale", "paused" and "deleting" for the rows that describe those."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Argo CD", 1)[1].split("\n## ", 1)[0]
    out: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("state", "---"):
            continue
        state, ks, argo = cells
        argo = argo.split()[0]
        if state.startswith("`Ready=True`"):
            out["ready"] = (ks, argo)
        elif "generation" in state:
            out["stale"] = (ks, argo)
        elif state.startswith("paused"):
            out["paused"] = ("Current" if ks.startswith("Current") else ks, argo)
            out["paused-edited"] = ("InProgress", argo)
        elif state.startswith("being deleted"):
            out["deleting"] = (ks, argo)
        else:
            for reason in re.findall(r"`(\w+)`", state):
                out[reason] = (ks, argo)
    return out


def test_the_verdict_table_covers_every_reason_of_the_reason_table() -> None:
    verdicts = readme_verdicts()
    reasons = readme_reasons()
    assert len(reasons) >= 15
    assert set(reasons) <= set(verdicts), set(reasons) - set(verdicts)
    assert {"ready", "stale", "paused", "deleting"} <= set(verdicts)
    for state, pair in verdicts.items():
        assert pair in AGREE, (state, pair)


# ---------------------------------------------------------------- on the apiserver


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    with ControlPlane(crds=ROOT / "crds") as plane:
        K8s(str(plane.kubeconfig)).create_namespace("argo")
        yield plane


@dataclasses.dataclass
class Case:
    id: str
    kind: str
    status: dict[str, Any] | None
    state: str  # the README verdict row
    spec_changed: bool = False  # the spec changes after the status was written: the status is stale
    paused: bool = False
    deleting: bool = False


def _cases() -> list[Case]:
    cases: list[Case] = []
    registry_reasons = set(REGISTRY_ERRORS)
    for reason in readme_reasons():
        for kind in ("Model", "ModelService"):
            cases.append(Case(f"{kind}-{reason}", kind, resource_status(reason), reason))
        if reason in registry_reasons:
            for kind in ("ModelRegistry", "ClusterModelRegistry"):
                cases.append(Case(f"{kind}-{reason}", kind, registry_status(reason), reason))
    for kind in KINDS:
        good = registry_status("Connected") if kind.endswith("Registry") else resource_status("Synced")
        cases += [
            Case(f"{kind}-ready", kind, good, "ready"),
            Case(f"{kind}-stale", kind, good, "stale", spec_changed=True),
            Case(f"{kind}-deleting", kind, good, "deleting", deleting=True),
        ]
    for kind in ("Model", "ModelService"):
        core = reconcile.Reconciler(reader=None, pool=_Pool(None))  # type: ignore[arg-type]
        paused = {**resource_status("Synced"), "conditions": core._with_paused(resource_status("Synced"), 1, True)}
        cases += [Case(f"{kind}-paused", kind, paused, "paused", paused=True),
                  Case(f"{kind}-paused-edited", kind, paused, "paused-edited", paused=True, spec_changed=True),
                  Case(f"{kind}-deleting-failing", kind, resource_status("RegistryUnavailable"), "deleting",
                       deleting=True)]
    return cases


CASES = _cases()


def _from_apiserver(cp: ControlPlane, case: Case) -> dict[str, Any]:
    """Create the object, write the case's status through /status, then change the spec, pause
    or delete it if asked, and read it back as kubectl shows it."""
    k8s = K8s(str(cp.kubeconfig))
    kind, name = case.kind, case.id.lower()
    namespaced = kind != "ClusterModelRegistry"
    where = ["-n", "argo"] if namespaced else []
    meta: dict[str, Any] = {"name": name}
    if case.paused:
        meta["annotations"] = {"modelsync.io/paused": "true"}
    if case.deleting:
        meta["finalizers"] = ["example.com/hold"]  # keeps it in deletion while it is judged
    k8s.create({"kind": kind, "metadata": meta, "spec": SPECS[kind]}, "argo" if namespaced else None)
    if case.status is not None:
        body = {"status": case.status}
        if namespaced:
            k8s.custom.patch_namespaced_custom_object_status(GROUP, VERSION, "argo", PLURALS[kind], name, body,
                                                             _content_type="application/merge-patch+json")
        else:
            k8s.custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURALS[kind], name, body,
                                                          _content_type="application/merge-patch+json")
    if case.spec_changed:
        cp.kubectl_run("patch", f"{PLURALS[kind]}.{GROUP}", name, *where, "--type=merge",
                       "-p", json.dumps({"spec": SPEC_CHANGE[kind]}))
    if case.deleting:
        cp.kubectl_run("delete", f"{PLURALS[kind]}.{GROUP}", name, *where, "--wait=false")
    obj = json.loads(cp.kubectl_run("get", f"{PLURALS[kind]}.{GROUP}", name, *where, "-o", "json").stdout)
    if case.deleting:
        assert obj["metadata"].get("deletionTimestamp")
        cp.kubectl_run("patch", f"{PLURALS[kind]}.{GROUP}", name, *where, "--type=merge",
                       "-p", json.dumps({"metadata": {"finalizers": None}}))
    return obj


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kstatus_and_argocd_agree_as_the_readme_says(cp: ControlPlane, gitopscheck: Path, case: Case) -> None:
    obj = _from_apiserver(cp, case)
    (ks, ks_message), (health, message) = judge(gitopscheck, obj)
    assert (ks, health) == readme_verdicts()[case.state], (ks_message, message)
    assert (ks, health) in AGREE
    if health == "Degraded":  # the deciding condition: Stalled, with the reason and its message
        assert message.startswith(f"Stalled=True {case.state}: "), message
    if case.state == "Differs":
        assert message.startswith("Ready=True Differs") and "description" in message


def test_the_lua_cli_path_would_not_have_caught_it(gitopscheck: Path, tmp_path: Path) -> None:
    """A script calling string.format works in a Lua with every library loaded and is Unknown in
    Argo CD (no string library for argocd-cm scripts): the harness must tell them apart."""
    bad = tmp_path / "bad.lua"
    bad.write_text('hs = {}\nhs.status = "Healthy"\nhs.message = string.format("gen %d", 1)\nreturn hs\n')
    r = subprocess.run([str(gitopscheck), "health", str(bad)], input=json.dumps(
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Model", "metadata": {"name": "m"}}),
        capture_output=True, text=True, timeout=30)
    v = json.loads(r.stdout)
    assert v["status"] == "Unknown" and "format" in v["error"]


def test_one_logic_for_the_four_kinds() -> None:
    kustomization = (ARGOCD / "kustomization.yaml").read_text()
    for kind in KINDS:
        assert f"resource.customizations.health.{GROUP}_{kind}=health.lua" in kustomization


def test_stalled_reasons_are_degraded(gitopscheck: Path) -> None:
    """Every reason the operator marks Stalled makes Argo CD say Degraded and kstatus Failed."""
    for reason in sorted(reconcile.STALLED_REASONS):
        obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Model",
               "metadata": {"name": "m", "generation": 1}, "status": resource_status(reason)}
        (ks, _), (health, _) = judge(gitopscheck, obj)
        assert (ks, health) == ("Failed", "Degraded"), reason


def test_argocd_cm_is_generated_from_the_script(cp: ControlPlane) -> None:
    (cm,) = [d for d in yaml.safe_load_all(cp.kubectl_run("kustomize", str(ARGOCD)).stdout) if d]
    assert (cm["kind"], cm["metadata"]["name"], cm["metadata"]["namespace"]) == ("ConfigMap", "argocd-cm", "argocd")
    assert cm["data"] == {f"resource.customizations.health.{GROUP}_{k}": SCRIPT.read_text() for k in KINDS}
    assert not any(k.startswith("resource.customizations.useOpenLibs") for k in cm["data"])


def test_server_side_apply_adds_the_keys_to_an_existing_argocd_cm(cp: ControlPlane, gitopscheck: Path) -> None:
    """The README's `kubectl apply --server-side -k deploy/argocd` keeps Argo CD's other settings."""
    cp.kubectl_run("create", "namespace", "argocd")
    cp.kubectl_run("create", "configmap", "argocd-cm", "-n", "argocd", "--from-literal=url=https://argocd.example.com",
                   "--from-literal=resource.customizations.health.example.com_Thing=hs = {status='Healthy'} return hs")
    cp.kubectl_run("apply", "--server-side", "--field-manager=modelsync", "-k", str(ARGOCD))
    data = json.loads(cp.kubectl_run("get", "configmap", "argocd-cm", "-n", "argocd", "-o", "json").stdout)["data"]
    assert data["url"] == "https://argocd.example.com"
    assert "resource.customizations.health.example.com_Thing" in data
    assert data[f"resource.customizations.health.{GROUP}_Model"] == SCRIPT.read_text()
    # the stored script still works when read back from the ConfigMap
    stored = cp.workdir / "health.lua"  # type: ignore[operator]
    stored.write_text(data[f"resource.customizations.health.{GROUP}_ModelRegistry"])
    obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelRegistry", "metadata": {"name": "r", "generation": 3},
           "status": registry_status("Connected", 3)}
    (ks, _), health = judge(gitopscheck, obj, stored)
    assert ks == "Current" and health == ("Healthy", "Ready=True Connected: logged in; model center found")
