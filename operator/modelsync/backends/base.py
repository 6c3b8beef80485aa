"""The backend interface, the observation it returns, and the error classes.

A backend speaks one registry's wire format and nothing else. It never decides
*what* to do: the reconcile core (:mod:`modelsync.reconcile`) calls
``observe`` and then ``create`` or ``update`` as the observation says, like
crossplane-runtime's ``ExternalClient``. Every method is idempotent:

* ``create`` derives the registry id from the resource (see
  :func:`deterministic_id`), so a create retried after a lost response finds or
  makes the same object and never a second one;
* ``update`` sends only the fields named in ``observation.diff``;
* ``delete`` treats "not found" as success.

Errors are classified once, here, by the backend that understands the wire:
:class:`Terminal` means the registry rejected the content and retrying the same
spec cannot help; :class:`Recoverable` means try again later (5xx, 429,
timeouts, lost connections), with the registry's Retry-After when it gave one.
Messages must be safe to show: no URLs with credentials, no headers, no tokens
(:func:`modelsync.redact.scrub` is applied again by the core, but backends
should not rely on it).
"""
from __future__ import annotations

import abc
import dataclasses
import email.utils
import json
import ssl
import time
import uuid
from typing import Any, ClassVar, Literal, Mapping

from ..conditions import Reason

Kind = Literal["Model", "ModelService"]

#: Namespace for uuid5-derived registry ids. Fixed forever: changing it would
#: make every existing resource look new to every registry.
ID_NAMESPACE = uuid.UUID("6d0f1c2e-5a7b-4c8e-9f3a-2b1d4e6c8a90")


def deterministic_id(*parts: str) -> uuid.UUID:
    """A stable UUID for the same parts (resource uid, registry key, kind).

    The resource's uid is unique per object incarnation; adding the registry
    key keeps two registries on one server apart.
    """
    return uuid.uuid5(ID_NAMESPACE, "/".join(parts))


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """An HTTP ``Retry-After`` as seconds: delta-seconds or an HTTP date (None if absent or unreadable)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def tls_verify(conn: "RegistryConnection") -> bool | ssl.SSLContext:
    """httpx's ``verify`` for a registry: on by default, the registry's CA bundle when given."""
    if conn.insecure_skip_verify:
        return False
    if conn.ca_pem:
        return ssl.create_default_context(cadata=conn.ca_pem)
    return True


@dataclasses.dataclass(frozen=True)
class RegistryConnection:
    """Everything a backend needs to reach one registry, resolved by the core.

    ``credentials`` holds the Secret's decoded data. It must never be logged,
    put in an Event, a status field or an exception message.
    """

    key: str  # "<Kind>/<namespace>/<name>" or "ClusterModelRegistry/<name>": stable, unique
    name: str
    kind: Literal["ModelRegistry", "ClusterModelRegistry"]
    backend: str  # spec.backend: a name in modelsync.vendors.VENDORS
    endpoint: str
    credentials: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # spec.<backend> of the registry
    ca_pem: str | None = dataclasses.field(default=None, repr=False)
    insecure_skip_verify: bool = False
    timeout: float = 30.0
    #: connections kept open to this registry at most (and kept alive); requests beyond it wait
    #: for a free one without a time limit (see :mod:`modelsync.backends.http`)
    max_connections: int = 8


@dataclasses.dataclass(frozen=True)
class Resource:
    """One Model or ModelService as a backend sees it: metadata plus parsed spec.

    ``spec`` is the pydantic model from :mod:`modelsync.api` (``ModelSpec`` or
    ``ModelServiceSpec``). ``external_id`` is what the status recorded for this
    registry on an earlier sync, if anything (a hint, not the source of truth:
    backends must find their object from the deterministic id alone).
    """

    kind: Kind
    name: str
    namespace: str
    uid: str
    generation: int
    spec: Any
    external_id: str | None = None
    #: ``external_id`` names an entry the user asked to adopt (spec.registries[].externalId):
    #: find it by that id, not the derived one; it is ours by declaration, never created
    adopted: bool = False
    # ids of other resources the spec refers to, already synced to this registry,
    # e.g. {"defaultService": "<external id of the default ModelService>"}.
    references: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class NotSettable:
    """A spec field this registry's API has no way to set: it is never sent, and never fails
    the resource or causes a write. The core shows it in ``status.registries[].notSettable`` so a
    user who set it can see where it went (the registry's own value, when it reports one).

    ``field`` is the spec path (``spec.gpu.minMemory``); ``why`` names the API that lacks it
    (``AddModel and UpdateModel have no field for it``); ``registry_value`` is what the
    registry reports for the same thing, or None when it reports nothing.
    """

    field: str
    why: str
    registry_value: Any = None

    def status(self) -> dict[str, Any]:
        """The entry of ``status.registries[].notSettable``."""
        out: dict[str, Any] = {"field": self.field, "message": self.why}
        if self.registry_value is not None:
            value = self.registry_value
            out["registryValue"] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return out


@dataclasses.dataclass(frozen=True)
class Observation:
    """What the registry holds for a resource, compared with what it should hold."""

    exists: bool
    external_id: str | None = None
    #: wire field names (or dotted paths) whose registry value differs from the desired one
    diff: tuple[str, ...] = ()
    inventory: Mapping[str, Any] | None = None
    #: the desired wire value of each compared field (at least those in ``diff``), so the core
    #: can tell a field the registry accepted but does not echo back from a changed spec
    desired: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: spec fields that are set but that this registry's API cannot set (never in ``diff``)
    not_settable: tuple[NotSettable, ...] = ()

    @property
    def up_to_date(self) -> bool:
        return self.exists and not self.diff


@dataclasses.dataclass(frozen=True)
class Entry:
    """One object a registry holds, as :meth:`Backend.list_entries` reports it (read-only).

    ``owner`` is the ``namespace/name`` that the ownership marker a backend writes on create
    names (a user tag, a custom field, a comment in the readme: each vendor has its own), or None
    when the entry carries no marker. ``marker`` is the marker as found, for display.
    """

    kind: Kind
    external_id: str  # what status.registries[].externalId records: the registry's uuid, name or id
    name: str
    owner: str | None = None
    marker: str | None = None


class BackendError(Exception):
    """Base of everything a backend raises on purpose. ``str()`` is safe to show."""

    reason: ClassVar[str] = Reason.RECONCILE_ERROR

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason  # type: ignore[misc]


class Terminal(BackendError):
    """The registry rejected the content: do not retry until the spec changes.

    ``fields`` names the offending fields when the registry said which.
    """

    reason = Reason.INVALID_SPEC

    def __init__(self, message: str, *, reason: str | None = None, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message, reason=reason)
        self.fields = fields


class CredentialsRejected(Terminal):
    """401/403 or a failed login: the Secret or the registry's auth must change."""

    reason = Reason.CREDENTIALS_REJECTED


class CredentialsInvalid(Terminal):
    """A credential cannot be sent at all (e.g. a control character or line break in a header
    value): the Secret must change. The message names the Secret key or header, never the value."""

    reason = Reason.CREDENTIALS_INVALID


class NameTaken(Terminal):
    """The id or name exists in the registry and is not ours to adopt."""

    reason = Reason.NAME_TAKEN


class Unsupported(Terminal):
    """The registry has no counterpart for this kind of resource."""

    reason = Reason.UNSUPPORTED


class Recoverable(BackendError):
    """Transient: 5xx, 429, timeouts, lost responses. Retry with backoff.

    ``retry_after`` is the registry's Retry-After in seconds, when it gave one.
    """

    reason = Reason.REGISTRY_UNAVAILABLE

    def __init__(self, message: str, *, reason: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class Backend(abc.ABC):
    """One registry client. Instances are cached by the core per registry
    connection, so a backend may keep a session (e.g. a login) between
    reconciles; it must be safe to call concurrently from one event loop.
    """

    #: the ``spec.backend`` value this class serves
    name: ClassVar[str]
    #: resource kinds with a counterpart in this registry
    kinds: ClassVar[frozenset[str]] = frozenset({"Model", "ModelService"})
    #: references the core should resolve into ``Resource.references`` (e.g. "defaultService")
    references: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, conn: RegistryConnection) -> None:
        self.conn = conn

    def supports(self, kind: str) -> bool:
        return kind in self.kinds

    def unsupported(self, kind: str, remedy: str | None = None) -> Unsupported:
        """The error for a kind this registry has no counterpart for. ``remedy`` ends the message
        (the core names the registry reference to remove); a backend may override it to say why in
        its own words."""
        remedy = remedy or f"remove registry {self.conn.name} from this {kind}'s spec.registries"
        return Unsupported(f"{self.name} registries have no counterpart for a {kind}; {remedy}")

    def require(self, kind: str, remedy: str | None = None) -> None:
        """The one "this registry has no such kind" check, made by the core before it calls a
        backend and by a backend called for such a kind anyway: :meth:`unsupported` unless
        :meth:`supports`."""
        if not self.supports(kind):
            raise self.unsupported(kind, remedy)

    @abc.abstractmethod
    async def observe(self, res: Resource) -> Observation:
        """Read the registry's object for ``res`` (found by its deterministic id)
        and diff it against the desired wire state."""

    @abc.abstractmethod
    async def create(self, res: Resource) -> Mapping[str, Any]:
        """Create the object with its deterministic id; return the inventory.
        If it already exists and is ours (e.g. a retried create), adopt it."""

    @abc.abstractmethod
    async def update(self, res: Resource, obs: Observation) -> Mapping[str, Any]:
        """Send only ``obs.diff``; return the inventory after the update."""

    def observation(self, res: Resource, inventory: Mapping[str, Any]) -> Observation | None:
        """The observation a write's reply already holds (``inventory`` as create or update
        returned it), or None when only a fresh read can tell. No request: it saves the core
        the read-back after a write when the registry answers with the stored object."""
        return None

    @abc.abstractmethod
    async def delete(self, res: Resource) -> None:
        """Remove the object; "not found" is success."""

    @abc.abstractmethod
    async def check(self) -> str:
        """Prove the registry is usable: reachable, credentials accepted, settings
        (model center, workspace, namespace) present. Returns what was proven, in
        words, for the registry's Ready condition; raises a BackendError otherwise."""

    async def aclose(self) -> None:
        """Release connections. The core calls it when it drops the instance."""

    async def list_entries(self) -> list[Entry]:
        """Every model (and, where the registry has them, model service) the registry
        holds in the scope of this connection (model center, workspace, namespace), whoever
        made it, with the owner its marker names. Read-only: for ``modelsync inventory``,
        never called by the reconcile core."""
        raise Unsupported(f"the {self.name} backend cannot list its registry's entries")
