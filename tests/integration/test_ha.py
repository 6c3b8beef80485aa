"""High availability and sharding on the real apiserver: replicas with ``--leader-election``
exclude each other with a Lease, shards with ``--selector`` split the objects.

The module runs its own control plane with an audit log, and each operator process its own
identity (a client certificate per process), so "who wrote what, when" is the apiserver's record,
not the operator's word.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from kubernetes.client.rest import ApiException

from modelsync.api import GROUP, VERSION
from modelsync.simulators.server import free_port
from modelsync.testing import ControlPlane, K8s, OperatorProcess, eventually

from .conftest import Sim, model, start_sim

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"
PASSWORD = "h4-Pa55-lease"
QWEN = dict(description="Qwen3 8B", installPath="/models/qwen3-8b", vendor="Qwen", version="1.0.0",
            task="text-generation")
WRITES = ("create", "update", "patch", "delete", "deletecollection")


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    with ControlPlane(crds=ROOT / "crds", audit=True) as plane:
        yield plane


@pytest.fixture(scope="module")
def kube(cp: ControlPlane) -> K8s:
    return K8s(str(cp.kubeconfig))


@pytest.fixture(scope="module")
def zsim() -> Iterator[Sim]:
    yield from start_sim("zstack", account="admin", password=PASSWORD, model_center_uuid=CENTER)


@pytest.fixture
def hns(kube: K8s, zsim: Sim) -> Iterator[str]:
    name = f"ha-{uuid.uuid4().hex[:8]}"
    kube.create_namespace(name)
    yield name
    kube.delete_namespace(name)


@pytest.fixture
def nodes(kube: K8s) -> Iterator[tuple[str, str]]:
    """Two Node objects (no kubelet behind them: what the operator reads is their spec)."""
    names = (f"node-{uuid.uuid4().hex[:8]}", f"node-{uuid.uuid4().hex[:8]}")
    for name in names:
        kube.core.create_node({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
    yield names
    for name in names:
        try:
            kube.core.delete_node(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def cordon(kube: K8s, node: str, unschedulable: bool = True) -> None:
    """What `kubectl cordon` (the first step of `kubectl drain`) and `kubectl uncordon` write."""
    kube.core.patch_node(node, {"spec": {"unschedulable": unschedulable}})


def zregistry(kube: K8s, ns: str, sim: Sim, name: str = "zstack", labels: dict[str, str] | None = None) -> None:
    kube.secret(f"{name}-creds", ns, {"accountName": "admin", "password": PASSWORD})
    kube.create({"kind": "ModelRegistry", "metadata": {"name": name, "labels": labels or {}}, "spec": {
        "backend": "zstack", "endpoint": sim.url, "credentialsSecretRef": {"name": f"{name}-creds"},
        "zstack": {"modelCenterUuid": CENTER}, "requestTimeout": "5s"}}, ns)


class Replica:
    """One operator process with its own identity: POD_NAME, client certificate, metrics and
    liveness ports, and NODE_NAME when it is given one."""

    def __init__(self, cp: ControlPlane, identity: str, *args: str, node: str | None = None) -> None:
        self.identity = identity
        self.port = free_port()
        self.health_port = free_port()
        env = {"POD_NAME": identity, **({"NODE_NAME": node} if node else {})}
        self.op = OperatorProcess(cp.user_kubeconfig(identity, groups=["system:masters"]), env=env,
                                  args=("--leader-election", f"--metrics-addr=127.0.0.1:{self.port}",
                                        f"--liveness=http://127.0.0.1:{self.health_port}/healthz",
                                        "--log-format=json", *args))

    def start(self) -> "Replica":
        self.op.start()
        return self

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def wait_ready(self, timeout: float = 60, *, leader: bool | None = None) -> dict[str, Any]:
        """/readyz's body once it is 200 (and, with ``leader``, once it says so of leadership)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                r = self.get("/readyz")
                if r.status_code == 200 and (leader is None or r.json().get("leader") is leader):
                    return r.json()
                last = r.text
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.2)
        raise TimeoutError(f"{self.identity}: /readyz not 200 after {timeout}s: {last}\n{self.op.log()[-3000:]}")

    def wait_standing_by(self, timeout: float = 60) -> dict[str, Any]:
        """/readyz once this replica's caches are listed and it reaches the Lease without holding
        it: 200 (a standby that watches is ready, as the leader is), and the body says it does not
        lead; /leader answers 503."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                r = self.get("/readyz")
                last = (r.status_code, r.text)
                body = r.json()
                if body.get("listed") and body.get("leaseReachable") and not body.get("leader"):
                    assert r.status_code == 200, last
                    assert self.get("/leader").status_code == 503
                    return body
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.2)
        raise TimeoutError(f"{self.identity}: not a listed standby after {timeout}s: {last}\n{self.op.log()[-3000:]}")

    def live(self) -> int:
        """The status of kopf's liveness endpoint (the operator's probes)."""
        return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=5).status_code

    def sigterm(self) -> None:
        """SIGTERM, as the kubelet sends it, without waiting for the exit."""
        assert self.op.proc is not None
        os.killpg(self.op.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        self.op.stop()


def lease(kube: K8s, name: str, namespace: str = "default") -> dict[str, Any]:
    import kubernetes

    api = kubernetes.client.CoordinationV1Api(kube.api_client)
    try:
        return kube.api_client.sanitize_for_serialization(api.read_namespaced_lease(name, namespace))
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise


def wait_holder(kube: K8s, name: str, among: set[str], timeout: float) -> tuple[str, float]:
    """The Lease's holder once it is one of ``among``, and the seconds that took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        holder = (lease(kube, name).get("spec") or {}).get("holderIdentity") or ""
        if holder in among:
            return holder, time.monotonic() - start
        time.sleep(0.1)
    raise TimeoutError(f"the Lease {name} is not held by any of {among} after {timeout}s: {lease(kube, name)}")


def audit_log(cp: ControlPlane) -> list[str]:
    """The audit log's lines, once it holds every request made before this call: the apiserver
    writes it in batches (up to a second late), so a marker request is made and the log read until
    the marker is in it (a batch holds what came before it)."""
    marker = f"audit-marker-{uuid.uuid4().hex[:12]}"
    cp.kubectl_run("get", "configmap", marker, "-n", "default", "--ignore-not-found", check=False)

    def flushed() -> list[str]:
        lines = cp.audit_log.read_text().splitlines() if cp.audit_log.exists() else []
        return lines if any(marker in line for line in lines[-500:]) else []

    return eventually(flushed, "audit batch with the marker request", timeout=30)


def audit_requests(cp: ControlPlane, user: str, *, since: float = 0.0, until: float = float("inf"),
                   verbs: tuple[str, ...] | None = None) -> list[str]:
    """The requests ``user`` made between two wall-clock times (of ``verbs``, else all; Leases left
    out: campaigning is not reconciling), as "verb resource/subresource namespace/name"."""
    import datetime

    out = []
    for line in audit_log(cp):
        e = json.loads(line)
        if e.get("stage") != "ResponseComplete" or e.get("user", {}).get("username") != user:
            continue
        ref = e.get("objectRef") or {}
        if (verbs is not None and e.get("verb") not in verbs) or ref.get("apiGroup") == "coordination.k8s.io":
            continue
        at = datetime.datetime.fromisoformat(e["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()
        if since <= at < until:
            sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
            out.append(f"{e['verb']} {ref.get('resource')}{sub} {ref.get('namespace', '')}/{ref.get('name', '')}")
    return out


def audit_writes(cp: ControlPlane, user: str, *, since: float = 0.0, until: float = float("inf")) -> list[str]:
    """The writes ``user`` made between two wall-clock times (:func:`audit_requests`)."""
    return audit_requests(cp, user, since=since, until=until, verbs=WRITES)


def ready(kube: K8s, name: str, ns: str, timeout: float) -> float:
    start = time.monotonic()
    kube.wait_condition("Model", name, ns, "Ready", timeout=timeout)
    return time.monotonic() - start


def test_one_leader_the_standby_writes_nothing_and_takes_over_when_the_leader_is_killed(
        cp: ControlPlane, kube: K8s, zsim: Sim, hns: str) -> None:
    a = Replica(cp, "modelsync-a", "--lease-name=ha-kill").start()
    b = Replica(cp, "modelsync-b", "--lease-name=ha-kill").start()
    replicas = {r.identity: r for r in (a, b)}
    try:
        holder, _ = wait_holder(kube, "ha-kill", set(replicas), timeout=60)
        leader, standby = replicas[holder], replicas[({*replicas} - {holder}).pop()]
        # both are ready (the standby has warm caches and reaches the Lease); only one leads
        assert leader.wait_ready(leader=True)["leader"] is True and standby.wait_standing_by()["leader"] is False
        assert standby.live() == 200 and leader.live() == 200
        assert leader.get("/leader").status_code == 200 and standby.get("/leader").status_code == 503
        assert "modelsync_leader 1.0" in leader.get("/metrics").text
        assert "modelsync_leader 0.0" in standby.get("/metrics").text

        zregistry(kube, hns, zsim)
        kube.create(model("first", ["zstack"], **QWEN), hns)
        kube.wait_condition("Model", "first", hns, "Ready", timeout=30)

        killed = time.time()
        leader.op.kill()  # SIGKILL: no release, the Lease must expire
        kube.create(model("second", ["zstack"], **QWEN), hns)
        took = ready(kube, "second", hns, timeout=25)
        print(f"failover after SIGKILL: a new Model Ready {took:.1f}s after the kill")
        assert took < 20
        new_holder, _ = wait_holder(kube, "ha-kill", {standby.identity}, timeout=1)
        assert new_holder == standby.identity
        assert lease(kube, "ha-kill")["spec"]["leaseTransitions"] >= 1

        # the apiserver's record: the standby wrote nothing while the other led, the leader did
        assert audit_writes(cp, standby.identity, until=killed) == []
        assert any("models/status" in w for w in audit_writes(cp, leader.identity, until=killed))
        assert any("models/status" in w for w in audit_writes(cp, standby.identity, since=killed))
        assert all(json.loads(line) for line in standby.op.log().splitlines() if line.strip())
    finally:
        a.stop()
        b.stop()


def test_a_graceful_stop_releases_the_lease_and_the_standby_takes_over_at_once(
        cp: ControlPlane, kube: K8s, zsim: Sim, hns: str) -> None:
    c = Replica(cp, "modelsync-c", "--lease-name=ha-graceful").start()
    holder, _ = wait_holder(kube, "ha-graceful", {"modelsync-c"}, timeout=60)
    d = Replica(cp, "modelsync-d", "--lease-name=ha-graceful").start()
    try:
        d.wait_standing_by()
        zregistry(kube, hns, zsim)
        kube.create(model("before", ["zstack"], **QWEN), hns)
        kube.wait_condition("Model", "before", hns, "Ready", timeout=30)

        stopped = time.time()
        c.sigterm()
        _, took = wait_holder(kube, "ha-graceful", {"modelsync-d"}, timeout=10)
        print(f"handover after SIGTERM: the standby held the Lease {took:.2f}s after the signal")
        assert took < 5
        c.op.proc.wait(20)  # type: ignore[union-attr]
        assert c.op.proc.returncode == 0  # type: ignore[union-attr]
        assert "released the Lease" in c.op.log()
        kube.create(model("after", ["zstack"], **QWEN), hns)
        kube.wait_condition("Model", "after", hns, "Ready", timeout=15)
        assert audit_writes(cp, "modelsync-d", until=stopped) == []
        assert audit_writes(cp, "modelsync-c", since=stopped + 1) == []
    finally:
        c.stop()
        d.stop()


def holder_stays(kube: K8s, name: str, holder: str, seconds: float) -> None:
    """The Lease's holder is ``holder`` ("" when free) at every look for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert (lease(kube, name).get("spec") or {}).get("holderIdentity", "") == holder, lease(kube, name)
        time.sleep(0.2)


def test_every_replica_is_ready_and_leadership_moves_when_the_leader_stops(cp: ControlPlane, kube: K8s) -> None:
    # r1's Node does not exist: a Node that cannot be read counts as schedulable, never costs the Lease
    r1 = Replica(cp, "modelsync-r1", "--lease-name=ha-ready", node=f"node-missing-{uuid.uuid4().hex[:8]}").start()
    r2 = Replica(cp, "modelsync-r2", "--lease-name=ha-ready")
    try:
        wait_holder(kube, "ha-ready", {"modelsync-r1"}, timeout=60)
        r2.start()
        assert r1.wait_ready(leader=True)["leader"] is True
        standby = r2.wait_standing_by()
        assert standby["holder"] == "modelsync-r1" and standby["listed"] is True
        # through more than one renewal (5 s): both stay ready and live, only r1 leads
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline:
            assert r1.get("/readyz").status_code == 200 and r2.get("/readyz").status_code == 200
            assert r1.get("/leader").status_code == 200 and r2.get("/leader").status_code == 503
            time.sleep(0.5)
        assert r1.live() == 200 and r2.live() == 200
        assert (lease(kube, "ha-ready").get("spec") or {}).get("holderIdentity") == "modelsync-r1"

        r1.sigterm()
        stopped = time.monotonic()
        wait_holder(kube, "ha-ready", {"modelsync-r2"}, timeout=10)
        assert r2.wait_ready(timeout=5, leader=True)["leader"] is True and r2.get("/leader").status_code == 200
        print(f"the standby led {time.monotonic() - stopped:.2f}s after SIGTERM to the leader")
        assert r1.op.proc.wait(20) == 0  # type: ignore[union-attr]
    finally:
        r1.stop()
        r2.stop()


def test_the_leader_hands_the_lease_over_while_its_node_is_cordoned(
        cp: ControlPlane, kube: K8s, zsim: Sim, hns: str, nodes: tuple[str, str]) -> None:
    """`kubectl drain` cordons the Node first: the leader there hands the Lease to the standby on
    another Node and, no longer ready, can be evicted; it does not lead again while cordoned."""
    node_g, node_h = nodes
    g = Replica(cp, "modelsync-g", "--lease-name=ha-cordon", node=node_g).start()
    h = Replica(cp, "modelsync-h", "--lease-name=ha-cordon", node=node_h)
    try:
        wait_holder(kube, "ha-cordon", {"modelsync-g"}, timeout=60)
        h.start()
        assert g.wait_ready()["node"] == node_g
        h.wait_standing_by()
        zregistry(kube, hns, zsim)
        kube.create(model("before", ["zstack"], **QWEN), hns)
        kube.wait_condition("Model", "before", hns, "Ready", timeout=30)

        cordon(kube, node_g)
        _, took = wait_holder(kube, "ha-cordon", {"modelsync-h"}, timeout=20)
        handed = time.time()
        print(f"cordoned: the standby held the Lease {took:.2f}s after the leader's Node was cordoned")
        assert took < 12  # one renew tick (5 s), the release, one look of the standby (2 s)
        assert h.wait_ready(timeout=10, leader=True)["leader"] is True
        r = g.get("/readyz")
        assert r.status_code == 200, r.text  # a standby, ready like any other
        assert r.json()["leader"] is False and r.json()["nodeUnschedulable"] is True
        assert g.get("/leader").status_code == 503 and g.live() == 200
        assert g.op.proc is not None and g.op.proc.poll() is None  # still running, as a standby
        assert "stepping down" in g.op.log() and "released the Lease" in g.op.log()
        kube.create(model("during", ["zstack"], **QWEN), hns)
        kube.wait_condition("Model", "during", hns, "Ready", timeout=15)
        assert any("models/status" in w for w in audit_writes(cp, "modelsync-h", since=handed))
        assert audit_writes(cp, "modelsync-g", since=handed) == []

        # the Lease free and g's Node still cordoned: g does not take it
        h.sigterm()
        assert h.op.proc.wait(20) == 0  # type: ignore[union-attr]
        wait_holder(kube, "ha-cordon", {""}, timeout=5)
        holder_stays(kube, "ha-cordon", "", seconds=8)  # four looks of a standby
        assert g.get("/leader").status_code == 503

        # uncordoned while h leads again: g leads only once h stops
        h.start()
        wait_holder(kube, "ha-cordon", {"modelsync-h"}, timeout=60)
        cordon(kube, node_g, unschedulable=False)
        holder_stays(kube, "ha-cordon", "modelsync-h", seconds=6)
        assert g.get("/leader").status_code == 503
        h.wait_ready()
        h.sigterm()
        _, took = wait_holder(kube, "ha-cordon", {"modelsync-g"}, timeout=10)
        assert took < 5
        assert g.wait_ready(timeout=10, leader=True)["leader"] is True
        kube.create(model("after", ["zstack"], **QWEN), hns)
        kube.wait_condition("Model", "after", hns, "Ready", timeout=15)
    finally:
        g.stop()
        h.stop()


def test_a_leader_that_cannot_renew_stops_writing_before_the_lease_can_be_taken(
        cp: ControlPlane, kube: K8s, zsim: Sim, hns: str) -> None:
    """Fencing by time: a leader frozen past its renew deadline (SIGSTOP: a long GC pause, a
    stalled node) finds on waking that it may no longer write, and stops without a write."""
    e = Replica(cp, "modelsync-e", "--lease-name=ha-fence").start()
    wait_holder(kube, "ha-fence", {"modelsync-e"}, timeout=60)
    f = Replica(cp, "modelsync-f", "--lease-name=ha-fence").start()
    try:
        f.wait_standing_by()
        zregistry(kube, hns, zsim)
        kube.create(model("one", ["zstack"], **QWEN), hns)
        kube.wait_condition("Model", "one", hns, "Ready", timeout=30)
        frozen = time.time()
        os.killpg(e.op.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        _, took = wait_holder(kube, "ha-fence", {"modelsync-f"}, timeout=30)
        print(f"the standby took over a frozen leader's Lease after {took:.1f}s")
        kube.create(model("two", ["zstack"], **QWEN), hns)
        kube.wait_condition("Model", "two", hns, "Ready", timeout=15)
        os.killpg(e.op.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        assert e.op.proc.wait(20) == 1  # type: ignore[union-attr]
        assert "no longer the leader" in e.op.log()
        assert audit_writes(cp, "modelsync-e", since=frozen) == []
        assert (lease(kube, "ha-fence").get("spec") or {}).get("holderIdentity") == "modelsync-f"
    finally:
        e.stop()
        f.stop()


def test_shards_sync_only_their_own_objects(cp: ControlPlane, kube: K8s, zsim: Sim, hns: str) -> None:
    a = Replica(cp, "modelsync-shard-a", "--selector=shard=a", "--lease-name=modelsync-shard-a").start()
    b = Replica(cp, "modelsync-shard-b", "--selector=shard=b", "--lease-name=modelsync-shard-b").start()
    try:
        # each shard leads its own Lease
        assert wait_holder(kube, "modelsync-shard-a", {"modelsync-shard-a"}, timeout=60)
        assert wait_holder(kube, "modelsync-shard-b", {"modelsync-shard-b"}, timeout=60)
        started = time.time()
        zregistry(kube, hns, zsim, "za", labels={"shard": "a"})
        zregistry(kube, hns, zsim, "zb", labels={"shard": "b"})
        for name, shard, reg in (("ma", "a", "za"), ("mb", "b", "zb"), ("mc", "c", "za")):
            body = model(name, [reg], **{**QWEN, "installPath": f"/models/{name}"})
            body["metadata"]["labels"] = {"shard": shard}
            kube.create(body, hns)
        kube.wait_condition("Model", "ma", hns, "Ready", timeout=30)
        kube.wait_condition("Model", "mb", hns, "Ready", timeout=30)
        time.sleep(2)  # a quiet period: no shard may reconcile mc meanwhile
        assert not (kube.get("Model", "mc", hns).get("status") or {}).get("conditions"), "no shard owns shard=c"
        kube.patch("Model", "mc", hns, {"metadata": {"labels": {"shard": "a"}}})  # moved into shard a
        kube.wait_condition("Model", "mc", hns, "Ready", timeout=30)

        def objects(user: str) -> set[str]:
            return {w.split()[-1].split("/", 1)[1] for w in audit_writes(cp, user, since=started)
                    if w.split()[1].startswith(("models", "modelregistries"))}

        assert objects("modelsync-shard-a") == {"ma", "mc", "za"}
        assert objects("modelsync-shard-b") == {"mb", "zb"}
        for replica, n in ((a, 2), (b, 1)):  # each counts only its own
            metrics = replica.get("/metrics").text
            assert f'modelsync_resources{{condition="Ready",kind="Model",status="True"}} {n:.1f}' in metrics
    finally:
        a.stop()
        b.stop()



def audit_write_times(cp: ControlPlane, user: str) -> list[float]:
    """When ``user`` made each of its writes (Leases left out), from the audit log."""
    import datetime

    out = []
    for line in audit_log(cp):
        e = json.loads(line)
        if e.get("stage") != "ResponseComplete" or e.get("user", {}).get("username") != user:
            continue
        if e.get("verb") not in WRITES or (e.get("objectRef") or {}).get("apiGroup") == "coordination.k8s.io":
            continue
        out.append(datetime.datetime.fromisoformat(e["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp())
    return sorted(out)


def test_a_rolling_update_hands_the_lease_over_with_no_two_writers(
        cp: ControlPlane, kube: K8s, zsim: Sim, hns: str) -> None:
    """deploy/'s rollout, step by step as the Deployment controller takes it with maxSurge 1 and
    maxUnavailable 0: every pod turns Ready (leader or not), so each new pod's readiness lets one
    old pod go; the Lease moves to a new pod and at no moment do two replicas write (the audit log)."""
    import threading

    old = [Replica(cp, f"modelsync-old-{i}", "--lease-name=ha-roll").start() for i in (1, 2)]
    new: list[Replica] = []
    created: list[str] = []
    stop = threading.Event()

    def create_models() -> None:  # work arriving all through the rollout
        i = 0
        while not stop.is_set():
            name = f"roll-{i}"
            kube.create(model(name, ["zstack"], **{**QWEN, "installPath": f"/models/{name}"}), hns)
            created.append(name)
            i += 1
            stop.wait(0.5)

    writer = threading.Thread(target=create_models)
    try:
        wait_holder(kube, "ha-roll", {r.identity for r in old}, timeout=60)
        for r in old:  # all pods Ready: the Deployment is Available with 2/2
            r.wait_ready()
        zregistry(kube, hns, zsim)
        kube.create(model("before", ["zstack"], **QWEN), hns)
        kube.wait_condition("Model", "before", hns, "Ready", timeout=30)
        writer.start()
        for i, going in enumerate(old, start=1):
            surge = Replica(cp, f"modelsync-new-{i}", "--lease-name=ha-roll").start()
            new.append(surge)
            started = time.monotonic()
            surge.wait_ready(timeout=60)  # ready without the Lease: the rollout goes on
            print(f"rollout: {surge.identity} Ready {time.monotonic() - started:.1f}s after its start")
            going.sigterm()  # the old pod the new one replaces
            assert going.op.proc is not None and going.op.proc.wait(30) == 0
        holder, _ = wait_holder(kube, "ha-roll", {r.identity for r in new}, timeout=30)
        stop.set()
        writer.join(10)
        for r in new:
            r.wait_ready(timeout=10)
        for name in created:
            kube.wait_condition("Model", name, hns, "Ready", timeout=60)
        assert len(created) >= 4
        kube.create(model("after", ["zstack"], **QWEN), hns)
        kube.wait_condition("Model", "after", hns, "Ready", timeout=30)

        # the apiserver's record: each replica's writes fall in a window of its own
        windows = sorted((times[0], times[-1], r.identity) for r in (*old, *new)
                         if (times := audit_write_times(cp, r.identity)))
        print("write windows:", [(who, round(b - a, 1)) for a, b, who in windows])
        assert any(who == holder for _, _, who in windows)
        for (a_start, a_end, a), (b_start, b_end, b) in zip(windows, windows[1:]):
            assert a_end < b_start, f"{a} wrote until {a_end}, {b} from {b_start}"
    finally:
        stop.set()
        for r in (*old, *new):
            r.stop()


def test_a_start_lists_existing_objects_in_pages(cp: ControlPlane, kube: K8s, zsim: Sim, hns: str) -> None:
    """kopf's initial listing in pages (``MODELSYNC_LIST_CHUNK``, 500 by default): a start over
    10,000 Models never holds them all at once. Five Models in pages of two: three list requests,
    and every Model is synced."""
    zregistry(kube, hns, zsim)
    names = [f"paged-{i}" for i in range(5)]
    for name in names:
        kube.create(model(name, ["zstack"], description="paged", installPath=f"/models/{name}"), hns)
    user = "modelsync-paged"
    op = OperatorProcess(cp.user_kubeconfig(user, groups=["system:masters"]), env={"MODELSYNC_LIST_CHUNK": "2"},
                         args=("--namespace", hns)).start()
    try:
        for name in names:
            kube.wait_condition("Model", name, hns, "Ready", timeout=60)
    finally:
        op.stop()
    lists = []
    for line in audit_log(cp):
        e = json.loads(line)
        ref = e.get("objectRef") or {}
        if (e.get("stage") == "ResponseComplete" and e.get("user", {}).get("username") == user
                and e.get("verb") == "list" and ref.get("resource") == "models"):
            lists.append(e["requestURI"])
    assert len(lists) == 3, lists
    assert all("limit=2" in uri for uri in lists), lists
    assert sum("continue=" in uri for uri in lists) == 2, lists


def test_the_first_models_hold_their_registry_and_secret_without_reading_them(
        cp: ControlPlane, kube: K8s, zsim: Sim, hns: str) -> None:
    """The in-use finalizer goes onto a registry and its Secret when the first resources using it
    are reconciled. The operator has both cached (the registry's watch, its first check's read of
    the Secret), so a burst of Models into a namespace adds two patches and no read; a restart
    sees both held in their watch events and neither reads nor writes them."""
    zregistry(kube, hns, zsim)
    user = "modelsync-hold"
    port = free_port()
    op = OperatorProcess(cp.user_kubeconfig(user, groups=["system:masters"]),
                         args=("--namespace", hns, f"--metrics-addr=127.0.0.1:{port}")).start()

    def registry_checks() -> float:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:  # not serving yet
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("modelsync_reconciles_total{") and 'kind="ModelRegistry"' in line)

    try:
        kube.wait_condition("ModelRegistry", "zstack", hns, "Ready", timeout=60)
        since = time.time()
        for i in range(3):
            kube.create(model(f"held-{i}", ["zstack"], description="held", installPath=f"/models/held-{i}"), hns)
        for i in range(3):
            kube.wait_condition("Model", f"held-{i}", hns, "Ready", timeout=60)
        op.stop()
        burst = audit_requests(cp, user, since=since)
        restarted = time.time()
        op.start()
        # the restarted operator's first registry check (where it holds what is in use), then a
        # new Model through the same registry
        eventually(lambda: registry_checks() >= 1, "the registry checked after the restart", timeout=60)
        kube.create(model("held-3", ["zstack"], description="held", installPath="/models/held-3"), hns)
        kube.wait_condition("Model", "held-3", hns, "Ready", timeout=60)
    finally:
        op.stop()
    assert "modelsync.io/in-use" in kube.get("ModelRegistry", "zstack", hns)["metadata"]["finalizers"]
    assert "modelsync.io/in-use" in (kube.core.read_namespaced_secret("zstack-creds", hns).metadata.finalizers or [])
    on_them = [r for r in burst if r.endswith((f" {hns}/zstack", f" {hns}/zstack-creds"))]
    assert sorted(on_them) == [f"patch modelregistries {hns}/zstack", f"patch secrets {hns}/zstack-creds"], burst
    assert [r for r in burst if r.startswith("get ")] == [], burst
    after = audit_requests(cp, user, since=restarted)
    assert [r for r in after if r.endswith(f" {hns}/zstack") or r.startswith(("patch secrets", "update secrets"))] == [], after
    reads = [r for r in after if r.startswith("get ") and not r.startswith("get None")]  # (None: discovery)
    assert reads == [f"get secrets {hns}/zstack-creds"], after  # its data, once


async def test_hold_writes_without_a_read_and_reads_only_when_refused(
        cp: ControlPlane, kube: K8s, hns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """KubeWriter.hold against the apiserver: a Secret is held by one strategic merge patch (the
    apiserver merges the finalizer into the list), a custom resource by one merge patch guarded by
    the cached resourceVersion; a stale cache (409) or a Secret being deleted (no new finalizer can
    be added to it) is read and decided again."""
    import logging

    import kopf
    from kopf._cogs.clients import auth
    from kopf._cogs.structs import credentials

    from modelsync.kube import KubeWriter

    user = "modelsync-hold-writer"
    monkeypatch.setenv("KUBECONFIG", str(cp.user_kubeconfig(user, groups=["system:masters"])))
    settings = kopf.OperatorSettings()
    vault = credentials.Vault()
    await vault.populate({"test": kopf.login_with_kubeconfig(logger=logging.getLogger("test"), settings=settings)})
    auth.vault_var.set(vault)
    writer = KubeWriter(settings)
    keep, in_use = "example.com/keep", "modelsync.io/in-use"

    def secret_finalizers(name: str) -> list[str]:
        return list(kube.core.read_namespaced_secret(name, hns).metadata.finalizers or [])

    def requests(since: float) -> list[str]:
        return [" ".join(r.split(" ")[:2]) for r in audit_requests(cp, user, since=since)]

    try:
        kube.core.create_namespaced_secret(hns, {"metadata": {"name": "s1", "finalizers": [keep]}, "stringData": {"a": "b"}})
        since = time.time()
        assert await writer.hold("Secret", hns, "s1", in_use, True) is True
        assert await writer.hold("Secret", hns, "s1", in_use, True) is True  # merged: still once
        assert sorted(secret_finalizers("s1")) == [keep, in_use]
        assert requests(since) == ["patch secrets", "patch secrets"]

        kube.core.create_namespaced_secret(hns, {"metadata": {"name": "s2", "finalizers": [keep]}, "stringData": {"a": "b"}})
        kube.core.delete_namespaced_secret("s2", hns)  # Terminating: kept by its finalizer
        since = time.time()
        assert await writer.hold("Secret", hns, "s2", in_use, True) is False
        assert secret_finalizers("s2") == [keep]
        assert requests(since) == ["patch secrets", "get secrets"]

        assert await writer.hold("Secret", hns, "absent", in_use, True) is True

        kube.create({"kind": "ModelRegistry", "metadata": {"name": "r", "finalizers": [keep]}, "spec": {
            "backend": "zstack", "endpoint": "http://127.0.0.1:9", "credentialsSecretRef": {"name": "s1"},
            "zstack": {"modelCenterUuid": CENTER}}}, hns)
        known = kube.get("ModelRegistry", "r", hns)
        since = time.time()
        assert await writer.hold("ModelRegistry", hns, "r", in_use, True, known=known) is True
        assert kube.get("ModelRegistry", "r", hns)["metadata"]["finalizers"] == [keep, in_use]
        assert requests(since) == ["patch modelregistries"]

        assert await writer.hold("ModelRegistry", hns, "r", in_use, False) is True
        stale = kube.get("ModelRegistry", "r", hns)
        kube.custom.patch_namespaced_custom_object(GROUP, VERSION, hns, "modelregistries", "r",
                                                   {"metadata": {"labels": {"changed": "after-the-read"}}})
        since = time.time()
        assert await writer.hold("ModelRegistry", hns, "r", in_use, True, known=stale) is True
        now = kube.get("ModelRegistry", "r", hns)["metadata"]
        assert now["finalizers"] == [keep, in_use] and now["labels"] == {"changed": "after-the-read"}
        assert requests(since) == ["patch modelregistries", "get modelregistries", "patch modelregistries"]
    finally:
        await vault.close()
        for name in ("s1", "s2"):
            with contextlib.suppress(ApiException):
                kube.core.patch_namespaced_secret(name, hns, {"metadata": {"finalizers": None}})
        with contextlib.suppress(ApiException):
            kube.custom.patch_namespaced_custom_object(GROUP, VERSION, hns, "modelregistries", "r",
                                                       {"metadata": {"finalizers": None}})
