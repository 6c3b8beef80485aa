"""ZStack AI model center: models (Model Repository) and model services (Inference Service).

Wire conventions (seed pages 000-002 and ZStack's REST rules):

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
* errors come as ``{"error": {code, description, details}}``, mostly with HTTP 503; the
  codes that mean more than the status refine the shared status table
  (:mod:`modelsync.backends.http`) in :func:`refine`: ``SYS.1007`` is invalid content,
  ``ID.1000``/``ID.1002``/``ID.1003`` rejected credentials, ``SYS.1003`` not found. A 404
  *without* the envelope is no ZStack answer (a wrong base URL, not a ZStack server) and is
  reported as ``RegistryMisconfigured`` naming ``spec.endpoint``.

AddModel has no field for GPU memory, accelerator, architecture, framework
version or pipeline tag, though the inventory shows them: they travel as
``key::value`` system tags, the way ZStack attaches extra attributes.
"""
from __future__ import annotations

import asyncio
import hashlib
import shlex
import time
from typing import Any, Collection, Mapping
from urllib.parse import urlsplit

import httpx

from .. import api
from .base import (
    Backend, BackendError, CredentialsRejected, Entry, Kind, Observation, Recoverable, RegistryConnection, Resource,
    Terminal, deterministic_id,
)
from .http import ABSENT, ANY, Fetch, Outcome, Reply, Transport, VendorError

API = "/zstack/v1"
INVALID_SESSION = "ID.1001"
LOGIN_FAILED = {"ID.1000", "ID.1002", "ID.1003"}
#: codes that mean "the content is wrong": retrying the same spec cannot help (SYS.1007: argument error)
TERMINAL_CODES = {"SYS.1007"}
#: resource not found
NOT_FOUND = "SYS.1003"

#: model fields AddModel/UpdateModel take directly (inventory name == wire name)
MODEL_PARAM_FIELDS = (
    "name", "installPath", "description", "parameters", "modelCenterUuid", "vendor", "version",
    "modelId", "logo", "introduction", "gpuConstraintDescription", "defaultModelServiceUuid",
)
#: model fields that only travel as system tags
MODEL_TAG_FIELDS = (
    "minGpuMemory", "recommendedGpuMemory", "requiredAccelerator", "architectureType",
    "frameworkVersion", "pipelineTag",
)
#: model fields sent on create only (UpdateModel does not take them)
MODEL_CREATE_ONLY = ("size", "shareMode")

SERVICE_UPDATE_FIELDS = (
    "name", "description", "yaml", "requestCpu", "requestMemory", "gpuComputeCapability", "startCommand",
    "pythonVersion", "type", "framework", "source", "supportDistributed", "serviceName", "servicePorts",
    "serviceLivez", "serviceReadyz", "serviceBootupTime", "containerCommand", "containerArgs",
)
#: sent on create, not observable or not updatable: never part of a diff
SERVICE_CREATE_ONLY = ("readme", "installPath", "serviceName")
#: what AddModelService requires (ZStack's SDK), as the spec fields that carry it
SERVICE_REQUIRED = {
    "yaml": "spec.config", "requestCpu": "spec.resources.cpu", "requestMemory": "spec.resources.memory",
    "startCommand": "spec.startCommand", "installPath": "spec.zstack.installPath",
}
MiB = 1024 * 1024


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def resource_uuid(res: Resource, conn: RegistryConnection) -> str:
    """The ZStack uuid of ``res`` in this registry: the adopted entry's, else 32 hex chars
    derived from the resource, stable across retries."""
    if res.adopted and res.external_id:
        return res.external_id
    return deterministic_id(res.uid, conn.key, res.kind).hex


# ---------------------------------------------------------------- pure mapping


def desired_model(res: Resource, conn: RegistryConnection) -> dict[str, Any]:
    """The model as ZStack should hold it, in inventory terms (None = not managed)."""
    spec: api.ModelSpec = res.spec
    z = spec.zstack or api.ZStackModelSection()
    gpu = spec.gpu or api.GPUSpec()
    try:
        min_mem = api.quantity_int(gpu.minMemory, field="spec.gpu.minMemory", unit_name="bytes")
        rec_mem = api.quantity_int(gpu.recommendedMemory, field="spec.gpu.recommendedMemory", unit_name="bytes")
    except ValueError as exc:
        raise Terminal(str(exc), fields=("spec.gpu",)) from None
    if not spec.installPath:
        raise Terminal("spec.installPath is required by ZStack (AddModel installPath)", fields=("spec.installPath",))
    return _drop_none({
        "name": z.name or res.name,
        "installPath": spec.installPath,
        "description": spec.description,
        "parameters": spec.parameters,
        "modelCenterUuid": conn.settings.get("modelCenterUuid"),
        "vendor": spec.vendor,
        "version": spec.version,
        "modelId": z.modelId,
        "logo": z.logo,
        "introduction": z.introduction if z.introduction is not None else spec.readme,
        "gpuConstraintDescription": gpu.constraintDescription,
        "recommendedGpuNum": list(gpu.recommendedCount) if gpu.recommendedCount else None,
        "defaultModelServiceUuid": res.references.get("defaultService"),
        "minGpuMemory": min_mem,
        "recommendedGpuMemory": rec_mem,
        "requiredAccelerator": gpu.accelerator,
        "architectureType": spec.architecture,
        "frameworkVersion": spec.frameworkVersion,
        "pipelineTag": z.pipelineTag or spec.task,
        "size": z.size,
        "shareMode": z.shareMode,
    })


def desired_service(res: Resource, conn: RegistryConnection) -> dict[str, Any]:
    """The model service as ZStack should hold it, in inventory terms."""
    spec: api.ModelServiceSpec = res.spec
    z = spec.zstack or api.ZStackServiceSection()
    r = spec.resources or api.ResourceRequests()
    try:
        cpu = api.quantity_int(r.cpu, field="spec.resources.cpu", unit_name="CPUs")
        mem = api.quantity_int(r.memory, field="spec.resources.memory", unit=MiB, unit_name="MiB")
    except ValueError as exc:
        raise Terminal(str(exc), fields=("spec.resources",)) from None
    if spec.config is not None:
        import yaml  # only needed here

        try:
            yaml.safe_load(spec.config)
        except yaml.YAMLError as exc:
            raise Terminal(f"spec.config is not valid YAML: {exc}", fields=("spec.config",)) from None
    desired = _drop_none({
        "name": z.name or res.name,
        "description": spec.description,
        "yaml": spec.config,
        "requestCpu": cpu,
        "requestMemory": mem,
        "gpuComputeCapability": spec.gpuComputeCapability,
        "startCommand": spec.startCommand,
        "pythonVersion": spec.pythonVersion,
        "type": z.type,
        "framework": spec.framework,
        "source": z.source,
        "supportDistributed": spec.supportDistributed,
        "serviceName": z.serviceName,
        "servicePorts": list(spec.ports) if spec.ports else None,
        "serviceLivez": spec.livenessPath,
        "serviceReadyz": spec.readinessPath,
        "serviceBootupTime": spec.bootupTimeSeconds,
        "containerCommand": shlex.join(spec.command) if spec.command else None,
        "containerArgs": shlex.join(spec.args) if spec.args else None,
        "images": sorted((i.cpuArchitecture, i.image) for i in spec.images) if spec.images else None,
        "modelCenterUuid": conn.settings.get("modelCenterUuid"),
        "readme": spec.readme,
        "installPath": z.installPath,
    })
    missing = [field for key, field in SERVICE_REQUIRED.items() if key not in desired]
    if missing:
        raise Terminal(f"ZStack AddModelService requires {', '.join(missing)}", fields=tuple(missing))
    return desired


def _inventory_value(inv: Mapping[str, Any], key: str) -> Any:
    if key == "images":
        return sorted((i.get("cpuArchitecture"), i.get("dockerImage")) for i in inv.get("modelServiceImages") or [])
    if key == "servicePorts":
        return [int(p) for p in inv.get("servicePorts") or []] or None
    return inv.get(key)


def diff(desired: Mapping[str, Any], inventory: Mapping[str, Any], *, ignore: tuple[str, ...]) -> tuple[str, ...]:
    """Fields whose inventory value differs from the desired one (unmanaged fields skipped)."""
    return tuple(
        k for k, v in desired.items()
        if k not in ignore and _inventory_value(inventory, k) != v
    )


def _wire(key: str, value: Any) -> Any:
    if key == "recommendedGpuNum":
        return ",".join(str(n) for n in value)
    return value


def model_tags(desired: Mapping[str, Any], keys: tuple[str, ...] = MODEL_TAG_FIELDS) -> list[str]:
    return [f"{k}::{desired[k]}" for k in keys if k in desired]


def add_model_body(res: Resource, conn: RegistryConnection, desired: Mapping[str, Any]) -> dict[str, Any]:
    param = {k: _wire(k, v) for k, v in desired.items() if k not in MODEL_TAG_FIELDS}
    param["resourceUuid"] = resource_uuid(res, conn)
    return {"param": param, "systemTags": model_tags(desired), "userTags": [owner_tag(res)]}


def update_model_body(desired: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    body: dict[str, Any] = {k: _wire(k, desired[k]) for k in fields if k not in MODEL_TAG_FIELDS}
    tags = model_tags(desired, tuple(k for k in fields if k in MODEL_TAG_FIELDS))
    if tags:
        body["systemTags"] = tags
    return {"updateModel": body}


def _service_wire(desired: Mapping[str, Any], keys: tuple[str, ...] | list[str]) -> dict[str, Any]:
    out = {}
    for k in keys:
        if k == "images":
            out["architectureImages"] = [f"{arch}::{image}" for arch, image in desired["images"]]
        else:
            out[k] = desired[k]
    return out


def add_service_body(res: Resource, conn: RegistryConnection, desired: Mapping[str, Any]) -> dict[str, Any]:
    param = _service_wire(desired, list(desired))
    param["resourceUuid"] = resource_uuid(res, conn)
    return {"param": param, "systemTags": [], "userTags": [owner_tag(res)]}


def update_service_body(desired: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {"updateModelService": _service_wire(desired, fields)}


def owner_tag(res: Resource) -> str:
    return f"modelsync.io/owner::{res.namespace}/{res.name}"


# ---------------------------------------------------------------- the client


def parse_error(status: int, body: Any, text: str) -> VendorError:
    """ZStack's ``{"error": {code, description, details}}`` as (code, "code description: details")."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return VendorError()
    code = str(err.get("code") or "")
    words = ": ".join(str(p) for p in (err.get("description"), err.get("details")) if p)
    return VendorError(code=code, message=" ".join(p for p in (code, words) if p))


def refine(status: int, err: VendorError) -> Outcome | None:
    """ZStack codes that say more than the status (ZStack answers 503 for every API error)."""
    if err.code in LOGIN_FAILED:
        return Outcome.CREDENTIALS
    if err.code in TERMINAL_CODES:
        return Outcome.INVALID
    if err.code == NOT_FOUND:
        return Outcome.NOT_FOUND
    if status == 404 and not err.code:
        # not a ZStack answer at all: a wrong base URL, or not a ZStack server
        return Outcome.MISCONFIGURED
    return None


class ZStackBackend(Backend):
    name = "zstack"
    references = frozenset({"defaultService"})

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

    def _ignore(self, res: Resource) -> tuple[str, ...]:
        return MODEL_CREATE_ONLY if res.kind == "Model" else SERVICE_CREATE_ONLY

    async def _get(self, res: Resource) -> dict[str, Any] | None:
        uuid = resource_uuid(res, self.conn)
        reply = await self._call("GET", f"{self._collection(res)}/{uuid}", "read", accept=ABSENT)
        if not reply.ok:
            return None
        inventories = self._body(reply).get("inventories") or []
        return inventories[0] if inventories else None

    def observation(self, res: Resource, inventory: Mapping[str, Any]) -> Observation | None:
        # ZStack answers writes with the stored inventory (directly or as the api-job's result)
        if not inventory.get("uuid"):
            return None
        desired = self._desired(res)
        return Observation(exists=True, external_id=inventory["uuid"], inventory=inventory,
                           diff=diff(desired, inventory, ignore=self._ignore(res)), desired=desired)

    async def observe(self, res: Resource) -> Observation:
        desired = self._desired(res)
        inv = await self._get(res)
        if inv is None:
            return Observation(exists=False)
        return Observation(exists=True, external_id=inv.get("uuid"), inventory=inv,
                           diff=diff(desired, inv, ignore=self._ignore(res)), desired=desired)

    async def create(self, res: Resource) -> Mapping[str, Any]:
        desired = self._desired(res)
        body = (add_model_body if res.kind == "Model" else add_service_body)(res, self.conn, desired)
        reply = await self._call("POST", self._collection(res), "create", body, accept=ANY)
        if not reply.ok:
            # ZStack has no dedicated code for a taken resourceUuid. If the object with our
            # uuid exists now, an earlier create went through and its answer was lost: adopt it.
            try:
                inv = await self._get(res)
            except BackendError:
                inv = None
            if inv is not None:
                return inv
            if reply.outcome is Outcome.CONFLICT:
                raise Recoverable("ZStack create: the registry reported a conflict, but the object is gone; "
                                  "retrying")
            raise self.transport.error(reply, "ZStack create")
        return self._body(reply).get("inventory") or (await self._get(res)) or {}

    async def update(self, res: Resource, obs: Observation) -> Mapping[str, Any]:
        desired = self._desired(res)
        uuid = resource_uuid(res, self.conn)
        if res.kind == "Model":
            body = update_model_body(desired, obs.diff)
        else:
            body = update_service_body(desired, obs.diff)
        reply = await self._call("PUT", f"{self._collection(res)}/{uuid}", "update", body, accept=ABSENT)
        if not reply.ok:
            raise Recoverable("ZStack object vanished during update; it will be re-created")
        return self._body(reply).get("inventory") or (await self._get(res)) or {}

    async def delete(self, res: Resource) -> None:
        uuid = resource_uuid(res, self.conn)
        await self._call("DELETE", f"{self._collection(res)}/{uuid}", "delete", accept=ABSENT)

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
        out: list[dict[str, Any]] = []
        start = 0
        while True:
            params: list[tuple[str, str | int]] = [("q", c) for c in conditions]
            params += [("start", start), ("limit", self.list_page_size)]
            reply = await self.transport.request("GET", path, what=f"ZStack {what}", params=httpx.QueryParams(params))
            page = [i for i in self._body(reply).get("inventories") or [] if isinstance(i, dict)]
            out += page
            if len(page) < self.list_page_size:
                return out
            start += len(page)

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
