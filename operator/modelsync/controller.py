"""The controller: a work queue between kopf's watch streams and the reconcile core.

kopf watches the resources and calls :meth:`Controller.observe` for every event
(``@kopf.on.event`` in :mod:`modelsync.handlers`); this module decides *when* a
resource is reconciled, and writes what the core decided. It is client-go's
workqueue pattern, for the reasons that made client-go adopt it:

* **Bounded work in flight.** A fixed number of workers takes keys from one
  queue; a key is queued at most once and never processed by two workers at
  once. A burst (a thousand creates, a restart, resync timers) waits in the
  queue, which has no timeout, instead of piling requests on the HTTP pools.
  Per registry, the core bounds requests in flight to the backend's connection
  limit (:meth:`modelsync.connections.BackendPool.limit`).
* **No writes for nothing.** kopf's own retry machinery stores its progress in
  the object on every try; here a failing reconcile is re-queued in memory with
  jittered backoff (never less than the registry's Retry-After), and status is
  patched only when it changed. A watch event caused by our own status write is
  not a reason to reconcile: only a new object, a new generation, a deletion or
  a ``modelsync.io/*`` annotation change is.
* **Resync spread out.** Each in-sync resource is looked at again after the
  resync interval with ±10 % jitter; resources found in sync at start-up
  (a restart) are spread uniformly over the first interval and cost nothing
  until then, so a restart writes nothing.
* **Reads from memory.** Registries, their Secrets and ModelServices come from
  this process's caches, kept current by the same watch events (a Secret is
  kept only while a registry names it); a miss falls back to one GET.
* **Recovery is an event.** A registry whose Ready condition turns True, whose
  spec changes, or whose Secret changes re-queues at once every resource that
  is not in sync with it; a ModelService newly synced re-queues the Models
  waiting for it.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import heapq
import logging
import math
import random
import re
import time
from typing import Any, Callable, Iterable, Mapping, Protocol

from .conditions import OUTAGE_REASONS, ConditionType, Reason
from .conditions import find as find_condition
from .kube import KubeReader, KubeWriter, NotFound, WriteFailed, _rv, decode_secret_data, secret_version
from .reconcile import Outcome, Reconciler, Retry, Stop, backoff, paused

logger = logging.getLogger("modelsync.controller")

RESOURCE_KINDS = ("Model", "ModelService")
REGISTRY_KINDS = ("ModelRegistry", "ClusterModelRegistry")
#: how often a registry that is not Ready is checked again (its resources wait for it)
REGISTRY_RETRY = 5.0
#: resyncs fall due on a grid of this many seconds (after their jitter): those due in the same
#: second run together, sharing the event loop's wake-ups and the registry's kept-alive
#: connections. One resync at a time cost about three times the CPU of the same resyncs in a
#: group (bench/scale.py's idle-CPU figure), and a second is nothing against a 5-minute interval.
RESYNC_TICK = 1.0
#: annotations that ask for a reconcile when they change
ANNOTATION_PREFIX = "modelsync.io/"
RESYNC_ANNOTATION = "modelsync.io/resync-interval"
#: held while deleting the resource must first remove its registry entries
FINALIZER = "modelsync.io/finalizer"
#: held on a registry (and the Secrets it logs in with) from the first resource that may leave
#: entries in it until, once it is being deleted, no resource with entries in it remains: deleting
#: a namespace (or an Argo CD prune, a Flux garbage collection) deletes the registry, its Secret
#: and the Models at once, and the Models' finalizers need both to remove their entries
IN_USE_FINALIZER = "modelsync.io/in-use"
_ITSELF = ("", "")  # in Controller._held: the registry object itself, not one of its Secrets
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")


def parse_duration(value: str) -> float | None:
    """``30s``, ``10m``, ``1h``, ``500ms`` as seconds; None when unreadable (or under 1 s)."""
    m = _DURATION.match(value or "")
    if not m:
        return None
    seconds = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    return seconds if seconds >= 1 else None


@dataclasses.dataclass(frozen=True, order=True)
class Key:
    kind: str
    namespace: str  # "" for cluster-scoped objects
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


#: keys whose string values are mostly the same on every object (condition types, statuses and
#: reasons, "in sync with 1 of 1 registries", a notSettable field's explanation): kept once
_SHARED_VALUES = frozenset({"apiVersion", "kind", "type", "status", "reason", "message", "field", "backend"})
#: a string longer than this is not shared (an error's text, a service's YAML)
_SHARED_MAX = 1024


class StringPool:
    """One copy of each string that many cached bodies repeat.

    Every watch event's body is parsed afresh, so each cached body holds its own copy of every
    key ("lastTransitionTime", "observedGeneration", ...) and of every condition's reason and
    message. At 10,000 Models those copies were most of the cache (bench/scale.py's RSS figure).
    ``sys.intern`` is not used: interned strings live for ever on Python 3.12, and a message may
    name one object. The pool is bounded: when full it starts again, and the bodies keep the
    copies they hold.
    """

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self.strings: dict[str, str] = {}

    def __call__(self, s: str) -> str:
        strings = self.strings
        got = strings.get(s)
        if got is None:
            if len(strings) >= self.limit:
                strings.clear()
            strings[s] = got = s
        return got

    def share(self, value: Any, shared: bool = False) -> Any:
        """``value`` rebuilt with its dict keys, and the strings under :data:`_SHARED_VALUES`
        keys, taken from the pool. The caller's containers are not changed."""
        if isinstance(value, dict):
            pooled = self.strings.get
            out = {}
            for k, v in value.items():
                if type(v) is str:
                    if k in _SHARED_VALUES and len(v) <= _SHARED_MAX:
                        v = pooled(v) or self(v)
                elif isinstance(v, (dict, list)):
                    v = self.share(v, k in _SHARED_VALUES)
                out[pooled(k) or self(k)] = v
            return out
        if isinstance(value, list):
            return [self.share(v, shared) if isinstance(v, (dict, list))
                    else (self(v) if shared and type(v) is str and len(v) <= _SHARED_MAX else v)
                    for v in value]
        return value


_POOL = StringPool()


def slim(body: Mapping[str, Any], previous: Mapping[str, Any] | None = None,
         pool: StringPool = _POOL) -> dict[str, Any]:
    """What the controller keeps of an object: no managedFields, no last-applied copy of the spec,
    and the strings every object repeats kept once (:class:`StringPool`). A spec or status equal
    to ``previous``'s (the cached copy of the same object) is that copy's: most events change
    only one of them. A Secret's ``data`` is kept as it is."""
    meta = dict(body.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations and "kubectl.kubernetes.io/last-applied-configuration" in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items()
                               if k != "kubectl.kubernetes.io/last-applied-configuration"}
    out = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": pool.share(meta)}
    for k in ("spec", "status"):
        if k in body:
            kept = previous.get(k) if previous is not None else None
            out[k] = kept if kept is not None and kept == body[k] else pool.share(body[k])
    for k in ("data", "type"):
        if k in body:
            out[k] = body[k]
    return out


def _own_annotations(body: Mapping[str, Any]) -> dict[str, str]:
    ann = (body.get("metadata") or {}).get("annotations") or {}
    return {k: v for k, v in ann.items() if k.startswith(ANNOTATION_PREFIX)}


def _condition(body: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    return find_condition((body.get("status") or {}).get("conditions"), type_)


def in_sync(body: Mapping[str, Any]) -> bool:
    """The status says the registries held this generation when last observed, and the
    last reconcile worked: nothing to do until the next resync."""
    status = body.get("status") or {}
    gen = (body.get("metadata") or {}).get("generation")
    return (status.get("observedGeneration") == gen and _condition(body, ConditionType.READY).get("status") == "True"
            and _condition(body, ConditionType.SYNCED).get("status") == "True" and "kopf" not in status)


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The queue's time: ``now()`` in seconds (monotonic), and a callback ``delay`` seconds from now.
    :class:`LoopClock` in the operator; tests pass :class:`modelsync.testing.clock.ManualClock`,
    whose time moves only when told, so they wait for nothing."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...


class LoopClock:
    """``time.monotonic`` and the running event loop's timers."""

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)


class WorkQueue:
    """Keys due at a time. A key is queued at most once (the earlier time wins unless
    replaced), is handed to one worker at a time, and a key added while it is being
    processed is processed again right after (client-go's workqueue semantics).

    Idle workers wait in line, each on its own future, and one timer is set for the
    earliest due key: a key that falls due wakes exactly one worker. (A shared event woke
    every idle worker for each key, and each re-armed its own timeout; with thousands of
    resyncs spread over an interval, that was a tenth of an idle operator's CPU.)
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or LoopClock()
        self._heap: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}
        self._processing: set[Key] = set()
        self._again: set[Key] = set()
        self._seq = 0
        self._waiters: collections.deque[asyncio.Future[Key]] = collections.deque()
        self._timer: Timer | None = None
        self._timer_due = 0.0

    def __len__(self) -> int:
        return len(self._due)

    @property
    def in_flight(self) -> int:
        return len(self._processing)

    def add(self, key: Key, delay: float = 0.0, *, replace: bool = False, tick: float = 0.0) -> None:
        """Queue ``key`` in ``delay`` seconds. With ``tick``, the due time is rounded up to a
        multiple of it, so keys due about the same time fall due together (see
        :data:`RESYNC_TICK`)."""
        due = self.clock.now() + max(0.0, delay)
        if tick > 0:
            due = math.ceil(due / tick) * tick
        current = self._due.get(key)
        if current is not None and not replace and current <= due:
            return
        if key in self._processing and delay <= 0:
            self._again.add(key)
            return
        self._due[key] = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, key))
        if self._waiters and self._heap[0][2] == key:
            self._dispatch()

    def discard(self, key: Key) -> None:
        self._due.pop(key, None)
        self._again.discard(key)

    def _pop_due(self, now: float) -> Key | None:
        while self._heap and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            if self._due.get(key) != due:
                continue  # superseded
            del self._due[key]
            if key in self._processing:
                self._again.add(key)
                continue
            self._processing.add(key)
            return key
        return None

    def _dispatch(self) -> None:
        """Hand every due key to a waiting worker, then set the timer for the next one."""
        now = self.clock.now()
        while self._waiters:
            if self._waiters[0].done():  # its worker was cancelled
                self._waiters.popleft()
                continue
            key = self._pop_due(now)
            if key is None:
                break
            self._waiters.popleft().set_result(key)
        self._arm(now)

    def _fire(self) -> None:
        self._timer = None
        self._dispatch()

    def _arm(self, now: float) -> None:
        if not self._waiters or not self._heap:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        due = self._heap[0][0]
        if self._timer is not None:
            if self._timer_due <= due:
                return  # fires first anyway (perhaps for a superseded entry: then it re-arms)
            self._timer.cancel()
        self._timer_due = due
        self._timer = self.clock.call_later(max(0.0, due - now), self._fire)

    async def get(self) -> Key:
        if not self._waiters:  # nobody waits ahead of this worker
            key = self._pop_due(self.clock.now())
            if key is not None:
                return key
        waiter: asyncio.Future[Key] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._arm(self.clock.now())
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a key, then cancelled: put it back
                key = waiter.result()
                self._processing.discard(key)
                self.add(key, replace=True)
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def done(self, key: Key) -> None:
        self._processing.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key, replace=True)


class Store:
    """The reads the reconcile core makes (the :class:`~modelsync.kube.KubeReader`
    interface), answered from the controller's caches; a miss is read once from the
    apiserver and kept."""

    def __init__(self, controller: "Controller", fallback: KubeReader) -> None:
        self.controller = controller
        self.fallback = fallback
        #: (namespace, name) → (decoded data, resourceVersion), only for Secrets registries name
        self.secrets: dict[tuple[str, str], tuple[dict[str, str], str]] = {}

    async def registry(self, kind: str, name: str, namespace: str) -> Mapping[str, Any]:
        key = Key(kind, namespace if kind == "ModelRegistry" else "", name)
        obj = self.controller.objects.get(key)
        if obj is None:
            obj = slim(await self.fallback.registry(kind, name, namespace))
            if key not in self.controller.objects:
                self.controller.objects[key] = obj
                # read before its watch listed it (that watch may be retrying): the listing will
                # find it cached and unchanged, so this is the registry's one chance to be checked
                self.controller.queue.add(key)
            obj = self.controller.objects[key]
        return obj

    async def model_service(self, name: str, namespace: str) -> Mapping[str, Any]:
        obj: Mapping[str, Any] | None = self.controller.objects.get(Key("ModelService", namespace, name))
        if obj is None:
            obj = await self.fallback.model_service(name, namespace)
        return obj

    async def secret_data(self, name: str, namespace: str) -> tuple[dict[str, str], str]:
        cached = self.secrets.get((namespace, name))
        if cached is None:
            cached = await self.fallback.secret_data(name, namespace)
            self.secrets[(namespace, name)] = cached
        return cached


class Controller:
    """One per operator process: the caches, the queue, the workers."""

    def __init__(self, reconciler: Reconciler, writer: KubeWriter, *, workers: int = 32,
                 resync: float = 300.0, clock: Clock | None = None) -> None:
        self.reconciler = reconciler
        self.writer = writer
        self.workers = workers
        self.resync = resync
        self.queue = WorkQueue(clock)
        self.objects: dict[Key, dict[str, Any]] = {}
        self.failures: collections.Counter[Key] = collections.Counter()
        self._tasks: list[asyncio.Task[None]] = []
        #: cleared while this replica may not write (not the leader): workers wait before
        #: taking the next key, watches keep the caches warm
        self.gate: asyncio.Event | None = None
        #: called after each reconcile or registry check: (key, body, outcome or None on a
        #: crash, seconds); for metrics. An observer that raises is logged, never fatal.
        self.observers: list[Callable[[Key, Mapping[str, Any], Outcome | None, float], None]] = []
        #: (namespace, ModelService name) → Models that name it as defaultServiceRef
        self._dependents: dict[tuple[str, str], set[Key]] = collections.defaultdict(set)
        #: (registry, (namespace, Secret name)) this process has seen holding the in-use finalizer
        self._held: set[tuple[Key, tuple[str, str]]] = set()
        #: Secrets (namespace, name) whose last watch event showed the in-use finalizer: a restart
        #: neither reads nor writes them again to hold them
        self._secrets_held: set[tuple[str, str]] = set()
        #: one hold at a time per registry: the reconciles of its first users run side by side,
        #: and each would find its Secret not held yet while another's patch is in flight
        self._holding: dict[Key, asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start the workers (once). Called from a watch handler: tasks inherit its context,
        in which kopf's Event poster is reachable (``kopf.event``); startup handlers run
        before that exists."""
        if self.gate is None:
            self.gate = asyncio.Event()
            self.gate.set()
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._worker(), name=f"modelsync-worker-{i}")
                           for i in range(self.workers)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # ------------------------------------------------------------ watch events

    def observe(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        """One watch event (or an initial listing, ``event_type`` None) for a Model,
        ModelService or registry: update the cache, queue the key if there is work."""
        meta = body.get("metadata") or {}
        key = Key(kind, meta.get("namespace") or "", meta.get("name") or "")
        if event_type == "DELETED":
            self._forget(key, body)
            return
        old = self.objects.get(key)
        rv = _rv(body)
        if old is not None and old["metadata"].get("uid") == meta.get("uid") and (_rv(old) > rv or rv and _rv(old) == rv):
            # older than what our own write returned, or that very version (the watch's echo of our
            # write, a relisting): nothing new, and not even a copy to make
            return
        new = slim(body, old)
        self.objects[key] = new
        if kind == "Model":
            self._index_dependency(key, old, new)
        if kind in REGISTRY_KINDS:
            if old is None or self._changed(old, new):
                self.queue.add(key)
                if old is not None:
                    self._requeue_dependents(key, only_unsynced=True)
            return
        if kind == "ModelService" and old is not None and self._externals(old) != self._externals(new):
            for dep in self._dependents.get((key.namespace, key.name), ()):
                self.queue.add(dep)
        if old is None:
            if in_sync(new):  # e.g. a restart: look again within one resync interval, spread out
                self.queue.add(key, random.uniform(0, self.resync), tick=RESYNC_TICK)
            else:
                self.queue.add(key)
        elif self._changed(old, new):
            self.failures.pop(key, None)
            self.queue.add(key, replace=True)

    def observe_secret(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A Secret changed: if a registry uses it, refresh the cache and check the
        registries using it again (their resources follow when they turn Ready)."""
        meta = body.get("metadata") or {}
        ident = (meta.get("namespace") or "", meta.get("name") or "")
        if event_type != "DELETED" and IN_USE_FINALIZER in (meta.get("finalizers") or []):
            self._secrets_held.add(ident)
        else:
            self._secrets_held.discard(ident)
        store: Store = self.reconciler.reader  # type: ignore[assignment]
        if ident not in store.secrets:
            return
        if event_type == "DELETED":
            store.secrets.pop(ident, None)
        else:
            data = decode_secret_data(body.get("data"))
            version = secret_version(meta.get("uid"), data)
            if version == store.secrets[ident][1]:
                # metadata only (the in-use finalizer, a label, the deletion): the credentials are
                # the same, so the registry's connection (keyed by the content's version) stays
                return
            store.secrets[ident] = (data, version)
        for key, obj in list(self.objects.items()):
            if key.kind in REGISTRY_KINDS and ident in _secret_refs(key, obj):
                self.queue.add(key)
                self._requeue_dependents(key, only_unsynced=True)

    @staticmethod
    def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
        om, nm = old.get("metadata") or {}, new.get("metadata") or {}
        return (om.get("uid") != nm.get("uid") or om.get("generation") != nm.get("generation")
                or om.get("deletionTimestamp") != nm.get("deletionTimestamp")
                or _own_annotations(old) != _own_annotations(new))

    @staticmethod
    def _externals(body: Mapping[str, Any]) -> list[Any]:
        return [(e.get("name"), e.get("externalId")) for e in (body.get("status") or {}).get("registries") or []]

    def _index_dependency(self, key: Key, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
        for body, add in ((old, False), (new, True)):
            ref = ((body or {}).get("spec") or {}).get("defaultServiceRef") or {}
            if ref.get("name"):
                deps = self._dependents[(key.namespace, ref["name"])]
                (deps.add if add else deps.discard)(key)

    def _forget(self, key: Key, body: Mapping[str, Any]) -> None:
        old = self.objects.pop(key, None)
        if key.kind == "Model":
            self._index_dependency(key, old, None)
        if key.kind in RESOURCE_KINDS:
            for reg in _registries_of(key, old or body):  # one user fewer: a registry being deleted may go
                reg_obj = self.objects.get(reg)
                if reg_obj is not None and (reg_obj.get("metadata") or {}).get("deletionTimestamp"):
                    self.queue.add(reg)
        self.queue.discard(key)
        self.failures.pop(key, None)
        self._holding.pop(key, None)  # a hold still waiting on it finds the registry gone: no write
        uid = (body.get("metadata") or {}).get("uid")
        if uid:
            self.reconciler.forget(uid)

    def _requeue_dependents(self, registry: Key, *, only_unsynced: bool) -> int:
        """Queue now every resource naming ``registry`` that is not in sync with it."""
        n = 0
        for key, obj in list(self.objects.items()):
            if key.kind not in RESOURCE_KINDS:
                continue
            if registry.kind == "ModelRegistry" and key.namespace != registry.namespace:
                continue
            if registry not in _registries_of(key, obj):
                continue
            deleting = bool((obj.get("metadata") or {}).get("deletionTimestamp"))
            if only_unsynced and not deleting:  # a deletion waiting on the registry goes at once too
                entries = (obj.get("status") or {}).get("registries") or []
                entry = next((e for e in entries if e.get("name") == registry.name
                              and e.get("kind", "ModelRegistry") == registry.kind), None)
                if entry is not None and entry.get("reason") == Reason.SYNCED:
                    continue
            self.failures.pop(key, None)
            self.queue.add(key, replace=True)
            n += 1
        return n

    # ------------------------------------------------------------ workers

    async def _worker(self) -> None:
        assert self.gate is not None
        while True:
            await self.gate.wait()
            key = await self.queue.get()
            if not self.gate.is_set():  # leadership lost while waiting: leave it for later
                self.queue.done(key)
                self.queue.add(key)
                continue
            try:
                await self.process(key)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug: log it, retry the key later, keep the worker
                logger.exception("processing %s failed", key)
                self.queue.add(key, backoff(self.failures[key]), replace=True)
                self.failures[key] += 1
            finally:
                self.queue.done(key)

    def _notify(self, key: Key, body: Mapping[str, Any], outcome: Outcome | None, started: float) -> None:
        for observer in self.observers:
            try:
                observer(key, body, outcome, time.monotonic() - started)
            except Exception:  # noqa: BLE001 - metrics must never break reconciling
                logger.exception("observer %r failed", observer)

    async def process(self, key: Key) -> None:
        body = self.objects.get(key)
        if body is None:
            return
        started = time.monotonic()
        if key.kind in REGISTRY_KINDS:
            outcome = await self._process_registry(key, body)
            self._notify(key, body, outcome, started)
            return
        meta = body.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if FINALIZER in finalizers:
                await self._finalize(key, body, finalizers, started)
            return
        if not paused(body):
            # held while deletion must remove registry entries, and added before the first
            # create, so a resource deleted at any moment never leaves an entry behind
            needed = self.reconciler.needs_finalizer(key.kind, body)
            if needed != (FINALIZER in finalizers):
                wanted = [*finalizers, FINALIZER] if needed else [f for f in finalizers if f != FINALIZER]
                body = await self._set_finalizers(key, body, wanted)
                if body is None:
                    return
            if needed:  # before any entry is made: its registry and Secrets stay while it may leave one
                await self._hold_registries(key, body)
        try:
            outcome = await self.reconciler.reconcile(key.kind, body, attempt=self.failures[key])
        except BaseException:
            self._notify(key, body, None, started)
            raise
        self._notify(key, body, outcome, started)
        if not await self._write(key, body, outcome):
            return
        error = outcome.error
        if isinstance(error, Retry):
            self.queue.add(key, error.delay, replace=True)
            self.failures[key] += 1
            self._nudge_registries(body)
        else:
            self.failures.pop(key, None)
            self.queue.add(key, self.interval(body) * random.uniform(0.9, 1.1), replace=True, tick=RESYNC_TICK)
        if isinstance(error, Stop):
            logger.info("%s: waiting for a new spec: %s", key, error.message)
        elif isinstance(error, Retry):
            logger.info("%s: will retry in %.1fs: %s", key, error.delay, error.message)

    def interval(self, body: Mapping[str, Any]) -> float:
        """The resync interval: ``modelsync.io/resync-interval`` (e.g. 30s, 10m, 1h) or the default."""
        value = ((body.get("metadata") or {}).get("annotations") or {}).get(RESYNC_ANNOTATION)
        seconds = parse_duration(value) if value else None
        return seconds if seconds else self.resync

    async def _set_finalizers(self, key: Key, body: Mapping[str, Any], finalizers: list[str]) -> dict[str, Any] | None:
        """The object with ``finalizers``, or None when it is gone or must be looked at again."""
        try:
            stored = await self.writer.set_finalizers(key.kind, body, finalizers)
        except WriteFailed as exc:
            logger.warning("%s: %s; will retry", key, exc)
            self.queue.add(key, backoff(self.failures[key]), replace=True)
            self.failures[key] += 1
            return None
        if stored is None:
            return None
        self.objects[key] = slim(stored, self.objects.get(key))
        return self.objects[key]

    async def _finalize(self, key: Key, body: Mapping[str, Any], finalizers: list[str], started: float) -> None:
        """Deletion: remove the registry entries (or leave them, per policy), then let go."""
        done, outcome = await self.reconciler.finalize(key.kind, body, attempt=self.failures[key])
        self._notify(key, body, outcome, started)
        for type_, reason, message in outcome.events:
            await self.writer.event(body, type_, reason, message)
        if done:
            await self._set_finalizers(key, body, [f for f in finalizers if f != FINALIZER])
            self.failures.pop(key, None)
            return
        if outcome.status_patch:
            try:
                stored = await self.writer.patch_status(key.kind, key.namespace, key.name, outcome.status_patch)
            except WriteFailed as exc:
                logger.warning("%s: %s", key, exc)
            else:
                current = self.objects.get(key)
                if stored is not None and current is not None and _rv(stored) >= _rv(current):
                    self.objects[key] = slim(stored, self.objects.get(key))
        # like a failed update: the registry is checked soon, so that its recovery re-queues this
        self._nudge_registries({**body, "status": {**(body.get("status") or {}), **outcome.status_patch}})
        delay = outcome.error.delay if isinstance(outcome.error, Retry) else backoff(self.failures[key])
        self.queue.add(key, delay, replace=True)
        self.failures[key] += 1

    async def _write(self, key: Key, body: Mapping[str, Any], outcome: Outcome) -> bool:
        """Patch status (if anything changed) and post the outcome's Events. False when the
        object is gone or the write must be retried (then it is queued again)."""
        if outcome.status_patch:
            try:
                stored = await self.writer.patch_status(key.kind, key.namespace, key.name, outcome.status_patch)
            except WriteFailed as exc:
                if exc.retry:
                    logger.warning("%s: %s; will retry", key, exc)
                    self.queue.add(key, backoff(self.failures[key]), replace=True)
                    self.failures[key] += 1
                else:  # the patch itself is refused: retrying the same patch cannot help
                    logger.error("%s: %s; not retried until the object changes", key, exc)
                    self.queue.add(key, self.resync, replace=True)
                return False
            if stored is None:
                return False
            current = self.objects.get(key)
            if current is not None and _rv(stored) >= _rv(current):
                was = current
                self.objects[key] = slim(stored, self.objects.get(key))
                if key.kind == "ModelService" and self._externals(was) != self._externals(stored):
                    for dep in self._dependents.get((key.namespace, key.name), ()):
                        self.queue.add(dep)
        for type_, reason, message in outcome.events:
            await self.writer.event(body, type_, reason, message)
        return True

    def _nudge_registries(self, body: Mapping[str, Any]) -> None:
        """A resource failed against a registry that says it is Ready: check that registry
        soon, so an outage shows on it and its recovery re-queues what waits for it."""
        meta = body.get("metadata") or {}
        for e in (body.get("status") or {}).get("registries") or []:
            if e.get("reason") not in OUTAGE_REASONS:
                continue
            kind = e.get("kind", "ModelRegistry")
            key = Key(kind, meta.get("namespace", "") if kind == "ModelRegistry" else "", e.get("name", ""))
            reg = self.objects.get(key)
            if reg is not None and _condition(reg, ConditionType.READY).get("status") == "True":
                self.queue.add(key, 1.0)

    # ------------------------------------------------------------ registries held while in use

    def _users(self, registry: Key) -> list[Key]:
        """Resources that may have entries to remove in ``registry``: those holding the resource
        finalizer (managed, policy Delete, until their entries are gone) that name it or have an
        entry in it."""
        out = []
        for key, obj in list(self.objects.items()):
            if key.kind not in RESOURCE_KINDS:
                continue
            if registry.kind == "ModelRegistry" and key.namespace != registry.namespace:
                continue
            if FINALIZER in ((obj.get("metadata") or {}).get("finalizers") or []) and registry in _registries_of(key, obj):
                out.append(key)
        return out

    async def _hold_registries(self, key: Key, body: Mapping[str, Any]) -> None:
        """Hold each registry ``body`` names (and its Secrets) unless it is held already."""
        for reg in _registries_of(key, body):
            obj = self.objects.get(reg)
            if obj is None:
                continue  # not there (yet): the reconcile says RegistryNotFound, and the registry's
                # own first check holds it once it exists and this resource uses it
            meta = obj.get("metadata") or {}
            if IN_USE_FINALIZER not in (meta.get("finalizers") or []) and not meta.get("deletionTimestamp"):
                await self._hold(reg)

    async def _hold(self, registry: Key) -> None:
        """The in-use finalizer on the registry's Secrets and on the registry itself (Secrets first:
        a registry held always has its Secrets held)."""
        async with self._holding[registry]:
            await self._hold_one(registry)

    async def _hold_one(self, registry: Key) -> None:
        obj = self.objects.get(registry)
        if obj is None:
            return
        try:
            for ref in _secret_refs(registry, obj):
                if (registry, ref) not in self._held and ref not in self._secrets_held:  # one write, then none
                    await self.writer.hold("Secret", *ref, IN_USE_FINALIZER, True)
                    self._held.add((registry, ref))
            if (IN_USE_FINALIZER not in ((obj.get("metadata") or {}).get("finalizers") or [])
                    and (registry, _ITSELF) not in self._held):  # (its watch event may not be here yet)
                self._held.add((registry, _ITSELF))
                if await self.writer.hold(registry.kind, registry.namespace, registry.name, IN_USE_FINALIZER, True,
                                          known=obj):
                    logger.debug("%s: held while resources may have entries in it", registry)
        except WriteFailed as exc:
            self._held.discard((registry, _ITSELF))
            logger.warning("%s: %s; will retry", registry, exc)
            self.queue.add(registry, REGISTRY_RETRY, replace=True)

    async def _release_if_unused(self, registry: Key) -> bool:
        """A registry being deleted: once no resource may have entries in it, let its Secrets
        (those no other held registry names) and then it go. True when it was let go."""
        users = self._users(registry)
        if users:
            logger.info("%s is being deleted and is still used by %d resources (%s%s); it stays until "
                        "their entries are removed", registry, len(users), ", ".join(map(str, users[:3])),
                        ", ..." if len(users) > 3 else "")
            return False
        obj = self.objects.get(registry) or {}
        still_named: set[tuple[str, str]] = set()
        for other, other_obj in list(self.objects.items()):
            if other == registry or other.kind not in REGISTRY_KINDS:
                continue
            if IN_USE_FINALIZER in ((other_obj.get("metadata") or {}).get("finalizers") or []):
                still_named.update(_secret_refs(other, other_obj))
        try:
            for ref in _secret_refs(registry, obj):
                if ref not in still_named:
                    await self.writer.hold("Secret", *ref, IN_USE_FINALIZER, False)
                self._held.discard((registry, ref))
            await self.writer.hold(registry.kind, registry.namespace, registry.name, IN_USE_FINALIZER, False)
            self._held.discard((registry, _ITSELF))
        except WriteFailed as exc:
            logger.warning("%s: %s; will retry", registry, exc)
            self.queue.add(registry, REGISTRY_RETRY, replace=True)
            return False
        logger.info("%s: no resource has entries in it any more; let go", registry)
        return True

    async def _process_registry(self, key: Key, body: Mapping[str, Any]) -> Outcome:
        was_ready = _condition(body, ConditionType.READY).get("status") == "True"
        outcome = await self.reconciler.check_registry(key.kind, body)
        if not await self._write(key, body, outcome):
            return outcome
        if (self.objects.get(key, body).get("metadata") or {}).get("deletionTimestamp"):
            if await self._release_if_unused(key):
                return outcome
        elif self._users(key):
            await self._hold(key)
        now_ready = _condition(self.objects.get(key, body), ConditionType.READY).get("status") == "True"
        if now_ready and not was_ready:
            n = self._requeue_dependents(key, only_unsynced=True)
            logger.info("%s is Ready: %d resources queued", key, n)
        if now_ready:
            self.queue.add(key, self.resync * random.uniform(0.9, 1.1), replace=True, tick=RESYNC_TICK)
        elif isinstance(outcome.error, Retry):
            self.queue.add(key, max(REGISTRY_RETRY, outcome.error.delay), replace=True)
        else:
            self.queue.add(key, self.resync, replace=True)
        return outcome


def _registries_of(key: Key, obj: Mapping[str, Any]) -> set[Key]:
    """The registries a Model or ModelService names in its spec or has status entries in."""
    refs = [*((obj.get("spec") or {}).get("registries") or []), *((obj.get("status") or {}).get("registries") or [])]
    out = set()
    for r in refs:
        if not isinstance(r, Mapping) or not r.get("name"):
            continue
        kind = r.get("kind") or "ModelRegistry"
        out.add(Key(kind, key.namespace if kind == "ModelRegistry" else "", r["name"]))
    return out


def _secret_refs(key: Key, obj: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    spec = obj.get("spec") or {}
    refs = [spec.get("credentialsSecretRef"), (spec.get("tls") or {}).get("caSecretRef")]
    for ref in refs:
        if ref and ref.get("name"):
            yield (key.namespace or ref.get("namespace") or "", ref["name"])


__all__ = ["Controller", "Key", "Store", "WorkQueue", "in_sync", "NotFound"]
