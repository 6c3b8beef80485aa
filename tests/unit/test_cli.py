"""The command line as a user runs it: `modelsync simulate <vendor>` and `modelsync crds`."""
from __future__ import annotations

import hashlib
import os
import threading
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from modelsync.simulators.server import free_port


def _start(*args: str) -> tuple[subprocess.Popen[str], str, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "modelsync", "simulate", *args, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_sim/faults", timeout=1)
            time.sleep(0.3)  # the banner is printed before the server listens
            return proc, "".join(lines), port
        except httpx.TransportError:
            if proc.poll() is not None:
                raise RuntimeError("".join(lines))
            time.sleep(0.1)
    raise TimeoutError("".join(lines))


@pytest.fixture
def sims() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)


def test_zstack_simulator_command(sims: list[subprocess.Popen[str]]) -> None:
    proc, banner, port = _start("zstack")
    sims.append(proc)
    assert "admin" in banner and "password" in banner and str(port) in banner
    base = f"http://127.0.0.1:{port}/zstack/v1"
    login = httpx.put(f"{base}/accounts/login", json={"logInByAccount": {
        "accountName": "admin", "password": hashlib.sha512(b"password").hexdigest()}})
    session = login.json()["inventory"]["uuid"]
    centers = httpx.get(f"{base}/ai/model-centers", headers={"Authorization": f"OAuth {session}"}).json()
    assert len(centers["inventories"]) == 1
    assert centers["inventories"][0]["uuid"] in banner


def test_zstack_simulator_flags(sims: list[subprocess.Popen[str]]) -> None:
    proc, banner, port = _start("zstack", "--account", "ops", "--password", "pw2", "--model-center-uuid", "ab" * 16)
    sims.append(proc)
    base = f"http://127.0.0.1:{port}/zstack/v1"
    wrong = httpx.put(f"{base}/accounts/login", json={"logInByAccount": {
        "accountName": "admin", "password": hashlib.sha512(b"password").hexdigest()}})
    assert wrong.json()["error"]["code"] == "ID.1000"
    ok = httpx.put(f"{base}/accounts/login", json={"logInByAccount": {
        "accountName": "ops", "password": hashlib.sha512(b"pw2").hexdigest()}})
    assert ok.status_code == 200 and "ab" * 16 in banner


def test_nemo_and_instill_simulator_commands(sims: list[subprocess.Popen[str]]) -> None:
    nemo, _, nport = _start("nemo")
    sims.append(nemo)
    assert httpx.get(f"http://127.0.0.1:{nport}/apis/models/v2/workspaces/default/models").status_code == 200
    instill, banner, iport = _start("instill")
    sims.append(instill)
    url = f"http://127.0.0.1:{iport}/v1alpha/namespaces/local/models"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer instill_sk_local"}).status_code == 200


def test_crds_command_writes_the_manifests(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "modelsync", "crds", str(tmp_path)], check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (Path(__file__).resolve().parents[2] / "crds").glob("*.yaml"))


def test_console_script_help() -> None:
    exe = Path(sys.executable).with_name("modelsync")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    assert "simulate" in out and "run" in out
