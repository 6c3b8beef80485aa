"""Instill AI: everything of this registry in one package.

``schema`` (the CRD sections and the Model rules), ``mapping`` (spec → wire, pure), ``client`` (the
Backend), ``simulator`` (a local server faithful to both generations of the model API) and ``specs/``
(model-backend's published JSON Schemas the simulator validates with). :data:`VENDOR` describes the
vendor to the rest of ModelSync.
"""
from __future__ import annotations

from .. import Vendor
from .schema import INSTILL_MODEL_RULES, InstillModelSection, InstillRegistrySettings, immutable_root_rules

VENDOR = Vendor(
    name="instill",
    title="Instill AI",
    short="Instill",
    backend="modelsync.vendors.instill.client:InstillBackend",
    simulator="modelsync.vendors.instill.simulator",
    settings=InstillRegistrySettings,
    model_section=InstillModelSection,
    secret_keys=("token",),
    credentials="Instill token",
    settings_required="namespace",
    credentials_required="token",
    external_id="an Instill model id",
    model_rules=INSTILL_MODEL_RULES,
    model_root_rules=immutable_root_rules(),
    #: Instill API tokens wherever they appear
    secret_patterns=((r"\binstill_sk_[A-Za-z0-9_-]+", "instill_sk_***"),),
    docs="docs/instill.md",
)

__all__ = ["VENDOR", "InstillModelSection", "InstillRegistrySettings"]
