"""Prometheus metrics, the readiness endpoints, and what the probes know about kopf's watches.

Everything is registered in :data:`REGISTRY` (this process's own, with the ``process_*`` and
``python_*`` collectors) and served with it by :class:`Server`, an aiohttp server in the
operator's event loop (``--metrics-addr``, default ``:9090``):

* ``GET /metrics`` — the Prometheus text format;
* ``GET /readyz``  — 200 when the initial listing of every watched resource is in this replica's
  caches and, with leader election, it holds the Lease (renewing it, not stepping down): a
  standby is never ready; else 503. The JSON body says why;
* ``GET /leader``  — 200 only on the replica that holds the Lease (always, without election).

Metrics are counted where they happen (the controller's observers, the registry transport's
observer, :func:`drift`) and read at scrape time where they are state (the controller's caches
and queue, leadership): nothing is sampled in the background.

The module imports nothing of kopf's at import time; :data:`WATCHES` reaches into kopf's watch
stream (one wrapper, see :class:`Watches`) because kopf has no public signal for "the initial
listing is done" when a resource has no objects.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
from typing import Any, Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client import gc_collector, platform_collector, process_collector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

logger = logging.getLogger("modelsync.metrics")

#: this process's metrics (not prometheus_client's global registry: tests build their own)
REGISTRY = CollectorRegistry(auto_describe=True)
process_collector.ProcessCollector(registry=REGISTRY)
platform_collector.PlatformCollector(registry=REGISTRY)
gc_collector.GCCollector(registry=REGISTRY)

#: reconciles and registry checks take from milliseconds (nothing to do) to a request timeout
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

RECONCILES = Counter(
    "modelsync_reconciles_total",
    "Reconciles (Model, ModelService) and registry checks (ModelRegistry, ClusterModelRegistry) by result: "
    "ok, retry (a Retry outcome: backoff), stop (a Stop outcome: waits for a new spec), error (the reconcile raised)",
    ["kind", "backend", "result"], registry=REGISTRY)
RECONCILE_SECONDS = Histogram(
    "modelsync_reconcile_duration_seconds", "Duration of one reconcile or registry check (status write excluded)",
    ["kind", "backend"], buckets=DURATION_BUCKETS, registry=REGISTRY)
REQUESTS = Counter(
    "modelsync_registry_requests_total",
    "HTTP requests to registries by backend, method and status (the status code, or the transport "
    "error's type, e.g. ConnectTimeout)",
    ["backend", "method", "status"], registry=REGISTRY)
REQUEST_SECONDS = Histogram(
    "modelsync_registry_request_duration_seconds", "Duration of one HTTP request to a registry",
    ["backend", "method"], buckets=DURATION_BUCKETS, registry=REGISTRY)
DRIFT = Counter(
    "modelsync_drift_detected_total",
    "Times a registry entry was found to differ from a spec that had been synced (changed in the registry)",
    ["kind", "backend"], registry=REGISTRY)
DRIFT_FIELDS = Counter(
    "modelsync_drift_fields_total", "Fields found drifted, counted per field",
    ["kind", "backend", "field"], registry=REGISTRY)

RESOURCE_KINDS = ("Model", "ModelService")
REGISTRY_KINDS = ("ModelRegistry", "ClusterModelRegistry")
CONDITION_STATUSES = ("True", "False", "Unknown")


# ---------------------------------------------------------------- counted where they happen


def drift(kind: str, backend: str, fields: Iterable[str] = ()) -> None:
    """A registry entry of a ``kind`` resource differs from its synced spec in ``fields``."""
    DRIFT.labels(kind, backend).inc()
    for field in fields:
        DRIFT_FIELDS.labels(kind, backend, field).inc()


def observe_request(backend: str, method: str, status: str, seconds: float) -> None:
    """The registry transport's observer (``backends.http.default_observer``)."""
    REQUESTS.labels(backend, method, status).inc()
    REQUEST_SECONDS.labels(backend, method).observe(seconds)


def result_of(outcome: Any) -> str:
    """ok, retry, stop, or error (None: the reconcile raised)."""
    if outcome is None:
        return "error"
    error = getattr(outcome, "error", None)
    if error is None:
        return "ok"
    return {"Retry": "retry", "Stop": "stop"}.get(type(error).__name__, "error")


def backend_of(objects: Mapping[Any, Mapping[str, Any]], key: Any, body: Mapping[str, Any]) -> str:
    """The backend a reconcile talked to: a registry's own ``spec.backend``; for a resource, the
    backends of the registries it names (from the controller's cache), sorted and joined with
    "," when there are several ("a,b"); "unknown" for a registry not in the cache,
    "none" when it names no registry."""
    spec = body.get("spec") or {}
    if key.kind in REGISTRY_KINDS:
        return spec.get("backend") or "unknown"
    backends = set()
    for ref in spec.get("registries") or []:
        kind = ref.get("kind") or "ModelRegistry"
        reg_key = type(key)(kind, key.namespace if kind == "ModelRegistry" else "", ref.get("name") or "")
        registry = objects.get(reg_key)
        backends.add(((registry or {}).get("spec") or {}).get("backend") or "unknown")
    return ",".join(sorted(backends)) or "none"


def reconcile_observer(controller: Any) -> Callable[[Any, Mapping[str, Any], Any, float], None]:
    """An observer for ``controller.observers``: counts and times each reconcile."""

    def observe(key: Any, body: Mapping[str, Any], outcome: Any, seconds: float) -> None:
        backend = backend_of(controller.objects, key, body)
        RECONCILES.labels(key.kind, backend, result_of(outcome)).inc()
        RECONCILE_SECONDS.labels(key.kind, backend).observe(seconds)

    return observe


# ---------------------------------------------------------------- read at scrape time


def condition_status(body: Mapping[str, Any], type_: str) -> str:
    for c in (body.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            status = c.get("status")
            return status if status in ("True", "False") else "Unknown"
    return "Unknown"


class ControllerCollector(Collector):
    """Resources by kind and condition, the work queue, and leadership, from the controller's
    caches when scraped (runs in the event loop: the caches are never read from another thread)."""

    def __init__(self, controller: Any, leader: Callable[[], bool]) -> None:
        self.controller = controller
        self.leader = leader

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # unchecked: the families depend on the caches

    def collect(self) -> Iterator[GaugeMetricFamily]:
        resources = GaugeMetricFamily(
            "modelsync_resources", "Objects in this replica's caches by kind and condition status "
            "(Ready and Synced for Models and ModelServices, Ready for registries; Unknown: no such condition yet)",
            labels=["kind", "condition", "status"])
        counts: dict[tuple[str, str, str], int] = {}
        for kind in RESOURCE_KINDS:
            for condition in ("Ready", "Synced"):
                for status in CONDITION_STATUSES:
                    counts[(kind, condition, status)] = 0
        for kind in REGISTRY_KINDS:
            for status in CONDITION_STATUSES:
                counts[(kind, "Ready", status)] = 0
        for key, body in list(self.controller.objects.items()):
            conditions = ("Ready", "Synced") if key.kind in RESOURCE_KINDS else ("Ready",)
            for condition in conditions:
                label = (key.kind, condition, condition_status(body, condition))
                counts[label] = counts.get(label, 0) + 1
        for labels, n in counts.items():
            resources.add_metric(list(labels), n)
        yield resources
        queue = self.controller.queue
        yield GaugeMetricFamily("modelsync_reconciles_in_flight", "Keys a worker is processing now",
                                value=queue.in_flight)
        yield GaugeMetricFamily("modelsync_reconciles_queued",
                                "Keys waiting in the work queue, including those scheduled for a later resync",
                                value=len(queue))
        yield GaugeMetricFamily("modelsync_leader", "1 when this replica holds the Lease and reconciles "
                                "(always 1 without leader election), else 0", value=1 if self.leader() else 0)


_bound: list[Collector] = []


def bind(controller: Any, leader: Callable[[], bool]) -> None:
    """Count this controller's reconciles and every registry request, and collect its state."""
    from .backends import http

    for collector in _bound:
        REGISTRY.unregister(collector)
    _bound.clear()
    collector = ControllerCollector(controller, leader)
    REGISTRY.register(collector)
    _bound.append(collector)
    controller.observers.append(reconcile_observer(controller))
    http.default_observer = observe_request


# ---------------------------------------------------------------- kopf's watch streams


class Watches:
    """Which of kopf's watch streams run and which have delivered their initial listing.

    kopf lists, then watches, each resource in ``kopf._cogs.clients.watching.continuous_watch``
    and marks the end of the listing with ``Bookmark.LISTED`` (also when nothing was listed) but
    tells no handler. :meth:`install` wraps that function once to note it; events pass unchanged.
    """

    def __init__(self) -> None:
        #: "plural" or "plural@namespace" → {"listed": bool, "open": bool}
        self.streams: dict[str, dict[str, bool]] = {}
        self.installed = False

    def install(self) -> None:
        if self.installed:
            return
        try:
            from kopf._cogs.clients import watching
        except ImportError:  # pragma: no cover - another kopf layout
            logger.warning("kopf's watch streams cannot be followed: /readyz will not wait for listings")
            return
        original = getattr(watching, "continuous_watch", None)
        listed = getattr(getattr(watching, "Bookmark", None), "LISTED", None)
        if original is None or listed is None:  # pragma: no cover
            logger.warning("kopf's watch streams cannot be followed: /readyz will not wait for listings")
            return
        watching.continuous_watch = self._wrap(original, listed)
        self.installed = True

    def _wrap(self, original: Callable[..., Any], listed_mark: object) -> Callable[..., Any]:
        tracker = self

        @functools.wraps(original)
        async def continuous_watch(*args: Any, **kwargs: Any) -> Any:
            name = stream_name(kwargs.get("resource"), kwargs.get("namespace"))
            state = tracker.streams.setdefault(name, {"listed": False, "open": False})
            state["open"] = True
            try:
                async with contextlib.aclosing(original(*args, **kwargs)) as events:
                    async for event in events:
                        if event is listed_mark:
                            state["listed"] = True
                        yield event
            finally:
                state["open"] = False

        return continuous_watch

    def listed(self, plurals: Iterable[str]) -> bool:
        """Every stream has listed, and each of ``plurals`` has one."""
        if not self.installed:
            return True
        seen = {name.split("@", 1)[0] for name, state in self.streams.items() if state["listed"]}
        return set(plurals) <= seen and all(state["listed"] for state in self.streams.values())

    def summary(self) -> dict[str, str]:
        return {name: ("watching" if state["open"] else "reconnecting") if state["listed"] else "listing"
                for name, state in sorted(self.streams.items())}


def stream_name(resource: Any, namespace: Any) -> str:
    plural = getattr(resource, "plural", None) or str(resource)
    return f"{plural}@{namespace}" if namespace else plural


#: the one tracker of this process
WATCHES = Watches()


# ---------------------------------------------------------------- the HTTP server


def parse_addr(addr: str) -> tuple[str | None, int]:
    """``:9090`` (every interface), ``127.0.0.1:9090``, ``[::1]:9090`` → (host or None, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not HOST:PORT: {addr!r}")
    host = host.strip("[]")
    return (host or None), int(port)


Check = Callable[[], tuple[bool, dict[str, Any]]]


class Server:
    """``/metrics``, ``/readyz`` and ``/leader`` on ``addr`` (see the module doc)."""

    def __init__(self, addr: str, *, ready: Check, leader: Check, registry: CollectorRegistry = REGISTRY) -> None:
        self.host, self.port = parse_addr(addr)
        self.ready = ready
        self.leader = leader
        self.registry = registry
        self._runner: Any = None

    async def start(self) -> bool:
        """Serve; False (logged) when the address cannot be bound: the operator runs on without."""
        from aiohttp import web

        app = web.Application()
        app.add_routes([web.get("/metrics", self._metrics), web.get("/readyz", self._check(self.ready)),
                        web.get("/leader", self._check(self.leader))])
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except OSError as exc:
            logger.error("metrics and readiness cannot be served on %s:%s: %s", self.host or "", self.port, exc)
            await runner.cleanup()
            return False
        self._runner = runner
        logger.info("serving /metrics, /readyz and /leader on %s:%s", self.host or "", self.port)
        return True

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: Any) -> Any:
        from aiohttp import web

        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @staticmethod
    def _check(check: Check) -> Callable[[Any], Any]:
        async def handler(request: Any) -> Any:
            from aiohttp import web

            ok, detail = check()
            return web.Response(status=200 if ok else 503, text=json.dumps(detail, sort_keys=True) + "\n",
                                content_type="application/json")

        return handler
