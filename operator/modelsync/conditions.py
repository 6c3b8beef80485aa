"""Every reason ModelSync sets, what each means, and the conditions built from them.

:class:`Reason` is the one list of reasons: of a registry entry (``status.registries[].reason``),
of a condition (``Ready``, ``Synced``, ``Stalled``, ``Reconciling``, ``Paused``) and of an Event.
Each member carries

* its :class:`ReasonClass`: what the reconcile core does about it (``terminal``: not called again
  until the spec, the registry object or its Secret changes; ``recoverable``: retried with backoff;
  ``observed``: a reconcile that worked; ``waiting``: waiting on another resource, a Normal Event;
  ``condition`` and ``event``: only a condition's or an Event's reason, never an entry's);
* ``meaning`` and ``remedy``: what the README's table of reasons says, in words that hold for every
  registry; a ``…`` stands where the README names what a particular registry answers (its error
  codes, its field names). ``tests/unit/test_readme.py`` holds each README row to them
  (:func:`matches`); ``python -m modelsync.conditions`` prints the table with the ``…`` left in;
* ``registry``: a registry's own ``Ready`` condition may carry it;
* ``stalled``: only a change someone makes fixes it (``Stalled=True``; kstatus reads that as
  Failed, Argo CD's health check as Degraded).

A :class:`Reason` is a ``str`` (``StrEnum``): it compares equal to the text, and status and
Events carry the text. The sets the core decides by (:data:`TERMINAL_REASONS` and the others)
are derived from the members, never written out.

Conditions are built as :class:`modelsync.api.Condition` (the CRD's own model) by
:func:`condition` and dumped to the dicts a status patch holds by :func:`condition_dict`.
"""
from __future__ import annotations

import datetime
import enum
import sys
from typing import Any, Literal, Mapping

from . import api

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10
    class StrEnum(str, enum.Enum):
        """``enum.StrEnum`` of Python 3.11."""

        def __str__(self) -> str:
            return str(self.value)


class ReasonClass(StrEnum):
    """What the reconcile core does about a reason."""

    #: do not call this registry again until the spec, the registry object or its Secret changes
    TERMINAL = "terminal"
    #: retried with backoff (or, for rejected credentials, every 5 minutes and on a Secret change)
    RECOVERABLE = "recoverable"
    #: the reconcile worked: the entry was synced, or (ObserveOnly) observed and reported
    OBSERVED = "observed"
    #: waiting on another resource, not failing: posted as Normal Events
    WAITING = "waiting"
    #: only a condition's summary reason, never a registry entry's
    CONDITION = "condition"
    #: only an Event's reason
    EVENT = "event"


def _r(value: str, klass: ReasonClass, meaning: str, remedy: str = "", *, registry: bool = False,
       stalled: bool = False) -> tuple[str, ReasonClass, str, str, bool, bool]:
    """A :class:`Reason` member's value, with its flags named."""
    return value, klass, meaning, remedy, registry, stalled


class Reason(StrEnum):
    """Every reason ModelSync sets (see the module doc)."""

    klass: ReasonClass
    meaning: str
    remedy: str
    registry: bool
    stalled: bool

    def __new__(cls, value: str, klass: ReasonClass, meaning: str, remedy: str, registry: bool,
                stalled: bool) -> "Reason":
        member = str.__new__(cls, value)
        member._value_ = value
        member.klass = klass
        member.meaning = meaning
        member.remedy = remedy
        member.registry = registry
        member.stalled = stalled
        return member

    # ---------------------------------------------------------------- a registry entry's failures

    INVALID_SPEC = _r(
        "InvalidSpec", ReasonClass.TERMINAL,
        "the registry refused the content (400, 413–415, 422, other 4xx, …); the message is the registry's, "
        "naming the field",
        "fix the spec; nothing is sent again until the spec, the registry object or its Secret changes")
    NAME_TAKEN = _r(
        "NameTaken", ReasonClass.TERMINAL,
        "the id or name exists in the registry and was not made by this resource",
        "choose another … or remove the other entry")
    UNSUPPORTED = _r(
        "Unsupported", ReasonClass.TERMINAL,
        "the registry has no counterpart for this kind (…)",
        "remove that registry from `spec.registries`")
    REGISTRY_MISCONFIGURED = _r(
        "RegistryMisconfigured", ReasonClass.TERMINAL,
        "the endpoint is not that registry's API (404 without the registry's error envelope, a redirect, 405), "
        "or its model center / workspace / namespace does not exist (…)",
        "fix the registry object's `endpoint` or settings; what waited on it is retried at once",
        registry=True)
    CREDENTIALS_REJECTED = _r(
        "CredentialsRejected", ReasonClass.RECOVERABLE,
        "401/403 or a failed login (…)",
        "fix the Secret; retried as soon as it changes (at the latest every 5 minutes)",
        registry=True, stalled=True)
    CREDENTIALS_INVALID = _r(
        "CredentialsInvalid", ReasonClass.TERMINAL,
        "a Secret value holds a character no request can carry (the message names the Secret and key)",
        "fix the Secret value; retried as soon as it changes",
        registry=True)
    REGISTRY_UNAVAILABLE = _r(
        "RegistryUnavailable", ReasonClass.RECOVERABLE,
        "5xx, 408, 425, 429, …, a timeout or a lost connection",
        "nothing: retried with backoff (≥ `Retry-After`, ≤ 30 s) and at once when the registry is Ready again; "
        "a Ready resource stays Ready",
        registry=True)
    EXTERNAL_NOT_FOUND = _r(
        "ExternalNotFound", ReasonClass.TERMINAL,
        "`spec.registries[].externalId` names no entry in that registry (an adopted entry is never created)",
        "fix the id, or drop `externalId` to let ModelSync create one")
    DIFFERS = _r(
        "Differs", ReasonClass.OBSERVED,
        "ObserveOnly: the registry's entry differs from the spec in the fields "
        "`status.registries[].differences` lists (a Warning Event when that changes)",
        "nothing, or change the spec or the registry; ObserveOnly never writes")
    ABSENT = _r(
        "Absent", ReasonClass.OBSERVED,
        "ObserveOnly: the registry has no such entry",
        "create it in the registry, set `externalId`, or switch to `managementPolicy: Manage`",
        stalled=True)
    REGISTRY_NOT_FOUND = _r(
        "RegistryNotFound", ReasonClass.RECOVERABLE,
        "no ModelRegistry / ClusterModelRegistry of that name",
        "create it, or fix `spec.registries`; retried with backoff")
    REGISTRY_INVALID = _r(
        "RegistryInvalid", ReasonClass.RECOVERABLE,
        "the registry object fails validation (it was stored before a rule existed)",
        "fix the registry object",
        stalled=True)
    SECRET_NOT_FOUND = _r(
        "SecretNotFound", ReasonClass.RECOVERABLE,
        "the registry's credentials or CA Secret (or its key) is missing",
        "create it; retried with backoff")
    DEPENDENCY_NOT_READY = _r(
        "DependencyNotReady", ReasonClass.WAITING,
        "`spec.defaultServiceRef` names a ModelService not yet in that registry, or no longer there (…) "
        "(a Normal Event: waiting, not failing)",
        "nothing, or create the ModelService; retried when it syncs")
    RECONCILE_ERROR = _r(
        "ReconcileError", ReasonClass.RECOVERABLE,
        "an unexpected error (a bug); the message is scrubbed",
        "retried with backoff; please report it")

    # ---------------------------------------------------------------- a registry entry that worked

    SYNCED = _r(
        "Synced", ReasonClass.OBSERVED,
        "the registry holds the spec (an entry's reason, and `Ready`'s when every registry does)")

    # ---------------------------------------------------------------- conditions only

    NOT_SYNCED = _r("NotSynced", ReasonClass.CONDITION, "`Ready`: not every registry holds the spec")
    RECONCILE_SUCCESS = _r(
        "ReconcileSuccess", ReasonClass.CONDITION,
        "`Synced`: the last reconcile worked with every registry (also `Stalled` and `Reconciling` then)")
    CONNECTED = _r("Connected", ReasonClass.CONDITION,
                 "a registry's `Ready`: reachable, credentials accepted, its settings present")
    RETRYING = _r("Retrying", ReasonClass.CONDITION, "`Stalled=False`: the failure is retried")
    STALLED = _r("Stalled", ReasonClass.CONDITION,
               "`Reconciling=False`: waiting for the spec, the registry or its Secret to change")
    PAUSED = _r("Paused", ReasonClass.CONDITION, "`Paused=True`: modelsync.io/paused is true, no registry is called")
    RESUMED = _r("Resumed", ReasonClass.CONDITION, "`Paused=False`: reconciled again after a pause")

    # ---------------------------------------------------------------- Events only

    CREATED = _r("Created", ReasonClass.EVENT, "an entry was created in a registry (no Event is posted for it)")
    UPDATED = _r("Updated", ReasonClass.EVENT, "fields of an entry were updated in a registry")
    DELETED = _r("Deleted", ReasonClass.EVENT, "an entry was removed from a registry")
    DRIFT = _r("Drift", ReasonClass.EVENT,
             "fields changed in the registry behind ModelSync's back were set back to the spec")

    @property
    def in_table(self) -> bool:
        """Whether the README's table of what can go wrong lists it: every reason a registry entry
        can carry but ``Synced``."""
        return self.klass not in (ReasonClass.CONDITION, ReasonClass.EVENT) and self.value != "Synced"


def _of(klass: ReasonClass) -> frozenset[Reason]:
    return frozenset(r for r in Reason if r.klass is klass)


#: reasons that mean "do not call this registry again until the spec or the registry changes"
TERMINAL_REASONS = _of(ReasonClass.TERMINAL)
#: entry reasons of a reconcile that worked (ObserveOnly's report of an entry that differs
#: from the spec, or is absent, is news, not a failure)
OBSERVED_REASONS = _of(ReasonClass.OBSERVED)
#: reasons that are waiting, not failing: posted as Normal Events
WAITING_REASONS = _of(ReasonClass.WAITING)
#: reasons that only a change made by someone fixes (the spec, the registry object, its Secret, or
#: the registry's own content): ``Stalled=True``, which kstatus (Flux) reads as Failed and Argo CD's
#: health check as Degraded. The operator may still look again now and then (rejected credentials
#: every 5 minutes, an absent ObserveOnly entry at each resync); nothing it does alone fixes them.
STALLED_REASONS = TERMINAL_REASONS | frozenset(r for r in Reason if r.stalled)
#: entry reasons after which a registry that says it is Ready is checked again soon (an outage
#: shows on it, and its recovery re-queues what waits for it)
OUTAGE_REASONS = frozenset({Reason.REGISTRY_UNAVAILABLE, Reason.RECONCILE_ERROR})


class ConditionType(StrEnum):
    """The conditions ModelSync sets."""

    READY = "Ready"
    SYNCED = "Synced"
    STALLED = "Stalled"
    RECONCILING = "Reconciling"
    PAUSED = "Paused"


Status = Literal["True", "False", "Unknown"]
#: a condition's message is cut to this many characters (the CRD allows 32768)
MESSAGE_LIMIT = 32000


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def condition(type_: str, status: Status, reason: str, message: str, generation: int, *,
              old: Mapping[str, Any] | None = None, now: str | None = None) -> api.Condition:
    """A condition, its ``lastTransitionTime`` kept from ``old`` (the same type's condition as
    stored) while the status stays the same, else ``now``."""
    unchanged = old is not None and old.get("status") == status and bool(old.get("lastTransitionTime"))
    return api.Condition(
        type=str(type_), status=status, reason=str(reason), message=message[:MESSAGE_LIMIT],
        observedGeneration=generation,
        lastTransitionTime=str(old["lastTransitionTime"]) if unchanged and old is not None else (now or now_rfc3339()))


def condition_dict(cond: api.Condition) -> dict[str, Any]:
    """A condition as a status patch and the stored object hold it (every field, plain JSON)."""
    return cond.model_dump(mode="json")


def find(conditions: Any, type_: str) -> Mapping[str, Any]:
    """The condition of ``type_`` in a stored ``conditions`` list, or an empty mapping."""
    for c in conditions or []:
        if isinstance(c, Mapping) and c.get("type") == type_:
            return c
    return {}


#: in a meaning or remedy: the README names what particular registries answer here
GAP = "…"


def matches(text: str, template: str) -> bool:
    """Whether ``text`` (a README cell) says ``template`` (a meaning or remedy): the parts between
    :data:`GAP` s appear in it in order, the first at its start and the last at its end."""
    parts = [p.strip() for p in template.split(GAP)]
    if len(parts) == 1:
        return text == parts[0]
    if not (text.startswith(parts[0]) and text.endswith(parts[-1])):
        return False
    at = len(parts[0])
    for part in parts[1:-1]:
        found = text.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return at <= len(text) - len(parts[-1])


def reason_table() -> str:
    """The README's table of reasons (section "When something goes wrong"), with a :data:`GAP`
    where the README names what particular registries answer."""
    lines = ["| reason | what it means | what you do |", "|---|---|---|"]
    for r in Reason:
        if r.in_table:
            mark = " (*registry*)" if r.registry else ""
            lines.append(f"| `{r.value}`{mark} | {r.meaning} | {r.remedy} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - prints the table for README.md
    sys.stdout.write(reason_table())
