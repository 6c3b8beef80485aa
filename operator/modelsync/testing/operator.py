"""Run the operator as a real process, the way a Deployment would."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

from .controlplane import _die_with_parent


class OperatorProcess:
    """``python -m modelsync`` against ``kubeconfig``; its log goes to a file.

    ``with OperatorProcess(kubeconfig) as op: ...`` starts it and always stops it.
    """

    def __init__(self, kubeconfig: str | os.PathLike[str], *, env: Mapping[str, str] | None = None,
                 args: tuple[str, ...] = (), verbose: bool = True) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.verbose = verbose
        self.env = dict(env or {})
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        fd, name = tempfile.mkstemp(prefix="modelsync-operator-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)

    def __enter__(self) -> "OperatorProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "OperatorProcess":
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "modelsync", *(["--verbose"] if self.verbose else []), *self.args],
                                     stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        log.close()
        return self

    def stop(self, timeout: float = 20) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no cleanup handlers run."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(20)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{text!r} not in the operator log after {timeout}s:\n{self.log()[-4000:]}")
