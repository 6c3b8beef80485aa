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

import urllib.parse
from typing import Any, Mapping

import httpx

from ...backends.base import (
    Backend,
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
from .mapping import (
    API_PREFIX, OBJECT_FIELDS, OWNER_KEY, RESOURCE_KEY, SPEC_READ_NULLED, WORKSPACES_PATH, desired_entity,
    diff_entity, entity_name, exact_fields, inventory_of, not_settable, owner_marker, parse_error, refine,
)


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
