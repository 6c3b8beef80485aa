"""The command line as a user runs it: `modelsync simulate <vendor>`, `crds`, `validate`, `--version`,
and what importing the package and `--help` load."""
from __future__ import annotations

import hashlib
import json
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


def modelsync(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelsync", *args], input=input, capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


ROOT = Path(__file__).resolve().parents[2]

BAD = """\
apiVersion: modelsync.io/v1alpha1
kind: Model
metadata: {name: bad-model, namespace: ml}
spec:
  registries: []
  gpu: {minMemory: 8Gi, recommendedCount: [1, "two"]}
  colour: red
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: x}
---
apiVersion: modelsync.io/v1alpha1
kind: ModelRegistry
metadata: {name: reg}
spec: {backend: vmware, endpoint: "ftp://registry.example.com", zstack: {modelCenterUuid: abc}}
---
apiVersion: modelsync.io/v1alpha1
kind: ModelService
metadata: {name: svc}
spec:
  registries: [{name: reg, kind: Registry}]
  bootupTimeSeconds: soon
"""


def test_version() -> None:
    from importlib.metadata import version

    r = modelsync("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"modelsync {version('modelsync')}"


def test_validate_accepts_the_examples() -> None:
    r = modelsync("validate", "-f", "examples/zstack", "-f", "examples/nemo/00-registry.yaml",
                  "examples/nemo/20-model-llama.yaml", "examples/instill")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ""
    assert "8 ModelSync resources checked, 0 problems" in r.stderr
    assert "v1 Secret/zstack-credentials: skipped, not a ModelSync kind" in r.stderr


def test_validate_names_each_bad_field(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    r = modelsync("validate", "-f", str(f))
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[:3] == [
        f"{f}: Model/bad-model: spec.registries: List should have at least 1 item after validation, not 0",
        f"{f}: Model/bad-model: spec.gpu.recommendedCount[1]: Input should be a valid integer, "
        "unable to parse string as an integer",
        f"{f}: Model/bad-model: spec.colour: Extra inputs are not permitted",
    ]
    assert f"{f}: ModelRegistry/reg: spec.backend: Input should be 'zstack', 'nemo', 'instill' or 'mlflow'" in lines
    assert any(line.startswith(f"{f}: ModelRegistry/reg: spec.endpoint: ") for line in lines)
    assert any(line.startswith(f"{f}: ModelRegistry/reg: spec.zstack.modelCenterUuid: ") for line in lines)
    assert f"{f}: ModelService/svc: spec.registries[0].kind: Input should be 'ModelRegistry' or " \
           "'ClusterModelRegistry'" in lines
    assert any(line.startswith(f"{f}: ModelService/svc: spec.bootupTimeSeconds: ") for line in lines)
    assert len(lines) == 8, lines
    assert "v1 Secret/creds: skipped" in r.stderr and "3 ModelSync resources checked, 8 problems" in r.stderr


def test_validate_reads_stdin_and_json() -> None:
    good = {"apiVersion": "modelsync.io/v1alpha1", "kind": "List", "items": [
        {"apiVersion": "modelsync.io/v1alpha1", "kind": "Model", "metadata": {"name": "m"},
         "spec": {"registries": [{"name": "z"}], "gpu": {"minMemory": "16Gi"}}}]}
    r = modelsync("validate", "-f", "-", input=json.dumps(good))
    assert r.returncode == 0 and "1 ModelSync resource checked, 0 problems" in r.stderr
    good["items"][0]["spec"] = {}
    r = modelsync("validate", "-f", "-", input=json.dumps(good))
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["<stdin>: Model/m: spec.registries: Field required"]


def test_validate_reports_unreadable_input(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Model\nspec: [unclosed\n")
    nameless = tmp_path / "nameless.yaml"
    nameless.write_text("apiVersion: modelsync.io/v1beta9\nkind: Model\nspec: {registries: [{name: z}]}\n")
    r = modelsync("validate", "-f", str(broken), str(tmp_path / "missing.yaml"), str(nameless))
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{broken}: not valid YAML: ")
    assert lines[1].startswith(f"{tmp_path / 'missing.yaml'}: cannot read: ")
    assert lines[2:] == [f"{nameless}: Model/<no name>: metadata.name: required",
                         f"{nameless}: Model/<no name>: apiVersion: 'modelsync.io/v1beta9' is not served; "
                         "use modelsync.io/v1alpha1"]


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return set(json.loads(out.splitlines()[-1]))


TESTING_ONLY = ("modelsync.testing", "modelsync.simulators.", "cryptography")


@pytest.mark.parametrize("code", [
    "import modelsync.handlers",
    "import modelsync.__main__ as m\ntry:\n    m.main(['--help'])\nexcept SystemExit:\n    pass",
    "import modelsync.__main__ as m\ntry:\n    m.main(['validate', '-f', 'examples/zstack'])\nexcept SystemExit:\n    pass",
])
def test_runtime_paths_import_nothing_testing_only(code: str) -> None:
    loaded = _modules_after(code)
    assert not [m for m in loaded if m.startswith(TESTING_ONLY)]


def test_simulate_without_the_testing_extra_says_what_to_install() -> None:
    code = ("import sys\nsys.modules['aiohttp'] = None  # as if not installed\n"
            "import modelsync.__main__ as m\nraise SystemExit(m.main(['simulate', 'zstack', '--port', '1']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "pip install 'modelsync[testing]'" in r.stderr and "aiohttp" in r.stderr
