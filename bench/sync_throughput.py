"""How fast does ModelSync bring N Models into a registry, and what does an idle resync cost?

Runs on the same real parts as the tests: a local kube-apiserver + etcd, the ZStack
simulator (optionally with latency), and the operator as a process. Prints figures;
asserts nothing.

    .venv/bin/python bench/sync_throughput.py [--models 50] [--latency 0.05] [--resync 10]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from modelsync.vendors.zstack import simulator as zstack  # noqa: E402
from modelsync.simulators.faults import Faults  # noqa: E402
from modelsync.simulators.server import ThreadedServer  # noqa: E402
from modelsync.testing import ControlPlane, K8s, OperatorProcess  # noqa: E402
from modelsync.testing.k8s import condition  # noqa: E402

CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"


def wait_all(k8s: K8s, ns: str, names: list[str], generation: int, timeout: float) -> dict[str, float]:
    """name → seconds until Ready=True at ``generation``."""
    start, done = time.monotonic(), {}
    while len(done) < len(names) and time.monotonic() - start < timeout:
        for obj in k8s.custom.list_namespaced_custom_object("modelsync.io", "v1alpha1", ns, "models")["items"]:
            name = obj["metadata"]["name"]
            ready = condition(obj, "Ready")
            if name not in done and ready.get("status") == "True" and ready.get("observedGeneration") == generation:
                done[name] = time.monotonic() - start
        time.sleep(0.1)
    return done


def report(label: str, times: dict[str, float], n: int) -> None:
    if not times:
        print(f"{label}: none became Ready")
        return
    values = sorted(times.values())
    total = values[-1]
    print(f"{label}: {len(values)}/{n} Ready in {total:.2f}s ({len(values) / total:.1f}/s); "
          f"p50 {statistics.median(values):.2f}s, p95 {values[int(0.95 * (len(values) - 1))]:.2f}s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", type=int, default=50)
    p.add_argument("--latency", type=float, default=0.0, help="seconds the simulator adds to each request")
    p.add_argument("--resync", type=float, default=10.0, help="operator resync interval, seconds")
    args = p.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}")
    print(f"models: {args.models}; simulator latency: {args.latency}s; resync: {args.resync}s")
    app = zstack.create_app(model_center_uuid=CENTER, faults=Faults(latency=args.latency))
    sim = ThreadedServer(app).start()
    try:
        with ControlPlane(crds=ROOT / "crds") as cp:
            k8s = K8s(str(cp.kubeconfig))
            k8s.create_namespace("bench")
            k8s.secret("creds", "bench", {"accountName": "admin", "password": "password"})
            k8s.create({"kind": "ModelRegistry", "metadata": {"name": "z"}, "spec": {
                "backend": "zstack", "endpoint": sim.url, "credentialsSecretRef": {"name": "creds"},
                "zstack": {"modelCenterUuid": CENTER}}}, "bench")
            with OperatorProcess(cp.kubeconfig, env={"MODELSYNC_RESYNC_SECONDS": str(args.resync)}) as op:
                op.wait_for_log("Starting the watch-stream", timeout=60)
                names = [f"m{i:04d}" for i in range(args.models)]
                for n in names:
                    k8s.create({"kind": "Model", "metadata": {"name": n}, "spec": {
                        "registries": [{"name": "z"}], "installPath": f"/models/{n}", "description": "v1",
                        "gpu": {"minMemory": "16Gi"}}}, "bench")
                report("create", wait_all(k8s, "bench", names, 1, 300), len(names))
                journal = app["journal"]
                journal.entries.clear()
                for n in names:
                    k8s.patch("Model", n, "bench", {"spec": {"description": "v2"}})
                report("update", wait_all(k8s, "bench", names, 2, 300), len(names))
                puts = [e for e in journal.entries if e["method"] == "PUT" and "/ai/models/" in e["path"]]
                print(f"update: {len(puts)} PUTs for {len(names)} changed models")
                time.sleep(2)
                journal.entries.clear()
                versions = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in
                            k8s.custom.list_namespaced_custom_object("modelsync.io", "v1alpha1", "bench", "models")["items"]}
                window = args.resync * 2 + 1
                time.sleep(window)
                reads = sum(1 for e in journal.entries if e["method"] == "GET")
                writes = sum(1 for e in journal.entries if e["method"] not in ("GET", "HEAD"))
                after = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in
                         k8s.custom.list_namespaced_custom_object("modelsync.io", "v1alpha1", "bench", "models")["items"]}
                changed = sum(1 for n in names if versions.get(n) != after.get(n))
                print(f"idle {window:.0f}s: {reads} registry reads, {writes} registry writes, "
                      f"{changed} resources written")
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
