"""Smoke-test the operator image: run it as a container (host network) against a local control
plane and the ZStack simulator, apply a registry and a Model, and wait for Ready.

    python tools/image/smoke.py [--image modelsync:0.1.0]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))

from modelsync.simulators import zstack  # noqa: E402
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
            # the kubeconfig names certificate files under the control plane's work dir: mount it as is
            subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", "host", "--user", "0",
                            "--read-only", "-v", f"{cp.workdir}:{cp.workdir}:ro",
                            "-e", f"KUBECONFIG={cp.kubeconfig}", args.image, "run", "--verbose"], check=True)
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


if __name__ == "__main__":
    raise SystemExit(main())
