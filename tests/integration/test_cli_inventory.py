"""`modelsync inventory` on the real apiserver with the operator and the ZStack simulator:
an entry the operator made for a Model (managed), one made by hand in ZStack (unmanaged),
and one left behind by a Model deleted with deletionPolicy: Orphan (orphaned)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from modelsync.testing import K8s, OperatorProcess

from .conftest import Sim, model, start_sim

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"
PASSWORD = "inv-Pa55word"


@pytest.fixture(scope="module")
def zsim() -> Iterator[Sim]:
    yield from start_sim("zstack", account="admin", password=PASSWORD, model_center_uuid=CENTER)


def inventory(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([sys.executable, "-m", "modelsync", "inventory", *args], env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def add_by_hand(sim: Sim, name: str) -> str:
    """A model made in ZStack directly, without ModelSync's owner tag: its uuid."""
    login = {"logInByAccount": {"accountName": "admin", "password": hashlib.sha512(PASSWORD.encode()).hexdigest()}}
    session = sim.http.put("/zstack/v1/accounts/login", json=login).json()["inventory"]["uuid"]
    r = sim.http.post("/zstack/v1/ai/models", headers={"Authorization": f"OAuth {session}"}, json={
        "param": {"name": name, "installPath": f"/models/{name}", "modelCenterUuid": CENTER}})
    assert r.status_code == 200, r.text
    return str(r.json()["inventory"]["uuid"])


def test_inventory_tells_managed_unmanaged_and_orphaned(k8s: K8s, kubeconfig: Path, operator: OperatorProcess,
                                                        ns: str, zsim: Sim) -> None:
    k8s.secret("zstack-creds", ns, {"accountName": "admin", "password": PASSWORD})
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "zstack"}, "spec": {
        "backend": "zstack", "endpoint": zsim.url, "credentialsSecretRef": {"name": "zstack-creds"},
        "zstack": {"modelCenterUuid": CENTER}, "requestTimeout": "10s"}}, ns)
    k8s.create(model("kept", ["zstack"], installPath="/models/kept"), ns)
    k8s.create(model("left", ["zstack"], installPath="/models/left", deletionPolicy="Orphan"), ns)
    ids: dict[str, str] = {}
    for name in ("kept", "left"):
        obj = k8s.wait_condition("Model", name, ns, "Ready")
        ids[name] = obj["status"]["registries"][0]["externalId"]
    k8s.delete("Model", "left", ns)
    k8s.wait_gone("Model", "left", ns)
    assert ids["left"] in zsim.app["zstack"].models  # Orphan: the entry stays in ZStack
    ids["hand"] = add_by_hand(zsim, "by-hand")
    zsim.clear_journal()

    r = inventory(kubeconfig, "zstack", "-n", ns)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "KIND", "STATE", "RESOURCE"]
    rows = {line.split()[0]: line.split(maxsplit=4)[1:] for line in lines[1:]}
    assert rows == {
        ids["kept"]: ["kept", "Model", "managed", f"{ns}/kept"],
        ids["left"]: ["left", "Model", "orphaned", f"{ns}/left (gone)"],
        ids["hand"]: ["by-hand", "Model", "unmanaged", "-"],
    }
    assert f"ModelRegistry {ns}/zstack (zstack): 3 entries: 1 managed, 1 orphaned, 1 unmanaged" in r.stderr

    r = inventory(kubeconfig, "zstack", "-n", ns, "-o", "json")
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    assert doc["registry"] == {"kind": "ModelRegistry", "name": "zstack", "namespace": ns, "backend": "zstack"}
    by_id = {e["id"]: e for e in doc["entries"]}
    assert (by_id[ids["kept"]]["state"], by_id[ids["kept"]]["owner"]) == ("managed", f"{ns}/kept")
    assert (by_id[ids["left"]]["state"], by_id[ids["left"]]["gone"]) == ("orphaned", True)
    assert (by_id[ids["hand"]]["state"], by_id[ids["hand"]]["marker"]) == ("unmanaged", None)

    r = inventory(kubeconfig, "zstack", "-n", ns, "-o", "wide")
    assert r.returncode == 0 and f"modelsync.io/owner::{ns}/kept" in r.stdout and f"{ns}/left is gone" in r.stdout

    # read-only: nothing but logins was written to ZStack (the operator's resyncs of a Ready Model write nothing)
    assert [e for e in zsim.writes() if not e["path"].endswith("/accounts/login")] == []
    assert set(zsim.app["zstack"].models) >= set(ids.values())

    r = inventory(kubeconfig, "absent", "-n", ns)
    assert r.returncode == 1 and f"ModelRegistry {ns}/absent" in r.stderr and "not found" in r.stderr
    r = inventory(kubeconfig, "absent", "--cluster")
    assert r.returncode == 1 and "ClusterModelRegistry absent" in r.stderr


def test_inventory_reports_a_registry_it_cannot_reach(k8s: K8s, kubeconfig: Path, ns: str) -> None:
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "down"}, "spec": {
        "backend": "nemo", "endpoint": "http://127.0.0.1:9", "requestTimeout": "2s"}}, ns)
    r = inventory(kubeconfig, "down", "-n", ns)
    assert r.returncode == 1 and r.stderr.startswith(f"error: ModelRegistry {ns}/down: "), r.stderr
