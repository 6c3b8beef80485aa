"""MLflow Model Registry: everything of this registry in one package.

``schema`` (the CRD sections), ``mapping`` (spec → wire, pure), ``client`` (the Backend), ``simulator``
(the real MLflow server and a fault proxy in front of it). :data:`VENDOR` describes the vendor to the
rest of ModelSync.
"""
from __future__ import annotations

from typing import Any

from .schema import MlflowModelSection, MlflowRegistrySettings

VENDOR: dict[str, Any] = {
    "name": "mlflow",
    "settings": MlflowRegistrySettings,
    "model_section": MlflowModelSection,
    "service_section": None,
    "backend": "modelsync.vendors.mlflow.client:MlflowBackend",
    "simulator": "modelsync.vendors.mlflow.simulator:create_app",
    #: keys of the registry's credentials Secret: a bearer token, or HTTP Basic (all optional)
    "secret_keys": ("token", "username", "password"),
}

__all__ = ["VENDOR", "MlflowModelSection", "MlflowRegistrySettings"]
