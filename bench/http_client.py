"""CPU per registry request: ``httpx.AsyncClient`` against the transport ModelSync uses.

One unchanged resync is one registry GET, so at 10,000 Models the cost of a GET is most of
what an idle operator spends. This sends the same GET to the ZStack simulator (its own
process) through each stack, 8 at a time over 8 kept-alive connections, and prints the CPU
this process spent per request. Asserts nothing.

    .venv/bin/python bench/http_client.py [--requests 3000]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "bench"))

from scale import Simulator  # noqa: E402

from modelsync.backends.base import RegistryConnection  # noqa: E402
from modelsync.backends.http import AiohttpTransport, Transport  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(label: str, send: Callable[[], Awaitable[None]], n: int) -> None:
    sem = asyncio.Semaphore(8)

    async def one() -> None:
        async with sem:
            await send()

    await asyncio.gather(*[one() for _ in range(200)])  # connections open, caches warm
    c0, t0 = cpu(), time.monotonic()
    await asyncio.gather(*[one() for _ in range(n)])
    print(f"  {label:<44} {1e3 * (cpu() - c0) / n:6.3f} ms CPU per request  ({time.monotonic() - t0:.1f}s wall)",
          flush=True)


async def main(n: int, url: str) -> None:
    path = "/_sim/faults"
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(base_url=url, limits=limits, trust_env=False) as client:
        async def via_client() -> None:
            (await client.get(path)).json()
        await measure("httpx.AsyncClient", via_client, n)

    pool = AiohttpTransport(limit=8, timeout=10.0)

    async def via_pool() -> None:
        r = await pool.handle_async_request(httpx.Request("GET", url + path))
        r.json()
    await measure("httpx.Request through AiohttpTransport", via_pool, n)
    await pool.aclose()

    conn = RegistryConnection(key="ModelRegistry/bench/z", name="z", kind="ModelRegistry", backend="zstack",
                              endpoint=url, timeout=10.0)
    transport = Transport(conn, backend="zstack", vendor="ZStack")

    async def via_transport() -> None:
        await transport.request("GET", path, what="read", auth=False)
    await measure("modelsync Transport.request (all of it)", via_transport, n)
    await transport.aclose()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=3000)
    args = p.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}; "
          f"httpx {httpx.__version__}")
    sim = Simulator()
    try:
        asyncio.run(main(args.requests, sim.url))
    finally:
        sim.stop()
