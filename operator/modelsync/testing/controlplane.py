"""A real, local Kubernetes control plane: etcd + kube-apiserver on loopback.

The binaries are built from the official Go modules by ``tools/controlplane``
(pinned versions, cached outside git). This module starts them on free ports
with freshly generated certificates and service-account keys, writes an admin
kubeconfig (client certificate in ``system:masters``), waits for ``/readyz``,
applies the CRDs and waits for them to be Established. ``stop()`` always
leaves no process and no temporary directory behind, also after a failure
half-way through ``start()``.

    with ControlPlane(crds="crds/") as cp:
        os.environ["KUBECONFIG"] = str(cp.kubeconfig)
        ...

RBAC is on (``--authorization-mode=RBAC``) so that the operator's ClusterRole
can be tested for real with a non-admin identity (:meth:`ControlPlane.user_kubeconfig`).
"""
from __future__ import annotations

import atexit
import ctypes
import datetime
import ipaddress
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..simulators.server import free_port

BIN_ENV = "MODELSYNC_CONTROLPLANE_BIN"
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when the parent dies, so etcd and
    kube-apiserver never outlive a test process that was killed (SIGTERM skips ``finally``)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: stop() and atexit still apply
        pass


def _repo_root() -> Path | None:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "tools" / "controlplane" / "build.sh").exists():
            return parent
    return None


def ensure_binaries() -> Path:
    """The directory holding ``etcd``, ``kube-apiserver`` and ``kubectl``.

    ``$MODELSYNC_CONTROLPLANE_BIN`` wins; otherwise ``tools/controlplane/build.sh``
    of this checkout builds them once and prints the cached directory.
    """
    env = os.environ.get(BIN_ENV)
    if env:
        return Path(env)
    root = _repo_root()
    if root is None:
        raise RuntimeError(
            f"no control-plane binaries: set {BIN_ENV} to a directory with etcd, kube-apiserver "
            "and kubectl, or run from a ModelSync checkout (tools/controlplane/build.sh builds them)"
        )
    out = subprocess.run(
        ["bash", str(root / "tools" / "controlplane" / "build.sh")],
        check=True, stdout=subprocess.PIPE, text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def _pem_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert(
    subject_cn: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    orgs: Sequence[str] = (),
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    subject = x509.Name(attrs)
    issuer_name = issuer[0].subject if issuer else subject
    signing_key = issuer[1] if issuer else key
    b = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        usage = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
        b = b.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if server:
        b = b.add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default.svc"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]),
            critical=False,
        )
    return b.sign(signing_key, hashes.SHA256())


class ControlPlane:
    """etcd + kube-apiserver for tests and the demo. See the module docstring."""

    def __init__(
        self,
        *,
        crds: str | os.PathLike[str] | None = None,
        bin_dir: str | os.PathLike[str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 120.0,
        audit: bool = False,
    ) -> None:
        self.crds = Path(crds) if crds else None
        #: write an audit log (metadata of every request, JSON lines) to ``audit_log``: how a
        #: benchmark counts who read and wrote what
        self.audit = audit
        self._bin_dir = Path(bin_dir) if bin_dir else None
        self._given_workdir = Path(workdir) if workdir else None
        self.startup_timeout = startup_timeout
        self.workdir: Path | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[object] = []
        self.server = ""
        self._ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> "ControlPlane":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = ensure_binaries()
        return self._bin_dir

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    @property
    def kubeconfig(self) -> Path:
        assert self.workdir is not None, "not started"
        return self.workdir / "kubeconfig"

    @property
    def pids(self) -> dict[str, int]:
        """The running processes by name (``etcd``, ``kube-apiserver``): for benchmarks' CPU accounting."""
        return {name: proc.pid for name, proc in zip(("etcd", "kube-apiserver"), self._procs)}

    def start(self) -> "ControlPlane":
        bins = self.bin_dir
        if self._given_workdir:
            self._given_workdir.mkdir(parents=True, exist_ok=True)
            self.workdir = Path(tempfile.mkdtemp(prefix="cp-", dir=self._given_workdir))
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="modelsync-cp-"))
        atexit.register(self.stop)
        try:
            self._write_pki()
            etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
            etcd_url = f"http://127.0.0.1:{etcd_port}"
            self._spawn("etcd", [
                str(bins / "etcd"), "--name=default", f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync", "--log-level=warn",
            ])
            pki = self.workdir / "pki"
            self._apiserver_argv = [
                str(bins / "kube-apiserver"), f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/24", "--authorization-mode=RBAC",
                "--endpoint-reconciler-type=none", "--disable-admission-plugins=ServiceAccount",
                f"--cert-dir={pki}", "--v=0",
            ]
            if self.audit:
                policy = self.workdir / "audit-policy.yaml"
                policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
                                  "rules:\n- level: Metadata\n")
                self._apiserver_argv += [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}",
                                         "--audit-log-format=json", "--audit-log-mode=batch",
                                         "--audit-log-batch-max-wait=1s", "--audit-log-maxsize=0"]
            self._spawn("kube-apiserver", self._apiserver_argv)
            self.server = f"https://127.0.0.1:{api_port}"
            self._write_kubeconfig(self.kubeconfig, "admin", pki / "admin.crt", pki / "admin.key")
            self._wait_ready()
            if self.crds:
                self.apply(self.crds)
                self.kubectl_run("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both processes (apiserver first) and remove the work directory."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in reversed(self._procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(15)
        self._procs.clear()
        for f in self._logs:
            f.close()  # type: ignore[attr-defined]
        self._logs.clear()
        if self.workdir is not None and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None
        atexit.unregister(self.stop)

    @property
    def audit_log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "audit.log"

    def restart_apiserver(self, down: float = 0.0) -> None:
        """Stop kube-apiserver (etcd keeps the data), wait ``down`` seconds, start it again
        on the same port and wait until it answers: what a control-plane upgrade does to
        the operator's watches."""
        proc = self._procs[1]
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)
        time.sleep(down)
        assert self.workdir is not None
        log = open(self.workdir / "kube-apiserver.log", "ab")
        self._logs.append(log)
        self._procs[1] = subprocess.Popen(self._apiserver_argv, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True, preexec_fn=_die_with_parent)
        self._wait_ready()

    # ------------------------------------------------------------ helpers

    def kubectl_run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the cached kubectl against this control plane as cluster admin."""
        return subprocess.run(
            [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=input, text=True, capture_output=True, check=check, timeout=120,
        )

    def apply(self, path: str | os.PathLike[str]) -> None:
        self.kubectl_run("apply", "--server-side", "-f", str(path))

    def user_kubeconfig(self, user: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig for an arbitrary (non-admin) identity, for RBAC tests."""
        assert self.workdir is not None and self._ca is not None
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(user, key, issuer=self._ca, orgs=groups)
        pki = self.workdir / "pki"
        (pki / f"{user}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (pki / f"{user}.key").write_bytes(_pem_key(key))
        path = self.workdir / f"kubeconfig-{user}"
        self._write_kubeconfig(path, user, pki / f"{user}.crt", pki / f"{user}.key")
        return path

    def _spawn(self, name: str, argv: list[str]) -> None:
        assert self.workdir is not None
        log = open(self.workdir / f"{name}.log", "wb")
        self._logs.append(log)
        self._procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=_die_with_parent))

    def _write_pki(self) -> None:
        assert self.workdir is not None
        pki = self.workdir / "pki"
        pki.mkdir()
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _cert("modelsync-local-ca", ca_key, ca=True)
        self._ca = (ca, ca_key)
        (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        for name, kwargs in (("apiserver", {"server": True}), ("admin", {"orgs": ["system:masters"]})):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _cert("kube-apiserver" if name == "apiserver" else "admin", key, issuer=self._ca, **kwargs)
            (pki / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            (pki / f"{name}.key").write_bytes(_pem_key(key))
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (pki / "sa.key").write_bytes(_pem_key(sa))
        (pki / "sa.pub").write_bytes(sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def _write_kubeconfig(self, path: Path, user: str, crt: Path, key: Path) -> None:
        assert self.workdir is not None
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: local\n  cluster:\n    server: {self.server}\n"
            f"    certificate-authority: {self.workdir / 'pki' / 'ca.crt'}\n"
            f"users:\n- name: {user}\n  user:\n    client-certificate: {crt}\n    client-key: {key}\n"
            f"contexts:\n- name: {user}@local\n  context: {{cluster: local, user: {user}, namespace: default}}\n"
            f"current-context: {user}@local\n"
        )

    def _wait_ready(self) -> None:
        assert self.workdir is not None
        pki = self.workdir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        deadline = time.monotonic() + self.startup_timeout
        last: object = None
        while time.monotonic() < deadline:
            for proc, name in zip(self._procs, ("etcd", "kube-apiserver")):
                if proc.poll() is not None:
                    tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.server}/readyz", context=ctx, timeout=5) as r:
                    if r.status == 200:
                        return
            except Exception as exc:  # not up yet
                last = exc
            time.sleep(0.25)
        raise TimeoutError(f"kube-apiserver not ready after {self.startup_timeout}s: {last}")
