"""ZStack: the pure spec → wire mapping (bodies, diffs, not-settable fields, errors); no I/O.

What each API takes and why is in :mod:`modelsync.vendors.zstack.client` and ``docs/zstack.md``.
"""
from __future__ import annotations

import functools
import re
import shlex
from typing import Any, Collection, Mapping

from ... import api
from ...backends.base import BackendError, NotSettable, Recoverable, RegistryConnection, Resource, Terminal, deterministic_id
from ...backends.http import Outcome, VendorError
from .schema import ZStackModelSection, ZStackServiceSection

API = "/zstack/v1"
INVALID_SESSION = "ID.1001"
#: org.zstack.header.identity.IdentityErrors: AUTHENTICATION_ERROR, PERMISSION_DENIED,
#: NEED_CHANGE_PASSWORD, ACCOUNT_DISABLED and the additional-authentication (2FA) codes
LOGIN_FAILED = {"ID.1000", "ID.1002", "ID.1005", "ID.1007", "ID.2000", "ID.2001", "ID.2002", "ID.2003"}
#: IdentityErrors.QUOTA_EXCEEDING: the account's quota is used up; not the credentials, not the spec
QUOTA_EXCEEDED = "ID.1003"
#: codes that mean "the content is wrong": retrying the same spec cannot help (SYS.1007: argument error)
TERMINAL_CODES = {"SYS.1007"}
#: SysErrors.RESOURCE_NOT_FOUND: a uuid the call names does not exist (PortApiValidator)
NOT_FOUND = "SYS.1003"
#: PortApiValidator's "invalid field[<name>] for <API>, resource[uuid:..., type:...] not found"
_MISSING_FIELD = re.compile(r"invalid field\[(\w+)\]|of field\[(\w+)\]")

#: what each API takes, by wire name: the ZStack SDK's request structs (zstack-sdk-go-v2 pkg/param)
#: and the seed pages; docs/zstack.md names the files. The ``notSettable`` messages do not repeat
#: this: they are in every resource's status, a short text each
ADD_MODEL_FIELDS = frozenset({
    "name", "installPath", "description", "parameters", "token", "modelCenterUuid", "logo", "vendor",
    "introduction", "size", "version", "modelServiceUuids", "recommendedGpuNum", "gpuConstraintDescription",
    "resourceUuid", "tagUuids", "modelId", "shareMode", "defaultModelServiceUuid",
})
UPDATE_MODEL_FIELDS = frozenset({
    "name", "installPath", "description", "parameters", "modelCenterUuid", "modelClassifications",
    "recommendedGpuNum", "gpuConstraintDescription", "vendor", "modelId", "defaultModelServiceUuid",
    "clearDefaultModelService",
})
ADD_MODEL_SERVICE_FIELDS = frozenset({
    "name", "description", "yaml", "modelCenterUuid", "requestCpu", "requestMemory", "gpuComputeCapability",
    "installPath", "system", "startCommand", "containerCommand", "containerArgs", "pythonVersion",
    "condaVersion", "zoneUuid", "type", "source", "framework", "modelUuids", "architectureImages",
    "supportDistributed", "vendorToSpecUuidsMap", "resourceUuid", "tagUuids",
})
UPDATE_MODEL_SERVICE_FIELDS = frozenset({
    "name", "description", "yaml", "requestCpu", "requestMemory", "gpuComputeCapability", "startCommand",
    "containerCommand", "containerArgs", "pythonVersion", "type", "source", "framework", "architectureImages",
    "supportDistributed", "environmentParameters", "startupParameters", "inferenceParams", "serviceName",
    "servicePorts", "serviceLivez", "serviceReadyz", "serviceBootupTime", "serviceInstallPath",
    "serviceStartCommand", "vendorToSpecUuidsMap",
})

#: model fields only AddModel takes: a later change cannot be applied (InvalidSpec, never silent)
MODEL_CREATE_ONLY = ("version", "logo", "introduction", "size", "shareMode", "systemTags")
#: model service fields only AddModelService takes (its inventory shows both)
SERVICE_CREATE_ONLY = ("installPath", "modelCenterUuid")
#: model service fields only UpdateModelService takes, which no inventory shows: sent by one
#: UpdateModelService after the create, then only when their spec value changes
SERVICE_UPDATE_ONLY = ("serviceName", "servicePorts", "serviceLivez", "serviceReadyz", "serviceBootupTime")
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
    """The model as ZStack should hold it, in wire terms (absent = not managed). Only fields
    AddModel or UpdateModel take; see :func:`model_not_settable` for the rest."""
    spec: api.ModelSpec = res.spec
    z = spec.zstack or ZStackModelSection()
    gpu = spec.gpu or api.GPUSpec()
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
        "size": z.size,
        "shareMode": z.shareMode,
        "systemTags": list(z.systemTags) if z.systemTags is not None else None,
    })


def model_spec_field(res: Resource, wire: str) -> str:
    """The spec path a model's wire field comes from (for messages)."""
    z = res.spec.zstack or ZStackModelSection()
    if wire == "introduction":
        return "spec.zstack.introduction" if z.introduction is not None else "spec.readme"
    if wire == "name":
        return "spec.zstack.name" if z.name else "metadata.name"
    if wire in ("logo", "size", "shareMode", "systemTags", "modelId"):
        return f"spec.zstack.{wire}"
    if wire in ("recommendedGpuNum", "gpuConstraintDescription"):
        return {"recommendedGpuNum": "spec.gpu.recommendedCount",
                "gpuConstraintDescription": "spec.gpu.constraintDescription"}[wire]
    if wire == "defaultModelServiceUuid":
        return "spec.defaultServiceRef"
    return f"spec.{wire}"


def service_spec_field(res: Resource, wire: str) -> str:
    """The spec path a model service's wire field comes from (for messages)."""
    return {
        "installPath": "spec.zstack.installPath", "name": "spec.zstack.name" if (res.spec.zstack and
                                                                              res.spec.zstack.name) else "metadata.name",
        "serviceName": "spec.zstack.serviceName", "servicePorts": "spec.ports", "serviceLivez": "spec.livenessPath",
        "serviceReadyz": "spec.readinessPath", "serviceBootupTime": "spec.bootupTimeSeconds", "yaml": "spec.config",
        "requestCpu": "spec.resources.cpu", "requestMemory": "spec.resources.memory", "images": "spec.images",
        "containerCommand": "spec.command", "containerArgs": "spec.args", "type": "spec.zstack.type",
        "source": "spec.zstack.source", "modelCenterUuid": "the registry's spec.zstack.modelCenterUuid",
    }.get(wire, f"spec.{wire}")


def _compare(spec_value: Any, registry_value: Any) -> str:
    if registry_value is None:
        return "the registry reports no value for it"
    same = "the same as the spec" if registry_value == spec_value else "not the spec's value"
    return f"the registry reports {registry_value!r}, {same}"


def _bytes(value: str | int | None) -> Any:
    """A quantity as bytes, to compare with the inventory's Long (exact; never sent)."""
    q = api.quantity(value)
    if q is None:
        return None
    return int(q) if q == q.to_integral_value() else q


def model_not_settable(res: Resource, inventory: Mapping[str, Any] | None) -> tuple[NotSettable, ...]:
    """Spec fields set on a Model that neither AddModel nor UpdateModel can set, each compared
    with the model inventory's own field where the inventory has one."""
    spec: api.ModelSpec = res.spec
    z = spec.zstack or ZStackModelSection()
    gpu = spec.gpu or api.GPUSpec()
    inv = inventory or {}
    rows: list[tuple[str, Any, str | None]] = [
        ("spec.gpu.minMemory", _bytes(gpu.minMemory), "minGpuMemory"),
        ("spec.gpu.recommendedMemory", _bytes(gpu.recommendedMemory), "recommendedGpuMemory"),
        ("spec.gpu.accelerator", gpu.accelerator, "requiredAccelerator"),
        ("spec.architecture", spec.architecture, "architectureType"),
        ("spec.frameworkVersion", spec.frameworkVersion, "frameworkVersion"),
        ("spec.task", spec.task, "pipelineTag"),
        ("spec.zstack.pipelineTag", z.pipelineTag, "pipelineTag"),
        ("spec.license", spec.license, None),
    ]
    out = []
    if spec.readme is not None and z.introduction is not None:
        out.append(NotSettable("spec.readme", "ZStack models have no readme field; their one text field, "
                                              "introduction, holds spec.zstack.introduction"))
    for field, value, wire in rows:
        if value is None:
            continue
        if wire is None:
            out.append(NotSettable(field, "ZStack models have no license field"))
            continue
        shown = inv.get(wire)
        out.append(NotSettable(
            field, f"ZStack AddModel and UpdateModel have no field for it; {wire} is read-only: "
                   f"{_compare(value, shown)}", shown))
    return tuple(out)


@functools.lru_cache(maxsize=16384)
def yaml_problem(text: str) -> str | None:
    """Why ``text`` is not valid YAML, or None. Kept per text: parsing is most of what an unchanged
    resync of a ModelService costs, and the same config is asked about on every resync (the cache
    holds the spec's own string, so it costs an entry per distinct config, not a copy)."""
    import yaml  # only needed here

    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return str(exc)
    return None


def desired_service(res: Resource, conn: RegistryConnection) -> dict[str, Any]:
    """The model service as ZStack should hold it, in wire terms (``images`` stands for
    ``architectureImages``, as (cpuArchitecture, dockerImage) pairs)."""
    spec: api.ModelServiceSpec = res.spec
    z = spec.zstack or ZStackServiceSection()
    r = spec.resources or api.ResourceRequests()
    try:
        cpu = api.quantity_int(r.cpu, field="spec.resources.cpu", unit_name="CPUs")
        mem = api.quantity_int(r.memory, field="spec.resources.memory", unit=MiB, unit_name="MiB")
    except ValueError as exc:
        raise Terminal(str(exc), fields=("spec.resources",)) from None
    if spec.config is not None:
        problem = yaml_problem(spec.config)
        if problem is not None:
            raise Terminal(f"spec.config is not valid YAML: {problem}", fields=("spec.config",))
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
        "installPath": z.installPath,
    })
    missing = [field for key, field in SERVICE_REQUIRED.items() if key not in desired]
    if missing:
        raise Terminal(f"ZStack AddModelService requires {', '.join(missing)}", fields=tuple(missing))
    return desired


def service_not_settable(res: Resource, inventory: Mapping[str, Any] | None) -> tuple[NotSettable, ...]:
    """Spec fields set on a ModelService that neither AddModelService nor UpdateModelService can set."""
    spec: api.ModelServiceSpec = res.spec
    if spec.readme is None:
        return ()
    shown = (inventory or {}).get("readme")
    return (NotSettable("spec.readme", "ZStack AddModelService and UpdateModelService have no readme field; "
                                       f"readme is read-only: {_compare(spec.readme, shown)}", shown),)


def _inventory_value(inv: Mapping[str, Any], key: str) -> Any:
    if key == "images":
        return sorted((i.get("cpuArchitecture"), i.get("dockerImage")) for i in inv.get("modelServiceImages") or [])
    if key == "servicePorts":
        return [int(p) for p in inv.get("servicePorts") or []] or None
    return inv.get(key)


def diff(desired: Mapping[str, Any], inventory: Mapping[str, Any], *, ignore: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Fields whose inventory value differs from the desired one (unmanaged fields skipped).
    A field the inventory does not show differs: the core records it as accepted but not
    reflected (``status.registries[].unobservedFields``) and does not send it again."""
    return tuple(
        k for k, v in desired.items()
        if k not in ignore and _inventory_value(inventory, k) != v
    )


def _wire(key: str, value: Any) -> Any:
    if key == "recommendedGpuNum":
        return ",".join(str(n) for n in value)
    return value


def add_model_body(res: Resource, conn: RegistryConnection, desired: Mapping[str, Any]) -> dict[str, Any]:
    """AddModel: every desired field AddModel takes; ``spec.zstack.systemTags`` verbatim."""
    param = {k: _wire(k, v) for k, v in desired.items() if k in ADD_MODEL_FIELDS}
    param["resourceUuid"] = resource_uuid(res, conn)
    return {"param": param, "systemTags": list(desired.get("systemTags") or []), "userTags": [owner_tag(res)]}


def create_only_change(res: Resource, fields: Collection[str], inventory: Mapping[str, Any] | None,
                       create_only: Collection[str], api_name: str) -> Terminal | None:
    """The InvalidSpec for an update asked to change what only the create takes, or None."""
    changed = [f for f in fields if f in create_only]
    if not changed:
        return None
    spec_field = model_spec_field if res.kind == "Model" else service_spec_field
    parts = []
    for f in changed:
        path = spec_field(res, f)
        stored = (inventory or {}).get(f)
        held = (f"it holds {stored!r}" if stored is not None else
                "it does not show the value it was created with")
        parts.append(f"{path} ({f}) cannot change after create in ZStack ({api_name} has no {f}; {held})")
    paths = tuple(spec_field(res, f) for f in changed)
    return Terminal("; ".join(parts) + f": set {', '.join(paths)} back to the stored value or remove it, or create "
                    f"a new {res.kind} for the new value", fields=paths)


def update_model_body(desired: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {"updateModel": {k: _wire(k, desired[k]) for k in fields if k in UPDATE_MODEL_FIELDS}}


def _images(pairs: Any) -> list[dict[str, str]]:
    """architectureImages as objects, the shape of the inventory's modelServiceImages."""
    return [{"cpuArchitecture": arch, "dockerImage": image} for arch, image in pairs]


def _service_wire(desired: Mapping[str, Any], keys: Collection[str], allowed: frozenset[str]) -> dict[str, Any]:
    out = {}
    for k in keys:
        if k == "images":
            out["architectureImages"] = _images(desired["images"])
        elif k in allowed:
            out[k] = desired[k]
    return out


def add_service_body(res: Resource, conn: RegistryConnection, desired: Mapping[str, Any]) -> dict[str, Any]:
    param = _service_wire(desired, list(desired), ADD_MODEL_SERVICE_FIELDS)
    param["resourceUuid"] = resource_uuid(res, conn)
    return {"param": param, "systemTags": [], "userTags": [owner_tag(res)]}


def update_service_body(desired: Mapping[str, Any], fields: Collection[str]) -> dict[str, Any]:
    return {"updateModelService": _service_wire(desired, fields, UPDATE_MODEL_SERVICE_FIELDS)}


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
    if err.code in LOGIN_FAILED or err.code == INVALID_SESSION:
        # ID.1001 is answered by one re-login first (the transport's reauth hook); still
        # refused right after a fresh login, the credentials are what is wrong
        return Outcome.CREDENTIALS
    if err.code == QUOTA_EXCEEDED:
        return Outcome.UNAVAILABLE
    if err.code in TERMINAL_CODES:
        return Outcome.INVALID
    if err.code == NOT_FOUND:
        return Outcome.NOT_FOUND
    if status == 404 and not err.code:
        # not a ZStack answer at all: a wrong base URL, or not a ZStack server
        return Outcome.MISCONFIGURED
    return None


def missing_field(err: VendorError | None) -> str | None:
    """The request field a SYS.1003 names (PortApiValidator: ``invalid field[x] for ...``)."""
    if err is None or err.code != NOT_FOUND:
        return None
    m = _MISSING_FIELD.search(err.message or "")
    return (m.group(1) or m.group(2)) if m else None


def missing_reference(res: Resource, conn: RegistryConnection, err: VendorError, what: str) -> BackendError:
    """What a SYS.1003 on a create or update means, by the field it names.

    * ``modelCenterUuid``: the registry's model center is gone: ``RegistryMisconfigured``;
    * ``defaultModelServiceUuid`` / ``modelServiceUuids``: the ModelService's ZStack entry is
      gone (its own reconcile makes it again): ``DependencyNotReady``, retried;
    * ``uuid`` (or none named) on an update: the object itself vanished: retried, and the next
      observe creates it again;
    * anything else: ``InvalidSpec`` with the registry's message.
    """
    field = missing_field(err)
    message = f"{what}: {err.message}"
    if field == "modelCenterUuid":
        return Terminal(f"{message}; the registry's spec.zstack.modelCenterUuid "
                        f"({conn.settings.get('modelCenterUuid')}) names no model center "
                        "(GET /zstack/v1/ai/model-centers lists them)", reason="RegistryMisconfigured")
    if field in ("defaultModelServiceUuid", "modelServiceUuids"):
        return Recoverable(f"{message}; spec.defaultServiceRef's ModelService is not in the registry now; "
                           "waiting for it to be synced again", reason="DependencyNotReady")
    if field in (None, "uuid"):
        return Recoverable(f"{message}; the {res.kind} is no longer in the registry and will be created again")
    return Terminal(message, fields=(field,))
