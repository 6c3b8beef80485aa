"""Registry backends, found by ``spec.backend``: each vendor's client, listed in :data:`modelsync.vendors.VENDORS`.

Here: the interface every backend implements (:mod:`.base`) and the shared HTTP transport
(:mod:`.http`). A vendor's client lives in its own package (``modelsync.vendors.<name>.client``)
and is imported on first use, so no backend imports another and a broken vendor module cannot stop
the others from working.
"""
from __future__ import annotations

from ..vendors import VENDORS, vendor
from .base import Backend, RegistryConnection

#: spec.backend → the Backend class as ``module:Class`` (from the vendors' descriptors)
BACKENDS: dict[str, str] = {name: vendor(name).backend for name in VENDORS}


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    cls: type[Backend] = vendor(name).backend_class()
    return cls


def make_backend(conn: RegistryConnection) -> Backend:
    return backend_class(conn.backend)(conn)
