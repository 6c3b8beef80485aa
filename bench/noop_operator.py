"""The floor ModelSync is measured against: a kopf operator that does nothing but mark
each Model and ModelService Ready with one status write, with kopf's storage in status
as ModelSync's earlier versions kept it. Run by bench/scale.py:

    kopf run --standalone --namespace NS bench/noop_operator.py
"""
from __future__ import annotations

import datetime
import logging
from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.lastHandledConfiguration")
    settings.posting.level = logging.WARNING
    settings.peering.standalone = True


def _ready(body: kopf.Body, patch: kopf.Patch) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    gen = body["metadata"].get("generation")
    patch.status["observedGeneration"] = gen
    patch.status["conditions"] = [{"type": "Ready", "status": "True", "reason": "Synced", "message": "",
                                   "observedGeneration": gen, "lastTransitionTime": now}]


@kopf.on.create("modelsync.io", "v1alpha1", "models")
def model(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _ready(body, patch)


@kopf.on.create("modelsync.io", "v1alpha1", "modelservices")
def service(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _ready(body, patch)
