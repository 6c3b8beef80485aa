"""NVIDIA NeMo Entity Store: everything of this registry in one package.

``schema`` (the CRD sections), ``mapping`` (spec → wire, pure), ``client`` (the Backend) and
``simulator`` (a local server faithful to the published API). :data:`VENDOR` describes the vendor
to the rest of ModelSync.
"""
from __future__ import annotations

from .. import Vendor
from .schema import NemoModelSection, NemoRegistrySettings

VENDOR = Vendor(
    name="nemo",
    title="NVIDIA NeMo Entity Store",
    short="NeMo",
    backend="modelsync.vendors.nemo.client:NemoBackend",
    simulator="modelsync.vendors.nemo.simulator",
    settings=NemoRegistrySettings,
    model_section=NemoModelSection,
    secret_keys=("token",),
    credentials="NeMo token (optional)",
    external_id="a NeMo model name",
    docs="docs/nemo.md",
)

__all__ = ["VENDOR", "NemoModelSection", "NemoRegistrySettings"]
