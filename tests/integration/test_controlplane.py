"""The local control plane itself: clean stops, and the operator's RBAC judged by the real authorizer."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelsync.testing import ControlPlane

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_stops_cleanly_when_the_block_fails() -> None:
    cp = ControlPlane()
    with pytest.raises(RuntimeError, match="a failing test"):
        with cp:
            pids = [p.pid for p in cp._procs]
            workdir = cp.workdir
            assert workdir is not None and workdir.exists() and len(pids) == 2
            assert cp.kubectl_run("get", "--raw=/readyz").stdout == "ok"
            raise RuntimeError("a failing test")
    assert not any(_alive(pid) for pid in pids)
    assert not workdir.exists()


def test_operator_rbac_is_enough_and_no_more(control_plane: ControlPlane) -> None:
    control_plane.apply(ROOT / "deploy" / "00-namespace.yaml")
    control_plane.apply(ROOT / "deploy" / "10-rbac.yaml")
    sa = "system:serviceaccount:modelsync-system:modelsync"

    def can(verb: str, resource: str, *extra: str) -> bool:
        r = control_plane.kubectl_run("auth", "can-i", verb, resource, f"--as={sa}", *extra, check=False)
        return r.stdout.strip() == "yes"

    for verb, resource in [("watch", "models.modelsync.io"), ("patch", "models.modelsync.io"),
                           ("patch", "models.modelsync.io/status"), ("patch", "modelservices.modelsync.io/status"),
                           ("list", "modelregistries.modelsync.io"), ("get", "clustermodelregistries.modelsync.io"),
                           ("patch", "modelregistries.modelsync.io/status"), ("patch", "modelregistries.modelsync.io"),
                           ("get", "secrets"), ("list", "secrets"), ("watch", "secrets"), ("create", "events")]:
        assert can(verb, resource, "-A"), f"the operator cannot {verb} {resource}"
    for verb, resource in [("delete", "models.modelsync.io"), ("create", "secrets"), ("update", "secrets"),
                           ("delete", "modelregistries.modelsync.io"), ("create", "pods")]:
        assert not can(verb, resource, "-A"), f"the operator should not {verb} {resource}"


def test_deploy_manifests_are_admitted(control_plane: ControlPlane) -> None:
    r = control_plane.kubectl_run("apply", "--dry-run=server", "-k", str(ROOT / "deploy"))
    assert "deployment.apps/modelsync" in r.stdout


def test_operator_works_with_only_its_cluster_role() -> None:
    """The operator, authenticated as a user bound to deploy/'s ClusterRole and nothing else,
    syncs a Model: the role is enough for kopf and for the reconcile core. (Its own control
    plane, so that the suite's admin operator is not also watching.)"""
    from modelsync.testing import K8s, OperatorProcess
    from modelsync.testing.k8s import condition

    from .conftest import start_sim

    with ControlPlane(crds=ROOT / "crds") as cp:
        cp.kubectl_run("create", "namespace", "modelsync-system")
        cp.apply(ROOT / "deploy" / "10-rbac.yaml")
        cp.kubectl_run("create", "clusterrolebinding", "modelsync-user", "--clusterrole=modelsync",
                       "--user=modelsync-operator")
        user_cfg = cp.user_kubeconfig("modelsync-operator")
        k8s = K8s(str(cp.kubeconfig))
        k8s.create_namespace("ml")
        sims = start_sim("zstack", model_center_uuid="ebf96ce1de2c46fa8af9d503c29bb93d")
        sim = next(sims)
        try:
            k8s.secret("creds", "ml", {"accountName": "admin", "password": "password"})
            k8s.create({"kind": "ModelRegistry", "metadata": {"name": "z"}, "spec": {
                "backend": "zstack", "endpoint": sim.url, "credentialsSecretRef": {"name": "creds"},
                "zstack": {"modelCenterUuid": "ebf96ce1de2c46fa8af9d503c29bb93d"}}}, "ml")
            with OperatorProcess(user_cfg) as op:
                k8s.create({"kind": "Model", "metadata": {"name": "m"}, "spec": {
                    "registries": [{"name": "z"}], "installPath": "/m"}}, "ml")
                obj = k8s.wait_condition("Model", "m", "ml", "Ready", timeout=60)
                assert condition(obj, "Synced")["status"] == "True"
                assert "Forbidden" not in op.log() and "403" not in op.log()
        finally:
            next(sims, None)


def test_killed_owner_leaves_no_processes(tmp_path: Path) -> None:
    """SIGTERM to the process that owns a control plane (a CI timeout, Ctrl-C in another
    shell) must not leave etcd or kube-apiserver running."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "hold.py"
    script.write_text(
        "import sys, time\n"
        "from modelsync.testing import ControlPlane\n"
        "cp = ControlPlane().start()\n"
        "print(' '.join(str(p.pid) for p in cp._procs), flush=True)\n"
        "time.sleep(300)\n")
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in owner.stdout.readline().split()]  # type: ignore[union-attr]
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    owner.send_signal(signal.SIGTERM)
    owner.wait(10)
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids)
