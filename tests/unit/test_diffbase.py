"""handlers.LeanDiffBase builds exactly kopf's essence, from less."""
from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from modelsync.handlers import LeanDiffBase

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

BODIES: list[dict[str, Any]] = [
    {"apiVersion": "modelsync.io/v1alpha1", "kind": "Model",
     "metadata": {"name": "m", "namespace": "ns", "uid": "u", "resourceVersion": "7", "generation": 2,
                  "labels": {"team": "a"},
                  "annotations": {"modelsync.io/paused": "true", LAST_APPLIED: "{}",
                                  "kopf.zalando.org/last-handled-configuration": "{}", "x/y": "z"},
                  "finalizers": ["modelsync.io/finalizer"],
                  "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
     "spec": {"registries": [{"name": "z"}], "gpu": {"minMemory": "16Gi"}, "readme": "# r\n" * 100},
     "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"password": "cA=="}, "type": "Opaque"},
    {"kind": "Model", "metadata": {"name": "bare"}},
    {"metadata": {"labels": {}, "annotations": {}}, "spec": {}, "status": {}},
    {"spec": {"a": [1, {"b": None}]}},
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: str((b.get("metadata") or {}).get("name", "-")))
def test_essence_is_kopfs(body: dict[str, Any]) -> None:
    before = copy.deepcopy(body)
    ours = LeanDiffBase().build(body=kopf.Body(body))
    theirs = kopf.AnnotationsDiffBaseStorage().build(body=kopf.Body(copy.deepcopy(body)))
    assert ours == theirs
    assert body == before  # the event's body is not changed


def test_essence_does_not_share_the_body() -> None:
    body = copy.deepcopy(BODIES[0])
    essence = LeanDiffBase().build(body=kopf.Body(body))
    body["spec"]["gpu"]["minMemory"] = "1Gi"
    body["metadata"]["labels"]["team"] = "b"
    assert essence["spec"]["gpu"]["minMemory"] == "16Gi"
    assert essence["metadata"]["labels"]["team"] == "a"


def test_extra_fields_go_to_kopfs_builder() -> None:
    body = BODIES[0]
    fields = ["status.observedGeneration"]
    ours = LeanDiffBase().build(body=kopf.Body(body), extra_fields=fields)
    assert ours == kopf.AnnotationsDiffBaseStorage().build(body=kopf.Body(body), extra_fields=fields)
    assert ours["status"] == {"observedGeneration": 2}
