"""The real MLflow server, and a fault proxy in front of it.

MLflow's tracking server runs locally in one process, so nothing of MLflow is imitated here:

* :class:`MlflowServer` starts the real ``mlflow server`` (``--backend-store-uri sqlite:///…``,
  ``--default-artifact-root …``, one worker, loopback) and waits until ``/health`` answers.
  :func:`find_mlflow` finds the executable: ``$MODELSYNC_MLFLOW``, else the cached install that
  ``tools/mlflow/ensure.sh`` makes (run when this is a source checkout), else ``mlflow`` on PATH;
* :func:`create_app` is an aiohttp app that forwards every request to such a server, with the
  fault knobs and the request journal of :mod:`modelsync.simulators.faults` (5xx, 429 with
  Retry-After, latency, lost replies: the request reaches MLflow, the reply is dropped). Injected
  failures come in MLflow's envelope (``TEMPORARILY_UNAVAILABLE``, ``REQUEST_LIMIT_EXCEEDED``).

``modelsync simulate mlflow --port N`` runs both: the real server on a free port and the proxy on N.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ...simulators.faults import Faults, add_fault_arguments, faults_from_args, make_app
from ...simulators.server import free_port

#: the checkout's install script (absent when modelsync is installed from a wheel)
ENSURE = Path(__file__).resolve().parents[4] / "tools" / "mlflow" / "ensure.sh"
#: request headers not passed on: hop-by-hop, and those aiohttp computes for the upstream request
_HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer",
                  "upgrade", "proxy-authorization", "proxy-connection", "accept-encoding"})


def find_mlflow() -> str:
    """The ``mlflow`` executable to run (see the module doc); RuntimeError saying how to get one."""
    given = os.environ.get("MODELSYNC_MLFLOW")
    if given:
        return given
    if ENSURE.is_file():
        out = subprocess.run(["bash", str(ENSURE)], check=True, capture_output=True, text=True, timeout=1800)
        return out.stdout.strip().splitlines()[-1]
    found = shutil.which("mlflow")
    if found:
        return found
    raise RuntimeError("no mlflow server: set MODELSYNC_MLFLOW to an mlflow executable, "
                       "or run tools/mlflow/ensure.sh from a source checkout")


class MlflowServer:
    """A real ``mlflow server`` on a SQLite store in its own directory, on loopback."""

    def __init__(self, *, port: int = 0, workdir: str | Path | None = None, executable: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="modelsync-mlflow-"))
        self.executable = executable
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> "MlflowServer":
        exe = self.executable or find_mlflow()
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [exe, "server", "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
               "--default-artifact-root", str(self.workdir / "artifacts"), "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", "1"]
        log = open(self.log_path, "ab")
        env = {**os.environ, "MLFLOW_TRACKING_URI": "", **self.env}
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        self._warm(deadline)
                        return self
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"mlflow server did not answer /health within {timeout:g}s: "
                           f"{self.log_path.read_text()[-3000:]}")

    def _warm(self, deadline: float) -> None:
        """One model-registry read before the server counts as started.

        ``/health`` answers before the server has opened its registry store: the first registry
        request does that, and on a loaded machine took longer than a client's timeout.
        """
        url = f"{self.url}/api/2.0/mlflow/registered-models/search?max_results=1"
        with urllib.request.urlopen(url, timeout=max(1.0, deadline - time.monotonic())) as r:
            r.read()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(10)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "MlflowServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def error_response(status: int, message: str) -> web.Response:
    code = "REQUEST_LIMIT_EXCEEDED" if status == 429 else "TEMPORARILY_UNAVAILABLE"
    return web.json_response({"error_code": code, "message": message}, status=status)


def create_app(*, upstream: str, faults: Faults | None = None, seed: int | None = None) -> web.Application:
    """The fault proxy in front of the MLflow server at ``upstream`` (see the module doc)."""
    app = make_app(faults=faults or Faults(), error_response=error_response, rng_seed=seed)
    app["upstream"] = upstream.rstrip("/")
    app["mlflow"] = {"upstream": app["upstream"]}

    async def session_ctx(app: web.Application) -> Any:
        app["session"] = aiohttp.ClientSession(auto_decompress=False)
        yield
        await app["session"].close()

    app.cleanup_ctx.append(session_ctx)

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read() if request.body_exists else None  # the journal has read it already
        async with request.app["session"].request(
                request.method, request.app["upstream"] + request.rel_url.path_qs, headers=headers, data=body,
                allow_redirects=False) as upstream_reply:
            content = await upstream_reply.read()
            out = {k: v for k, v in upstream_reply.headers.items() if k.lower() not in _HOP}
            return web.Response(status=upstream_reply.status, body=content, headers=out)

    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000, help="where the fault proxy listens")
    parser.add_argument("--upstream", default=None,
                        help="an MLflow server to stand in front of (default: start a real one on a free port)")
    add_fault_arguments(parser)


def app_from_args(args: argparse.Namespace) -> web.Application:
    server = None
    upstream = args.upstream
    if upstream is None:
        server = MlflowServer().start()
        upstream = server.url
    app = create_app(upstream=upstream, faults=faults_from_args(args), seed=args.seed)
    if server is not None:
        async def stop_server(app: web.Application) -> None:
            server.stop()
        app.on_cleanup.append(stop_server)
    return app


def banner(app: web.Application, url: str) -> str:
    return (f"MLflow fault proxy at {url} in front of the MLflow server at {app['upstream']} "
            f"(UI: {url}/; no credentials); fault knobs: PUT {url}/_sim/faults\n"
            + json.dumps({"upstream": app["upstream"]}))
