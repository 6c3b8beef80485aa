"""Run a simulator app: in the foreground (the CLI) or on a background thread (tests).

``with serve_in_thread(app) as url:`` gives a running server on a free loopback
port and stops it on exit, whatever happened inside the block.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from typing import Iterator

from aiohttp import web


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """An aiohttp app served from its own event loop on a daemon thread."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0, *,
                 ssl_context: "ssl.SSLContext | None" = None) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.host = host
        self.port = port or free_port(host)
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"simulator:{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._runner = web.AppRunner(self.app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
            self._loop.run_until_complete(site.start())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> "ThreadedServer":
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(f"simulator failed to start on {self.url}") from self._error
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)


@contextlib.contextmanager
def serve_in_thread(app: web.Application, host: str = "127.0.0.1", port: int = 0, *,
                    ssl_context: "ssl.SSLContext | None" = None) -> Iterator[str]:
    server = ThreadedServer(app, host, port, ssl_context=ssl_context).start()
    try:
        yield server.url
    finally:
        server.stop()


def serve_forever(app: web.Application, host: str, port: int) -> None:
    """The CLI's foreground server; Ctrl-C or SIGTERM stops it."""
    web.run_app(app, host=host, port=port, access_log=None, print=None)
