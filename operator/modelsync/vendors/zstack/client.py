"""ZStack AI model center: models (Model Repository) and model services (Inference Service).

Wire conventions (seed pages 000-002, the ZStack SDK's request structs and the open-source
framework, see ``docs/zstack.md``):

* log in with ``PUT /zstack/v1/accounts/login`` ``{"logInByAccount": {accountName,
  password: sha512-hex}}`` and send ``Authorization: OAuth <session uuid>``;
  an invalid or expired session (``ID.1001``) is answered by one re-login and
  one replay of the request;
* creates are ``POST`` with ``{"param": {...}, "systemTags", "userTags"}`` and
  a ``resourceUuid`` derived from the resource's uid, so a retried create finds
  the same uuid (a create refused while an object with that uuid exists means
  "already made": it is read back and adopted);
* updates are ``PUT`` wrapped in the action name (``{"updateModel": {...}}``)
  carrying only the fields that differ;
* reads are ``GET`` answering ``{"inventories": [...]}``, empty when absent;
* any write may answer ``202 {"location": ".../api-jobs/<uuid>"}``, even where
  a page says synchronous: the job is polled (202 running, 200 done with the
  result, 503 failed with the error envelope);
* API errors come as HTTP 503 with ``{"error": {code, description, details}}``; the
  codes refine the shared status table (:mod:`modelsync.backends.http`) in :func:`refine`:
  ``SYS.1007`` is invalid content, ``ID.1000``/``ID.1002``/``ID.1005``/``ID.1007``/``ID.2xxx``
  rejected credentials, ``ID.1003`` an exceeded quota (retried), ``SYS.1003`` a uuid the call
  names that does not exist: which one decides the reason (:func:`missing_reference`). A 404
  *without* the envelope is no ZStack answer (a wrong base URL, not a ZStack server) and is
  reported as ``RegistryMisconfigured`` naming ``spec.endpoint``.

Only what each API documents is sent. The server binds request bodies with Gson, which drops
unknown keys without an error, so a field an API lacks would silently never land: such a spec
field is never sent and is listed in ``Observation.not_settable`` with the registry's own value
(GPU memory, accelerator, architecture, framework version, pipeline tag, license; a service's
readme). Fields only AddModel takes (version, logo, introduction, size, shareMode, systemTags)
are create-only: a later change is refused with ``InvalidSpec`` naming the field and the stored
value. Fields only UpdateModelService takes (serviceName, servicePorts, serviceLivez,
serviceReadyz, serviceBootupTime) are sent by one UpdateModelService right after the create.
No system tag is made up: ``spec.zstack.systemTags`` is sent verbatim on AddModel, and ZStack
refuses a tag that matches no pattern registered on the server (``SYS.1007``).

The flows are the template's (:mod:`modelsync.backends.template`) with ``marked = False``: an
entry's uuid is derived from the resource, so only this resource can ever name it, and a create
refused while an entry with that uuid exists adopts it without an owner check.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any, Collection, Mapping
from urllib.parse import urlsplit

import httpx

from ...backends.base import (
    BackendError, CredentialsRejected, Entry, Kind, NotSettable, Observation, Recoverable, RegistryConnection,
    Resource, Terminal,
)
from ...backends.http import ABSENT, ANY, Fetch, Outcome, Reply, Transport, VendorError
from ...backends.template import Exists, Record, TemplateBackend, paged
from .mapping import (
    API, INVALID_SESSION, MODEL_CREATE_ONLY, NOT_FOUND, SERVICE_CREATE_ONLY, SERVICE_UPDATE_ONLY, add_model_body,
    add_service_body, create_only_change, desired_model, desired_service, diff, missing_reference,
    model_not_settable, parse_error, refine, resource_uuid, service_not_settable, update_model_body,
    update_service_body,
)


class ZStackBackend(TemplateBackend):
    name = "zstack"
    references = frozenset({"defaultService"})
    #: the entry's uuid is derived from the resource (``resourceUuid``): only this resource names it
    marked = False

    def __init__(self, conn: RegistryConnection, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(conn)
        self._session: str | None = None
        self._password_hash: str | None = None
        self._login_lock = asyncio.Lock()
        self.poll_interval = 0.2
        self.transport = Transport(
            conn, backend=self.name, vendor="ZStack", auth=self._auth, parse_error=parse_error, refine=refine,
            reauth=self._reauth, accepted=self._poll, secrets=self._extra_secrets,
            headers={"Content-Type": "application/json;charset=UTF-8"}, transport=transport,
        )

    # -- session ---------------------------------------------------------

    def _extra_secrets(self) -> list[str]:
        return [s for s in (self._session, self._password_hash) if s]

    async def _auth(self) -> dict[str, str]:
        session = self._session or await self._login(None)
        return {"Authorization": f"OAuth {session}"}

    async def _reauth(self, reply: Reply, sent: Mapping[str, str]) -> bool:
        """An invalid or expired session (ID.1001): log in again and replay the request once."""
        if reply.error is None or reply.error.code != INVALID_SESSION:
            return False
        stale = sent.get("Authorization", "").removeprefix("OAuth ") or None
        await self._login(stale)
        return True

    async def _login(self, stale: str | None) -> str:
        async with self._login_lock:
            if self._session is not None and self._session != stale:
                return self._session  # another task logged in meanwhile
            creds = self.conn.credentials
            if not creds.get("accountName") or not creds.get("password"):
                raise CredentialsRejected("ZStack needs accountName and password in the registry's credentials Secret")
            self._password_hash = hashlib.sha512(creds["password"].encode()).hexdigest()
            body = {"logInByAccount": {"accountName": creds["accountName"], "password": self._password_hash}}
            reply = await self.transport.request("PUT", f"{API}/accounts/login", what="ZStack login", json=body,
                                                 auth=False)
            inventory = reply.body.get("inventory") if isinstance(reply.body, dict) else None
            session = inventory.get("uuid") if isinstance(inventory, dict) else None
            if not isinstance(session, str) or not session:
                raise Recoverable("ZStack login: the reply carries no session uuid")
            self._session = session
            return session

    async def _call(self, method: str, path: str, what: str, body: Any = None, *,
                    accept: Collection[Outcome] = ()) -> Reply:
        return await self.transport.request(method, path, what=f"ZStack {what}", json=body, accept=accept)

    @staticmethod
    def _body(reply: Reply) -> dict[str, Any]:
        return reply.body if isinstance(reply.body, dict) else {}

    async def _poll(self, accepted: httpx.Response, fetch: Fetch) -> httpx.Response:
        """Follow an api-jobs location until the job is done (or the request timeout passes)."""
        try:
            location = accepted.json().get("location", "")
        except (ValueError, AttributeError):
            location = ""
        if not isinstance(location, str) or not location:
            return accepted
        parts = urlsplit(location)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        job = parts.path.rsplit("/", 1)[-1]
        deadline = time.monotonic() + max(self.conn.timeout, 1.0)
        delay = self.poll_interval
        while True:
            resp = await fetch(path)
            if resp.status_code == 404:
                # ZStack forgets finished jobs after a while: the outcome is read back by the next observe.
                raise Recoverable(f"ZStack job {job} expired before its result was read")
            if resp.status_code != 202:
                return resp
            if time.monotonic() > deadline:
                raise Recoverable(f"ZStack job {job} still running after {self.conn.timeout}s; will look again")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2.0)

    # -- the interface ---------------------------------------------------

    def _collection(self, res: Resource) -> str:
        return f"{API}/ai/models" if res.kind == "Model" else f"{API}/ai/model-services"

    def _desired(self, res: Resource) -> dict[str, Any]:
        return desired_model(res, self.conn) if res.kind == "Model" else desired_service(res, self.conn)

    def _not_settable(self, res: Resource, inventory: Mapping[str, Any] | None) -> tuple[NotSettable, ...]:
        return (model_not_settable if res.kind == "Model" else service_not_settable)(res, inventory)

    async def _get(self, res: Resource) -> dict[str, Any] | None:
        uuid = resource_uuid(res, self.conn)
        reply = await self._call("GET", f"{self._collection(res)}/{uuid}", "read", accept=ABSENT)
        if not reply.ok:
            return None
        inventories = self._body(reply).get("inventories") or []
        return inventories[0] if inventories else None

    def _observation(self, res: Resource, desired: Mapping[str, Any], inv: Mapping[str, Any]) -> Observation:
        return Observation(exists=True, external_id=inv.get("uuid"), inventory=inv, diff=diff(desired, inv),
                           desired=desired, not_settable=self._not_settable(res, inv))

    def observation(self, res: Resource, inventory: Mapping[str, Any]) -> Observation | None:
        # ZStack answers writes with the stored inventory (directly or as the api-job's result)
        if not inventory.get("uuid"):
            return None
        return self._observation(res, self._desired(res), inventory)

    # -- the template's hooks

    def validate(self, res: Resource) -> None:
        self._desired(res)  # raises Terminal for what AddModel / AddModelService would refuse

    async def read(self, res: Resource) -> Record | None:
        return await self._get(res)

    def absent(self, res: Resource) -> Observation:
        return Observation(exists=False, not_settable=self._not_settable(res, None))

    async def observed(self, res: Resource, record: Record) -> Observation:
        return self._observation(res, self._desired(res), record)

    async def post(self, res: Resource) -> Record | Exists:
        desired = self._desired(res)
        body = (add_model_body if res.kind == "Model" else add_service_body)(res, self.conn, desired)
        reply = await self._call("POST", self._collection(res), "create", body, accept=ANY)
        inv: Mapping[str, Any] | None
        if not reply.ok:
            # ZStack has no dedicated code for a taken resourceUuid. If the object with our
            # uuid exists now, an earlier create went through and its answer was lost: adopt it.
            try:
                inv = await self._get(res)
            except BackendError:
                inv = None
            if inv is None:
                if reply.outcome is Outcome.CONFLICT:
                    raise Recoverable("ZStack create: the registry reported a conflict, but the object is gone; "
                                      "retrying")
                if reply.error is not None and reply.error.code == NOT_FOUND:
                    raise missing_reference(res, self.conn, reply.error, "ZStack create")
                raise self.transport.error(reply, "ZStack create")
        else:
            inv = self._body(reply).get("inventory") or (await self._get(res)) or {}
        if res.kind == "ModelService":
            # what only UpdateModelService takes goes in one update right after the create
            # (also after adopting what a lost create made: the same update again is harmless)
            later = tuple(f for f in SERVICE_UPDATE_ONLY if f in desired)
            if later and inv.get("uuid"):
                inv = await self._put(res, update_service_body(desired, later)) or inv
        return inv

    def inventory(self, record: Record) -> Mapping[str, Any]:
        return record

    async def _put(self, res: Resource, body: Mapping[str, Any]) -> dict[str, Any]:
        uuid = resource_uuid(res, self.conn)
        reply = await self._call("PUT", f"{self._collection(res)}/{uuid}", "update", body, accept=ABSENT)
        if not reply.ok:
            raise missing_reference(res, self.conn, reply.error or VendorError(), "ZStack update")
        return self._body(reply).get("inventory") or (await self._get(res)) or {}

    async def patch(self, res: Resource, obs: Observation) -> Mapping[str, Any]:
        desired = self._desired(res)
        if res.kind == "Model":
            refused = create_only_change(res, obs.diff, obs.inventory, MODEL_CREATE_ONLY, "UpdateModel")
            body = update_model_body(desired, obs.diff)
        else:
            refused = create_only_change(res, obs.diff, obs.inventory, SERVICE_CREATE_ONLY, "UpdateModelService")
            body = update_service_body(desired, obs.diff)
        if refused is not None:
            raise refused
        return await self._put(res, body)

    async def remove(self, res: Resource, record: Record | None) -> None:
        uuid = resource_uuid(res, self.conn)
        await self._call("DELETE", f"{self._collection(res)}/{uuid}", "delete", accept=ABSENT)

    # -- the rest of the interface

    async def check(self) -> str:
        center = self.conn.settings.get("modelCenterUuid")
        reply = await self._call("GET", f"{API}/ai/model-centers/{center}", "model center lookup")
        found = self._body(reply).get("inventories") or []
        if not found:
            raise Terminal(f"ZStack has no model center {center} (spec.zstack.modelCenterUuid); "
                           "GET /zstack/v1/ai/model-centers lists them", reason="RegistryMisconfigured")
        return (f"logged in as {self.conn.credentials.get('accountName')}; "
                f"model center {found[0].get('name') or ''} ({center}) found")

    async def aclose(self) -> None:
        await self.transport.aclose()

    # -- inventory (read-only, for ``modelsync inventory``) ----------------

    #: ``limit`` of each query page when listing
    list_page_size = 100

    async def _query_all(self, path: str, what: str, conditions: Collection[str] = ()) -> list[dict[str, Any]]:
        """Every inventory a ZStack query answers, page by page (``start``/``limit``)."""

        async def page(start: int) -> tuple[list[dict[str, Any]], int | None]:
            params: list[tuple[str, str | int | float | bool | None]] = [("q", c) for c in conditions]
            params += [("start", start), ("limit", self.list_page_size)]
            reply = await self.transport.request("GET", path, what=f"ZStack {what}", params=httpx.QueryParams(params))
            found = [i for i in self._body(reply).get("inventories") or [] if isinstance(i, dict)]
            return found, None if len(found) < self.list_page_size else start + len(found)

        return await paged(page, 0)

    async def list_entries(self) -> list[Entry]:
        """The model center's models and model services, each with the owner its
        ``modelsync.io/owner::<namespace>/<name>`` user tag names (QueryUserTag). The tags are
        queried without a resourceType condition (ZStack uuids are unique across types) and
        matched to the listed uuids."""
        center = self.conn.settings.get("modelCenterUuid")
        scope = [f"modelCenterUuid={center}"] if center else []
        listed: list[tuple[Kind, dict[str, Any]]] = []
        for kind in ("Model", "ModelService"):
            path = f"{API}/ai/models" if kind == "Model" else f"{API}/ai/model-services"
            listed += [(kind, inv) for inv in await self._query_all(path, f"list {kind}s", scope)]
        uuids = {str(inv.get("uuid")) for _, inv in listed}
        owners: dict[str, str] = {}
        prefix = "modelsync.io/owner::"
        for tag in await self._query_all(f"{API}/user-tags", "list user tags"):
            text, resource = tag.get("tag"), tag.get("resourceUuid")
            if isinstance(text, str) and text.startswith(prefix) and resource in uuids:
                owners[str(resource)] = text
        return [
            Entry(kind=kind, external_id=str(inv.get("uuid")), name=str(inv.get("name") or ""),
                  owner=owners[uuid].removeprefix(prefix) if uuid in owners else None, marker=owners.get(uuid))
            for kind, inv in listed
            for uuid in [str(inv.get("uuid"))]
        ]
