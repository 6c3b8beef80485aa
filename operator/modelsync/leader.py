"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection`` does it.

Several replicas run; each watches (its caches stay warm) but only the one holding the Lease
reconciles. The handlers open :attr:`modelsync.controller.Controller.gate` when this replica
starts leading and close it when it stops.

* **Timing** (client-go's defaults, scaled down): the Lease lasts 15 s (``leaseDurationSeconds``),
  the leader renews it every 5 s and retries a failed renewal every 2 s; a standby looks at the
  Lease every 2 s.
* **Expiry is judged on the local clock**, never by comparing the Lease's ``renewTime`` with this
  machine's time: a standby notes *when it saw* the Lease record change and may take it over
  only after ``leaseDurationSeconds`` without a change. Clocks of different machines never meet.
* **Writes are optimistic**: every create or replace carries the ``resourceVersion`` last read,
  so of two replicas trying at once exactly one succeeds (the other gets 409 and stays standby).
* **Fencing by time**: the leader counts its lease from the moment it *sent* the last successful
  renewal. If no renewal succeeds within 10 s (``renew_deadline``, shorter than the 15 s a standby
  waits), a timer on the event loop closes the gate and the replica gives up leadership before
  any other replica may take it; the handlers then stop the process, which restarts as a standby
  (what kube-controller-manager and controller-runtime do). A lost leadership is never resumed
  by the same process: its queue and in-flight work are gone with it.
* **Release**: on a graceful stop the leader writes ``holderIdentity: ""`` and
  ``leaseDurationSeconds: 1`` (guarded by its resourceVersion), so a standby takes over at its next
  look (≤ 2 s) instead of after 15 s.
* **Stepping down from a cordoned Node** (``node_name``, the pod's ``spec.nodeName``): at each renew
  tick the leader reads its Node; when ``spec.unschedulable`` is true (``kubectl cordon``, the
  first step of ``kubectl drain``) it stops taking work, waits for its in-flight work to finish
  while it keeps renewing, then releases the Lease and campaigns again as a standby. A replica
  never takes the Lease while its Node is unschedulable. A Node that cannot be read counts as
  schedulable (logged at debug): a failed read never costs leadership. Unlike a lost Lease, a
  step-down keeps the process: nothing was cut short, and the caches stay warm.

The kubernetes client is synchronous: its calls run in one thread of this module's own, so
renewals never queue behind the reads other code sends through the default executor.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any, Awaitable, Callable

logger = logging.getLogger("modelsync.leader")

#: seconds a Lease is valid after its last renewal (written as leaseDurationSeconds)
LEASE_DURATION = 15.0
#: the leader gives up if no renewal succeeded for this long: less than LEASE_DURATION
RENEW_DEADLINE = 10.0
#: the leader renews this often
RENEW_INTERVAL = 5.0
#: a failed renewal is retried, and a standby looks at the Lease, this often
RETRY_PERIOD = 2.0
#: connect and read timeouts of one Lease request
REQUEST_TIMEOUT = (2.0, 4.0)
#: the Node read of one renew tick gives up after this long (it never delays a renewal by more)
NODE_TIMEOUT = 1.0
#: connect and read timeouts of one Node request
NODE_REQUEST_TIMEOUT = (1.0, 2.0)
#: where a pod finds its own namespace
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_identity() -> str:
    """The pod's name (``POD_NAME`` from the downward API), else ``<hostname>-<pid>``."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def default_namespace(flag: str | None = None) -> str:
    """Where the Lease lives: ``--lease-namespace``, else ``POD_NAMESPACE``, else the pod's own
    namespace (service account), else the current kubeconfig context's namespace, else ``default``.
    Replicas that should exclude each other must resolve to the same namespace."""
    if flag:
        return flag
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        pass
    try:
        import kubernetes

        _, context = kubernetes.config.list_kube_config_contexts()
        return (context or {}).get("context", {}).get("namespace") or "default"
    except Exception:  # noqa: BLE001 - no kubeconfig: in-cluster without a namespace file
        return "default"


def _now() -> str:
    """A MicroTime as the apiserver writes it."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _holder(lease: dict[str, Any] | None) -> str:
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or ""


def _rv(lease: dict[str, Any] | None) -> str:
    return ((lease or {}).get("metadata") or {}).get("resourceVersion") or ""


class LeaderElector:
    """Campaigns for one Lease until it leads, then renews it; see the module doc.

    ``on_started()`` is called each time this replica becomes the leader, ``on_stopped(reason)`` once
    when it loses the Lease (terminal). With ``node_name`` (and ``core_api``, a
    ``kubernetes.client.CoreV1Api``), a leader whose Node turns unschedulable awaits
    ``on_stepping_down()`` (which closes the gate and returns when no work is in flight),
    releases the Lease and campaigns again; ``on_started()`` follows when it leads again.
    """

    def __init__(self, api: Any, *, name: str, namespace: str, identity: str,
                 on_started: Callable[[], None], on_stopped: Callable[[str], None],
                 node_name: str | None = None, core_api: Any = None,
                 on_stepping_down: Callable[[], Awaitable[None]] | None = None,
                 lease_duration: float = LEASE_DURATION, renew_deadline: float = RENEW_DEADLINE,
                 renew_interval: float = RENEW_INTERVAL, retry_period: float = RETRY_PERIOD) -> None:
        if not renew_deadline < lease_duration:
            raise ValueError("renew_deadline must be shorter than lease_duration")
        self.api = api  # a kubernetes.client.CoordinationV1Api
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.node_name = node_name or None
        self.core_api = core_api
        self.on_stepping_down = on_stepping_down
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.renew_interval = renew_interval
        self.retry_period = retry_period
        #: True while this replica may write
        self.leader = False
        #: leadership was lost (not released): terminal for this elector
        self.lost = False
        #: the holder of the Lease when last seen ("" when free)
        self.holder = ""
        #: the last failed Lease request, for the probes ("" after a success)
        self.last_error = ""
        #: this replica's Node was unschedulable when last read (False without node_name)
        self.cordoned = False
        #: the leader is handing the Lease over (its Node is unschedulable): no new work
        self.stepping_down = False
        self._lease: dict[str, Any] | None = None
        self._observed_rv = ""
        self._observed_at = 0.0
        self._last_contact: float | None = None
        self._fence: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelsync-lease")
        # Node reads in a thread of their own: a slow one never holds up a renewal
        self._node_executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelsync-node")

    # ------------------------------------------------------------ life cycle

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="modelsync-leader-election")
        return self._task

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    @property
    def lease(self) -> str:
        return f"{self.namespace}/{self.name}"

    def healthy(self) -> bool:
        """The elector runs and has reached the apiserver within ``renew_deadline``: a leader that
        can renew, or a standby that could take over."""
        if self.lost or self._task is None or self._task.done() or self._last_contact is None:
            return False
        return asyncio.get_running_loop().time() - self._last_contact <= self.renew_deadline

    def serving(self) -> bool:
        """Leading and not handing over: what readiness means with leader election."""
        return self.leader and not self.stepping_down and self.healthy()

    def status(self) -> dict[str, Any]:
        out = {"identity": self.identity, "lease": self.lease, "leader": self.leader, "holder": self.holder,
               "lost": self.lost, "error": self.last_error}
        if self.node_name:
            out.update(node=self.node_name, nodeUnschedulable=self.cordoned, steppingDown=self.stepping_down)
        return out

    async def run(self) -> None:
        logger.info("%s: campaigning for the Lease %s", self.identity, self.lease)
        while not self.lost:
            await self._campaign()
            if self.lost or not self.leader:
                return
            logger.info("%s: leading (Lease %s)", self.identity, self.lease)
            self.on_started()
            await self._lead()

    async def _campaign(self) -> None:
        while not self.lost:
            try:
                wait = await self._try_acquire()
            except Exception as exc:  # noqa: BLE001 - the apiserver may be away: keep trying
                self._failed("reading the Lease", exc)
                wait = self.retry_period
            if self.leader:
                return
            await asyncio.sleep(wait)

    async def _lead(self) -> None:
        """Renew until the Lease is lost, or hand it over when this replica's Node is unschedulable."""
        while self.leader:
            await asyncio.sleep(self.renew_interval)
            if self.leader and await self._node_unschedulable():
                await self._step_down()
                return
            await self._renew_until_done()

    async def _renew_until_done(self) -> None:
        loop = asyncio.get_running_loop()
        while self.leader:
            started = loop.time()
            try:
                if await self._renew(started):
                    return
            except Exception as exc:  # noqa: BLE001 - retried until the deadline
                self._failed("renewing the Lease", exc)
            await asyncio.sleep(self.retry_period)

    async def _step_down(self) -> None:
        """Stop taking work, let in-flight work finish (renewing meanwhile), release the Lease."""
        logger.info("%s: the Node %s is unschedulable: stepping down (Lease %s)", self.identity, self.node_name,
                    self.lease)
        self.stepping_down = True
        drained: asyncio.Future[Any] | None = None
        try:
            if self.on_stepping_down is not None:
                drained = asyncio.ensure_future(self.on_stepping_down())
                while self.leader and not drained.done():
                    await asyncio.wait({drained}, timeout=self.renew_interval)
                    if not drained.done():
                        await self._renew_until_done()
                if not self.leader:  # lost while waiting (fenced): on_stopped has run
                    return
                if drained.exception() is not None:
                    logger.error("%s: stepping down: %r", self.identity, drained.exception())
            # nothing is written any more but the release itself (guarded by its resourceVersion):
            # a slow release must not end the process the way a missed renewal does
            self._cancel_fence()
            if self._lease is not None:
                try:
                    await self._release(self._lease)
                except Exception as exc:  # noqa: BLE001 - it then expires by itself
                    logger.warning("%s: could not release the Lease %s (%s); it expires in %gs",
                                   self.identity, self.lease, _describe(exc), self.lease_duration)
            self.leader = False
            self.holder = ""
            logger.info("%s: standing by while the Node %s is unschedulable", self.identity, self.node_name)
        finally:
            if drained is not None and not drained.done():
                drained.cancel()
            self.stepping_down = False

    async def _node_unschedulable(self) -> bool:
        """This replica's Node has ``spec.unschedulable`` (False without a Node name, or when it
        cannot be read within :data:`NODE_TIMEOUT`)."""
        if not self.node_name or self.core_api is None:
            return False

        def read() -> dict[str, Any]:
            r = self.core_api.read_node(self.node_name, _preload_content=False, _request_timeout=NODE_REQUEST_TIMEOUT)
            node: dict[str, Any] = json.loads(r.data)
            return node

        loop = asyncio.get_running_loop()
        try:
            node = await asyncio.wait_for(loop.run_in_executor(self._node_executor, read), NODE_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - unknown counts as schedulable
            logger.debug("%s: could not read the Node %s (%s): taken as schedulable", self.identity, self.node_name,
                         _describe(exc))
            return False
        cordoned = bool((node.get("spec") or {}).get("unschedulable"))
        if cordoned != self.cordoned:
            logger.info("%s: the Node %s is %s", self.identity, self.node_name,
                        "unschedulable: this replica will not lead" if cordoned else "schedulable again")
        self.cordoned = cordoned
        return cordoned

    async def release(self) -> None:
        """Give the Lease up (graceful stop), after this replica has stopped writing."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        was_leader, self.leader = self.leader, False
        self._cancel_fence()
        if was_leader and self._lease is not None:
            try:
                await asyncio.wait_for(self._release(self._lease), self.renew_interval)
            except Exception as exc:  # noqa: BLE001 - it then expires by itself
                logger.warning("%s: could not release the Lease %s (%s); it expires in %gs",
                               self.identity, self.lease, _describe(exc), self.lease_duration)
        self._executor.shutdown(wait=False)
        self._node_executor.shutdown(wait=False)

    async def _release(self, lease: dict[str, Any] | None) -> None:
        from kubernetes.client.rest import ApiException

        for _ in range(2):  # a renewal cut short by the stop may have changed the resourceVersion
            if _holder(lease) != self.identity:
                return
            try:
                await self._call("replace", self._body(lease, holder="", duration=1, acquired=True))
            except ApiException as exc:
                if exc.status != 409:
                    raise
                lease = await self._call("get")
                continue
            logger.info("%s: released the Lease %s", self.identity, self.lease)
            return

    # ------------------------------------------------------------ campaign and renewal

    async def _try_acquire(self) -> float:
        """One attempt; the seconds to wait before the next (when it did not lead)."""
        from kubernetes.client.rest import ApiException

        loop = asyncio.get_running_loop()
        lease = await self._call("get")
        now = loop.time()
        if lease is None:
            if await self._node_unschedulable():
                return self.retry_period
            started = loop.time()
            try:
                created = await self._call("create", self._body(None))
            except ApiException as exc:
                if exc.status == 409:  # another replica created it first
                    return self.retry_period
                raise
            self._led(created, started)
            return 0
        if _rv(lease) != self._observed_rv:
            self._observed_rv, self._observed_at = _rv(lease), now
        self.holder = _holder(lease)
        duration = float((lease.get("spec") or {}).get("leaseDurationSeconds") or self.lease_duration)
        expires = self._observed_at + duration
        if self.holder and self.holder != self.identity and now < expires:
            return max(0.05, min(self.retry_period, expires - now))
        if await self._node_unschedulable():
            return self.retry_period
        started = loop.time()
        try:
            taken = await self._call("replace", self._body(lease))
        except ApiException as exc:
            if exc.status == 409:  # changed since read: someone renewed or took it
                return self.retry_period
            raise
        if self.holder and self.holder != self.identity:
            logger.info("%s: took over the Lease %s from %s", self.identity, self.lease, self.holder)
        self._led(taken, started)
        return 0

    async def _renew(self, started: float) -> bool:
        """One renewal: True when renewed, False to retry; leadership lost ends it."""
        from kubernetes.client.rest import ApiException

        assert self._lease is not None
        try:
            renewed = await self._call("replace", self._body(self._lease))
        except ApiException as exc:
            if exc.status != 409 or not self.leader:
                raise
            current = await self._call("get")  # our copy is stale: is it still ours?
            if not self.leader:
                return True
            if _holder(current) != self.identity:
                self.holder = _holder(current)
                self._lose(f"the Lease {self.lease} is now held by {self.holder or 'nobody'}")
                return True
            self._lease = current
            return False
        if self.leader:
            self._led(renewed, started)
        return True

    def _led(self, lease: dict[str, Any] | None, started: float) -> None:
        """A create or replace naming us succeeded; the lease counts from ``started``."""
        assert lease is not None, "only a read answers None (the Lease is absent)"
        self._lease = lease
        self._observed_rv, self._observed_at = _rv(lease), started
        self.holder = self.identity
        self.leader = True
        self.last_error = ""
        self._last_contact = started
        self._cancel_fence()
        self._fence = asyncio.get_running_loop().call_at(started + self.renew_deadline, self._expire)

    def _expire(self) -> None:
        self._fence = None
        if self.leader:
            self._lose(f"the Lease {self.lease} was not renewed for {self.renew_deadline:g}s"
                       + (f" ({self.last_error})" if self.last_error else ""))

    def _lose(self, reason: str) -> None:
        if not self.leader:
            return
        self.leader = False
        self.lost = True
        self._cancel_fence()
        logger.error("%s: no longer the leader: %s", self.identity, reason)
        self.on_stopped(reason)

    def _cancel_fence(self) -> None:
        if self._fence is not None:
            self._fence.cancel()
            self._fence = None

    def _failed(self, what: str, exc: BaseException) -> None:
        self.last_error = f"{what}: {_describe(exc)}"
        logger.warning("%s: %s", self.identity, self.last_error)

    def _body(self, lease: dict[str, Any] | None, *, holder: str | None = None, duration: float | None = None,
              acquired: bool = False) -> dict[str, Any]:
        """The Lease to write: ours (or ``holder``'s), renewed now, at the resourceVersion read."""
        meta = {k: v for k, v in ((lease or {}).get("metadata") or {}).items() if k != "managedFields"}
        meta.update(name=self.name, namespace=self.namespace)
        spec = dict((lease or {}).get("spec") or {})
        holder = self.identity if holder is None else holder
        now = _now()
        changes = _holder(lease) != holder
        spec.update(holderIdentity=holder, leaseDurationSeconds=int(duration or self.lease_duration), renewTime=now)
        if changes or acquired or not spec.get("acquireTime"):
            spec["acquireTime"] = now
        if lease is None:
            spec["leaseTransitions"] = 0
        elif changes and holder:
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    # ------------------------------------------------------------ the API, in this module's thread

    async def _call(self, verb: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        from kubernetes.client.rest import ApiException

        def call() -> dict[str, Any] | None:
            kw: dict[str, Any] = {"_preload_content": False, "_request_timeout": REQUEST_TIMEOUT}
            if verb == "get":
                try:
                    r = self.api.read_namespaced_lease(self.name, self.namespace, **kw)
                except ApiException as exc:
                    if exc.status == 404:
                        return None
                    raise
            elif verb == "create":
                r = self.api.create_namespaced_lease(self.namespace, body, **kw)
            else:
                r = self.api.replace_namespaced_lease(self.name, self.namespace, body, **kw)
            lease: dict[str, Any] = json.loads(r.data)
            return lease

        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, call)
        except ApiException:
            self._last_contact = loop.time()  # refused, but reached
            raise
        self._last_contact = loop.time()
        return result


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status:
        return f"HTTP {status} {reason or ''}".strip()
    return type(exc).__name__


__all__ = ["LeaderElector", "default_identity", "default_namespace", "LEASE_DURATION", "RENEW_DEADLINE",
           "RENEW_INTERVAL", "RETRY_PERIOD", "NODE_TIMEOUT"]
