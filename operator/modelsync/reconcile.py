"""The reconcile core: the one place that decides what to call, in what order.

For each registry a resource names, like crossplane-runtime's managed reconciler:

1. resolve the registry object and its Secret into a :class:`RegistryConnection`;
2. ``observe`` the registry's object (found by its deterministic id);
3. ``create`` it when absent, else ``update`` only ``observation.diff``, else nothing;
   (on the first try in a registry the create goes without a read first: it is
   idempotent, so it finds and adopts what a try whose status was lost made);
4. fold every registry's outcome into ``status.registries`` and the aggregate
   ``Ready`` / ``Synced`` conditions.

The result is a status *patch* that holds only what changed, so an unchanged
resync writes nothing, and an error decision for the caller: retry later
(:class:`Retry`, with jittered exponential backoff or the registry's
Retry-After) or wait for a new spec (:class:`Stop`). The controller
(:mod:`modelsync.controller`) schedules accordingly; backends never decide any of this.

Connections and their cache live in :mod:`modelsync.connections`, status building in
:mod:`modelsync.status`: this module keeps the decisions.

A registry whose entry already records a terminal failure for the current
generation is not called again: a rejected spec is retried when it changes.

Three rules keep a reconcile from writing more than it must:

* **Ready vs Synced** (Crossplane's split): ``Ready`` says every registry held
  the spec when last observed; ``Synced`` says whether the last reconcile
  worked. A transient read error flips Synced, not a Ready resource.
* **One write per spec**: a field the registry accepted but does not echo back
  is recorded in ``status.registries[].unobservedFields`` (field → digest of
  the desired value) and not compared again until its spec value changes, so
  the same update is never sent twice for one spec.
* **Failures are news once**: an Event is posted when an entry's reason
  changes, not on every try (``DependencyNotReady`` is Normal, the rest are
  Warnings), and the status patch is empty when nothing changed.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random
from typing import Any, Mapping, Sequence, cast

import pydantic

from . import api
from .backends.base import (
    Backend, BackendError, CredentialsRejected, Kind, Observation, Recoverable,
    Resource, Terminal,
)

from .conditions import (
    STALLED_REASONS, TERMINAL_REASONS, WAITING_REASONS, ConditionType, Reason, Status, now_rfc3339,
)
from .connections import BackendPool
from .kube import NotFound, Reader
from .status import build as build_status, condition_of, patch as patch_of
from .status import slim_inventory
from .redact import scrub

# TERMINAL_REASONS, OBSERVED_REASONS, WAITING_REASONS and STALLED_REASONS are derived from
# modelsync.conditions.Reason (each reason's class and whether it stalls); re-exported here
#: how long to wait before trying rejected credentials again when no Secret change says so first
CREDENTIALS_RETRY = 300.0
BACKOFF_BASE = 1.0
#: low enough that a registry back from an outage is called again within half a minute even
#: without its Ready condition turning True (the controller also requeues on that)
BACKOFF_CAP = 30.0


PAUSE_ANNOTATION = "modelsync.io/paused"


def paused(body: Mapping[str, Any]) -> bool:
    return ((body.get("metadata") or {}).get("annotations") or {}).get(PAUSE_ANNOTATION) == "true"


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before try ``attempt + 1``: exponential backoff with full jitter
    (uniform(base, min(cap, base*2^n))), and never less than the registry's Retry-After."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** max(0, attempt)))
    delay = random.uniform(min(BACKOFF_BASE, ceiling), ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after + random.uniform(0, min(1.0, retry_after * 0.1 + 0.1)))
    return delay


def digest(value: Any) -> str:
    """A short, stable digest of a JSON-able value (for unobservedFields)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- outcomes


@dataclasses.dataclass
class Retry:
    message: str
    delay: float


@dataclasses.dataclass
class Stop:
    message: str


@dataclasses.dataclass
class Outcome:
    """What one reconcile decided: a status patch (empty when nothing changed),
    Events for what was written to registries, and whether to retry or wait for
    a new spec. Failures reach Events through kopf's error posting, once."""

    status_patch: dict[str, Any]
    events: list[tuple[str, str, str]]  # (type, reason, message)
    error: Retry | Stop | None = None
    #: (backend, fields) for each registry where drift was found and set back
    drifts: list[tuple[str, tuple[str, ...]]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _RegistryResult:
    entry: dict[str, Any]
    event: tuple[str, str, str] | None
    error: BackendError | None
    drifted: tuple[str, ...] = ()


class Reconciler:
    """Reconciles Models and ModelServices. One instance per operator process."""

    def __init__(self, reader: Reader, pool: BackendPool | None = None, *,
                 default_deletion_policy: str = "Delete") -> None:
        if default_deletion_policy not in ("Delete", "Orphan"):
            raise ValueError(f"default deletion policy must be Delete or Orphan, not {default_deletion_policy!r}")
        self.default_deletion_policy = default_deletion_policy
        self.reader = reader
        self.pool = pool or BackendPool(reader)
        self._locks: dict[str, asyncio.Lock] = {}

    async def reconcile(
        self,
        kind: str,
        body: Mapping[str, Any],
        *,
        attempt: int = 0,
    ) -> Outcome:
        meta = body.get("metadata", {})
        uid = meta["uid"]
        lock = self._locks.setdefault(uid, asyncio.Lock())
        async with lock:  # one reconcile of a resource at a time, whoever asks (queue, deletion, CLI)
            return await self._reconcile(kind, body, attempt)

    def forget(self, uid: str) -> None:
        self._locks.pop(uid, None)

    async def _reconcile(self, kind: str, body: Mapping[str, Any], attempt: int) -> Outcome:
        meta = body.get("metadata", {})
        generation = int(meta.get("generation") or 0)
        old_status = dict(body.get("status") or {})
        old_entries = {(e.get("kind", "ModelRegistry"), e.get("name")): e for e in old_status.get("registries") or []}
        if paused(body):
            # no registry call at all: only say so (once)
            status: dict[str, Any] = {"conditions": self._with_paused(old_status, generation, True)}
            return Outcome(patch_of(old_status, status), [], None)
        try:
            spec = api.parse_spec(kind, body.get("spec") or {})
        except pydantic.ValidationError as exc:
            message = api.describe_validation_error(exc)
            status = build_status(old_status, generation, [], spec_error=Terminal(message))
            return Outcome(patch_of(old_status, status), [], Stop(message))
        observe_only = spec.managementPolicy == "ObserveOnly"
        wanted = {(ref.kind, ref.name) for ref in spec.registries}
        dropped = [e for key, e in old_entries.items() if key not in wanted]

        results = await asyncio.gather(*[
            self._one(kind, meta, spec, generation, ref, old_entries.get((ref.kind, ref.name)), observe_only)
            for ref in spec.registries
        ], *[
            self._release(kind, meta, spec, e, self.deletion_policy(spec)) for e in dropped
        ])
        entries = [r.entry for r in results if r.entry]
        errors = [r.error for r in results if r.error is not None]
        status = build_status(old_status, generation, entries)
        drifts = sum(1 for r in results if r.drifted)
        if drifts:
            status["driftCount"] = int(old_status.get("driftCount") or 0) + drifts
        if any(c.get("type") == ConditionType.PAUSED for c in old_status.get("conditions") or []):
            status["conditions"] = self._with_paused({"conditions": status["conditions"]}, generation, False,
                                                     old=old_status)
        events = [r.event for r in results if r.event]
        return Outcome(patch_of(old_status, status), events, self._decide(errors, attempt, entries),
                       drifts=[(r.entry.get("backend", ""), r.drifted) for r in results if r.drifted])

    def deletion_policy(self, spec: Any) -> str:
        """What removing an entry does: the spec's deletionPolicy, else the operator's default.
        ObserveOnly never deletes."""
        if spec.managementPolicy == "ObserveOnly":
            return "Orphan"
        return spec.deletionPolicy or self.default_deletion_policy

    def needs_finalizer(self, kind: str, body: Mapping[str, Any]) -> bool:
        """Whether deleting the resource must first remove registry entries (so a finalizer
        must hold it): managed, policy Delete. Unparseable specs need none."""
        try:
            spec = api.parse_spec(kind, body.get("spec") or {})
        except pydantic.ValidationError:
            return False
        return self.deletion_policy(spec) == "Delete"

    async def finalize(self, kind: str, body: Mapping[str, Any], *, attempt: int = 0) -> tuple[bool, Outcome]:
        """The resource is being deleted: remove its entries from every registry (policy
        Delete; "not found" is done) or leave them (Orphan). True when the finalizer may go."""
        meta = body.get("metadata", {})
        uid = meta["uid"]
        lock = self._locks.setdefault(uid, asyncio.Lock())
        async with lock:
            generation = int(meta.get("generation") or 0)
            old_status = dict(body.get("status") or {})
            try:
                spec = api.parse_spec(kind, body.get("spec") or {})
            except pydantic.ValidationError:
                return True, Outcome({}, [], None)
            policy = self.deletion_policy(spec)
            if policy == "Orphan":
                return True, Outcome({}, [], None)
            entries = {(e.get("kind", "ModelRegistry"), e.get("name")): e for e in old_status.get("registries") or []}
            for ref in spec.registries:
                entries.setdefault((ref.kind, ref.name), {"name": ref.name, "kind": ref.kind})
            results = await asyncio.gather(*[self._release(kind, meta, spec, e, "Delete") for e in entries.values()])
            left = [r.entry for r in results if r.entry]
            errors = [r.error for r in results if r.error is not None]
            if not errors:
                return True, Outcome({}, [r.event for r in results if r.event], None)
            status = build_status(old_status, generation, left)
            summary = "; ".join(f"{e['name']}: {e.get('message', '')}" for e in left)
            message = (f"cannot remove the registry entries: {summary}; it is tried again, or set "
                       "spec.deletionPolicy: Orphan to leave them and let the resource go")
            status["conditions"] = [
                {**c, "message": message[:32000]} if c["type"] == ConditionType.SYNCED else c for c in status["conditions"]]
            outcome = Outcome(patch_of(old_status, status), [r.event for r in results if r.event],
                              self._decide(errors, attempt, left))
            return False, outcome

    async def _release(self, kind: str, meta: Mapping[str, Any], spec: Any, entry: Mapping[str, Any],
                       policy: str) -> _RegistryResult:
        """Remove (policy Delete) or leave (Orphan) one registry's entry. An empty entry in
        the result means it is gone from status; a failure keeps it, with the reason."""
        if policy != "Delete":
            return _RegistryResult({}, None, None)
        ref = api.RegistryRef(name=entry["name"], kind=entry.get("kind", "ModelRegistry"))
        namespace = meta.get("namespace", "")
        try:
            backend, _ = await self.pool.backend(ref, namespace)
            if not backend.supports(kind):
                return _RegistryResult({}, None, None)
            res = Resource(kind=cast(Kind, kind), name=meta["name"], namespace=namespace, uid=meta["uid"],
                           generation=int(meta.get("generation") or 0), spec=spec,
                           external_id=entry.get("externalId"), adopted=entry.get("adopted", False))
            async with self.pool.limit(backend):
                await backend.delete(res)
        except BackendError as exc:
            message = scrub(exc.message)
            failed = {**entry, "synced": False, "reason": exc.reason,
                      "message": f"removing from {ref.kind} {ref.name}: {message}"}
            event = None
            if entry.get("reason") != exc.reason:
                event = ("Warning", exc.reason, f"{ref.kind} {ref.name}: could not remove the entry: {message}")
            return _RegistryResult(failed, event, exc)
        except Exception as exc:  # never leak, never crash
            message = scrub(f"unexpected {type(exc).__name__}: {exc}")
            return _RegistryResult({**entry, "synced": False, "reason": Reason.RECONCILE_ERROR, "message": message},
                                   None, Recoverable(message, reason=Reason.RECONCILE_ERROR))
        label = entry.get("externalId") or "its entry"
        return _RegistryResult({}, ("Normal", Reason.DELETED, f"removed {label} from {ref.kind} {ref.name}"), None)

    def _with_paused(self, current: Mapping[str, Any], generation: int, on: bool,
                     old: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """``current``'s conditions with ``Paused`` set (its transition time kept from ``old``)."""
        conditions = [c for c in current.get("conditions") or [] if c.get("type") != ConditionType.PAUSED]
        before = next((c for c in (old or current).get("conditions") or [] if c.get("type") == ConditionType.PAUSED),
                      None)
        paused_cond = condition_of(
            before, ConditionType.PAUSED, "True" if on else "False", Reason.PAUSED if on else Reason.RESUMED,
            f"{PAUSE_ANNOTATION} is true: no registry is called" if on else "reconciled again", generation)
        return [*conditions, paused_cond]

    async def _one(
        self, kind: str, meta: Mapping[str, Any], spec: Any, generation: int,
        ref: api.RegistryRef, old: Mapping[str, Any] | None, observe_only: bool = False,
    ) -> _RegistryResult:
        namespace = meta.get("namespace", "")
        base: dict[str, Any] = {"name": ref.name, "kind": ref.kind}
        if ref.externalId:
            base["adopted"] = True
        keep = ("backend", "externalId", "inventory", "lastSyncTime", "registryVersion", "unobservedFields",
                "lastDrift")
        previous = {k: old[k] for k in keep if old and old.get(k) is not None}
        if ref.externalId and previous.get("externalId") not in (None, ref.externalId):
            previous = {}  # another entry is adopted now: nothing recorded of the old one applies
        drift: tuple[str, ...] = ()
        try:
            backend, registry_version = await self.pool.backend(ref, namespace)
            if (old and old.get("reason") in TERMINAL_REASONS and old.get("observedGeneration") == generation
                    and old.get("registryVersion") == registry_version):
                # Rejected for this very spec, by this very registry configuration: calling again
                # cannot help. A new generation, or a changed registry or Secret, is tried again.
                return _RegistryResult(dict(old), None, Terminal(old.get("message") or "", reason=old["reason"]))
            previous["backend"] = backend.name
            previous["registryVersion"] = registry_version
            backend.require(kind, remedy=f"remove {ref.kind} {ref.name} from spec.registries")
            res = Resource(
                kind=cast(Kind, kind), name=meta["name"], namespace=namespace, uid=meta["uid"], generation=generation,
                spec=spec, external_id=ref.externalId or previous.get("externalId"), adopted=bool(ref.externalId),
                references=await self._references(backend, kind, spec, namespace, ref),
            )
            if observe_only:
                async with self.pool.limit(backend):
                    return await self._observe_only(backend, res, ref, base, previous, old, generation,
                                                    registry_version)
            # the registry held this generation when last looked at: a difference now is drift
            held = bool(old and old.get("reason") == Reason.SYNCED and old.get("observedGeneration") == generation)
            async with self.pool.limit(backend):
                obs, action, unobserved, sent = await self._converge(
                    backend, res, ref, previous.get("unobservedFields") or {},
                    first=old is None and not res.adopted)
            if held and sent and action and action[0] == Reason.UPDATED:
                drift = sent
        except BackendError as exc:
            message = scrub(exc.message)
            unnamed = [f for f in getattr(exc, "fields", ()) if f not in message]
            if unnamed:
                message = f"{message} (field: {', '.join(unnamed)})"
            return self._failed({**base, **previous}, old, generation, exc, message)
        except Exception as exc:  # a bug or an unexpected library error: retry, never leak
            message = scrub(f"unexpected {type(exc).__name__}: {exc}")
            return self._failed({**base, **previous}, old, generation,
                                Recoverable(message, reason=Reason.RECONCILE_ERROR), message)
        entry = {
            **base, "backend": backend.name, "registryVersion": registry_version,
            "externalId": obs.external_id, "synced": True,
            "reason": Reason.SYNCED, "message": f"in sync with {backend.name} registry {ref.name}",
            "lastSyncTime": now_rfc3339() if action or not previous.get("lastSyncTime") else previous["lastSyncTime"],
            "observedGeneration": generation, "inventory": slim_inventory(obs.inventory or {}),
        }
        if unobserved:
            entry["unobservedFields"] = unobserved
        if obs.not_settable:
            entry["notSettable"] = [n.status() for n in obs.not_settable]
        if drift:
            entry["lastDrift"] = list(drift)
            event: tuple[str, str, str] | None = ("Warning", Reason.DRIFT, f"{', '.join(drift)} changed in {backend.name} registry {ref.name} "
                                         f"behind ModelSync's back; set back to the spec")
            return _RegistryResult(entry, event, None, drifted=drift)
        if previous.get("lastDrift"):
            entry["lastDrift"] = previous["lastDrift"]
        # No Event for a create: the status says it (externalId, lastSyncTime), and a create
        # already costs the finalizer and the status write; a changed registry entry is news
        event = ("Normal", action[0], f"{action[1]} as {obs.external_id}") if action and action[0] != Reason.CREATED else None
        return _RegistryResult(entry, event, None)

    async def _observe_only(
        self, backend: Backend, res: Resource, ref: api.RegistryRef, base: Mapping[str, Any],
        previous: Mapping[str, Any], old: Mapping[str, Any] | None, generation: int, registry_version: str,
    ) -> _RegistryResult:
        """ObserveOnly: read the entry, report it and how it differs from the spec; write nothing."""
        obs = await backend.observe(res)
        entry: dict[str, Any] = {**base, "backend": backend.name, "registryVersion": registry_version,
                                 "observedGeneration": generation}
        if not obs.exists:
            entry.update(synced=False, reason=Reason.ABSENT,
                         message=f"no entry in {backend.name} registry {ref.name}; ObserveOnly never creates one "
                                 "(set spec.managementPolicy: Manage, or spec.registries[].externalId to watch another)")
        else:
            differs = sorted(obs.diff)
            entry.update(externalId=obs.external_id, inventory=slim_inventory(obs.inventory or {}),
                         synced=not differs, reason=Reason.DIFFERS if differs else Reason.SYNCED,
                         message=(f"{backend.name} registry {ref.name} differs from the spec in {', '.join(differs)}; "
                                  "ObserveOnly does not change it") if differs else
                                 f"{backend.name} registry {ref.name} holds the spec (ObserveOnly)",
                         lastSyncTime=previous.get("lastSyncTime") or now_rfc3339())
            if differs:
                entry["differences"] = differs
            if obs.not_settable:
                entry["notSettable"] = [n.status() for n in obs.not_settable]
        event = None
        if not old or old.get("reason") != entry["reason"] or old.get("differences") != entry.get("differences"):
            if entry["reason"] != Reason.SYNCED:
                event = ("Warning" if entry["reason"] == Reason.DIFFERS else "Normal", entry["reason"], entry["message"])
        return _RegistryResult(entry, event, None)

    @staticmethod
    async def _converge(
        backend: Backend, res: Resource, ref: api.RegistryRef, unobserved: Mapping[str, str], first: bool,
    ) -> tuple[Observation, tuple[str, str] | None, dict[str, str], tuple[str, ...]]:
        """observe → create or update only what differs → observe what the write left.

        Returns the last observation, what was done (for the Event), the fields the
        registry accepted without reflecting them (field → digest of the desired value),
        and the fields an update sent.
        A field recorded that way is left out of the comparison while its desired value
        stays the same: the registry has it, and sending it again would be the same write
        for the same spec.
        """
        def wanted(obs: Observation, field: str) -> str:
            if field in obs.desired:
                return digest(obs.desired[field])
            return digest([field, res.spec.model_dump(mode="json", exclude_none=True)])

        def still_unseen(obs: Observation) -> dict[str, str]:
            return {f: wanted(obs, f) for f in obs.diff if unobserved.get(f) == wanted(obs, f)}

        async def written(inventory: Mapping[str, Any]) -> Observation:
            """The object as stored after a write: from the reply when it holds it, else read."""
            return backend.observation(res, inventory or {}) or await backend.observe(res)

        # First try in this registry: create straight away. Creates are idempotent by
        # construction (the id comes from the resource), so an object made by an earlier try
        # whose status write was lost is found and adopted by the create itself; reading
        # first would only cost every new resource one more request. Later tries read first.
        obs = Observation(exists=False) if first else await backend.observe(res)
        if not obs.exists and res.adopted:
            raise Terminal(f"spec.registries[].externalId {res.external_id} names no entry in {backend.name} "
                           f"registry {ref.name}; an adopted entry is never created", reason=Reason.EXTERNAL_NOT_FOUND)
        if not obs.exists:
            after = await written(await backend.create(res))  # adoption may leave a diff
            if not after.exists:
                raise Recoverable(f"{backend.name} registry {ref.name} accepted the create but does not "
                                  "show the object yet; will look again")
            created = (Reason.CREATED, f"created in {backend.name} registry {ref.name}")
            # A field the create sent that the registry does not show at all was accepted and
            # is not reflected: recorded, not sent again. One it shows with another value is a
            # real difference (an object made earlier was adopted): it gets one update.
            shown = after.inventory or {}
            unseen = {f: wanted(after, f) for f in after.diff if shown.get(f) is None}
            pending = tuple(f for f in after.diff if f not in unseen)
            if not pending:
                return after, created, unseen, ()
            final = await written(await backend.update(res, dataclasses.replace(after, diff=pending)))
            return final, created, {f: wanted(final, f) for f in final.diff}, pending
        skipped = still_unseen(obs)
        pending = tuple(f for f in obs.diff if f not in skipped)
        if not pending:
            return obs, None, skipped, ()
        fields = ", ".join(pending)
        after = await written(await backend.update(res, dataclasses.replace(obs, diff=pending)))
        if not after.exists:
            raise Recoverable(f"{backend.name} registry {ref.name} lost the object during the update; "
                              "it will be created again")
        # whatever still differs was accepted and not reflected: recorded, not sent again
        return after, (Reason.UPDATED, f"updated {fields} in {backend.name} registry {ref.name}"), {
            f: wanted(after, f) for f in after.diff}, pending

    @staticmethod
    def _failed(known: Mapping[str, Any], old: Mapping[str, Any] | None, generation: int,
                err: BackendError, message: str) -> _RegistryResult:
        """The entry for a registry that could not be synced: what was known before, plus why.

        ``synced`` stays true through a transient failure when the registry held this very
        generation when last observed (Ready keeps its meaning); a terminal failure clears it.
        """
        held = bool(old and old.get("synced") and old.get("observedGeneration") == generation)
        synced = held and isinstance(err, Recoverable)
        entry = {**known, "synced": synced, "reason": err.reason, "message": message,
                 "observedGeneration": generation}
        event = None
        if not old or old.get("reason") != err.reason:
            event = ("Normal" if err.reason in WAITING_REASONS else "Warning", err.reason,
                     f"{known['kind']} {known['name']}: {message}")
        return _RegistryResult(entry, event, err)

    async def check_registry(self, kind: str, body: Mapping[str, Any]) -> Outcome:
        """A registry's own Ready condition: can ModelSync use it right now?"""
        meta = body.get("metadata", {})
        generation = int(meta.get("generation") or 0)
        old = dict(body.get("status") or {})
        ref = api.RegistryRef(name=meta["name"], kind=kind)  # type: ignore[arg-type]
        error: Retry | Stop | None = None
        status: Status
        reason: str
        message: str
        stalled: tuple[Status, str, str]
        reconciling: tuple[Status, str, str]
        try:
            backend, _ = await self.pool.backend(ref, meta.get("namespace", ""))
            status, reason, message = "True", Reason.CONNECTED, await backend.check()
        except BackendError as exc:
            status, reason, message = "False", exc.reason, scrub(exc.message)
            if isinstance(exc, Recoverable):
                error = Retry(message, backoff(0, exc.retry_after))
        except Exception as exc:  # never leak, never crash the handler
            status, reason, message = "False", Reason.RECONCILE_ERROR, scrub(f"unexpected {type(exc).__name__}: {exc}")
            error = Retry(message, backoff(0))
        # Stalled / Reconciling as on the resources, so kstatus (a Flux Kustomization) fails fast on
        # a wrong password or endpoint instead of waiting for its timeout, as Argo CD's check does
        if status == "True":
            stalled, reconciling = ("False", Reason.CONNECTED, ""), ("False", Reason.CONNECTED, "")
        elif reason in STALLED_REASONS:
            stalled = ("True", reason, message)
            reconciling = ("False", Reason.STALLED, "waiting for the registry object or its Secret to change")
        else:
            stalled, reconciling = ("False", Reason.RETRYING, "the check is retried"), ("True", reason, message)
        old_conds = {c.get("type"): c for c in old.get("conditions") or []}
        new = {"observedGeneration": generation, "conditions": [
            condition_of(old_conds.get(t), t, s, r, m, generation)
            for t, (s, r, m) in ((ConditionType.READY, (status, reason, message)), (ConditionType.STALLED, stalled),
                                 (ConditionType.RECONCILING, reconciling))]}
        return Outcome(patch_of(old, new), [], error)

    async def _references(self, backend: Backend, kind: str, spec: Any, namespace: str,
                          ref: api.RegistryRef) -> dict[str, str]:
        """External ids of the objects the spec points at, in the same registry."""
        if kind != "Model" or not spec.defaultServiceRef or "defaultService" not in backend.references:
            return {}
        name = spec.defaultServiceRef.name
        try:
            svc = await self.reader.model_service(name, namespace)
        except NotFound:
            raise Recoverable(f"spec.defaultServiceRef: ModelService {name} not found; waiting for it",
                              reason=Reason.DEPENDENCY_NOT_READY) from None
        for e in (svc.get("status") or {}).get("registries") or []:
            if e.get("name") == ref.name and e.get("kind", "ModelRegistry") == ref.kind and e.get("externalId"):
                return {"defaultService": e["externalId"]}
        raise Recoverable(f"spec.defaultServiceRef: ModelService {name} is not yet in registry {ref.name}; "
                          "waiting for it", reason=Reason.DEPENDENCY_NOT_READY)

    @staticmethod
    def _decide(errors: Sequence[BackendError], attempt: int, entries: Sequence[Mapping[str, Any]]) -> Retry | Stop | None:
        if not errors:
            return None
        summary = "; ".join(f"{e['name']}: {e.get('message', '')}" for e in entries if not e.get("synced"))
        recoverable = [e for e in errors if isinstance(e, Recoverable)]
        if recoverable:
            hints = [e.retry_after for e in recoverable if e.retry_after is not None]
            return Retry(summary, backoff(attempt, max(hints) if hints else None))
        if any(isinstance(e, CredentialsRejected) for e in errors):
            return Retry(summary, CREDENTIALS_RETRY)
        return Stop(summary)


# re-exported for handlers
__all__ = ["Reconciler", "Outcome", "Retry", "Stop", "backoff", "Observation"]
