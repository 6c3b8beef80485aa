"""Fixtures shared by the unit and integration suites: the real MLflow server (one per session)."""
from __future__ import annotations

from typing import Iterator

import pytest


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[str]:
    """A real ``mlflow server`` (the version pinned in tools/mlflow/version.env, installed by
    tools/mlflow/ensure.sh) on a SQLite store in a temporary directory; yields its URL."""
    from modelsync.vendors.mlflow.simulator import MlflowServer

    with MlflowServer() as server:
        yield server.url
