"""What does one create, and one unchanged resync, cost the operator's own process, without the
apiserver?

The reconcile core with the real ZStack client, against the ZStack simulator as a process of its
own (so its CPU is not counted): N Models and N ModelServices are created, then resynced unchanged
ROUNDS times, each as the controller does it (the finalizer check, then the reconcile). Prints the
CPU per create and per resync; asserts nothing. ``--profile`` adds cProfile's table of two more rounds.

    .venv/bin/python bench/resync_cpu.py [--objects 200] [--rounds 5] [--profile] [--operator DIR]

``--operator`` runs another checkout's package (an A/B against an earlier commit).
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import platform
import pstats
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"


def model(i: int) -> dict[str, Any]:
    return {"metadata": {"name": f"m{i}", "namespace": "ml", "uid": f"uid-m-{i}", "generation": 1},
            "spec": {"registries": [{"name": "z"}], "installPath": f"/models/m{i}", "description": "v1",
                     "vendor": "bench", "gpu": {"minMemory": "16Gi", "recommendedMemory": "24Gi",
                                                "accelerator": "cuda:12.1"}}, "status": {}}


def service(i: int) -> dict[str, Any]:
    return {"metadata": {"name": f"s{i}", "namespace": "ml", "uid": f"uid-s-{i}", "generation": 1},
            "spec": {"registries": [{"name": "z"}], "config": "services: []\n", "resources": {"cpu": 2, "memory": "4Gi"},
                     "startCommand": "serve", "zstack": {"installPath": "/opt/serve"}}, "status": {}}


async def run(args: argparse.Namespace, url: str) -> None:
    from modelsync.backends.base import RegistryConnection
    from modelsync.reconcile import Reconciler
    try:
        from modelsync.connections import BackendPool
        from modelsync.vendors.zstack.client import ZStackBackend
    except ImportError:  # a checkout from before the per-vendor folders (--operator)
        from modelsync.backends.zstack import ZStackBackend  # type: ignore[no-redef]
        from modelsync.reconcile import BackendPool  # type: ignore[no-redef,attr-defined]

    class Pool(BackendPool):
        def __init__(self, backend: Any) -> None:
            super().__init__(reader=None)  # type: ignore[arg-type]
            self.the = backend

        async def backend(self, ref: Any, namespace: str) -> Any:
            return self.the, "v1"

    conn = RegistryConnection(key="ModelRegistry/ml/z", name="z", kind="ModelRegistry", backend="zstack", endpoint=url,
                              credentials={"accountName": "admin", "password": "password"},
                              settings={"modelCenterUuid": CENTER}, timeout=10.0)
    backend = ZStackBackend(conn)
    rec = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    objs = [("Model", model(i)) for i in range(args.objects)] + [("ModelService", service(i)) for i in range(args.objects)]
    for step in ("create", "settle"):  # create, then one resync to settle
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for kind, body in objs:
            out = await rec.reconcile(kind, body)
            if out.error is not None:
                raise SystemExit(f"{kind} {body['metadata']['name']}: {out.error}")
            body["status"] = {**body["status"], **out.status_patch}
        if step == "create":
            print(f"{len(objs)} creates: {1000 * (time.process_time() - cpu0) / len(objs):.3f} ms of CPU each, "
                  f"{1000 * (time.perf_counter() - wall0) / len(objs):.3f} ms wall")

    async def rounds(k: int) -> None:
        for _ in range(k):
            for kind, body in objs:
                rec.needs_finalizer(kind, body)
                out = await rec.reconcile(kind, body)
                if out.status_patch:
                    raise SystemExit(f"an unchanged resync wrote {out.status_patch}")

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await rounds(args.rounds)
    n = len(objs) * args.rounds
    print(f"{n} unchanged resyncs: {1000 * (time.process_time() - cpu0) / n:.3f} ms of CPU each, "
          f"{1000 * (time.perf_counter() - wall0) / n:.3f} ms wall")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        await rounds(2)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    await backend.aclose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=200, help="Models, and as many ModelServices")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--operator", type=Path, default=ROOT / "operator", help="the source root to import modelsync from")
    args = p.parse_args()
    sys.path.insert(0, str(args.operator.resolve()))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sim = subprocess.Popen([sys.executable, "-m", "modelsync", "simulate", "zstack", "--port", str(port),
                            "--model-center-uuid", CENTER], env={**os.environ, "PYTHONPATH": str(args.operator.resolve())},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or sim.poll() is not None:
                    raise SystemExit("the ZStack simulator did not start") from None
                time.sleep(0.1)
        asyncio.run(run(args, f"http://127.0.0.1:{port}"))
    finally:
        sim.terminate()
        sim.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
