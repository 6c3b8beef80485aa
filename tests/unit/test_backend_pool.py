"""A registry's connection rebuilt while reconciles still hold the old backend (its Secret or spec
changed mid-burst): the old backend's HTTP pool is closed, and a request it makes afterwards must
not open a new one that nobody closes (aiohttp's "Unclosed client session")."""
from __future__ import annotations

import asyncio
import gc
from typing import Any, Mapping

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from modelsync import api, connections
from modelsync.backends.base import Backend, Observation, Recoverable, RegistryConnection, Resource
from modelsync.backends.http import AiohttpTransport, Transport


class PingBackend(Backend):
    """A backend with only what the test needs: one GET through the shared transport."""

    name = "nemo"

    def __init__(self, conn: RegistryConnection) -> None:
        super().__init__(conn)
        self.transport = Transport(conn, backend=self.name, vendor="Ping")

    async def ping(self) -> Any:
        return (await self.transport.request("GET", "/ping", what="ping")).body

    async def observe(self, res: Resource) -> Observation:
        raise NotImplementedError

    async def create(self, res: Resource) -> Mapping[str, Any]:
        raise NotImplementedError

    async def update(self, res: Resource, obs: Observation) -> Mapping[str, Any]:
        raise NotImplementedError

    async def delete(self, res: Resource) -> None:
        raise NotImplementedError

    async def check(self) -> str:
        await self.ping()
        return "pong"

    async def aclose(self) -> None:
        await self.transport.aclose()


class Reader:
    """One ModelRegistry and its Secret, whose data the test changes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.token = "one"

    async def registry(self, kind: str, name: str, namespace: str) -> Mapping[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace, "uid": "u-r", "generation": 1},
                "spec": {"backend": "nemo", "endpoint": self.url, "credentialsSecretRef": {"name": "s"}}}

    async def secret_data(self, name: str, namespace: str) -> tuple[dict[str, str], str]:
        return {"token": self.token}, f"data:{self.token}"


@pytest.fixture
async def server() -> Any:
    async def ping(request: web.Request) -> web.Response:
        return web.json_response({"pong": True})

    app = web.Application()
    app.router.add_get("/ping", ping)
    srv = TestServer(app)
    await srv.start_server()
    yield srv
    await srv.close()


@pytest.fixture
async def unclosed() -> Any:
    """What the event loop is told about sessions collected while open (aiohttp reports each
    through the loop's exception handler, which logs "Unclosed client session")."""
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    default = loop.get_exception_handler()
    loop.set_exception_handler(lambda lp, ctx: seen.append(str(ctx.get("message"))))
    yield seen
    loop.set_exception_handler(default)


async def test_a_backend_dropped_while_in_use_opens_no_pool_it_cannot_close(
        server: TestServer, unclosed: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "make_backend", PingBackend)
    reader = Reader(str(server.make_url("")).rstrip("/"))
    pool = connections.BackendPool(reader)  # type: ignore[arg-type]
    ref = api.RegistryRef(name="r")
    old, _ = await pool.backend(ref, "ns")
    assert isinstance(old, PingBackend)
    assert await old.ping() == {"pong": True}  # a reconcile in flight has used the connection

    reader.token = "two"  # the Secret changes: the next reconcile gets a new backend, the old one is closed
    new, _ = await pool.backend(ref, "ns")
    assert new is not old
    assert old.transport.client is None

    # the reconcile that still holds the old backend goes on: its next request must not open a
    # new connection pool (nothing would ever close it); it fails as a retryable error instead
    with pytest.raises(Recoverable) as failed:
        await old.ping()
    assert "closed" in failed.value.message and failed.value.reason == "RegistryUnavailable"
    assert old.transport.client is None
    assert await new.ping() == {"pong": True}

    del old, failed
    gc.collect()
    await asyncio.sleep(0)
    assert not [m for m in unclosed if "Unclosed" in m], unclosed
    await pool.aclose()
    gc.collect()
    await asyncio.sleep(0)
    assert not [m for m in unclosed if "Unclosed" in m], unclosed


async def test_a_closed_transport_stays_closed() -> None:
    conn = RegistryConnection(key="k", name="r", kind="ModelRegistry", backend="nemo", endpoint="http://127.0.0.1:9")
    t = Transport(conn, backend="nemo", vendor="Ping")
    await t.aclose()
    with pytest.raises(Recoverable):
        await t.request("GET", "/ping", what="ping")
    assert t.client is None
    a = AiohttpTransport(limit=1, timeout=1)
    await a.aclose()
    assert a.is_closed
