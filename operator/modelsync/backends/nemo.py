"""NVIDIA NeMo platform (Entity Store / Models service) backend: ``Model`` only.

Wire API (workspace API of the NeMo platform, ``/apis/models/v2``; the server is
``NVIDIA-NeMo/nemo-platform``, ``services/core/models``)::

    POST   /apis/models/v2/workspaces/{workspace}/models          201 -> ModelEntity
    GET    /apis/models/v2/workspaces/{workspace}/models/{name}   200 -> ModelEntity
    PATCH  /apis/models/v2/workspaces/{workspace}/models/{name}   200 -> ModelEntity
    DELETE /apis/models/v2/workspaces/{workspace}/models/{name}   204
    GET    /apis/entities/v2/workspaces/{workspace}               200, or 404 when it does not exist

Errors are FastAPI-shaped: 422 ``{"detail": [{"loc", "msg", "type", ...}]}``, others
``{"detail": "..."}``. They are classified by the shared status table
(:mod:`modelsync.backends.http`) with two NeMo refinements: a 403 whose detail names
``trust_remote_code``, a fileset or ``tool_call_plugin`` is a permission on the *content*
(``InvalidSpec``), not a refused token; and a missing workspace, which the server answers
with 422 on create and 500 on list, is told by asking the entity store for the workspace
(``RegistryMisconfigured`` when it answers 404).

What is sent: every field the resource *sets* (``""``, ``{}`` and ``[]`` included: the PATCH
endpoint applies every field that is not null, so empty means empty); a field absent from the
spec is never sent and the registry's value is left as it is. What cannot be sent is reported
in ``Observation.not_settable`` (``readme``, ``defaultServiceRef``, ``spec.nemo.spec.head_type``).
``spec.minimum_gpus_*`` are sent with ``spec`` but every read returns them null, so they are
never compared.

The entity is found by its *name* (unique per workspace), which is
``spec.nemo.name`` or a deterministic name derived from the resource (see
:func:`entity_name`). Ownership is recorded in ``custom_fields`` under
:data:`OWNER_KEY`; an entity without our marker is never updated or adopted.

ModelService has no NeMo counterpart: ``kinds`` is ``{"Model"}`` and the
kind-specific methods raise :class:`Unsupported` for anything else.
"""
from __future__ import annotations

import re
import urllib.parse
from typing import Any, Mapping

import httpx

from .base import (
    Backend,
    BackendError,
    Entry,
    NameTaken,
    NotSettable,
    Observation,
    Recoverable,
    RegistryConnection,
    Resource,
    Terminal,
    Unsupported,
    deterministic_id,
)
from .http import ABSENT, ANY, Outcome, Reply, Transport, VendorError

API_PREFIX = "/apis/models/v2/workspaces"
WORKSPACES_PATH = "/apis/entities/v2/workspaces"
OWNER_KEY = "modelsync.io/owner"
RESOURCE_KEY = "modelsync.io/resource"

#: Entity fields this backend manages, in wire order (``name`` is the key, not a managed field).
MANAGED_FIELDS: tuple[str, ...] = (
    "description", "spec", "finetuning_type", "fileset", "base_model", "api_endpoint",
    "backend_format", "prompt", "custom_fields", "ownership", "model_providers", "trust_remote_code",
)

NAME_RE = re.compile(r"^[\w\-.]+$")
DESCRIPTION_MAX = 1000

#: ``spec`` members the server stores but every read returns as null
#: (``model_entity_service._model_to_model_entity``): sent, never compared
SPEC_READ_NULLED: tuple[str, ...] = ("minimum_gpus_all_weights", "minimum_gpus_lora")
#: entity fields that hold an object the PATCH endpoint replaces whole
OBJECT_FIELDS: tuple[str, ...] = ("spec", "api_endpoint", "prompt", "ownership", "custom_fields")
#: words of a 403's detail that make it a refusal of the content (models.py, permissions.py)
CONTENT_403 = {"trust_remote_code": "spec.nemo.trust_remote_code", "fileset": "spec.nemo.fileset",
               "tool_call_plugin": "spec.nemo.spec"}

_SOURCE = "nemo-platform services/core/models/src/nmp/core/models/schemas.py"

#: Common Model fields without a NeMo counterpart, kept as custom_fields metadata.
_COMMON_TO_CUSTOM: tuple[tuple[str, str], ...] = (
    ("vendor", "modelsync.io/vendor"),
    ("version", "modelsync.io/version"),
    ("parameters", "modelsync.io/parameters"),
    ("architecture", "modelsync.io/architecture"),
    ("frameworkVersion", "modelsync.io/framework-version"),
    ("task", "modelsync.io/task"),
    ("license", "modelsync.io/license"),
    ("installPath", "modelsync.io/install-path"),
)


# ---------------------------------------------------------------- pure mapping


def _dump(value: Any) -> Any:
    """A pydantic model (or plain value) as JSON-ready data without ``None`` members."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(exclude_none=True)
    if isinstance(value, Mapping):
        return {str(k): _dump(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    return value


def _blank(value: Any) -> bool:
    """A read value that holds nothing: null, ``""``, or an object / list of such."""
    if isinstance(value, Mapping):
        return all(_blank(v) for v in value.values())
    if isinstance(value, list):
        return not value
    return value is None or value == ""


def owner_marker(res: Resource, conn: RegistryConnection) -> str:
    return str(deterministic_id(res.uid, conn.key))


def entity_name(res: Resource, conn: RegistryConnection) -> str:
    """The entity name: ``spec.nemo.name`` if set, else a deterministic one.

    The deterministic name is ``<namespace>-<name>-<hash8>``: lowercase
    ``[a-z0-9.-]``, 2–63 characters, starting with a letter, without
    consecutive hyphens and not ending with one (so it also satisfies the
    stricter naming rule of newer platform releases). ``hash8`` is the first 8
    hex digits of ``deterministic_id(uid, registry key)``, which keeps names
    unique per object incarnation and per registry and stable across retries.
    """
    if res.adopted and res.external_id:
        return res.external_id
    nemo = getattr(res.spec, "nemo", None)
    user = getattr(nemo, "name", None) if nemo is not None else None
    if user:
        if len(user) > 255 or not NAME_RE.match(user):
            raise Terminal(
                f"spec.nemo.name: {user[:80]!r} is not a valid NeMo entity name "
                "(letters, digits, '_', '-', '.'; at most 255 characters)",
                fields=("spec.nemo.name",),
            )
        return user
    digest = deterministic_id(res.uid, conn.key).hex[:8]
    base = f"{res.namespace}-{res.name}".lower()
    base = re.sub(r"[^a-z0-9.-]+", "-", base)
    base = re.sub(r"-{2,}", "-", base).strip("-.")
    if not base or not base[0].isalpha():
        base = f"m-{base}" if base else "m"
    base = base[: 63 - 1 - len(digest)].rstrip("-.")
    return f"{base}-{digest}"


def _valid_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    p = urllib.parse.urlsplit(value)
    return bool(p.scheme) and bool(p.netloc)


def _validate(body: Mapping[str, Any]) -> None:
    """What NeMo rejects that the resource's schema does not already refuse, as one Terminal
    naming the CR fields. Enums, the fileset form, the ``api_endpoint`` and ``prompt`` keys and
    the whole ``spec`` set are guaranteed by :mod:`modelsync.api` (at admission and when the
    core parses the spec); the common description allows more than NeMo's 1000 characters, and
    the schema cannot tell an absolute URL."""
    problems: list[tuple[str, str]] = []
    desc = body.get("description")
    if desc is not None and len(desc) > DESCRIPTION_MAX:
        problems.append(("spec.description", f"at most {DESCRIPTION_MAX} characters for NeMo (got {len(desc)})"))
    ep = body.get("api_endpoint")
    if isinstance(ep, Mapping) and "url" in ep and not _valid_url(ep["url"]):
        problems.append(("spec.nemo.api_endpoint.url", "must be an absolute URL"))
    if problems:
        raise Terminal("; ".join(f"{f}: {m}" for f, m in problems), fields=tuple(f for f, _ in problems))


def desired_entity(res: Resource, conn: RegistryConnection) -> dict[str, Any]:
    """The create body for ``res``: ``name`` plus every managed field the resource sets.

    Mapping:

    * ``spec.description`` → ``description``;
    * ``spec.nemo.{fileset, base_model, finetuning_type, api_endpoint,
      backend_format, prompt, ownership, model_providers, trust_remote_code,
      spec}`` → the same wire fields (``spec.head_type`` is not sent: the server's
      ModelSpec has no such member, see :func:`not_settable`);
    * ``spec.nemo.custom_fields`` → ``custom_fields``, merged with
      ``modelsync.io/*`` keys for the common fields that have no NeMo field
      (vendor, version, parameters, architecture, frameworkVersion, task,
      license, installPath, gpu), ``modelsync.io/resource`` (``ns/name``) and
      the ownership marker :data:`OWNER_KEY`; the ``modelsync.io/*`` keys win.

    A field set to an empty value (``""``, ``{}``, ``[]``) is sent as it is: the PATCH
    endpoint applies it. A field left out of the resource (None) is not sent.
    Raises :class:`Terminal` for what the registry would reject.
    """
    if res.kind != "Model":
        raise Unsupported(f"NeMo has no counterpart for {res.kind}; only Model is synced to NeMo")
    spec = res.spec
    nemo = _dump(getattr(spec, "nemo", None)) or {}
    body: dict[str, Any] = {"name": entity_name(res, conn)}
    description = getattr(spec, "description", None)
    if description is not None:
        body["description"] = description
    for field in ("spec", "finetuning_type", "fileset", "base_model", "api_endpoint", "backend_format",
                  "prompt", "ownership", "model_providers", "trust_remote_code"):
        value = nemo.get(field)
        if value is not None:
            body[field] = value
    if isinstance(body.get("spec"), Mapping):
        body["spec"] = {k: v for k, v in body["spec"].items() if k != "head_type"}

    custom: dict[str, Any] = dict(nemo.get("custom_fields") or {})
    for attr, key in _COMMON_TO_CUSTOM:
        value = getattr(spec, attr, None)
        if value is not None:
            custom[key] = value
    gpu = _dump(getattr(spec, "gpu", None))
    if gpu:
        custom["modelsync.io/gpu"] = gpu
    custom[RESOURCE_KEY] = f"{res.namespace}/{res.name}"
    custom[OWNER_KEY] = owner_marker(res, conn)
    body["custom_fields"] = custom

    _validate(body)
    return body


def exact_fields(res: Resource) -> frozenset[str]:
    """Fields compared exactly rather than on the keys set: ``custom_fields`` when the resource
    sets it to ``{}`` (the map then holds only ModelSync's own keys)."""
    nemo = getattr(res.spec, "nemo", None)
    return frozenset({"custom_fields"}) if getattr(nemo, "custom_fields", None) == {} else frozenset()


def not_settable(res: Resource) -> tuple[NotSettable, ...]:
    """Spec fields the resource sets that the NeMo API has no way to set."""
    spec = res.spec
    out: list[NotSettable] = []
    if getattr(spec, "readme", None) is not None:
        out.append(NotSettable("spec.readme", f"NeMo model entities have no readme field ({_SOURCE}: "
                                              "CreateModelEntityRequest, UpdateModelEntityRequest)"))
    if getattr(spec, "defaultServiceRef", None) is not None:
        out.append(NotSettable("spec.defaultServiceRef", "NeMo has no model services: a model entity cannot "
                                                         f"name a default service ({_SOURCE})"))
    nemo_spec = _dump(getattr(getattr(spec, "nemo", None), "spec", None))
    if isinstance(nemo_spec, Mapping) and nemo_spec.get("head_type") is not None:
        out.append(NotSettable("spec.nemo.spec.head_type", "the NeMo server's ModelSpec has no head_type: it "
                                                           f"ignores the member ({_SOURCE}: ModelSpec)"))
    return tuple(out)


def _norm_url(value: Any) -> Any:
    """pydantic ``AnyUrl`` as the registry stores it: lowercase scheme/host, ``/`` for an empty path."""
    if not isinstance(value, str):
        return value
    p = urllib.parse.urlsplit(value)
    return urllib.parse.urlunsplit((p.scheme.lower(), p.netloc.lower(), p.path or "/", p.query, p.fragment))


def _matches(desired: Any, actual: Any) -> bool:
    """``actual`` holds ``desired``: objects compare on the keys we set, lists element-wise;
    an empty object is matched only by one that holds nothing (``{}`` means empty)."""
    if isinstance(desired, Mapping):
        if not desired:
            return actual is None or _blank(actual)
        if not isinstance(actual, Mapping):
            return False
        return all(_matches(v, actual.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(actual, list) and len(desired) == len(actual) and all(
            _matches(d, a) for d, a in zip(desired, actual))
    if isinstance(desired, bool) or isinstance(actual, bool):
        return desired is actual
    return bool(desired == actual)


def diff_entity(desired: Mapping[str, Any], entity: Mapping[str, Any],
                exact: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Managed wire fields whose registry value does not hold the desired one.

    Only fields we set are compared; within objects (``custom_fields``,
    ``ownership``, ``spec``, ``api_endpoint``, ``prompt``) only the keys we set,
    so keys the platform or other clients add (e.g. what the model-spec job
    fills in) are not differences. Fields in ``exact`` must hold no other keys.
    ``spec.minimum_gpus_*`` are never compared (every read returns null);
    ``base_model: ""`` is stored as null.
    """
    out = []
    for field in MANAGED_FIELDS:
        if field not in desired:
            continue
        want, have = desired[field], entity.get(field)
        if field == "api_endpoint" and isinstance(want, Mapping):
            want = {**want, **({"url": _norm_url(want["url"])} if "url" in want else {})}
            if isinstance(have, Mapping) and "url" in have:
                have = {**have, "url": _norm_url(have["url"])}
        if field == "spec" and isinstance(want, Mapping):
            want = {k: v for k, v in want.items() if k not in SPEC_READ_NULLED}
        if field == "base_model" and want == "":
            want = None
        if field in exact and isinstance(want, Mapping) and isinstance(have, Mapping) and set(have) - set(want):
            out.append(field)
        elif not _matches(want, have):
            out.append(field)
    return tuple(out)


def inventory_of(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The entity as status inventory; ``api_endpoint.api_key`` is masked."""
    inv = dict(entity)
    ep = inv.get("api_endpoint")
    if isinstance(ep, Mapping) and ep.get("api_key"):
        inv["api_endpoint"] = {**ep, "api_key": "***"}
    return inv


# ---------------------------------------------------------------- errors


def _detail(body: Any, text: str) -> tuple[str, tuple[str, ...]]:
    """The error's text and, for FastAPI validation errors, the fields it names."""
    if body is None:
        return text[:300], ()
    detail = body.get("detail", body) if isinstance(body, Mapping) else body
    if isinstance(detail, list):
        parts, fields = [], []
        for item in detail:
            if not isinstance(item, Mapping):
                parts.append(str(item)[:200])
                continue
            loc = [str(p) for p in item.get("loc") or []]
            where = ".".join(loc) or "body"
            parts.append(f"{where}: {item.get('msg', '')}")  # never the echoed "input"
            fields.append(".".join(loc[1:] if loc[:1] == ["body"] else loc) or "body")
        return "; ".join(parts), tuple(fields)
    if isinstance(detail, str):
        return detail[:500], ()
    return str(detail)[:300], ()


def parse_error(status: int, body: Any, text: str) -> VendorError:
    """FastAPI's ``{"detail": ...}`` as the message and the fields a 422 names (or the spec
    field a fileset or permission refusal is about)."""
    message, fields = _detail(body, text)
    if not fields and status in (400, 403):
        fields = tuple(f for word, f in CONTENT_403.items() if word in message.lower())
    return VendorError(message=message, fields=fields)


def refine(status: int, error: VendorError) -> Outcome | None:
    """A 403 about ``trust_remote_code``, a fileset or ``tool_call_plugin`` refuses the content
    (api/v2/models.py answers PermissionError with 403): InvalidSpec, not CredentialsRejected."""
    if status == 403 and any(word in error.message.lower() for word in CONTENT_403):
        return Outcome.INVALID
    return None


class NemoBackend(Backend):
    """NeMo Models service client for one registry connection."""

    name = "nemo"
    kinds = frozenset({"Model"})

    def __init__(self, conn: RegistryConnection, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(conn)
        self.workspace: str = str(conn.settings.get("workspace") or "default")
        self.transport = Transport(conn, backend=self.name, vendor="NeMo", auth=self._auth, parse_error=parse_error,
                                   refine=refine, headers={"Accept": "application/json"}, transport=transport)

    # ------------------------------------------------------------ plumbing

    async def _auth(self) -> dict[str, str]:
        token = self.conn.credentials.get("token")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _safe(self, text: object) -> str:
        return self.transport.scrub(text)

    def _models_path(self, name: str | None = None) -> str:
        ws = urllib.parse.quote(self.workspace, safe="")
        path = f"{API_PREFIX}/{ws}/models"
        return path if name is None else f"{path}/{urllib.parse.quote(name, safe='')}"

    async def _request(self, method: str, path: str, what: str, *, json: Any = None,
                       params: Mapping[str, Any] | None = None, accept: frozenset[Outcome] = frozenset()) -> Reply:
        return await self.transport.request(method, path, what=f"NeMo {what}", json=json, params=params,
                                            accept=accept)

    def _workspace_missing(self, what: str, reply: Reply) -> Terminal:
        detail = (reply.error.message if reply.error else "") or "Not Found"
        return Terminal(self._safe(
            f"NeMo {what}: HTTP {reply.status}: {detail} (workspace {self.workspace!r} not found: "
            f"spec.nemo.workspace of registry {self.conn.name})"), reason="RegistryMisconfigured")

    async def _workspace_absent(self) -> bool:
        """Whether the entity store says the workspace does not exist: its own 404, whose detail
        names the workspace ("Workspace 'x' not found"). Any other answer, or none, cannot tell."""
        path = f"{WORKSPACES_PATH}/{urllib.parse.quote(self.workspace, safe='')}"
        try:
            reply = await self._request("GET", path, f"get workspace {self.workspace}", accept=ANY)
        except BackendError:
            return False
        message = reply.error.message if reply.error else ""
        return reply.status == 404 and "workspace" in message.lower()

    async def _failed_in_workspace(self, what: str, reply: Reply) -> BackendError:
        """A create's 404/422 or a list's 404/5xx: the workspace is missing, or the table's error."""
        if await self._workspace_absent():
            return self._workspace_missing(what, reply)
        return self.transport.error(reply, f"NeMo {what}")

    def _where(self, name: str) -> str:
        return f"model {self.workspace}/{name}"

    @staticmethod
    def _require_model(res: Resource) -> None:
        if res.kind != "Model":
            raise Unsupported(f"NeMo has no counterpart for {res.kind}; only Model is synced to NeMo")

    def _check_owner(self, res: Resource, entity: Mapping[str, Any], name: str) -> None:
        if res.adopted:
            return  # adopted on purpose: ours by declaration (the next update writes our marker)
        marker = (entity.get("custom_fields") or {}).get(OWNER_KEY) if isinstance(entity, Mapping) else None
        if marker != owner_marker(res, self.conn):
            raise NameTaken(
                f"NeMo model {self.workspace}/{name} exists and is not managed by this resource; "
                f"set spec.nemo.name to another name, or spec.registries[].externalId: {name} to adopt it"
            )

    async def _get(self, name: str, *, verbose: bool = False) -> dict[str, Any] | None:
        what = f"get {self._where(name)}"
        reply = await self._request("GET", self._models_path(name), what, accept=ABSENT,
                                    params={"verbose": "true"} if verbose else None)
        if not reply.ok:
            return None
        return self._json(reply, what)

    def _json(self, reply: Reply, what: str) -> dict[str, Any]:
        if not isinstance(reply.body, dict):
            raise Recoverable(self._safe(f"NeMo {what}: HTTP {reply.status} without a JSON object in the reply"))
        return reply.body

    # ------------------------------------------------------------ Backend

    async def observe(self, res: Resource) -> Observation:
        self._require_model(res)
        desired = desired_entity(res, self.conn)
        name = desired["name"]
        entity = await self._get(name)
        if entity is None:
            return Observation(exists=False)
        self._check_owner(res, entity, name)
        return Observation(
            exists=True,
            external_id=name,
            diff=diff_entity(desired, entity, exact_fields(res)),
            inventory=inventory_of(entity),
            desired=desired,
            not_settable=not_settable(res),
        )

    async def create(self, res: Resource) -> Mapping[str, Any]:
        self._require_model(res)
        desired = desired_entity(res, self.conn)
        name = desired["name"]
        what = f"create {self._where(name)}"
        reply = await self._request("POST", self._models_path(), what, json=desired,
                                    accept=frozenset({Outcome.CONFLICT, Outcome.NOT_FOUND, Outcome.INVALID}))
        if reply.ok:
            return inventory_of(self._json(reply, what))
        if reply.outcome is Outcome.CONFLICT:
            entity = await self._get(name)
            if entity is None:
                raise Recoverable(self._safe(f"NeMo {what}: name conflict, but the model is gone; retrying"))
            self._check_owner(res, entity, name)
            return inventory_of(entity)  # ours (e.g. a retried create): adopt
        if reply.outcome is Outcome.INVALID and not (reply.status == 422 and isinstance(
                (reply.body or {}).get("detail") if isinstance(reply.body, Mapping) else None, str)):
            raise self.transport.error(reply, f"NeMo {what}")  # content: the schema's 422 list, a 400
        # the entity store answers a create in a missing workspace with a 422 whose detail is text
        raise await self._failed_in_workspace(what, reply)

    async def update(self, res: Resource, obs: Observation) -> Mapping[str, Any]:
        """PATCH the fields named in ``obs.diff`` with their desired values.

        The PATCH endpoint applies every field that is not null, and replaces an object
        (``spec``, ``api_endpoint``, ``prompt``, ``ownership``, ``custom_fields``) whole. So an
        object is sent as the registry's current one with the resource's keys laid over it:
        keys others added survive, and so does what the model-spec job wrote into ``spec``
        after a fileset was set (read with ``verbose=true``, so ``linear_layers`` is kept). An
        object the resource sets to ``{}`` is sent as ``{}``, and empties it (``custom_fields``
        then keeps only ModelSync's keys). A field removed from the resource is not sent.
        """
        self._require_model(res)
        desired = desired_entity(res, self.conn)
        name = desired["name"]
        what = f"update {self._where(name)}"
        current: Mapping[str, Any] = obs.inventory or {}
        masked_key = isinstance(current.get("api_endpoint"), Mapping) and current["api_endpoint"].get("api_key")
        if "spec" in obs.diff or ("api_endpoint" in obs.diff and masked_key):
            current = await self._get(name, verbose=True) or current  # what a write must keep, unmasked
        exact = exact_fields(res)
        body: dict[str, Any] = {}
        for field in obs.diff:
            if field not in desired:
                continue
            want = desired[field]
            have = current.get(field)
            if field in OBJECT_FIELDS and isinstance(want, Mapping) and want and field not in exact \
                    and isinstance(have, Mapping):
                kept = {k: v for k, v in have.items() if v is not None
                        and not (field == "spec" and k in SPEC_READ_NULLED)}
                body[field] = {**kept, **want}
            else:
                body[field] = want
        if not body:
            entity = await self._get(name)
            if entity is None:
                raise Recoverable(self._safe(f"NeMo {what}: model vanished; it will be recreated"))
            return inventory_of(entity)
        reply = await self._request("PATCH", self._models_path(name), what, json=body, accept=ABSENT)
        if not reply.ok:
            raise Recoverable(self._safe(f"NeMo {what}: model vanished; it will be recreated"))
        return inventory_of(self._json(reply, what))

    async def delete(self, res: Resource) -> None:
        if res.kind != "Model":
            return  # nothing was ever created for other kinds
        name = entity_name(res, self.conn)
        what = f"delete {self._where(name)}"
        entity = await self._get(name)
        if entity is None:
            return
        marker = (entity.get("custom_fields") or {}).get(OWNER_KEY)
        if marker != owner_marker(res, self.conn):
            return  # someone else's model under that name: never ours to delete
        await self._request("DELETE", self._models_path(name), what, accept=ABSENT)

    async def check(self) -> str:
        what = "list models"
        reply = await self._request("GET", self._models_path(), what, params={"page_size": 1},
                                    accept=frozenset({Outcome.NOT_FOUND, Outcome.UNAVAILABLE}))
        if not reply.ok:  # the platform answers 500 for a missing workspace: ask the entity store
            raise await self._failed_in_workspace(what, reply)
        auth = "with the Secret's token" if self.conn.credentials.get("token") else "without a token"
        return f"workspace {self.workspace} reachable {auth}"

    async def aclose(self) -> None:
        await self.transport.aclose()

    # ------------------------------------------------------------ inventory (read-only)

    #: ``page_size`` of each list request when listing
    list_page_size = 100

    async def list_entries(self) -> list[Entry]:
        """Every model of the workspace, page by page (``page``/``page_size``), with the owner
        ``custom_fields["modelsync.io/resource"]`` names when the entity carries our marker."""
        what = "list models"
        out: list[Entry] = []
        page = 1
        while True:
            reply = await self._request("GET", self._models_path(), what,
                                        accept=frozenset({Outcome.NOT_FOUND, Outcome.UNAVAILABLE}),
                                        params={"page": page, "page_size": self.list_page_size})
            if not reply.ok:
                raise await self._failed_in_workspace(what, reply)
            body = self._json(reply, what)
            data = [e for e in body.get("data") or [] if isinstance(e, Mapping)]
            for entity in data:
                custom = entity.get("custom_fields")
                custom = custom if isinstance(custom, Mapping) else {}
                marker, resource = custom.get(OWNER_KEY), custom.get(RESOURCE_KEY)
                owned = isinstance(marker, str) and bool(marker) and isinstance(resource, str) and bool(resource)
                out.append(Entry(kind="Model", external_id=str(entity.get("name")), name=str(entity.get("name")),
                                 owner=resource if owned else None, marker=marker if owned else None))
            pagination = body.get("pagination") if isinstance(body.get("pagination"), Mapping) else {}
            total_pages = pagination.get("total_pages")
            if not data or (isinstance(total_pages, int) and page >= total_pages) or (
                    total_pages is None and len(data) < self.list_page_size):
                return out
            page += 1
