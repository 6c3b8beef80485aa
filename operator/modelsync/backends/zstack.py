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
* errors come as ``{"error": {code, description, details}}``.

AddModel has no field for GPU memory, accelerator, architecture, framework
version or pipeline tag, though the inventory shows them: they travel as
``key::value`` system tags, the way ZStack attaches extra attributes.
"""
from __future__ import annotations

import asyncio
import hashlib
import shlex
import time
from typing import Any, Mapping
from urllib.parse import urlsplit

import httpx

from .. import api
from ..redact import scrub
from .base import (
    Backend, CredentialsRejected, Observation, Recoverable, RegistryConnection, Resource, Terminal,
    deterministic_id, retry_after_seconds, tls_verify,
)

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
    """The ZStack uuid of ``res`` in this registry: 32 hex chars, stable across retries."""
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


class _ZStackError(Exception):
    def __init__(self, status: int, code: str, text: str) -> None:
        super().__init__(text)
        self.status, self.code, self.text = status, code, text


def _envelope(resp: httpx.Response) -> tuple[str, str]:
    """(code, "description: details") from ZStack's error envelope, or the status line."""
    try:
        err = resp.json().get("error") or {}
    except ValueError:
        err = {}
    code = str(err.get("code") or "")
    words = ": ".join(str(p) for p in (err.get("description"), err.get("details")) if p)
    return code, words or f"HTTP {resp.status_code}"


class ZStackBackend(Backend):
    name = "zstack"
    references = frozenset({"defaultService"})

    def __init__(self, conn: RegistryConnection) -> None:
        super().__init__(conn)
        self._client = httpx.AsyncClient(base_url=conn.endpoint.rstrip("/"), timeout=conn.timeout,
                                         verify=tls_verify(conn))
        self._session: str | None = None
        self._login_lock = asyncio.Lock()
        self.poll_interval = 0.2

    # -- errors ----------------------------------------------------------

    def _secrets(self) -> list[str]:
        return [*self.conn.credentials.values(), *([self._session] if self._session else [])]

    def _classify(self, exc: _ZStackError, what: str) -> Exception:
        msg = scrub(f"ZStack {what} failed: {exc.code + ' ' if exc.code else ''}{exc.text}", self._secrets())
        if exc.code in LOGIN_FAILED or exc.status in (401, 403):
            return CredentialsRejected(msg)
        if exc.code in TERMINAL_CODES or exc.status in (400, 404, 409, 422):
            return Terminal(msg)
        retry_after = getattr(exc, "retry_after", None)
        return Recoverable(msg, retry_after=retry_after)

    # -- transport -------------------------------------------------------

    async def _login(self, stale: str | None) -> str:
        async with self._login_lock:
            if self._session is not None and self._session != stale:
                return self._session  # another task logged in meanwhile
            creds = self.conn.credentials
            if not creds.get("accountName") or not creds.get("password"):
                raise CredentialsRejected("ZStack needs accountName and password in the registry's credentials Secret")
            body = {"logInByAccount": {
                "accountName": creds["accountName"],
                "password": hashlib.sha512(creds["password"].encode()).hexdigest(),
            }}
            resp = await self._send("PUT", f"{API}/accounts/login", body, auth=False)
            self._session = resp["inventory"]["uuid"]
            return self._session

    async def _send(self, method: str, path: str, body: Any = None, *, auth: bool = True,
                    params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One API call: session, one re-login on ID.1001, api-job polling, error envelope."""
        for attempt in (0, 1):
            headers = {"Content-Type": "application/json;charset=UTF-8"}
            session = None
            if auth:
                session = self._session or await self._login(None)
                headers["Authorization"] = f"OAuth {session}"
            try:
                resp = await self._client.request(method, path, json=body, headers=headers, params=params)
                if resp.status_code == 202:
                    resp = await self._poll(resp, headers)
            except httpx.TimeoutException:
                raise Recoverable(f"ZStack {method} {path} timed out after {self.conn.timeout}s") from None
            except httpx.TransportError as exc:
                raise Recoverable(scrub(f"ZStack {method} {path}: connection failed ({type(exc).__name__})",
                                        self._secrets())) from None
            if resp.status_code < 300:
                return resp.json() if resp.content else {}
            code, text = _envelope(resp)
            if auth and code == INVALID_SESSION and attempt == 0:
                await self._login(session)  # expired or invalid: log in again, replay once
                continue
            err = _ZStackError(resp.status_code, code, text)
            err.retry_after = retry_after_seconds(resp.headers.get("Retry-After"))  # type: ignore[attr-defined]
            if resp.status_code == 429 or (resp.status_code >= 500 and code not in TERMINAL_CODES | {NOT_FOUND, "SYS.1006"}
                                           | LOGIN_FAILED):
                raise Recoverable(scrub(f"ZStack {method} {path}: {code + ' ' if code else ''}{text}",
                                        self._secrets()), retry_after=err.retry_after) from None  # type: ignore[attr-defined]
            raise err
        raise AssertionError("unreachable")

    async def _poll(self, accepted: httpx.Response, headers: Mapping[str, str]) -> httpx.Response:
        """Follow an api-jobs location until the job is done (or the request timeout passes)."""
        location = accepted.json().get("location", "")
        parts = urlsplit(location)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        deadline = time.monotonic() + max(self.conn.timeout, 1.0)
        delay = self.poll_interval
        while True:
            resp = await self._client.get(path, headers=dict(headers))
            if resp.status_code == 404:
                # ZStack forgets finished jobs after a while: the outcome is read back by the next observe.
                raise Recoverable(f"ZStack job {parts.path.rsplit('/', 1)[-1]} expired before its result was read")
            if resp.status_code != 202:
                return resp
            if time.monotonic() > deadline:
                raise Recoverable(f"ZStack job {parts.path.rsplit('/', 1)[-1]} still running after "
                                  f"{self.conn.timeout}s; will look again")
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
        try:
            reply = await self._send("GET", f"{self._collection(res)}/{uuid}")
        except _ZStackError as exc:
            if exc.status == 404:
                return None
            raise self._classify(exc, "read") from None
        inventories = reply.get("inventories") or []
        return inventories[0] if inventories else None

    async def observe(self, res: Resource) -> Observation:
        desired = self._desired(res)
        inv = await self._get(res)
        if inv is None:
            return Observation(exists=False)
        return Observation(exists=True, external_id=inv.get("uuid"), inventory=inv,
                           diff=diff(desired, inv, ignore=self._ignore(res)))

    async def create(self, res: Resource) -> Mapping[str, Any]:
        desired = self._desired(res)
        body = (add_model_body if res.kind == "Model" else add_service_body)(res, self.conn, desired)
        try:
            reply = await self._send("POST", self._collection(res), body)
        except _ZStackError as exc:
            # ZStack has no dedicated code for a taken resourceUuid. If the object with our
            # uuid exists now, an earlier create went through and its answer was lost: adopt it.
            inv = await self._get(res)
            if inv is not None:
                return inv
            raise self._classify(exc, "create") from None
        return reply.get("inventory") or (await self._get(res)) or {}

    async def update(self, res: Resource, obs: Observation) -> Mapping[str, Any]:
        desired = self._desired(res)
        uuid = resource_uuid(res, self.conn)
        if res.kind == "Model":
            body = update_model_body(desired, obs.diff)
        else:
            body = update_service_body(desired, obs.diff)
        try:
            reply = await self._send("PUT", f"{self._collection(res)}/{uuid}", body)
        except _ZStackError as exc:
            if exc.code == NOT_FOUND:
                raise Recoverable("ZStack object vanished during update; it will be re-created") from None
            raise self._classify(exc, "update") from None
        return reply.get("inventory") or (await self._get(res)) or {}

    async def delete(self, res: Resource) -> None:
        uuid = resource_uuid(res, self.conn)
        try:
            await self._send("DELETE", f"{self._collection(res)}/{uuid}")
        except _ZStackError as exc:
            if exc.status == 404 or exc.code == NOT_FOUND:
                return
            raise self._classify(exc, "delete") from None

    async def check(self) -> str:
        center = self.conn.settings.get("modelCenterUuid")
        try:
            reply = await self._send("GET", f"{API}/ai/model-centers/{center}")
        except _ZStackError as exc:
            raise self._classify(exc, "model center lookup") from None
        found = reply.get("inventories") or []
        if not found:
            raise Terminal(f"ZStack has no model center {center} (spec.zstack.modelCenterUuid); "
                           "GET /zstack/v1/ai/model-centers lists them", reason="RegistryMisconfigured")
        return (f"logged in as {self.conn.credentials.get('accountName')}; "
                f"model center {found[0].get('name') or ''} ({center}) found")

    async def aclose(self) -> None:
        await self._client.aclose()
