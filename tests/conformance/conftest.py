"""The conformance suite's fixtures: every adapter (one per registry flavour) as a parameter, its
simulator served in-process for the test, and a backend on it made from the backend table."""
from __future__ import annotations

from typing import Any, AsyncIterator, Iterator

import httpx
import pytest

from modelsync.backends import make_backend
from modelsync.backends.base import Backend
from modelsync.simulators import simulator_module
from modelsync.simulators.server import ThreadedServer

from .adapters import ADAPTERS, Adapter, Scope


class Sim:
    """A simulator running for one test, with its admin API (``/_sim``)."""

    def __init__(self, server: ThreadedServer) -> None:
        self.server, self.url, self.app = server, server.url, server.app
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def faults(self, **knobs: Any) -> None:
        self.http.put("/_sim/faults", json=knobs).raise_for_status()

    def knobs(self) -> dict[str, Any]:
        return dict(self.http.get("/_sim/faults").json())

    def journal(self) -> list[dict[str, Any]]:
        return list(self.http.get("/_sim/requests").json())

    def clear_journal(self) -> None:
        self.http.delete("/_sim/requests").raise_for_status()


def serve(adapter: Adapter, request: pytest.FixtureRequest) -> Iterator[Sim]:
    """The adapter's simulator on a free loopback port (the fixtures it names are asked for first)."""
    fixtures = {name: request.getfixturevalue(name) for name in adapter.fixtures}
    app = simulator_module(adapter.vendor).create_app(**adapter.options(fixtures))
    server = ThreadedServer(app).start()
    sim = Sim(server)
    try:
        yield sim
    finally:
        sim.http.close()
        server.stop()


@pytest.fixture(params=ADAPTERS, ids=[a.id for a in ADAPTERS])
def adapter(request: pytest.FixtureRequest) -> Adapter:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def scope() -> Scope:
    return Scope.new()


@pytest.fixture
def sim(adapter: Adapter, request: pytest.FixtureRequest) -> Iterator[Sim]:
    yield from serve(adapter, request)


@pytest.fixture
async def backend(adapter: Adapter, sim: Sim, scope: Scope) -> AsyncIterator[Backend]:
    b = make_backend(adapter.connection(sim, scope))
    yield b
    await b.aclose()
