"""Status building: a resource's status from its registries' entries, and the patch that holds
only what changed.

Kept apart from the decisions (:mod:`modelsync.reconcile`): the reconcile core decides what to
call and collects one entry per registry; this module turns entries into conditions (Ready and
Synced, as Crossplane splits them; Stalled and Reconciling, as kstatus reads them), keeps status
small enough for the apiserver, and compares with what is stored, so an unchanged resync writes
nothing.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from .backends.base import BackendError
from .backends.template import without_nulls
from .conditions import (
    OBSERVED_REASONS, STALLED_REASONS, TERMINAL_REASONS, ConditionType, Reason, Status, condition, condition_dict,
)

#: inventory strings longer than this are not copied into status (they echo the spec back)
INVENTORY_TEXT_LIMIT = 1024
#: a status whose JSON is larger than this is trimmed (the apiserver's limit is ~1.5 MiB per object)
STATUS_BYTES_LIMIT = 256 * 1024


def slim_inventory(inventory: Mapping[str, Any]) -> dict[str, Any]:
    """The inventory as status keeps it: nulls dropped, long texts (a readme or introduction
    that only echoes the spec) replaced by their size, so status stays small."""
    out: dict[str, Any] = {}
    for k, v in without_nulls(dict(inventory)).items():
        if isinstance(v, str) and len(v) > INVENTORY_TEXT_LIMIT:
            v = f"({len(v.encode())} bytes, not copied)"
        out[k] = v
    return out


def fit_entries(given: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Registry entries small enough for status: inventories are dropped, largest first,
    until the JSON fits :data:`STATUS_BYTES_LIMIT`, each with a note saying so. Trimming
    is decided here, once, so a status never fails the apiserver's size check and loops."""
    entries: list[Mapping[str, Any]] = list(given)

    def size() -> int:
        return len(json.dumps(entries, default=str).encode())

    if size() <= STATUS_BYTES_LIMIT:
        return entries
    copies = [dict(e) for e in given]
    entries = list(copies)
    for e in sorted(copies, key=lambda e: -len(json.dumps(e.get("inventory"), default=str))):
        if e.get("inventory") is not None:
            e["inventory"] = {"trimmed": "the inventory is too large for status; read it from the registry"}
        if size() <= STATUS_BYTES_LIMIT:
            break
    for e in copies:
        if size() <= STATUS_BYTES_LIMIT:
            break
        e["message"] = (e.get("message") or "")[:1024]
    return entries


def build(
    old: Mapping[str, Any], generation: int, entries: Sequence[Mapping[str, Any]],
    spec_error: BackendError | None = None,
) -> dict[str, Any]:
    """A resource's status from its registry entries: the aggregate Ready / Synced conditions and
    kstatus's Stalled / Reconciling, each keeping its transition time from ``old``."""
    total = len(entries)
    held = sum(1 for e in entries if e.get("synced"))
    # ObserveOnly: an entry found and reported is what was asked for, also when it differs
    # from the spec (as Crossplane's Observe policy is Ready once the external object exists);
    # the differences are in Ready's reason and message and in the entries
    synced_cond: tuple[Status, str, str]
    ready_cond: tuple[Status, str, str]
    stalled_cond: tuple[Status, str, str]
    reconciling_cond: tuple[Status, str, str]
    differing = [e for e in entries if e.get("reason") == Reason.DIFFERS]
    failures = [e for e in entries if e.get("reason") not in OBSERVED_REASONS]
    if spec_error is not None:  # the spec itself did not parse
        synced_cond = ("False", spec_error.reason, spec_error.message)
        ready_cond = ("False", spec_error.reason, spec_error.message)
    else:
        if not failures:
            synced_cond = ("True", Reason.RECONCILE_SUCCESS, f"in sync with {held} of {total} registries")
        else:
            reasons = [e["reason"] for e in failures]
            terminal = [r for r in reasons if r in TERMINAL_REASONS]
            detail = "; ".join(f"{e['name']}: {e.get('message', '')}" for e in failures)
            synced_cond = ("False", terminal[0] if terminal else reasons[0], detail)
        if held == total:
            ready_cond = ("True", Reason.SYNCED, f"in sync with {held} of {total} registries")
        elif differing and held + len(differing) == total:
            ready_cond = ("True", Reason.DIFFERS, f"observed {total} of {total} registries (ObserveOnly); "
                          + "; ".join(f"{e['name']}: differs in {', '.join(e.get('differences') or [])}"
                                      for e in differing))
        else:
            ready_cond = ("False", Reason.NOT_SYNCED, f"in sync with {held} of {total} registries")
    # kstatus (Flux, kubectl wait) and Argo CD's health check: Stalled = failed until someone
    # changes something; Reconciling = work still under way (a failure being retried)
    absent = [e for e in entries if e.get("reason") == Reason.ABSENT]
    if synced_cond[0] == "False" and (spec_error is not None or synced_cond[1] in STALLED_REASONS):
        stalled_cond = ("True", synced_cond[1], synced_cond[2])
        reconciling_cond = ("False", Reason.STALLED, "waiting for the spec, the registry or its Secret to change")
    elif synced_cond[0] == "True" and absent:
        stalled_cond = ("True", Reason.ABSENT, "; ".join(f"{e['name']}: {e.get('message', '')}" for e in absent))
        reconciling_cond = ("False", Reason.STALLED, "waiting for the entry to exist in the registry")
    elif synced_cond[0] == "False":
        stalled_cond = ("False", Reason.RETRYING, "the failure is retried")
        reconciling_cond = ("True", synced_cond[1], synced_cond[2])
    else:
        stalled_cond = ("False", Reason.RECONCILE_SUCCESS, "")
        reconciling_cond = ("False", Reason.RECONCILE_SUCCESS, "")
    old_conditions = {c.get("type"): c for c in old.get("conditions") or []}
    conditions = [
        condition_of(old_conditions.get(t), t, s, r, m, generation)
        for t, (s, r, m) in ((ConditionType.READY, ready_cond), (ConditionType.SYNCED, synced_cond),
                             (ConditionType.STALLED, stalled_cond), (ConditionType.RECONCILING, reconciling_cond))
    ]
    status: dict[str, Any] = {"observedGeneration": generation, "conditions": conditions,
                              "registries": fit_entries(entries)}
    if "kopf" in old:
        status["kopf"] = None  # bookkeeping of earlier versions (a copy of the spec): dropped
    return status

def condition_of(old: Mapping[str, Any] | None, type_: str, status: Status, reason: str, message: str,
               generation: int) -> dict[str, Any]:
    """A condition (built as :class:`api.Condition`) as the status patch holds it."""
    return condition_dict(condition(type_, status, reason, message, generation, old=old))

def patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Only the top-level status fields that differ (JSON-equal means equal)."""
    def same(a: Any, b: Any) -> bool:
        # equal as Python values is equal as JSON; the JSON comparison is for what Python
        # tells apart and JSON does not (a tuple and a list)
        return a == b or json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)

    return {k: v for k, v in new.items() if not same(old.get(k), v)}
