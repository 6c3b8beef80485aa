"""Fault knobs and the admin surface shared by every registry simulator.

Each simulator is an aiohttp application built with :func:`make_app`, which adds

* a middleware that applies the knobs to every API request (not to ``/_sim``):
  latency, injected 5xx, 429 with Retry-After, and lost responses (the request
  is *processed*, then the connection is dropped before any byte of the reply:
  the case that makes non-idempotent creates duplicate);
* a request journal, so tests can count what reached the registry;
* ``/_sim`` admin endpoints:

  ``GET  /_sim/requests``   the journal: ``[{"method", "path", "body"}]``
  ``DELETE /_sim/requests`` clear the journal
  ``GET  /_sim/faults``     the knobs now in force
  ``PUT  /_sim/faults``     set knobs (JSON, any subset of :class:`Faults` fields)
  ``POST /_sim/reset``      knobs back to the start-up values, journal cleared

Rates are probabilities per request; the ``*_next`` counters inject a fault
into the next N matching requests deterministically, which is what tests use.
``match`` limits the knobs to requests whose ``"METHOD /path"`` starts with it.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from typing import Any, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ADMIN_PREFIX = "/_sim"


@dataclasses.dataclass
class Faults:
    latency: float = 0.0  # seconds added to every matching request
    latency_jitter: float = 0.0  # plus uniform(0, jitter)
    error_rate: float = 0.0  # probability of answering error_status
    error_status: int = 503
    throttle_rate: float = 0.0  # probability of answering 429
    retry_after: float = 1.0  # Retry-After seconds on 429 (and on 503)
    lose_rate: float = 0.0  # probability of processing, then dropping the reply
    fail_next: int = 0
    throttle_next: int = 0
    lose_next: int = 0
    match: str = ""  # "POST /v1/models" limits faults to those requests

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name: f.type for f in dataclasses.fields(self)}
        for key, value in values.items():
            if key not in names:
                raise ValueError(f"unknown fault knob {key!r}; known: {', '.join(sorted(names))}")
            setattr(self, key, type(getattr(self, key))(value))


@dataclasses.dataclass
class Journal:
    entries: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def writes(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["method"] not in ("GET", "HEAD")]


ErrorBody = Callable[[int, str], web.Response]


def _take(faults: Faults, counter: str, rate: float) -> bool:
    n = getattr(faults, counter)
    if n > 0:
        setattr(faults, counter, n - 1)
        return True
    return rate > 0 and random.random() < rate


def make_app(
    *,
    faults: Faults,
    error_response: ErrorBody,
    rng_seed: int | None = None,
) -> web.Application:
    """An aiohttp app with the fault middleware and the ``/_sim`` admin routes.

    ``error_response(status, message)`` renders an injected failure in the
    vendor's own error envelope, so clients are tested against the real shape.
    """
    if rng_seed is not None:
        random.seed(rng_seed)
    initial = dataclasses.replace(faults)
    journal = Journal()

    @web.middleware
    async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX):
            return await handler(request)
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        journal.entries.append({"method": request.method, "path": request.path, "body": body})
        f: Faults = request.app["faults"]
        if f.match and not f"{request.method} {request.path}".startswith(f.match):
            return await handler(request)
        if f.latency or f.latency_jitter:
            await asyncio.sleep(f.latency + random.uniform(0, f.latency_jitter))
        if _take(f, "throttle_next", f.throttle_rate):
            resp = error_response(429, "too many requests (injected)")
            resp.headers["Retry-After"] = str(int(f.retry_after) if f.retry_after == int(f.retry_after) else f.retry_after)
            return resp
        if _take(f, "fail_next", f.error_rate):
            resp = error_response(f.error_status, "service unavailable (injected)")
            if f.error_status == 503:
                resp.headers["Retry-After"] = str(int(f.retry_after))
            return resp
        lose = _take(f, "lose_next", f.lose_rate)
        answer = await handler(request)
        if lose:
            # The work is done; the client never hears of it.
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError()
        return answer

    app = web.Application(middlewares=[fault_middleware])
    app["faults"] = faults
    app["journal"] = journal

    async def get_requests(request: web.Request) -> web.Response:
        return web.json_response(journal.entries)

    async def clear_requests(request: web.Request) -> web.Response:
        journal.entries.clear()
        return web.json_response({})

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response(dataclasses.asdict(request.app["faults"]))

    async def put_faults(request: web.Request) -> web.Response:
        try:
            request.app["faults"].update(await request.json())
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(dataclasses.asdict(request.app["faults"]))

    async def reset(request: web.Request) -> web.Response:
        # mutate in place: the running app's state must not be replaced
        request.app["faults"].__dict__.update(dataclasses.asdict(initial))
        journal.entries.clear()
        for hook in request.app.get("reset_hooks", []):
            hook()
        return web.json_response({})

    app.router.add_get(f"{ADMIN_PREFIX}/requests", get_requests)
    app.router.add_delete(f"{ADMIN_PREFIX}/requests", clear_requests)
    app.router.add_get(f"{ADMIN_PREFIX}/faults", get_faults)
    app.router.add_put(f"{ADMIN_PREFIX}/faults", put_faults)
    app.router.add_post(f"{ADMIN_PREFIX}/reset", reset)
    return app


def add_fault_arguments(parser: Any) -> None:
    """The fault knobs as command-line flags, the same for every simulator."""
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each API request")
    parser.add_argument("--latency-jitter", type=float, default=0.0, help="plus a uniform random 0..N seconds")
    parser.add_argument("--error-rate", type=float, default=0.0, help="probability of an injected 5xx")
    parser.add_argument("--error-status", type=int, default=503, help="status of injected failures")
    parser.add_argument("--throttle-rate", type=float, default=0.0, help="probability of a 429")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds on 429/503")
    parser.add_argument("--lose-rate", type=float, default=0.0, help="probability of processing a request and dropping its reply")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the rates")


def faults_from_args(args: Any) -> Faults:
    return Faults(
        latency=args.latency, latency_jitter=args.latency_jitter, error_rate=args.error_rate,
        error_status=args.error_status, throttle_rate=args.throttle_rate,
        retry_after=args.retry_after, lose_rate=args.lose_rate,
    )
