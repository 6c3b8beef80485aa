"""MLflow Model Registry: everything of this registry in one package.

``schema`` (the CRD sections), ``mapping`` (spec → wire, pure), ``client`` (the Backend), ``simulator``
(the real MLflow server and a fault proxy in front of it). :data:`VENDOR` describes the vendor to the
rest of ModelSync.
"""
from __future__ import annotations

from .. import Vendor
from .schema import MlflowModelSection, MlflowRegistrySettings

VENDOR = Vendor(
    name="mlflow",
    title="MLflow Model Registry",
    short="MLflow",
    backend="modelsync.vendors.mlflow.client:MlflowBackend",
    simulator="modelsync.vendors.mlflow.simulator",
    settings=MlflowRegistrySettings,
    model_section=MlflowModelSection,
    #: keys of the registry's credentials Secret: a bearer token, or HTTP Basic (all optional)
    secret_keys=("token", "username", "password"),
    credentials="MLflow (optional) token, or username and password",
    external_id="an MLflow registered model name",
    docs="docs/mlflow.md",
)

__all__ = ["VENDOR", "MlflowModelSection", "MlflowRegistrySettings"]
