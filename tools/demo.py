"""`make demo`: a local control plane (or $KUBECONFIG's cluster), the ZStack simulator,
the operator, the examples, and a table of their synced status. Ctrl-C stops everything.

    python tools/demo.py [--once] [--backend zstack]

--once exits after printing the table (for scripted runs).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from modelsync.simulators.server import free_port  # noqa: E402
from modelsync.testing import ControlPlane, OperatorProcess, ensure_binaries  # noqa: E402

NAMESPACE = "modelsync-demo"
MODEL_CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"
SIMULATORS = {
    # backend: (simulator args, example endpoint to rewrite)
    "zstack": (["--model-center-uuid", MODEL_CENTER], "http://127.0.0.1:8080"),
    "nemo": (["--fileset", "default/llama-3-1-8b-support-lora"], "http://127.0.0.1:8000"),
    "instill": ([], "http://127.0.0.1:8081"),
    "mlflow": ([], "http://127.0.0.1:5000"),  # not a simulator: the real MLflow server (tools/mlflow/ensure.sh)
}


def say(msg: str) -> None:
    print(f"\033[1m==> {msg}\033[0m" if sys.stdout.isatty() else f"==> {msg}", flush=True)


def reachable(kubectl: Path, kubeconfig: str) -> bool:
    r = subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", "get", "--raw=/readyz"],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--once", action="store_true", help="exit after printing the table")
    p.add_argument("--backend", action="append", choices=sorted(SIMULATORS), default=None,
                   help="which examples/<backend> to run (repeatable; default zstack)")
    args = p.parse_args()
    backends = args.backend or ["zstack"]
    stack: list[object] = []
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    t0 = time.monotonic()
    try:
        bins = ensure_binaries()
        kubectl = bins / "kubectl"
        kubeconfig = os.environ.get("KUBECONFIG")
        if kubeconfig and reachable(kubectl, kubeconfig):
            say(f"using the cluster in KUBECONFIG={kubeconfig}")
            subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", "apply", "--server-side",
                            "-f", str(ROOT / "crds")], check=True)
            subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", "wait", "--for=condition=Established",
                            "--timeout=60s", "-f", str(ROOT / "crds")], check=True, capture_output=True)
        else:
            say("starting a local control plane (etcd + kube-apiserver) and installing the CRDs")
            cp = ControlPlane(crds=ROOT / "crds", bin_dir=bins).start()
            stack.append(cp)
            kubeconfig = str(cp.kubeconfig)
            say(f"control plane ready at {cp.server}; kubeconfig: {kubeconfig}")

        def kc(*a: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", *a], check=check, text=True, **kw)  # type: ignore[call-overload]

        kc("create", "namespace", NAMESPACE, check=False, capture_output=True)
        workdir = Path(tempfile.mkdtemp(prefix="modelsync-demo-"))
        links: list[str] = []  # registries' own UIs, shown again with the table
        for backend in backends:
            extra, example_endpoint = SIMULATORS[backend]
            port = free_port()
            if backend == "mlflow":
                from modelsync.vendors.mlflow.simulator import MlflowServer

                say(f"starting the real MLflow server on 127.0.0.1:{port}")
                stack.append(MlflowServer(port=port, workdir=workdir / "mlflow").start())
                links.append(f"MLflow UI: http://127.0.0.1:{port}/#/models (the registered models ModelSync syncs)")
                say(links[-1])
                for src in sorted((ROOT / "examples" / backend).glob("*.yaml")):
                    text = src.read_text().replace(example_endpoint, f"http://127.0.0.1:{port}")
                    (workdir / f"{backend}-{src.name}").write_text(text)
                continue
            say(f"starting the {backend} simulator on 127.0.0.1:{port}")
            log = open(workdir / f"{backend}-simulator.log", "w")
            sim = subprocess.Popen([sys.executable, "-m", "modelsync", "simulate", backend, "--port", str(port), *extra],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            stack.append(sim)
            deadline = time.monotonic() + 30
            while "127.0.0.1" not in (workdir / f"{backend}-simulator.log").read_text() and time.monotonic() < deadline:
                if sim.poll() is not None:
                    raise RuntimeError((workdir / f"{backend}-simulator.log").read_text())
                time.sleep(0.1)
            print((workdir / f"{backend}-simulator.log").read_text().rstrip())
            for src in sorted((ROOT / "examples" / backend).glob("*.yaml")):
                text = src.read_text().replace(example_endpoint, f"http://127.0.0.1:{port}")
                (workdir / f"{backend}-{src.name}").write_text(text)
        say("running the operator")
        op = OperatorProcess(kubeconfig).start()
        stack.append(op)
        say(f"applying examples/{{{','.join(backends)}}} to namespace {NAMESPACE}")
        kc("apply", "-n", NAMESPACE, "-f", str(workdir))
        kinds = "models.modelsync.io,modelservices.modelsync.io"
        r = kc("wait", "-n", NAMESPACE, "--for=condition=Ready", "--timeout=120s", kinds, "--all",
               check=False, capture_output=True)
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            print(op.log()[-6000:], file=sys.stderr)
        say("synced status")
        kc("get", "-n", NAMESPACE, "modelregistries.modelsync.io,modelservices.modelsync.io,models.modelsync.io",
           "-o", "wide")
        print()
        kc("get", "-n", NAMESPACE, kinds, "-o",
           "custom-columns=KIND:.kind,NAME:.metadata.name,REGISTRY:.status.registries[*].name,"
           "EXTERNAL-ID:.status.registries[*].externalId,SYNCED:.status.registries[*].synced,"
           "LAST-SYNC:.status.registries[*].lastSyncTime")
        for link in links:
            say(link)
        say(f"ready in {time.monotonic() - t0:.1f}s (operator log: {op.log_path})")
        if r.returncode != 0:
            return 1
        if args.once:
            return 0
        say("Ctrl-C stops everything")
        while not stop["now"]:
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        say("stopping")
        for item in reversed(stack):
            if isinstance(item, subprocess.Popen):
                if item.poll() is None:
                    os.killpg(item.pid, signal.SIGTERM)
                    item.wait(20)
            else:
                item.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    raise SystemExit(main())
