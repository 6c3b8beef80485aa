"""The kopf registrations as kopf itself holds them."""
from __future__ import annotations

import kopf
from kopf._cogs.structs import bodies

import modelsync.handlers as handlers


def test_only_watch_handlers_so_kopf_needs_no_diff_base() -> None:
    """:class:`~modelsync.handlers.NoDiffBase` is right only while no change or daemon handler
    exists: those are the handlers kopf's diff base is built for."""
    registry = kopf.get_default_registry()
    assert registry._changing.get_all_handlers() == []
    assert registry._spawning.get_all_handlers() == []
    ids = sorted(h.id for h in registry._watching.get_all_handlers())
    assert ids == sorted(["watch-Model", "watch-ModelService", "watch-ModelRegistry",
                          "watch-ClusterModelRegistry", "watch-secrets"]), ids


def test_no_diff_base_is_built_fetched_or_stored() -> None:
    storage = handlers.NoDiffBase()
    body = bodies.Body({"metadata": {"name": "m", "annotations": {"a": "b"}}, "spec": {"x": 1}, "status": {"y": 2}})
    assert storage.build(body=body) is None
    assert storage.fetch(body=body) is None
    assert storage.store(body=body, patch=None, essence=None) is None  # writes nothing into the patch

