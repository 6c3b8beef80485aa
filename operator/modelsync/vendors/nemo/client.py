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

The flows (observe, create → on 409 read back, check the owner, adopt or ``NameTaken``, delete,
listing) are the template's (:mod:`modelsync.backends.template`); here are NeMo's hooks.
"""
from __future__ import annotations

import urllib.parse
from typing import Any, Mapping

import httpx

from ...backends.base import (
    BackendError,
    Entry,
    NameTaken,
    Observation,
    Recoverable,
    RegistryConnection,
    Resource,
    Terminal,
    Unsupported,
)
from ...backends.http import ABSENT, ANY, Outcome, Reply, Transport
from ...backends.template import Exists, Record, TemplateBackend, paged
from .mapping import (
    API_PREFIX, OBJECT_FIELDS, OWNER_KEY, RESOURCE_KEY, SPEC_READ_NULLED, WORKSPACES_PATH, desired_entity,
    diff_entity, entity_name, exact_fields, inventory_of, not_settable, owner_marker, parse_error, refine,
)


class NemoBackend(TemplateBackend):
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

    # ------------------------------------------------------------ the template's hooks

    def unsupported(self, kind: str, remedy: str | None = None) -> Unsupported:
        return Unsupported(f"NeMo has no counterpart for {kind}; only Model is synced to NeMo"
                           + (f"; {remedy}" if remedy else ""))

    def where(self, res: Resource, record: Record | None = None) -> str:
        name = str(record.get("name")) if record is not None else entity_name(res, self.conn)
        return f"NeMo {self._where(name)}"

    def validate(self, res: Resource) -> None:
        desired_entity(res, self.conn)  # raises Terminal for what NeMo refuses

    async def read(self, res: Resource) -> Record | None:
        return await self._get(entity_name(res, self.conn))

    def owned(self, record: Record, res: Resource) -> bool:
        custom = record.get("custom_fields")
        marker = custom.get(OWNER_KEY) if isinstance(custom, Mapping) else None
        return bool(marker == owner_marker(res, self.conn))

    def not_ours(self, res: Resource, record: Record) -> NameTaken:
        name = entity_name(res, self.conn)
        return NameTaken(
            f"NeMo model {self.workspace}/{name} exists and is not managed by this resource; "
            f"set spec.nemo.name to another name, or spec.registries[].externalId: {name} to adopt it"
        )

    async def observed(self, res: Resource, record: Record) -> Observation:
        desired = desired_entity(res, self.conn)
        return Observation(
            exists=True,
            external_id=desired["name"],
            diff=diff_entity(desired, record, exact_fields(res)),
            inventory=inventory_of(record),
            desired=desired,
            not_settable=not_settable(res),
        )

    def inventory(self, record: Record) -> Mapping[str, Any]:
        return inventory_of(record)

    async def post(self, res: Resource) -> Record | Exists:
        desired = desired_entity(res, self.conn)
        what = f"create {self._where(desired['name'])}"
        reply = await self._request("POST", self._models_path(), what, json=desired,
                                    accept=frozenset({Outcome.CONFLICT, Outcome.NOT_FOUND, Outcome.INVALID}))
        if reply.ok:
            return self._json(reply, what)
        if reply.outcome is Outcome.CONFLICT:
            return Exists(f"NeMo {what}")  # ours (e.g. a retried create): adopted; else NameTaken
        if reply.outcome is Outcome.INVALID and not (reply.status == 422 and isinstance(
                (reply.body or {}).get("detail") if isinstance(reply.body, Mapping) else None, str)):
            raise self.transport.error(reply, f"NeMo {what}")  # content: the schema's 422 list, a 400
        # the entity store answers a create in a missing workspace with a 422 whose detail is text
        raise await self._failed_in_workspace(what, reply)

    async def patch(self, res: Resource, obs: Observation) -> Mapping[str, Any]:
        """PATCH the fields named in ``obs.diff`` with their desired values.

        The PATCH endpoint applies every field that is not null, and replaces an object
        (``spec``, ``api_endpoint``, ``prompt``, ``ownership``, ``custom_fields``) whole. So an
        object is sent as the registry's current one with the resource's keys laid over it:
        keys others added survive, and so does what the model-spec job wrote into ``spec``
        after a fileset was set (read with ``verbose=true``, so ``linear_layers`` is kept). An
        object the resource sets to ``{}`` is sent as ``{}``, and empties it (``custom_fields``
        then keeps only ModelSync's keys). A field removed from the resource is not sent.
        """
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

    async def remove(self, res: Resource, record: Record | None) -> None:
        name = entity_name(res, self.conn)
        await self._request("DELETE", self._models_path(name), f"delete {self._where(name)}", accept=ABSENT)

    # ------------------------------------------------------------ the rest of the interface

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

    async def listed(self) -> list[Record]:
        """Every model of the workspace, page by page (``page``/``page_size``)."""
        what = "list models"

        async def page(number: int) -> tuple[list[Record], int | None]:
            reply = await self._request("GET", self._models_path(), what,
                                        accept=frozenset({Outcome.NOT_FOUND, Outcome.UNAVAILABLE}),
                                        params={"page": number, "page_size": self.list_page_size})
            if not reply.ok:
                raise await self._failed_in_workspace(what, reply)
            body = self._json(reply, what)
            data: list[Record] = [e for e in body.get("data") or [] if isinstance(e, Mapping)]
            pagination = body.get("pagination")
            total_pages = pagination.get("total_pages") if isinstance(pagination, Mapping) else None
            last = not data or (isinstance(total_pages, int) and number >= total_pages) or (
                total_pages is None and len(data) < self.list_page_size)
            return data, None if last else number + 1

        return await paged(page, 1)

    def entry(self, record: Record) -> Entry:
        """The owner ``custom_fields["modelsync.io/resource"]`` names when the entity carries our marker."""
        custom = record.get("custom_fields")
        custom = custom if isinstance(custom, Mapping) else {}
        marker, resource = custom.get(OWNER_KEY), custom.get(RESOURCE_KEY)
        owned = isinstance(marker, str) and bool(marker) and isinstance(resource, str) and bool(resource)
        return Entry(kind="Model", external_id=str(record.get("name")), name=str(record.get("name")),
                     owner=resource if owned else None, marker=marker if owned else None)
