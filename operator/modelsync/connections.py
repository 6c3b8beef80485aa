"""Registry connections: each registry object and its Secrets resolved into a
:class:`~modelsync.backends.base.RegistryConnection`, and one backend kept per registry.

Kept apart from the decisions (:mod:`modelsync.reconcile`): what is cached, for how long, and
what a registry's fingerprint (``status.registries[].registryVersion``) is made of.
"""
from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Mapping

import pydantic

from . import api
from .backends import make_backend
from .backends.base import Backend, CredentialsInvalid, Recoverable, RegistryConnection
from .conditions import Reason
from .kube import NotFound, Reader


def _header_safe(value: str) -> bool:
    return all(" " <= c <= "~" or c == "\t" for c in value)


def clean_credentials(data: Mapping[str, str], where: str) -> dict[str, str]:
    """Secret values as a backend may use them. One trailing newline (``kubectl create secret
    --from-file`` keeps the file's) is dropped; any other control or non-ASCII character is
    refused with :class:`CredentialsInvalid` naming the Secret and key, never the value: such a
    value would otherwise end up inside an HTTP library's exception text."""
    out: dict[str, str] = {}
    for key, value in data.items():
        if value.endswith("\r\n"):
            value = value[:-2]
        elif value.endswith("\n"):
            value = value[:-1]
        if not _header_safe(value) and key != "ca.crt":
            raise CredentialsInvalid(
                f"{where} key {key!r} holds a character that cannot be sent (a control character, "
                "an inner line break or non-ASCII text); fix the Secret")
        out[key] = value
    return out


class BackendPool:
    """Backends by registry, rebuilt when the registry's spec or Secret changes.

    Keeping instances lets a backend reuse its HTTP connections and session
    (a login session) across reconciles.
    """

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self._backends: dict[str, tuple[str, Backend]] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        #: (kind, namespace, name) → (uid, generation and Secret versions, parsed spec, connection,
        #: fingerprint); the spec holds while uid and generation (the first two versions) do
        self._conns: dict[tuple[str, str, str], tuple[list[str], Any, RegistryConnection, str]] = {}
        self._lock = asyncio.Lock()

    def limit(self, backend: Backend) -> asyncio.Semaphore:
        """The bound on reconciles in flight against one registry. It matches the backend's
        connection limit, so a request never waits for a connection (and never times out
        waiting): the wait is here, before the request, and it has no timeout."""
        key = backend.conn.key
        sem = self._limits.get(key)
        if sem is None:
            sem = self._limits[key] = asyncio.Semaphore(backend.conn.max_connections)
        return sem

    async def connection(self, ref: api.RegistryRef, namespace: str) -> tuple[RegistryConnection, str]:
        """The registry as a connection, plus a fingerprint of everything it came from.

        Called on every reconcile, so one cache entry per registry keeps the parsed spec (while
        uid and generation hold) and the connection (while the Secrets' versions hold too): an
        unchanged registry costs a lookup, not a validation and a hash."""
        try:
            obj = await self.reader.registry(ref.kind, ref.name, namespace)
        except NotFound as exc:
            raise Recoverable(f"{exc}; it will be looked up again", reason=Reason.REGISTRY_NOT_FOUND) from None
        reg_ns = namespace if ref.kind == "ModelRegistry" else None
        ident = (ref.kind, reg_ns or "", ref.name)
        # uid and generation, not resourceVersion: the registry's own status writes (its Ready
        # condition) must not rebuild the backend and abort requests in flight, and a registry
        # deleted and recreated under the same name (generation 1 again) is another registry
        meta = obj.get("metadata", {})
        versions = [f"uid:{meta.get('uid')}", f"generation:{meta.get('generation')}"]
        built = self._conns.get(ident)
        if built is not None and built[0][:2] == versions:
            spec = built[1]
        else:
            try:
                spec = api.parse_spec(ref.kind, obj.get("spec") or {})
            except pydantic.ValidationError as exc:
                raise Recoverable(f"{ref.kind} {ref.name} is invalid: {api.describe_validation_error(exc)}",
                                  reason=Reason.REGISTRY_INVALID) from None
        raw: Mapping[str, str] = {}
        sref = spec.credentialsSecretRef
        sns = str(reg_ns or (sref.namespace if sref else ""))  # required on a ClusterModelRegistry
        if sref:
            try:
                raw, rv = await self.reader.secret_data(sref.name, sns)
            except NotFound as exc:
                raise Recoverable(f"credentials of {ref.kind} {ref.name}: {exc}", reason=Reason.SECRET_NOT_FOUND) from None
            versions.append(rv)
        ca_pem = None
        if spec.tls and spec.tls.caSecretRef:
            cref = spec.tls.caSecretRef
            try:
                data, rv = await self.reader.secret_data(cref.name, str(reg_ns or cref.namespace))
            except NotFound as exc:
                raise Recoverable(f"CA bundle of {ref.kind} {ref.name}: {exc}", reason=Reason.SECRET_NOT_FOUND) from None
            ca_pem = data.get(cref.key)
            if not ca_pem:
                raise Recoverable(f"CA bundle of {ref.kind} {ref.name}: key {cref.key!r} missing in Secret {cref.name}",
                                  reason=Reason.SECRET_NOT_FOUND)
            versions.append(rv)
        if built is not None and built[0] == versions:
            return built[2], built[3]
        credentials = clean_credentials(raw, f"Secret {sns}/{sref.name}") if sref else {}
        key = f"ModelRegistry/{namespace}/{ref.name}" if ref.kind == "ModelRegistry" else f"ClusterModelRegistry/{ref.name}"
        conn = RegistryConnection(
            key=key, name=ref.name, kind=ref.kind, backend=spec.backend, endpoint=spec.endpoint,
            credentials=credentials, settings=spec.backend_settings(), ca_pem=ca_pem,
            insecure_skip_verify=bool(spec.tls and spec.tls.insecureSkipVerify), timeout=spec.timeout_seconds(),
        )
        fingerprint = hashlib.sha256("/".join(versions).encode()).hexdigest()
        self._conns[ident] = (versions, spec, conn, fingerprint)
        return conn, fingerprint

    async def backend(self, ref: api.RegistryRef, namespace: str) -> tuple[Backend, str]:
        """The backend for a registry, and the fingerprint of the registry and Secret it uses."""
        conn, fingerprint = await self.connection(ref, namespace)
        async with self._lock:
            cached = self._backends.get(conn.key)
            if cached and cached[0] == fingerprint:
                return cached[1], fingerprint
            if cached:
                await cached[1].aclose()
            backend = make_backend(conn)
            self._backends[conn.key] = (fingerprint, backend)
            return backend, fingerprint

    async def aclose(self) -> None:
        for _, backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()


# ---------------------------------------------------------------- the core
