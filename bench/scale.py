"""ModelSync at the sizes users run: prints the scale table and writes it as JSON.

Real parts only: a local kube-apiserver + etcd (with an audit log, which is how writes
and reads are counted, per user), the ZStack simulator as its own process, and the
operator as a process with its own identity. Asserts nothing; prints figures.

    .venv/bin/python bench/scale.py [--objects 1000] [--big 10000] [--plain] [--out bench/results.json]

Phases, each in its own namespace with the operator watching only that namespace:

1. floor: a no-op kopf operator (bench/noop_operator.py) marks N Models + N
   ModelServices Ready; the time to all Ready is the floor.
2. burst: ModelSync syncs N Models + N ModelServices created at once; time to all
   Ready, apiserver writes per created object (status patches and Events, from the
   audit log), registry requests, request timeouts in the operator log.
   Both phases print the CPU each process spent (etcd, kube-apiserver, the operator,
   the simulator): what the ratio between them is made of.
3. latency: the same with 10 ms added to every simulator request.
4. restart: the operator restarted over the 2N Ready objects: time to settle and the
   writes it makes; then unchanged resyncs (short interval): writes, registry GETs and
   apiserver GETs per resync of each object.
5. big: M Models created at once; all Ready?, request timeouts, RSS when Ready, RSS
   after a restart over them, idle CPU at the default resync interval.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from modelsync.testing import ControlPlane, K8s, OperatorProcess  # noqa: E402
from modelsync.testing.controlplane import free_port  # noqa: E402

CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"
GROUP, VERSION = "modelsync.io", "v1alpha1"
TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- helpers


class Simulator:
    """The ZStack simulator as its own process (it must not share this process's GIL)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelsync", "simulate", "zstack", "--port", str(self.port),
             "--model-center-uuid", CENTER, "--password", "password"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.http = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.http.get("/_sim/faults").raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("simulator did not start")

    def faults(self, **knobs: Any) -> None:
        self.http.put("/_sim/faults", json=knobs).raise_for_status()

    def journal(self) -> list[dict[str, Any]]:
        return self.http.get("/_sim/requests").json()

    def clear(self) -> None:
        self.http.delete("/_sim/requests").raise_for_status()

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)


class Audit:
    """Counts from the apiserver's audit log, by user, since a mark."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        time.sleep(1.5)  # the batch backend flushes every second
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def entries(self, user: str) -> list[dict[str, Any]]:
        time.sleep(1.5)
        out = []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("user", {}).get("username") == user and e.get("stage") == "ResponseComplete":
                    out.append(e)
        return out

    def count(self, user: str) -> dict[str, int]:
        writes = reads = events = 0
        for e in self.entries(user):
            verb, res = e.get("verb"), (e.get("objectRef") or {}).get("resource")
            if verb in ("create", "update", "patch", "delete"):
                writes += 1
                events += res == "events"
            elif verb == "get":
                reads += 1
        return {"writes": writes, "events": events, "gets": reads}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class CpuMeter:
    """CPU seconds each process spent between :meth:`start` and :meth:`stop`, as table rows."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}

    def start(self) -> None:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self, table: dict[str, Any], prefix: str, label: str) -> None:
        for name, pid in self.pids.items():
            key = f"{prefix}_cpu_{name.replace('-', '_')}_s"
            row(table, key, round(cpu_seconds(pid) - self.before[name], 1), f"{label}: CPU of {name} (s)")


#: --plain: Models without spec.gpu. ZStack's AddModel has no GPU fields, so a Model that sets them
#: lists each in status.registries[].notSettable (about 430 more bytes of status per Model);
#: without them every checkout writes the same status, which isolates the code's own cost in an A/B.
PLAIN = False


def model(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"registries": [{"name": "z"}], "installPath": f"/models/{name}", "description": "v1",
                            "vendor": "bench"}
    if not PLAIN:
        spec["gpu"] = {"minMemory": "16Gi", "recommendedMemory": "24Gi", "accelerator": "cuda:12.1"}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Model", "metadata": {"name": name}, "spec": spec}


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelService", "metadata": {"name": name}, "spec": {
        "registries": [{"name": "z"}], "config": "services: []\n", "resources": {"cpu": 2, "memory": "4Gi"},
        "startCommand": "serve", "zstack": {"installPath": "/opt/serve"}}}


def create_all(k8s: K8s, ns: str, objs: list[dict[str, Any]]) -> float:
    """Create ``objs`` as fast as 8 client threads can; seconds it took."""
    start = time.monotonic()

    def one(obj: dict[str, Any]) -> None:
        plural = "models" if obj["kind"] == "Model" else "modelservices"
        for attempt in range(5):
            try:
                k8s.custom.create_namespaced_custom_object(GROUP, VERSION, ns, plural, obj)
                return
            except Exception:
                time.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"could not create {obj['metadata']['name']}")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, objs))
    return time.monotonic() - start


def count_ready(k8s: K8s, ns: str) -> int:
    n = 0
    for plural in ("models", "modelservices"):
        cont = None
        while True:
            page = k8s.custom.list_namespaced_custom_object(GROUP, VERSION, ns, plural, limit=2000, _continue=cont)
            for o in page["items"]:
                for c in (o.get("status") or {}).get("conditions") or []:
                    if c.get("type") == "Ready" and c.get("status") == "True":
                        n += 1
            cont = page["metadata"].get("continue")
            if not cont:
                break
    return n


def wait_ready(k8s: K8s, ns: str, total: int, start: float, timeout: float) -> float | None:
    """Seconds from ``start`` until ``total`` objects in ``ns`` are Ready (None on timeout)."""
    while time.monotonic() - start < timeout:
        if count_ready(k8s, ns) >= total:
            return time.monotonic() - start
        time.sleep(0.5)
    return None


def setup_ns(k8s: K8s, ns: str, sim: Simulator) -> None:
    k8s.create_namespace(ns)
    k8s.secret("creds", ns, {"accountName": "admin", "password": "password"})
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "z"}, "spec": {
        "backend": "zstack", "endpoint": sim.url, "credentialsSecretRef": {"name": "creds"},
        "zstack": {"modelCenterUuid": CENTER}}}, ns)


def reconciles(op: OperatorProcess) -> float:
    """The operator's ``modelsync_reconciles_total`` of Models and ModelServices (not registry
    checks), all other labels summed."""
    text = httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=10).text  # type: ignore[attr-defined]
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("modelsync_reconciles_total{")
               and ('kind="Model"' in line or 'kind="ModelService"' in line))


def timeouts_in(op: OperatorProcess) -> int:
    return sum(1 for line in op.log().splitlines() if "timed out" in line)


def row(table: dict[str, Any], key: str, value: Any, label: str) -> None:
    table[key] = value
    print(f"  {label:<62} {value}", flush=True)


# ---------------------------------------------------------------- phases


def floor(cp: ControlPlane, k8s: K8s, n: int, table: dict[str, Any]) -> None:
    ns = "floor"
    k8s.create_namespace(ns)
    kc = cp.user_kubeconfig("noop", groups=["system:masters"])
    proc = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", ns,
                             str(ROOT / "bench" / "noop_operator.py")],
                            env={**os.environ, "KUBECONFIG": str(kc)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(3)
        meter = CpuMeter({**cp.pids, "operator": proc.pid})
        meter.start()
        start = time.monotonic()
        create_all(k8s, ns, [model(f"m{i:05d}") for i in range(n)] + [service(f"s{i:05d}") for i in range(n)])
        took = wait_ready(k8s, ns, 2 * n, start, 600)
        row(table, "floor_all_ready_s", round(took, 1) if took else None, f"no-op kopf operator: {2 * n} Ready (s)")
        meter.stop(table, "floor", "no-op kopf operator")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def burst(cp: ControlPlane, k8s: K8s, audit: Audit, sim: Simulator, ns: str, n: int, table: dict[str, Any],
          prefix: str, kc: Path) -> OperatorProcess:
    setup_ns(k8s, ns, sim)
    port = free_port()
    op = OperatorProcess(kc, verbose=False, args=("--namespace", ns, f"--metrics-addr=127.0.0.1:{port}"),
                         env={"MODELSYNC_RESYNC_SECONDS": "300"}).start()
    op.metrics_port = port  # type: ignore[attr-defined]
    op.wait_for_log("Activity 'configure' succeeded", timeout=60)
    time.sleep(2)
    sim.clear()
    audit.mark()
    meter = CpuMeter({**cp.pids, "simulator": sim.proc.pid, "operator": op.proc.pid})  # type: ignore[union-attr]
    meter.start()
    start = time.monotonic()
    made = create_all(k8s, ns, [model(f"m{i:05d}") for i in range(n)] + [service(f"s{i:05d}") for i in range(n)])
    took = wait_ready(k8s, ns, 2 * n, start, 900)
    meter.stop(table, prefix, prefix)
    time.sleep(2)
    counts = audit.count("modelsync")
    journal = sim.journal()
    row(table, f"{prefix}_create_s", round(made, 1), f"{prefix}: creating {2 * n} objects took (s)")
    row(table, f"{prefix}_all_ready_s", round(took, 1) if took else None, f"{prefix}: all {2 * n} Ready after (s)")
    row(table, f"{prefix}_writes_per_object", round(counts["writes"] / (2 * n), 2),
        f"{prefix}: apiserver writes per created object (Events included)")
    row(table, f"{prefix}_events_per_object", round(counts["events"] / (2 * n), 2), f"{prefix}: of which Events")
    row(table, f"{prefix}_apiserver_gets", counts["gets"], f"{prefix}: apiserver GETs by the operator")
    row(table, f"{prefix}_registry_requests_per_object", round(len(journal) / (2 * n), 2),
        f"{prefix}: registry requests per object")
    row(table, f"{prefix}_request_timeouts", timeouts_in(op), f"{prefix}: request timeouts in the operator log")
    return op


def restart(k8s: K8s, audit: Audit, sim: Simulator, op: OperatorProcess, n: int, table: dict[str, Any]) -> None:
    resync = 20.0
    op.stop()
    audit.mark()
    sim.clear()
    op.env["MODELSYNC_RESYNC_SECONDS"] = str(resync)
    start = time.monotonic()
    op.start()
    op.wait_for_log("Activity 'configure' succeeded", timeout=60)
    time.sleep(5)  # the initial listings are handled
    settled = time.monotonic() - start
    counts = audit.count("modelsync")
    row(table, "restart_settled_s", round(settled, 1), f"restart over {2 * n} Ready: watching and listed after (s)")
    row(table, "restart_writes", counts["writes"], "restart: apiserver writes")
    # unchanged resyncs: two full intervals
    audit.mark()
    sim.clear()
    before = reconciles(op)
    cpu0 = cpu_seconds(op.proc.pid)  # type: ignore[union-attr]
    window = 2 * resync
    time.sleep(window)
    resyncs = reconciles(op) - before
    cpu = cpu_seconds(op.proc.pid) - cpu0  # type: ignore[union-attr]
    journal = sim.journal()  # at once: the audit count below waits for the log to flush
    counts = audit.count("modelsync")
    gets = sum(1 for e in journal if e["method"] == "GET" and "/ai/" in e["path"])
    writes = sum(1 for e in journal if e["method"] not in ("GET", "HEAD"))
    row(table, "resync_writes", counts["writes"] + writes, f"unchanged resyncs ({resync:.0f}s, {window:.0f}s): writes")
    row(table, "resync_count", int(resyncs), "unchanged resyncs in that window (the operator's reconcile count)")
    row(table, "resync_registry_gets_per_resync", round(gets / max(resyncs, 1), 2),
        "unchanged resync: registry GETs each")
    row(table, "resync_apiserver_gets", counts["gets"], "unchanged resyncs: apiserver GETs")
    row(table, "resync_cpu_ms", round(1000 * cpu / max(resyncs, 1), 2), "unchanged resync: operator CPU each (ms)")


def big(cp: ControlPlane, k8s: K8s, audit: Audit, sim: Simulator, m: int, table: dict[str, Any], kc: Path) -> None:
    ns = "big"
    setup_ns(k8s, ns, sim)
    op = OperatorProcess(kc, verbose=False, args=("--namespace", ns)).start()
    try:
        op.wait_for_log("Activity 'configure' succeeded", timeout=60)
        time.sleep(2)
        audit.mark()
        meter = CpuMeter({**cp.pids, "simulator": sim.proc.pid, "operator": op.proc.pid})  # type: ignore[union-attr]
        meter.start()
        start = time.monotonic()
        made = create_all(k8s, ns, [model(f"m{i:05d}") for i in range(m)])
        took = wait_ready(k8s, ns, m, start, 1800)
        meter.stop(table, "big", f"{m} Models")
        row(table, "big_create_s", round(made, 1), f"{m} Models: creating them took (s)")
        row(table, "big_all_ready_s", round(took, 1) if took else None, f"{m} Models created at once: all Ready after (s)")
        time.sleep(2)
        counts = audit.count("modelsync")
        row(table, "big_writes_per_object", round(counts["writes"] / m, 2),
            f"{m} Models: apiserver writes per Model (Events included)")
        row(table, "big_apiserver_gets", counts["gets"], f"{m} Models: apiserver GETs by the operator")
        row(table, "big_request_timeouts", timeouts_in(op), f"{m} Models: request timeouts")
        time.sleep(5)
        pid = op.proc.pid  # type: ignore[union-attr]
        row(table, "big_rss_ready_mib", round(rss_mib(pid)), f"RSS with {m} Models Ready (MiB)")
        op.stop()
        audit.mark()
        op.start()
        op.wait_for_log("Activity 'configure' succeeded", timeout=60)
        time.sleep(20)
        pid = op.proc.pid  # type: ignore[union-attr]
        row(table, "big_rss_after_restart_mib", round(rss_mib(pid)), f"RSS after a restart over {m} Models (MiB)")
        row(table, "big_restart_writes", audit.count("modelsync")["writes"], f"restart over {m}: apiserver writes")
        # after a restart every object's next resync is spread over one interval: a window
        # now sees the steady state of resyncs at the default interval (300 s)
        cpu0 = cpu_seconds(pid)
        window = 120
        sim.clear()
        time.sleep(window)
        resynced = sum(1 for e in sim.journal() if e["method"] == "GET" and "/ai/models/" in e["path"])
        row(table, "big_idle_cpu_pct", round(100 * (cpu_seconds(pid) - cpu0) / window, 1),
            f"idle CPU with {m} Models, default resync, {window}s window (% of a core)")
        row(table, "big_idle_resyncs", resynced, f"registry GETs (resyncs) in that {window}s window")
        row(table, "big_rss_idle_mib", round(rss_mib(pid)), "RSS at the end of that window (MiB)")
    finally:
        op.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=1000, help="Models and as many ModelServices per burst")
    p.add_argument("--big", type=int, default=10000, help="Models in the large run (0 skips it)")
    p.add_argument("--skip", action="append", default=[], choices=["floor", "latency", "restart"])
    p.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    p.add_argument("--plain", action="store_true", help="Models without spec.gpu (see PLAIN)")
    args = p.parse_args()
    global PLAIN
    PLAIN = args.plain
    table: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                             "python": platform.python_version(), "objects": args.objects, "big": args.big,
                             "plain": args.plain}
    print(f"machine: {table['machine']}; python {table['python']}", flush=True)
    sim = Simulator()
    try:
        with ControlPlane(crds=ROOT / "crds", audit=True) as cp:
            k8s = K8s(str(cp.kubeconfig))
            audit = Audit(cp.audit_log)
            kc = cp.user_kubeconfig("modelsync", groups=["system:masters"])
            if "floor" not in args.skip:
                floor(cp, k8s, args.objects, table)
            op = burst(cp, k8s, audit, sim, "burst", args.objects, table, "burst", kc)
            if "restart" not in args.skip:
                restart(k8s, audit, sim, op, args.objects, table)
            op.stop()
            if table.get("floor_all_ready_s") and table.get("burst_all_ready_s"):
                row(table, "burst_vs_floor", round(table["burst_all_ready_s"] / table["floor_all_ready_s"], 2),
                    "burst / floor")
            if "latency" not in args.skip:
                sim.faults(latency=0.01)
                burst(cp, k8s, audit, sim, "latency", args.objects, table, "latency10ms", kc).stop()
                sim.faults(latency=0.0)
            if args.big:
                big(cp, k8s, audit, sim, args.big, table, kc)
    finally:
        sim.stop()
    Path(args.out).write_text(json.dumps(table, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
