"""The metrics' collectors and counters, the watch-stream tracker and the HTTP server, without an
apiserver (tests/integration/test_metrics.py scrapes a real operator)."""
from __future__ import annotations

import logging
import re
from typing import Any, AsyncIterator

import httpx
import pytest
from prometheus_client import CollectorRegistry

from modelsync import metrics
from modelsync.__main__ import PlainFormatter
from modelsync.backends import http
from modelsync.controller import Controller, Key
from modelsync.reconcile import Outcome, Retry, Stop
from modelsync.simulators.server import free_port


class Reconciler:
    reader = None

    def forget(self, uid: str) -> None:
        pass


def controller() -> Controller:
    return Controller(Reconciler(), writer=None, workers=1)  # type: ignore[arg-type]


def body(kind: str, name: str, ns: str = "ns", *, ready: str | None = None, synced: str | None = None,
         backend: str | None = None, registries: list[dict[str, str]] | None = None) -> dict[str, Any]:
    conditions = [{"type": t, "status": s} for t, s in (("Ready", ready), ("Synced", synced)) if s]
    spec: dict[str, Any] = {}
    if backend:
        spec["backend"] = backend
    if registries is not None:
        spec["registries"] = registries
    return {"kind": kind, "metadata": {"name": name, "namespace": ns, "uid": f"u-{name}", "generation": 1,
                                       "resourceVersion": "1"},
            "spec": spec, "status": {"conditions": conditions}}


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_result_of_each_outcome() -> None:
    assert metrics.result_of(None) == "error"
    assert metrics.result_of(Outcome({}, [], None)) == "ok"
    assert metrics.result_of(Outcome({}, [], Retry("later", 1.0))) == "retry"
    assert metrics.result_of(Outcome({}, [], Stop("fix the spec"))) == "stop"


def test_backend_of_a_registry_and_of_the_registries_a_resource_names() -> None:
    objects = {Key("ModelRegistry", "ns", "z"): body("ModelRegistry", "z", backend="zstack"),
               Key("ClusterModelRegistry", "", "n"): body("ClusterModelRegistry", "n", "", backend="nemo")}
    reg = Key("ModelRegistry", "ns", "z")
    assert metrics.backend_of(objects, reg, objects[reg]) == "zstack"
    m = Key("Model", "ns", "m")
    assert metrics.backend_of(objects, m, body("Model", "m", registries=[{"name": "z"}])) == "zstack"
    both = body("Model", "m", registries=[{"name": "z"}, {"name": "n", "kind": "ClusterModelRegistry"}])
    assert metrics.backend_of(objects, m, both) == "nemo,zstack"
    assert metrics.backend_of(objects, m, body("Model", "m", registries=[{"name": "gone"}])) == "unknown"
    assert metrics.backend_of(objects, m, body("Model", "m", registries=[])) == "none"
    other_ns = Key("Model", "other", "m")  # a ModelRegistry is looked up in the resource's own namespace
    assert metrics.backend_of(objects, other_ns, body("Model", "m", "other", registries=[{"name": "z"}])) == "unknown"


def test_the_controller_collector_counts_conditions_queue_and_leadership() -> None:
    c = controller()
    c.objects[Key("Model", "ns", "a")] = body("Model", "a", ready="True", synced="True")
    c.objects[Key("Model", "ns", "b")] = body("Model", "b", ready="False", synced="False")
    c.objects[Key("Model", "ns", "c")] = body("Model", "c")
    c.objects[Key("ModelService", "ns", "s")] = body("ModelService", "s", ready="True", synced="False")
    c.objects[Key("ModelRegistry", "ns", "z")] = body("ModelRegistry", "z", ready="False")
    c.objects[Key("ClusterModelRegistry", "", "n")] = body("ClusterModelRegistry", "n", "", ready="Weird")
    c.queue.add(Key("Model", "ns", "a"), 300)
    c.queue.add(Key("Model", "ns", "b"))
    leading = [True]
    registry = CollectorRegistry()
    registry.register(metrics.ControllerCollector(c, lambda: leading[0]))

    def resources(kind: str, condition: str, status: str) -> float | None:
        return value(registry, "modelsync_resources", kind=kind, condition=condition, status=status)

    assert [resources("Model", "Ready", s) for s in ("True", "False", "Unknown")] == [1, 1, 1]
    assert [resources("Model", "Synced", s) for s in ("True", "False", "Unknown")] == [1, 1, 1]
    assert [resources("ModelService", "Synced", s) for s in ("True", "False", "Unknown")] == [0, 1, 0]
    assert [resources("ModelRegistry", "Ready", s) for s in ("True", "False", "Unknown")] == [0, 1, 0]
    assert resources("ClusterModelRegistry", "Ready", "Unknown") == 1  # not True/False: Unknown
    assert resources("ModelRegistry", "Synced", "True") is None  # registries have no Synced
    assert value(registry, "modelsync_reconciles_queued") == 2
    assert value(registry, "modelsync_reconciles_in_flight") == 0
    assert value(registry, "modelsync_leader") == 1
    leading[0] = False
    c.objects.pop(Key("Model", "ns", "a"))
    assert value(registry, "modelsync_leader") == 0  # read when scraped, not when registered
    assert resources("Model", "Ready", "True") == 0


async def test_in_flight_is_what_workers_hold() -> None:
    c = controller()
    c.queue.add(Key("Model", "ns", "a"))
    registry = CollectorRegistry()
    registry.register(metrics.ControllerCollector(c, lambda: True))
    key = await c.queue.get()
    assert value(registry, "modelsync_reconciles_in_flight") == 1 and value(registry, "modelsync_reconciles_queued") == 0
    c.queue.done(key)
    assert value(registry, "modelsync_reconciles_in_flight") == 0


def test_the_reconcile_observer_counts_by_kind_backend_and_result() -> None:
    c = controller()
    c.objects[Key("ModelRegistry", "ns", "z")] = body("ModelRegistry", "z", backend="zstack")
    observe = metrics.reconcile_observer(c)
    m = body("Model", "m", registries=[{"name": "z"}])
    R = metrics.REGISTRY

    def count(result: str) -> float:
        return value(R, "modelsync_reconciles_total", kind="Model", backend="zstack", result=result) or 0.0

    before = {r: count(r) for r in ("ok", "retry", "stop", "error")}
    hist_before = value(R, "modelsync_reconcile_duration_seconds_count", kind="Model", backend="zstack") or 0.0
    observe(Key("Model", "ns", "m"), m, Outcome({}, [], None), 0.02)
    observe(Key("Model", "ns", "m"), m, Outcome({}, [], Retry("503", 2.0)), 0.5)
    observe(Key("Model", "ns", "m"), m, Outcome({}, [], Stop("invalid")), 0.1)
    observe(Key("Model", "ns", "m"), m, None, 0.1)
    observe(Key("Model", "ns", "m"), m, Outcome({}, [], None), 0.02)
    assert {r: count(r) - before[r] for r in before} == {"ok": 2, "retry": 1, "stop": 1, "error": 1}
    assert value(R, "modelsync_reconcile_duration_seconds_count", kind="Model", backend="zstack") == hist_before + 5
    assert (value(R, "modelsync_reconcile_duration_seconds_bucket", kind="Model", backend="zstack", le="0.025")
            or 0) >= 2


def test_registry_requests_and_drift() -> None:
    R = metrics.REGISTRY
    labels = dict(backend="nemo", method="PATCH", status="ConnectTimeout")
    before = value(R, "modelsync_registry_requests_total", **labels) or 0.0
    metrics.observe_request("nemo", "PATCH", "ConnectTimeout", 5.0)
    assert value(R, "modelsync_registry_requests_total", **labels) == before + 1
    assert value(R, "modelsync_registry_request_duration_seconds_bucket", backend="nemo", method="PATCH", le="5.0")
    d0 = value(R, "modelsync_drift_detected_total", kind="Model", backend="instill") or 0.0
    metrics.drift("Model", "instill", ["description", "task"])
    metrics.drift("Model", "instill", ["description"])
    assert value(R, "modelsync_drift_detected_total", kind="Model", backend="instill") == d0 + 2
    assert value(R, "modelsync_drift_fields_total", kind="Model", backend="instill", field="description") >= 2
    assert value(R, "modelsync_drift_fields_total", kind="Model", backend="instill", field="task") >= 1


def test_bind_observes_the_controller_and_every_transport() -> None:
    c = controller()
    previous = http.default_observer
    try:
        metrics.bind(c, leader=lambda: False)
        metrics.bind(c, leader=lambda: True)  # again (a second operator run in one process): replaced, not doubled
        assert http.default_observer is metrics.observe_request
        assert len(c.observers) == 2 and value(metrics.REGISTRY, "modelsync_leader") == 1
        text = metrics.generate_latest(metrics.REGISTRY).decode()
        assert "process_cpu_seconds_total" in text or "python_gc_objects_collected_total" in text
    finally:
        http.default_observer = previous
        for collector in metrics._bound:
            metrics.REGISTRY.unregister(collector)
        metrics._bound.clear()


MARK = object()


async def test_the_watch_tracker_notes_the_end_of_each_listing() -> None:
    class Resource:
        plural = "models"

    async def continuous_watch(*, resource: Any, namespace: Any, **_: Any) -> AsyncIterator[Any]:
        yield {"type": None, "object": {"metadata": {"name": "a"}}}
        yield MARK
        yield {"type": "ADDED", "object": {"metadata": {"name": "b"}}}

    tracker = metrics.Watches()
    tracker.installed = True
    wrapped = tracker._wrap(continuous_watch, MARK)
    stream = wrapped(resource=Resource(), namespace="ml", settings=None)
    first = await stream.__anext__()
    assert first["object"]["metadata"]["name"] == "a"
    assert tracker.summary() == {"models@ml": "listing"} and not tracker.listed(["models"])
    assert await stream.__anext__() is MARK  # passed on: kopf needs it
    assert tracker.listed(["models"]) and tracker.summary() == {"models@ml": "watching"}
    assert not tracker.listed(["models", "secrets"])  # no secrets stream yet
    rest = [e async for e in stream]
    assert [e["type"] for e in rest] == ["ADDED"]
    assert tracker.summary() == {"models@ml": "reconnecting"}  # the stream ended; kopf opens another


def test_the_watch_tracker_wraps_kopfs_stream_once() -> None:
    from kopf._cogs.clients import watching

    original = watching.continuous_watch
    tracker = metrics.Watches()
    try:
        tracker.install()
        tracker.install()
        assert watching.continuous_watch is not original
        assert watching.continuous_watch.__wrapped__ is original  # type: ignore[attr-defined]
    finally:
        watching.continuous_watch = original


@pytest.mark.parametrize("addr,expected", [
    (":9090", (None, 9090)), ("0.0.0.0:8081", ("0.0.0.0", 8081)), ("[::1]:9090", ("::1", 9090)),
    ("127.0.0.1:0", ("127.0.0.1", 0)),
])
def test_parse_addr(addr: str, expected: tuple[str | None, int]) -> None:
    assert metrics.parse_addr(addr) == expected


@pytest.mark.parametrize("addr", ["9090", "localhost", "host:port"])
def test_parse_addr_refuses(addr: str) -> None:
    with pytest.raises(ValueError):
        metrics.parse_addr(addr)


async def test_the_server_serves_metrics_readiness_and_leadership() -> None:
    state = {"ready": False, "leader": False}
    registry = CollectorRegistry()
    c = controller()
    registry.register(metrics.ControllerCollector(c, lambda: state["leader"]))
    port = free_port()
    server = metrics.Server(f"127.0.0.1:{port}", registry=registry,
                            ready=lambda: (state["ready"], {"listed": state["ready"]}),
                            leader=lambda: (state["leader"], {"leader": state["leader"]}))
    assert await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            r = await client.get("/metrics")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            assert "modelsync_leader 0.0" in r.text
            r = await client.get("/readyz")
            assert r.status_code == 503 and r.json() == {"listed": False}
            assert (await client.get("/leader")).status_code == 503
            state.update(ready=True, leader=True)
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/leader")).json() == {"leader": True}
            assert "modelsync_leader 1.0" in (await client.get("/metrics")).text
        # the port is taken: a second server says so and the operator runs on without one
        other = metrics.Server(f"127.0.0.1:{port}", ready=lambda: (True, {}), leader=lambda: (True, {}))
        assert await other.start() is False
    finally:
        await server.stop()


def test_plain_log_lines_start_with_a_utc_timestamp() -> None:
    record = logging.LogRecord("modelsync.leader", logging.INFO, __file__, 1, "leading (Lease %s)", ("ns/x",), None)
    line = PlainFormatter().format(record)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO    modelsync\.leader: leading \(Lease ns/x\)",
                        line), line
