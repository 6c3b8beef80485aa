"""Every kopf registration, each a line or two into the reconcile core.

Storage choices, made on purpose (see kopf's docs on persistence):

* progress and the diff-base live in ``status.kopf`` (the CRDs keep that field
  with ``x-kubernetes-preserve-unknown-fields``), not in ``kopf.zalando.org/*``
  annotations: the diff-base is the whole spec, a Model's readme may be large,
  and annotations are capped at 256 KiB in total;
* kopf posts log records as Events from WARNING up, so failures (already
  scrubbed by the core) reach ``kubectl describe`` once and routine INFO does not;
* the operator runs standalone (no peering objects): one replica with the
  ``Recreate`` strategy (deploy/), since two replicas of equal priority would
  freeze each other.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from .api import GROUP, VERSION
from .kube import KubeReader, load_config
from .reconcile import Outcome, Reconciler, Retry, Stop

#: seconds between drift checks of each resource against its registries
RESYNC_SECONDS = float(os.environ.get("MODELSYNC_RESYNC_SECONDS", "300"))
KINDS = {"models": "Model", "modelservices": "ModelService"}
REGISTRY_KINDS = {"modelregistries": "ModelRegistry", "clustermodelregistries": "ClusterModelRegistry"}


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.lastHandledConfiguration")
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.level = logging.WARNING
    settings.posting.loggers = True  # kopf >= 1.45 posts log records as Events only when asked
    settings.posting.reporting_component = "modelsync"
    settings.posting.event_name_prefix = "modelsync-"
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    load_config()
    memo.reconciler = Reconciler(KubeReader())


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    await memo.reconciler.pool.aclose()


def _retrying(body: kopf.Body) -> bool:
    progress = ((body.get("status") or {}).get("kopf") or {}).get("progress") or {}
    return any(not rec.get("success") and not rec.get("failure") for rec in progress.values())


def _apply(outcome: Outcome, body: kopf.Body, patch: kopf.Patch) -> None:
    for key, value in outcome.status_patch.items():
        patch.status[key] = value
    for type_, reason, message in outcome.events:
        kopf.event(body, type=type_, reason=reason, message=message)


for _plural, _kind in KINDS.items():

    @kopf.on.resume(GROUP, VERSION, _plural, id="sync")
    @kopf.on.create(GROUP, VERSION, _plural, id="sync")
    @kopf.on.update(GROUP, VERSION, _plural, id="sync")
    async def sync(body: kopf.Body, patch: kopf.Patch, retry: int, memo: kopf.Memo,
                   _kind: str = _kind, **_: Any) -> None:
        """Create or update in every registry; retry or stop as the core decides."""
        outcome = await memo.reconciler.reconcile(_kind, body, attempt=retry)
        _apply(outcome, body, patch)
        if isinstance(outcome.error, Retry):
            raise kopf.TemporaryError(outcome.error.message, delay=outcome.error.delay)
        if isinstance(outcome.error, Stop):
            raise kopf.PermanentError(outcome.error.message)

    @kopf.timer(GROUP, VERSION, _plural, id="resync", interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
    async def resync(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, logger: kopf.Logger,
                     _kind: str = _kind, **_: Any) -> None:
        """Drift check: the same reconcile; an unchanged registry means no write at all.

        Skipped while the sync handler is between retries: its backoff (or the
        registry's Retry-After) decides when the registry is called next.
        """
        if _retrying(body):
            return
        outcome = await memo.reconciler.reconcile(_kind, body)
        _apply(outcome, body, patch)
        if outcome.error is not None:
            logger.warning("resync: %s", outcome.error.message)

    @kopf.on.delete(GROUP, VERSION, _plural, id="forget", optional=True)
    async def forget(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        """Drop per-object state. Optional: adds no finalizer, removes nothing from registries."""
        memo.reconciler.forget(body["metadata"]["uid"])


for _plural, _kind in REGISTRY_KINDS.items():

    @kopf.on.resume(GROUP, VERSION, _plural, id="check")
    @kopf.on.create(GROUP, VERSION, _plural, id="check")
    @kopf.on.update(GROUP, VERSION, _plural, id="check")
    @kopf.timer(GROUP, VERSION, _plural, id="recheck", interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
    async def check(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, _kind: str = _kind, **_: Any) -> None:
        """The registry's Ready condition: endpoint reachable, credentials and settings accepted."""
        outcome = await memo.reconciler.check_registry(_kind, body)
        _apply(outcome, body, patch)
        if isinstance(outcome.error, Retry):
            raise kopf.TemporaryError(outcome.error.message, delay=outcome.error.delay)
