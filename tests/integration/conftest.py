"""Integration fixtures: the real control plane (from modelsync.testing's plugin),
registry simulators served in-process, and the operator as a real subprocess."""
from __future__ import annotations

import uuid
from typing import Any, Iterator

import httpx
import pytest

from modelsync.simulators.server import ThreadedServer
from modelsync.testing import K8s, OperatorProcess

RESYNC_SECONDS = 2
WORKERS = 8


class Sim:
    """A running simulator plus its admin API (/_sim)."""

    def __init__(self, server: ThreadedServer) -> None:
        self.server = server
        self.url = server.url
        self.app = server.app
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def faults(self, **knobs: Any) -> None:
        self.http.put("/_sim/faults", json=knobs).raise_for_status()

    def reset(self) -> None:
        self.http.post("/_sim/reset").raise_for_status()

    def journal(self) -> list[dict[str, Any]]:
        return self.http.get("/_sim/requests").json()

    def clear_journal(self) -> None:
        self.http.delete("/_sim/requests").raise_for_status()

    def writes(self, prefix: str = "") -> list[dict[str, Any]]:
        return [e for e in self.journal() if e["method"] not in ("GET", "HEAD") and e["path"].startswith(prefix)]


def start_sim(module: str, **options: Any) -> Iterator[Sim]:
    from modelsync.simulators import simulator_module

    mod = simulator_module(module)
    server = ThreadedServer(mod.create_app(**options)).start()
    try:
        yield Sim(server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def operator(kubeconfig: Any) -> Iterator[OperatorProcess]:
    # --debug: the most the operator logs, so the tests that look for secrets in the log see it all
    # MODELSYNC_WORKERS: a small bound on reconciles in flight, so bursts in the tests exceed it
    with OperatorProcess(kubeconfig, env={"MODELSYNC_RESYNC_SECONDS": str(RESYNC_SECONDS), "MODELSYNC_WORKERS": str(WORKERS)},
                         args=("--debug",)) as op:
        op.wait_for_log("Starting the watch-stream", timeout=60)
        yield op
    print(f"operator log: {op.log_path}")


@pytest.fixture
def ns(k8s: K8s) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    k8s.create_namespace(name)
    yield name
    k8s.delete_namespace(name)


def model(name: str, registries: list[str], **spec: Any) -> dict[str, Any]:
    return {"kind": "Model", "metadata": {"name": name},
            "spec": {"registries": [{"name": r} for r in registries], **spec}}


def service(name: str, registries: list[str], **spec: Any) -> dict[str, Any]:
    return {"kind": "ModelService", "metadata": {"name": name},
            "spec": {"registries": [{"name": r} for r in registries], **spec}}
