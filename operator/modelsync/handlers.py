"""Every kopf registration, each a line into the controller.

kopf watches; :mod:`modelsync.controller` decides when to reconcile and the
reconcile core (:mod:`modelsync.reconcile`) what to do. The registrations are
``@kopf.on.event`` on purpose: kopf's change handlers keep their progress and a
diff-base copy of the spec in the object and write it on every try, which costs
apiserver writes per retry and per create and puts a second copy of a large
readme in the object. The controller's in-memory queue needs none of that.

Settings chosen on purpose (see kopf's docs on configuration):

* kopf posts no Events (``posting.enabled = False``): the controller posts one
  (:meth:`KubeWriter.event`, through kopf's Event client) when an outcome changes, already
  scrubbed, with short retries and no ERROR lines when a namespace being deleted refuses it;
* ``persistence.finalizer`` is kopf's default marker, not ``modelsync.io/finalizer``:
  that one belongs to the controller (held while registry entries must be removed);
* API errors are retried every second for five minutes (kopf's default grows
  to 21 s steps), so changes made while the apiserver was away are seen within
  seconds of its return;
* the operator runs standalone (no kopf peering objects): replicas exclude each other
  with a Lease instead (``--leader-election``, :mod:`modelsync.leader`): every replica
  watches, only the leader's workers take keys (the controller's gate); every replica
  whose caches are listed and whose elector reaches the Lease is ready (``/readyz``, as
  controller-runtime's operators are), leadership shows on ``/leader``, ``modelsync_leader``
  and the Lease; with ``--node-name`` the leader hands the Lease over while its Node is
  unschedulable (cordoned or drained);
* ``--selector`` becomes a server-side label selector of the four modelsync.io watches
  (``settings.watching.label_selectors``): a shard sees only its own objects; Secrets are
  not filtered (registries of any shard may name them);
* kopf's diff base (the essence it compares each event with) is built by
  :class:`LeanDiffBase`: the same essence, without kopf's deep copy of the whole body (status,
  managedFields) that it then throws away; that copy was a tenth of the operator's CPU in a burst;
* the HTTP libraries' client loggers (httpx, httpcore, aiohttp) stay at WARNING: at INFO
  httpx prints request URLs, and a URL may carry what it should not.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any, Iterable, cast

import kopf

from . import leader, metrics
from .api import GROUP, VERSION
from .conditions import ConditionType
from .conditions import find as find_condition
from .controller import REGISTRY_KINDS, RESOURCE_KINDS, Controller, Store
from .kube import PLURALS, KubeReader, KubeWriter, load_config
from .reconcile import Reconciler

#: seconds between drift checks of each resource against its registries
RESYNC_SECONDS = float(os.environ.get("MODELSYNC_RESYNC_SECONDS", "300"))
#: what deleting a resource does to its registry entries when its spec does not say (--default-deletion-policy)
DEFAULT_DELETION_POLICY = os.environ.get("MODELSYNC_DEFAULT_DELETION_POLICY", "Delete")
#: reconciles in flight at once, over all registries
WORKERS = int(os.environ.get("MODELSYNC_WORKERS", "32"))
#: objects per page of the initial listing of each kind (kopf's ``watching.chunk_size``)
LIST_CHUNK = int(os.environ.get("MODELSYNC_LIST_CHUNK", "500"))
#: what the command line sets (``memo.options``, see __main__); these when kopf runs the module itself
DEFAULTS = {"leader_election": False, "lease_name": "modelsync", "lease_namespace": None, "selector": None,
            "metrics_addr": ":9090", "default_deletion_policy": DEFAULT_DELETION_POLICY,
            "node_name": os.environ.get("NODE_NAME") or None}

for _name in ("httpx", "httpcore", "hpack", "aiohttp.client", "aiohttp.internal"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class LeanDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's own diff-base storage, building the same essence more cheaply.

    kopf builds an essence of every event's body (to detect changes for change handlers and
    daemons) by deep-copying the whole body and then deleting ``status`` and ``metadata``,
    keeping only ``metadata.labels`` and ``metadata.annotations``. Here the body handed to kopf's
    builder holds only what the essence keeps, so the copy is of the spec and those two maps,
    not of the status and the managedFields. With extra fields asked for (no handler here asks),
    kopf's builder gets the whole body.
    """

    def build(self, *, body: kopf.Body,
              extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        extra = list(extra_fields or ())
        if extra:
            return super().build(body=body, extra_fields=extra)
        meta = body.get("metadata") or {}
        lean: dict[str, Any] = {k: v for k, v in body.items() if k not in ("metadata", "status")}
        lean["metadata"] = {k: meta[k] for k in ("labels", "annotations") if k in meta}
        return super().build(body=kopf.Body(cast(kopf.RawBody, lean)))


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # kopf logs every handler call of every object at INFO: at thousands of objects that
        # is most of the log and a good part of the CPU (--verbose brings them back)
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.posting.enabled = False  # the controller posts its Events itself (KubeWriter.event)
    settings.posting.loggers = False  # log records are not Events
    settings.posting.reporting_component = "modelsync"
    settings.posting.event_name_prefix = "modelsync-"
    # modelsync.io/finalizer is the controller's own (held while registry entries must be
    # removed on delete); kopf must not take it for its marker, which it removes when no
    # kopf handler needs one
    settings.persistence.finalizer = "kopf.zalando.org/KopfFinalizerMarker"
    settings.peering.standalone = True
    settings.persistence.diffbase_storage = LeanDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 5
    settings.watching.reconnect_backoff = 0.5
    # the initial listing (a start, a restart) in pages of 500: the operator never holds every
    # object of a kind at once, only a page and what it caches of each (bench/scale.py's RSS
    # after a restart over 10,000 Models)
    settings.watching.chunk_size = LIST_CHUNK
    # kopf gives up on a watch (and the operator stops) when these run out: 1-second steps
    # for five minutes see the apiserver's return at once and outlast a control-plane upgrade
    settings.networking.error_backoffs = [0.2, 0.5] + [1.0] * 300
    settings.networking.request_timeout = 30
    given = memo.get("options")
    opts: dict[str, Any] = {name: getattr(given, name, default) for name, default in DEFAULTS.items()}
    if opts["selector"]:
        for plural in PLURALS.values():
            settings.watching.label_selectors[GROUP, plural] = opts["selector"]
    metrics.WATCHES.install()
    load_config()
    reader = KubeReader()
    reconciler = Reconciler(reader, default_deletion_policy=opts["default_deletion_policy"])
    controller = Controller(reconciler, KubeWriter(settings), workers=WORKERS, resync=RESYNC_SECONDS)
    controller.observers.append(_count_drift)
    controller.reconciler.reader = controller.reconciler.pool.reader = Store(controller, reader)
    memo.controller = controller
    # closed until this replica may write; the workers (started by the first watch event) wait on it
    controller.gate = asyncio.Event()
    memo.elector = None
    if opts["leader_election"]:
        memo.elector = _elector(memo, controller, opts)
        memo.elector.start()
    else:
        controller.gate.set()
    metrics.bind(controller, leader=lambda: memo.elector is None or memo.elector.leader)
    memo.server = None
    if opts["metrics_addr"]:
        server = metrics.Server(opts["metrics_addr"], ready=lambda: _readiness(memo), leader=lambda: _leadership(memo))
        if await server.start():
            memo.server = server


def _count_drift(key: Any, body: Any, outcome: Any, seconds: float) -> None:
    """Drift the core found (Outcome.drifts) into modelsync_drift_detected_total."""
    for backend, fields in getattr(outcome, "drifts", None) or ():
        metrics.drift(key.kind, backend, fields)


def _elector(memo: kopf.Memo, controller: Controller, opts: dict[str, Any]) -> leader.LeaderElector:
    import kubernetes

    def started() -> None:
        controller.gate.set()  # type: ignore[union-attr]

    async def stepping_down() -> None:
        # no new key from now on; what is in flight finishes (the Lease is still renewed)
        controller.gate.clear()  # type: ignore[union-attr]
        while controller.queue.in_flight:
            await asyncio.sleep(0.1)

    def stopped(reason: str) -> None:
        # fenced: no new key from now on, in-flight work cancelled, then the process stops and
        # restarts as a standby (its queue and caches are not trusted to resume leading)
        controller.gate.clear()  # type: ignore[union-attr]
        memo.stopping = asyncio.create_task(controller.stop())
        memo.leadership_lost = reason
        stop_flag = memo.get("stop_flag")
        if stop_flag is not None:
            stop_flag.set()
        else:  # run by `kopf run`, without modelsync's own stop flag: as if the kubelet stopped it
            os.kill(os.getpid(), signal.SIGTERM)

    client = kubernetes.client.ApiClient()
    return leader.LeaderElector(
        kubernetes.client.CoordinationV1Api(client),
        name=opts["lease_name"], namespace=leader.default_namespace(opts["lease_namespace"]),
        identity=leader.default_identity(), on_started=started, on_stopped=stopped,
        node_name=opts["node_name"], core_api=kubernetes.client.CoreV1Api(client), on_stepping_down=stepping_down)


def _leadership(memo: kopf.Memo) -> tuple[bool, dict[str, Any]]:
    elector = memo.get("elector")
    if elector is None:
        return True, {"leader": True, "election": False}
    return elector.leader, {**elector.status(), "election": True}


def _readiness(memo: kopf.Memo) -> tuple[bool, dict[str, Any]]:
    """Caches listed and, with leader election, the elector running and reaching the Lease: the
    leader and a standby ready to take over alike (a Deployment's pods all Ready, a rolling update
    can proceed). Which replica leads is /leader's and modelsync_leader's to say."""
    listed = metrics.WATCHES.listed([*PLURALS.values(), "secrets"])
    elector = memo.get("elector")
    detail: dict[str, Any] = {"listed": listed, "watches": metrics.WATCHES.summary()}
    if elector is None:
        return listed, {**detail, "leader": True, "election": False}
    healthy = elector.healthy()
    return listed and healthy, {**detail, **elector.status(), "election": True, "leaseReachable": healthy}


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    controller: Controller = memo.controller
    if controller.gate is not None:
        controller.gate.clear()
    await controller.stop()  # nothing is written after this, so the Lease can go
    if memo.get("elector") is not None:
        await memo.elector.release()
    if memo.get("server") is not None:
        await memo.server.stop()
    await controller.reconciler.pool.aclose()
    if memo.get("stop_flag") is not None:
        memo.stop_flag.set()  # kopf waits for its waiter on the flag before it exits


# ---------------------------------------------------------------- liveness (kopf's --liveness endpoint)


@kopf.on.probe(id="watches")
async def probe_watches(**_: Any) -> dict[str, str]:
    """Each watch stream: listing, watching, or reconnecting (kopf retries it)."""
    return metrics.WATCHES.summary()


@kopf.on.probe(id="queue")
async def probe_queue(memo: kopf.Memo, **_: Any) -> dict[str, int]:
    queue = memo.controller.queue
    return {"queued": len(queue), "inFlight": queue.in_flight, "objects": len(memo.controller.objects)}


@kopf.on.probe(id="registries")
async def probe_registries(memo: kopf.Memo, **_: Any) -> dict[str, str]:
    """Each registry's Ready condition as cached: "True", or "False: Reason" (not a liveness failure:
    restarting the operator does not bring a registry back)."""
    out: dict[str, str] = {}
    for key, body in list(memo.controller.objects.items()):
        if key.kind in REGISTRY_KINDS:
            ready = find_condition((body.get("status") or {}).get("conditions"), ConditionType.READY)
            status = ready.get("status") or "Unknown"
            out[f"{key.kind} {key.namespace + '/' if key.namespace else ''}{key.name}"] = (
                status if status == "True" or not ready.get("reason") else f"{status}: {ready['reason']}")
    return out


@kopf.on.probe(id="leader")
async def probe_leader(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """Leadership; fails liveness only when the election itself has crashed (a bug)."""
    elector = memo.get("elector")
    if elector is None:
        return {"election": False, "leader": True}
    task = elector.task
    if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
        raise kopf.PermanentError(f"leader election crashed: {task.exception()!r}")
    status: dict[str, Any] = elector.status()
    return status


for _kind in (*RESOURCE_KINDS, *REGISTRY_KINDS):

    @kopf.on.event(GROUP, VERSION, PLURALS[_kind], id=f"watch-{_kind}")
    async def watch(event: kopf.RawEvent, memo: kopf.Memo, _kind: str = _kind, **_: Any) -> None:
        """Into the controller's cache and, if there is work, its queue."""
        memo.controller.start()
        memo.controller.observe(_kind, event.get("type"), event["object"])


@kopf.on.event("", "v1", "secrets", id="watch-secrets")
async def watch_secrets(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Registries' Secrets: a fixed password or token heals at once, not at the next resync."""
    memo.controller.observe_secret(event.get("type"), event["object"])
