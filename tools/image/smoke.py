"""Smoke-test the operator image: run it as a container (host network) against a local control
plane and the ZStack simulator, apply a registry and a Model, and wait for Ready. The container
runs as the image's own user (65532) with what deploy/'s securityContext allows: a read-only root
filesystem (a tmpfs on /tmp, as the Deployment's emptyDir), no capabilities, no privilege escalation.

    python tools/image/smoke.py [--image modelsync:0.1.0]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))

from modelsync.vendors.zstack import simulator as zstack  # noqa: E402
from modelsync.simulators.server import ThreadedServer  # noqa: E402
from modelsync.testing import ControlPlane, K8s  # noqa: E402

CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--image", default="modelsync:0.1.0")
    args = p.parse_args()
    sim = ThreadedServer(zstack.create_app(model_center_uuid=CENTER)).start()
    name = f"modelsync-smoke-{int(time.time())}"
    try:
        with ControlPlane(crds=ROOT / "crds") as cp:
            k8s = K8s(str(cp.kubeconfig))
            k8s.create_namespace("smoke")
            k8s.secret("creds", "smoke", {"accountName": "admin", "password": "password"})
            k8s.create({"kind": "ModelRegistry", "metadata": {"name": "z"}, "spec": {
                "backend": "zstack", "endpoint": sim.url, "credentialsSecretRef": {"name": "creds"},
                "zstack": {"modelCenterUuid": CENTER}}}, "smoke")
            kube = _kubeconfig_for_the_container(cp)
            subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", "host",
                            "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
                            "--security-opt", "no-new-privileges", "-v", f"{kube}:/kube:ro",
                            "-e", "KUBECONFIG=/kube/kubeconfig", args.image, "run", "--verbose"], check=True)
            k8s.create({"kind": "Model", "metadata": {"name": "m"}, "spec": {
                "registries": [{"name": "z"}], "installPath": "/models/m", "gpu": {"minMemory": "8Gi"}}}, "smoke")
            obj = k8s.wait_condition("Model", "m", "smoke", "Ready", timeout=90)
            entry = obj["status"]["registries"][0]
            print(f"Model smoke/m Ready from the container: {entry['backend']} id {entry['externalId']}, "
                  f"minGpuMemory {entry['inventory']['minGpuMemory']}")
            return 0
    except Exception:
        subprocess.run(["docker", "logs", name])
        raise
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        sim.stop()


def _kubeconfig_for_the_container(cp: ControlPlane) -> str:
    """The admin kubeconfig and its certificates in a directory the image's user (65532) can read
    (the control plane's own work dir is root's only), naming them by their path in the container."""
    assert cp.workdir is not None
    kube = tempfile.mkdtemp(prefix="kube-", dir=cp.workdir)  # removed with the control plane
    for f in ("ca.crt", "admin.crt", "admin.key"):
        shutil.copy(cp.workdir / "pki" / f, kube)
    with open(os.path.join(kube, "kubeconfig"), "w") as out:
        out.write(cp.kubeconfig.read_text().replace(str(cp.workdir / "pki"), "/kube"))
    for path in [kube, *(os.path.join(kube, f) for f in os.listdir(kube))]:
        os.chown(path, 65532, 65532)
    return kube


if __name__ == "__main__":
    raise SystemExit(main())
