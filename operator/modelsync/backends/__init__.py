"""Registry backends, one module per vendor, found by ``spec.backend``.

Modules are imported on first use, so no backend imports another and a broken
vendor module cannot stop the others from working.
"""
from __future__ import annotations

import importlib

from .base import Backend, RegistryConnection

BACKENDS: dict[str, str] = {
    "zstack": "modelsync.backends.zstack:ZStackBackend",
    "nemo": "modelsync.backends.nemo:NemoBackend",
    "instill": "modelsync.backends.instill:InstillBackend",
    "mlflow": "modelsync.vendors.mlflow.client:MlflowBackend",
}


def backend_class(name: str) -> type[Backend]:
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
    module, _, attr = target.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module), attr)
    return cls


def make_backend(conn: RegistryConnection) -> Backend:
    return backend_class(conn.backend)(conn)
