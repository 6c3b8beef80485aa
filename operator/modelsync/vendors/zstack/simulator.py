"""A local ZStack AI model center: the REST surface the ZStack backend talks to.

The simulator behaves like the real server as its published sources show (the seed pages
for AddModel, UpdateModel and UpdateModelService; the request structs of ZStack's Go SDK,
copied in ``../shared/specs/zstack/``; the open-source framework zstackio/zstack for REST,
tags, validation and errors), so the backend can be developed and tested without a ZStack cloud:

* ``PUT /zstack/v1/accounts/login`` with ``{"logInByAccount": {"accountName",
  "password": <SHA-512 hex>}}`` opens a session; every other ``/zstack/v1``
  call needs ``Authorization: OAuth <session uuid>`` (RestServer answers a missing or
  non-OAuth header with 400 in plain text; a session that is not valid is ``ID.1001``);
* models and model services are created with ``POST`` (``{"param": {...},
  "systemTags": [...], "userTags": [...]}``), changed with ``PUT``
  (``{"updateModel": {...}}`` / ``{"updateModelService": {...}}``), read with
  ZStack's query ``GET`` (``{"inventories": [...]}``, empty when absent) and
  removed with an idempotent ``DELETE``;
* each API takes the fields its SDK request struct and seed page list; any other key is
  dropped without an error, as RestServer's Gson binding does (it never lands);
* a create's system tags must each match a registered pattern (TagManagerImpl: SYS.1007 "no
  system tag matches ..."); ``--system-tag-pattern`` registers a site's own, ``--lenient`` turns
  the check off; user tags are free text;
* a uuid the call names that does not exist (the model center, a default model service, the
  object an update targets) is ``SYS.1003`` with PortApiValidator's "invalid field[...]" text;
* user tags are read back with QueryUserTag, ``GET /zstack/v1/user-tags``
  (``q=resourceUuid=...``, ``q=resourceType=ModelVO``, ``start``/``limit``);
* API errors are HTTP 503 with ZStack's error envelope; what RestServer refuses before the
  API (a body that does not parse or bind) is a plain-text 400 or 500;
* in async mode (``--async``, or per request with ``X-Sim-Async: true``) every
  write answers ``202 {"location": .../zstack/v1/api-jobs/<uuid>}`` at once and
  is applied after ``job_delay`` seconds, the way ZStack runs APIMessages.

The inventory fields no API sets (GPU memory, accelerator, architecture, framework version,
pipeline tag...) read null until something fills them the way the server would:
``ZStackState.set_inventory_fields`` or ``PUT /_sim/zstack/models/<uuid>/inventory``.

The state (:class:`ZStackState`) is plain Python with no aiohttp in it, so its
rules can be tested directly; the handlers only parse HTTP, check the session
and render results. Admin extras, under ``/_sim`` and without auth:
``POST /_sim/zstack/expire-sessions`` (prove the client logs in again) and
``POST /_sim/zstack/clear`` (forget every model and service). ``/_sim/reset``
deliberately only resets fault knobs and the journal.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import re
import time
import uuid as uuidlib
import warnings
from datetime import datetime
from typing import Any, Awaitable, Callable, Iterable, Literal, Mapping

import yaml
from aiohttp import web

from modelsync.simulators import faults as faultlib

API = "/zstack/v1"
STATE_KEY = "zstack"  # app[STATE_KEY] is the ZStackState, for in-process tests
DEFAULT_MODEL_CENTER_NAME = "default-model-center"
ASYNC_HEADER = "X-Sim-Async"

_UUID_RE = re.compile(r"[0-9a-f]{32}")  # always used with fullmatch
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_DIGITS = re.compile(r"[0-9]+")
_CPU_ARCHITECTURES = ("x86_64", "aarch64")

JSON = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.Response]]


# --------------------------------------------------------------------------- errors


class ZStackError(Exception):
    """An API failure, rendered as ZStack's ``{"error": {...}}`` envelope."""

    def __init__(self, status: int, code: str, description: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.status = status
        self.code = code
        self.description = description
        self.details = details

    def envelope(self) -> JSON:
        return error_envelope(self.code, self.description, self.details)


def error_envelope(code: str, description: str, details: str) -> JSON:
    return {
        "error": {
            "code": code,
            "description": description,
            "details": details,
            "elaboration": None,
            "opaque": None,
            "cause": None,
        }
    }


def invalid_argument(details: str, status: int = 503) -> ZStackError:
    return ZStackError(status, "SYS.1007", "One or more API argument is invalid", details)


def bad_request(details: str) -> ZStackError:
    """The request could not even be read (bad JSON, no wrapper key): 400, never a job."""
    return invalid_argument(details, status=400)


def not_found(details: str) -> ZStackError:
    return ZStackError(503, "SYS.1003", "Resource not found", details)


def already_exists(details: str) -> ZStackError:
    # ZStack has no dedicated code for a taken resourceUuid: the insert fails as an operation error.
    return ZStackError(503, "SYS.1006", "An operation failed", details)


def authentication_failed(details: str) -> ZStackError:
    return ZStackError(503, "ID.1000", "Authentication error", details)


def invalid_session(details: str) -> ZStackError:
    return ZStackError(503, "ID.1001", "Session expired", details)


def reference_not_found(field: str, api: str, value: str, resource_type: str) -> ZStackError:
    """PortApiValidator: a uuid field of the API message names no resource of its type."""
    return not_found(f"invalid field[{field}] for API{api}Msg, resource[uuid:{value}, type:{resource_type}] not found")


def no_system_tag_matches(tag: str) -> ZStackError:
    """TagManagerImpl's create-message interceptor: the tag matches no registered pattern."""
    return invalid_argument(f"no system tag matches {tag}")


class RestError(Exception):
    """RestServer's own refusals (RestException, or an exception while binding the body): a
    status with a plain-text body, not the error envelope."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text

    def response(self) -> web.Response:
        return web.Response(status=self.status, text=self.text)


def error_response(status: int, message: str) -> web.Response:
    """Injected faults (see :mod:`faults`) in ZStack's own envelope."""
    if status == 429:
        body = error_envelope("SYS.1012", "Too many requests", message)
    else:
        body = error_envelope("SYS.1000", "An internal error happened in the system", message)
    return web.json_response(body, status=status)


def _error(exc: ZStackError) -> web.Response:
    return web.json_response(exc.envelope(), status=exc.status)


# --------------------------------------------------------------------------- dates


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def zstack_date(ts: float) -> str:
    """``Nov 25, 2025 11:51:50 AM``: how ZStack's Gson (JDK 8, en_US) prints dates.

    Built by hand rather than with ``strftime`` so the month and AM/PM do not
    depend on the process locale. Local time, as the Java server uses.
    """
    dt = datetime.fromtimestamp(ts)
    hour = dt.hour % 12 or 12
    half = "AM" if dt.hour < 12 else "PM"
    return f"{_MONTHS[dt.month - 1]} {dt.day}, {dt.year} {hour}:{dt.minute:02d}:{dt.second:02d} {half}"


# --------------------------------------------------------------------------- field validation

Validator = Callable[[str, Any], Any]


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _string(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise invalid_argument(f"field[{field}] must be a String, got {_type_name(value)}")
    return value


def _non_empty_string(field: str, value: Any) -> str:
    if _string(field, value) == "":
        raise invalid_argument(f"field[{field}] cannot be an empty string")
    return str(value)


def _uuid(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _UUID_RE.fullmatch(value):
        raise invalid_argument(f"field[{field}] must be a UUID of 32 lowercase hex characters without dashes, got {value!r}")
    return value


def _integer(field: str, value: Any, *, kind: Literal["Long", "Integer"] = "Long", minimum: int | None = None) -> int:
    """A Java ``Long``/``Integer``: a JSON integer (not a boolean, not 1.0) in range."""
    low, high = (_LONG_MIN, _LONG_MAX) if kind == "Long" else (_INT_MIN, _INT_MAX)
    article = "a" if kind == "Long" else "an"
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_argument(f"field[{field}] must be {article} {kind}, got {_type_name(value)}")
    if not low <= value <= high:
        raise invalid_argument(f"field[{field}] is out of the range of {article} {kind}: {value}")
    if minimum is not None and value < minimum:
        raise invalid_argument(f"field[{field}] must be >= {minimum}, got {value}")
    return value


def _long(field: str, value: Any) -> int:
    return _integer(field, value)


def _positive_int(field: str, value: Any) -> int:
    return _integer(field, value, kind="Integer", minimum=1)


def _positive_long(field: str, value: Any) -> int:
    return _integer(field, value, minimum=1)


def _non_negative_int(field: str, value: Any) -> int:
    return _integer(field, value, kind="Integer", minimum=0)


def _boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid_argument(f"field[{field}] must be a Boolean, got {_type_name(value)}")
    return value


def _string_list(field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_argument(f"field[{field}] must be a List of String")
    return list(value)


def _uuid_list(field: str, value: Any) -> list[str]:
    return [_uuid(field, v) for v in _string_list(field, value)]


def _object(field: str, value: Any) -> JSON:
    if not isinstance(value, dict):
        raise invalid_argument(f"field[{field}] must be a Map, got {_type_name(value)}")
    return dict(value)


def _gpu_numbers(field: str, value: Any) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``: the wire carries a string, the inventory a list."""
    text = _string(field, value).strip()
    if not text:
        return []
    numbers: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not _DIGITS.fullmatch(part) or int(part) < 1:
            raise invalid_argument(f"field[{field}] must be a comma-separated list of positive integers such as \"1,2\", got {value!r}")
        numbers.append(int(part))
    return numbers


def _yaml(field: str, value: Any) -> str:
    text = _string(field, value)
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise invalid_argument(f"field[{field}] is not valid YAML: {problem}") from None
    return text


def _ports(field: str, value: Any) -> list[int]:
    if not isinstance(value, list):
        raise invalid_argument(f"field[{field}] must be a List of ports, got {_type_name(value)}")
    ports: list[int] = []
    for item in value:
        if isinstance(item, str) and _DIGITS.fullmatch(item):
            port = int(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            port = item
        else:
            raise invalid_argument(f"field[{field}] must hold ports 1-65535, got {item!r}")
        if not 1 <= port <= 65535:
            raise invalid_argument(f"field[{field}] must hold ports 1-65535, got {item!r}")
        ports.append(port)
    return ports


def _http_path(field: str, value: Any) -> str:
    if not _string(field, value).startswith("/"):
        raise invalid_argument(f"field[{field}] must be an HTTP path starting with '/', got {value!r}")
    return str(value)


def _architecture_images(field: str, value: Any) -> list[tuple[str, str | None, str | None]]:
    """``[{"cpuArchitecture", "dockerImage", "vmImageUuid"}, ...]`` (the shape of the SDK's
    examples and of the inventory's modelServiceImages) -> ``[(arch, dockerImage, vmImageUuid)]``.

    An element that is not an object cannot be bound by Gson: RestServer answers 500 with the
    exception's text, not the envelope. Keys the image class lacks are dropped, like any other.
    """
    if not isinstance(value, list):
        raise RestError(500, f"java.lang.IllegalStateException: Expected BEGIN_ARRAY but was {_type_name(value).upper()}"
                             f" at path $.{field}")
    images: list[tuple[str, str | None, str | None]] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise RestError(500, "java.lang.IllegalStateException: Expected BEGIN_OBJECT but was "
                                 f"{_type_name(item).upper()} at path $.{field}[{index}]")
        arch, image, vm_image = item.get("cpuArchitecture"), item.get("dockerImage"), item.get("vmImageUuid")
        if arch not in _CPU_ARCHITECTURES:
            raise invalid_argument(f"field[{field}] element {index}: cpuArchitecture must be one of "
                                   f"{', '.join(_CPU_ARCHITECTURES)}, got {arch!r}")
        if image is None and vm_image is None:
            raise invalid_argument(f"field[{field}] element {index}: dockerImage or vmImageUuid is mandatory")
        if image is not None:
            _non_empty_string(f"{field}[{index}].dockerImage", image)
        if vm_image is not None:
            _uuid(f"{field}[{index}].vmImageUuid", vm_image)
        if any(arch == seen for seen, _, _ in images):
            raise invalid_argument(f"field[{field}] names cpuArchitecture {arch} more than once")
        images.append((str(arch), image, vm_image))
    return images


#: what ZStack's SDK marks required for AddModelService
ADD_MODEL_SERVICE_REQUIRED = ("name", "modelCenterUuid", "yaml", "requestCpu", "requestMemory", "installPath", "startCommand")


def _validate(api: str, spec: Mapping[str, Validator], params: Mapping[str, Any], required: Iterable[str] = ()) -> JSON:
    """Check an API's parameters like ZStack's API mediator does, before any change.

    ``null`` counts as "not given" (a Java field left unset). A key the API message class has
    no field for is dropped without an error, as RestServer's Gson binding does: it never lands.
    """
    params = {k: v for k, v in params.items() if k in spec}
    for name in required:
        if params.get(name) is None:
            raise invalid_argument(f"field[{name}] is mandatory")
    for name, limit in MAX_LENGTH.items():
        value = params.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise invalid_argument(f"field[{name}] exceeds the max length of {limit} characters")
    return {k: spec[k](k, v) for k, v in params.items() if v is not None}


def dropped_keys(spec: Mapping[str, Validator], params: Mapping[str, Any]) -> list[str]:
    """The keys of ``params`` an API would drop (for the journal-free unit checks)."""
    return sorted(k for k in params if k not in spec)


#: @APIParam(maxLength=...) of ZStack's API messages: names 255, descriptions 2048.
MAX_LENGTH: dict[str, int] = {"name": 255, "description": 2048, "modelId": 255, "vendor": 255, "version": 255}


# --------------------------------------------------------------------------- system tags

#: ModelInventory fields that no API sets: the server fills them itself. Tests stand in for it
#: with :meth:`ZStackState.set_inventory_fields`; until then they read null.
MODEL_SERVER_FIELDS: dict[str, Validator] = {
    "minGpuMemory": _long,
    "recommendedGpuMemory": _long,
    "extraGpuMemRequest": _long,
    "requiredAccelerator": _string,
    "architectureType": _string,
    "frameworkVersion": _string,
    "pipelineTag": _string,
    "versionSemver": _string,
    "artifactChecksum": _string,
    "artifactSizeBytes": _long,
}

#: System tag patterns registered by the open-source framework (zstackio/zstack) that a create
#: here may carry: ``resourceConfig::`` (TagConstant.RESOURCE_CONFIG_TAG_PREFIX, a resource's own
#: global-config value). TagManagerImpl refuses a create whose system tag matches no registered
#: pattern with SYS.1007 "no system tag matches <tag>"; ``ephemeral::`` tags are not checked and
#: not stored. A site registers more (``--system-tag-pattern``).
REGISTERED_SYSTEM_TAGS = ("resourceConfig::{category}::{name}::{value}",)
EPHEMERAL_TAG_PREFIX = "ephemeral::"


def tag_pattern(tag_format: str) -> re.Pattern[str]:
    """A PatternedSystemTag format (``key::{token}``) as a regex; a format without tokens is literal."""
    parts = re.split(r"\{[^{}]+\}", tag_format)
    return re.compile("(.+)".join(re.escape(p) for p in parts))


@dataclasses.dataclass
class Tags:
    """A resource's tags as stored: system tags (those a create carried) and user tags."""

    system: list[str] = dataclasses.field(default_factory=list)
    user: list[str] = dataclasses.field(default_factory=list)

    def merge(self, system_tags: list[str], user_tags: list[str]) -> None:
        for tag in system_tags:
            if tag not in self.system and not tag.startswith(EPHEMERAL_TAG_PREFIX):
                self.system.append(tag)
        for tag in user_tags:
            if tag not in self.user:
                self.user.append(tag)


def _collect_tags(body: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """systemTags/userTags from the top level of the body (RestServer) and the wrapper (the
    API message's own fields, which Gson binds too)."""
    found: dict[str, list[str]] = {"systemTags": [], "userTags": []}
    for source in (body, params):
        for name in found:
            if source.get(name) is not None:
                found[name].extend(_string_list(name, source[name]))
    return found["systemTags"], found["userTags"]


# --------------------------------------------------------------------------- API parameter specs

# What each API message takes: the SDK's request structs (zstack-sdk-go-v2 pkg/param, copies in
# ../shared/specs/zstack/) and the seed pages' body fields and request examples. Anything else
# is dropped by the Gson binding (see _validate).

_MODEL_COMMON: dict[str, Validator] = {
    "name": _non_empty_string,
    "installPath": _non_empty_string,
    "description": _string,
    "parameters": _string,
    "modelCenterUuid": _uuid,
    "vendor": _string,
    "recommendedGpuNum": _gpu_numbers,
    "gpuConstraintDescription": _string,
    "modelId": _string,
    "defaultModelServiceUuid": _uuid,
}

#: AddModelDetailParam plus seed 002's modelId, shareMode, defaultModelServiceUuid
ADD_MODEL_SPEC: dict[str, Validator] = {
    **_MODEL_COMMON,
    "logo": _string,
    "introduction": _string,
    "version": _string,
    "size": _long,
    "token": _string,
    "resourceUuid": _uuid,
    "tagUuids": _uuid_list,
    "modelServiceUuids": _uuid_list,
    "shareMode": _string,
}

#: UpdateModelDetailParam plus seed 000's vendor, modelId, defaultModelServiceUuid and
#: clearDefaultModelService; no version, logo, introduction or size
UPDATE_MODEL_SPEC: dict[str, Validator] = {
    **_MODEL_COMMON,
    "modelClassifications": _string_list,
    "clearDefaultModelService": _boolean,
}

UPDATE_MODEL_SERVICE_SPEC: dict[str, Validator] = {
    "name": _non_empty_string,
    "description": _string,
    "yaml": _yaml,
    "requestCpu": _positive_int,
    "requestMemory": _positive_long,
    "gpuComputeCapability": _string,
    "startCommand": _string,
    "pythonVersion": _string,
    "type": _string,
    "framework": _string,
    "source": _string,
    "architectureImages": _architecture_images,
    "supportDistributed": _boolean,
    "environmentParameters": _object,
    "startupParameters": _object,
    "inferenceParams": _object,
    "serviceName": _string,
    "servicePorts": _ports,
    "serviceLivez": _http_path,
    "serviceReadyz": _http_path,
    "serviceBootupTime": _non_negative_int,
    "serviceInstallPath": _string,
    "serviceStartCommand": _string,
    "containerCommand": _string,
    "containerArgs": _string,
    "vendorToSpecUuidsMap": _object,
}

#: AddModelServiceDetailParam: no readme, serviceName, servicePorts, serviceLivez, serviceReadyz
#: or serviceBootupTime (UpdateModelService takes all of them but readme)
ADD_MODEL_SERVICE_SPEC: dict[str, Validator] = {
    "name": _non_empty_string,
    "description": _string,
    "yaml": _yaml,
    "modelCenterUuid": _uuid,
    "requestCpu": _positive_int,
    "requestMemory": _positive_long,
    "gpuComputeCapability": _string,
    "installPath": _string,
    "system": _boolean,
    "startCommand": _string,
    "containerCommand": _string,
    "containerArgs": _string,
    "pythonVersion": _string,
    "condaVersion": _string,
    "zoneUuid": _uuid,
    "type": _string,
    "source": _string,
    "framework": _string,
    "modelUuids": _uuid_list,
    "architectureImages": _architecture_images,
    "supportDistributed": _boolean,
    "vendorToSpecUuidsMap": _object,
    "resourceUuid": _uuid,
    "tagUuids": _uuid_list,
}

#: ModelInventory fields, in the seed page's order, plus ``defaultModelServiceUuid``.
MODEL_INVENTORY_FIELDS = (
    "uuid", "name", "description", "installPath", "parameters", "modelCenterUuid", "logo", "vendor",
    "modelId", "introduction", "size", "version", "type", "minGpuMemory", "recommendedGpuMemory",
    "recommendedGpuNum", "gpuConstraintDescription", "versionSemver", "isLatestVersion",
    "artifactChecksum", "artifactSizeBytes", "architectureType", "frameworkVersion",
    "requiredAccelerator", "pipelineTag", "modelServiceRefs", "extraGpuMemRequest", "SAMPLE_SIZE",
    "createDate", "lastOpDate", "defaultModelServiceUuid",
)

#: ModelServiceInventory fields of the seed page (and the SDK's ModelServiceInventoryView): what
#: UpdateModelService's service* fields set is stored but not shown.
MODEL_SERVICE_INVENTORY_FIELDS = (
    "uuid", "name", "description", "readme", "yaml", "requestCpu", "requestMemory", "modelCenterUuid",
    "type", "framework", "source", "size", "system", "hasNewVersion", "gpuComputeCapability",
    "installPath", "pythonVersion", "condaVersion", "version", "startCommand", "containerCommand",
    "containerArgs", "supportDistributed", "cpuArchitectures", "vendorToSpecUuidsMap",
    "modelServiceRefs", "modelServiceImages", "createDate", "lastOpDate",
)

MODEL_CENTER_INVENTORY_FIELDS = (
    "uuid", "name", "description", "url", "parameters", "managementIp", "managementPort",
    "storagePercent", "createDate", "lastOpDate",
)
#: UserTagInventory (QueryUserTag, ``GET /zstack/v1/user-tags``)
USER_TAG_INVENTORY_FIELDS = ("uuid", "resourceUuid", "resourceType", "tag", "type", "createDate", "lastOpDate")
#: a user tag's uuid, derived from its resource and text so it is stable between queries
_USER_TAG_NAMESPACE = uuidlib.UUID("0b4c3a5e-8d1f-4e2a-9c67-5f3e2d1a0b98")


# --------------------------------------------------------------------------- state


@dataclasses.dataclass
class Session:
    uuid: str
    account_uuid: str
    user_uuid: str
    created: float
    expires: float

    def inventory(self) -> JSON:
        return {
            "uuid": self.uuid,
            "accountUuid": self.account_uuid,
            "userUuid": self.user_uuid,
            "expiredDate": zstack_date(self.expires),
            "createDate": zstack_date(self.created),
        }


@dataclasses.dataclass
class ModelRecord:
    uuid: str
    fields: JSON  # validated wire values by name (recommendedGpuNum already a list)
    tags: Tags
    default_service: str | None
    created: float
    last_op: float
    #: inventory fields no API sets (MODEL_SERVER_FIELDS), as the server filled them
    server_fields: JSON = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ServiceImage:
    uuid: str
    cpu_architecture: str
    docker_image: str | None
    created: float
    last_op: float
    vm_image_uuid: str | None = None


@dataclasses.dataclass
class ServiceRecord:
    uuid: str
    fields: JSON
    images: list[ServiceImage]
    tags: Tags
    created: float
    last_op: float


@dataclasses.dataclass
class Job:
    """An api-job: 202 while ``processing``, then the sync call's status and body."""

    uuid: str
    state: Literal["processing", "succeeded", "failed"] = "processing"
    status: int = 202
    body: JSON = dataclasses.field(default_factory=dict)


Condition = tuple[str, str]


class ZStackState:
    """Sessions, the model center, models, services and api-jobs, with ZStack's rules.

    Every write validates all of its input before it changes anything, so a
    rejected call (or failed job) leaves no trace. ``clock`` is injectable so
    tests can move time for session expiry.
    """

    def __init__(
        self,
        *,
        account: str = "admin",
        password: str = "password",
        session_ttl: float = 3600.0,
        model_center_uuid: str | None = None,
        async_mode: bool = False,
        job_delay: float = 0.2,
        clock: Callable[[], float] = time.time,
        lenient: bool = False,
        system_tag_patterns: Iterable[str] = (),
    ) -> None:
        if session_ttl <= 0:
            raise ValueError("session_ttl must be positive")
        if job_delay < 0:
            raise ValueError("job_delay cannot be negative")
        center_uuid = model_center_uuid or uuidlib.uuid4().hex
        if not _UUID_RE.fullmatch(center_uuid):
            raise ValueError(f"model_center_uuid must be 32 lowercase hex characters, got {center_uuid!r}")
        self.account = account
        self.password = password
        self.session_ttl = session_ttl
        self.async_mode = async_mode
        self.job_delay = job_delay
        self.clock = clock
        #: True: a create's system tags need not match a registered pattern (the looser mode
        #: of earlier versions); the default refuses them as ZStack's TagManagerImpl does
        self.lenient = lenient
        #: the system tag formats this server has registered (the framework's, plus a site's own)
        self.system_tag_patterns = (*REGISTERED_SYSTEM_TAGS, *system_tag_patterns)
        self._tag_patterns = [tag_pattern(f) for f in self.system_tag_patterns]
        self.account_uuid = uuidlib.uuid4().hex
        self.sessions: dict[str, Session] = {}
        self.models: dict[str, ModelRecord] = {}
        self.services: dict[str, ServiceRecord] = {}
        self.jobs: dict[str, Job] = {}
        #: model <-> service bindings, an insertion-ordered set of (modelUuid, modelServiceUuid)
        self.refs: dict[tuple[str, str], None] = {}
        now = clock()
        self.model_center_uuid = center_uuid
        self.model_centers: dict[str, JSON] = {
            center_uuid: {
                "uuid": center_uuid,
                "name": DEFAULT_MODEL_CENTER_NAME,
                "description": "the simulator's model center",
                "url": "http://127.0.0.1:8989",
                "parameters": None,
                "managementIp": "127.0.0.1",
                "managementPort": 8989,
                "storagePercent": 0.0,
                "createDate": zstack_date(now),
                "lastOpDate": zstack_date(now),
            }
        }

    # ---------------------------------------------------------------- sessions

    @property
    def password_hash(self) -> str:
        """What ``logInByAccount.password`` must carry: the SHA-512 hex digest."""
        return hashlib.sha512(self.password.encode("utf-8")).hexdigest()

    def login(self, params: Any) -> JSON:
        if not isinstance(params, dict):
            raise bad_request('the body must be a JSON object with the key "logInByAccount"')
        name = params.get("accountName")
        password = params.get("password")
        for field, value in (("accountName", name), ("password", password)):
            if value is None:
                raise invalid_argument(f"field[{field}] is mandatory")
            _string(field, value)
        if name != self.account or password != self.password_hash:
            raise authentication_failed("wrong account name or password")
        now = self.clock()
        session = Session(uuidlib.uuid4().hex, self.account_uuid, self.account_uuid, now, now + self.session_ttl)
        self.sessions[session.uuid] = session
        return {"inventory": session.inventory()}

    def session_valid(self, session_uuid: str) -> bool:
        session = self.sessions.get(session_uuid)
        return session is not None and self.clock() < session.expires

    def logout(self, session_uuid: str) -> JSON:
        self.sessions.pop(session_uuid, None)
        return {}

    def expire_sessions(self) -> int:
        """End every session now; the next API call with one of them gets ID.1001."""
        now = self.clock()
        for session in self.sessions.values():
            session.expires = min(session.expires, now)
        return len(self.sessions)

    def authenticate(self, authorization: str | None) -> Session:
        # RestServer refuses these itself (400, plain text); the session is checked with the API
        if authorization is None:
            raise RestError(400, "missing header 'Authorization'")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme != "OAuth":
            raise RestError(400, "Authorization type must be 'OAuth'")
        token = token.strip()
        if not self.session_valid(token):
            raise invalid_session(f"Session[uuid:{token}] expired or does not exist")
        return self.sessions[token]

    # ---------------------------------------------------------------- helpers

    def _next_op_time(self, previous: float) -> float:
        """Now, but at least one second after ``previous``.

        ZStack dates have second resolution and clients compare ``lastOpDate``
        to notice a change, so two updates in one second must still differ.
        """
        now = self.clock()
        return now if int(now) > int(previous) else float(int(previous) + 1)

    def _require_fresh_uuid(self, resource_uuid: str) -> None:
        # ZStack's ResourceVO makes uuids unique across resource types.
        if resource_uuid in self.models or resource_uuid in self.services or resource_uuid in self.model_centers:
            raise already_exists(f"resourceUuid[{resource_uuid}] already exists")

    def _require_model_center(self, api: str, center_uuid: str) -> None:
        if center_uuid not in self.model_centers:
            raise reference_not_found("modelCenterUuid", api, center_uuid, "ModelCenterVO")

    def _require_service(self, api: str, field: str, service_uuid: str) -> None:
        if service_uuid not in self.services:
            raise reference_not_found(field, api, service_uuid, "ModelServiceVO")

    def _wrapped(self, body: Any, key: str) -> JSON:
        """The API message's parameters: an absent or null wrapper binds an empty message (its
        mandatory fields then fail validation), as RestServer does."""
        if not isinstance(body, dict):
            raise bad_request(f'the body must be a JSON object with the key "{key}" holding an object')
        params = body.get(key)
        if params is None:
            return {}
        if not isinstance(params, dict):
            raise RestError(500, f"java.lang.IllegalStateException: Expected BEGIN_OBJECT but was "
                                 f"{_type_name(params).upper()} at path $")
        return dict(params)

    def _check_system_tags(self, tags: list[str]) -> None:
        """TagManagerImpl's interceptor for create messages: every system tag but ``ephemeral::``
        ones must match a registered pattern."""
        if self.lenient:
            return
        for tag in tags:
            if tag.startswith(EPHEMERAL_TAG_PREFIX):
                continue
            if not any(p.fullmatch(tag) for p in self._tag_patterns):
                raise no_system_tag_matches(tag)

    def _existing(self, table: Mapping[str, Any], resource_uuid: str, api: str, resource_type: str) -> Any:
        record = table.get(resource_uuid)
        if record is None:
            raise reference_not_found("uuid", api, resource_uuid, resource_type)
        return record

    def _refs_of(self, *, model: str | None = None, service: str | None = None) -> list[JSON]:
        return [
            {"modelUuid": m, "modelServiceUuid": s}
            for m, s in self.refs
            if (model is None or m == model) and (service is None or s == service)
        ]

    # ---------------------------------------------------------------- models

    def model_inventory(self, model_uuid: str) -> JSON:
        rec = self.models[model_uuid]
        f = rec.fields
        inventory: JSON = {name: None for name in MODEL_INVENTORY_FIELDS}
        inventory.update({k: v for k, v in f.items() if k in inventory})
        inventory.update(rec.server_fields)
        inventory.update(
            {
                "uuid": rec.uuid,
                "size": f.get("size", 0),
                "type": "Customized",
                "isLatestVersion": True,
                "modelServiceRefs": self._refs_of(model=rec.uuid),
                "SAMPLE_SIZE": None,
                "createDate": zstack_date(rec.created),
                "lastOpDate": zstack_date(rec.last_op),
                "defaultModelServiceUuid": rec.default_service,
            }
        )
        return inventory

    def add_model(self, body: Any) -> JSON:
        params = self._wrapped(body, "param")
        system_tags, user_tags = _collect_tags(body, params)
        values = _validate("AddModel", ADD_MODEL_SPEC, params, required=("name", "installPath", "modelCenterUuid"))
        self._require_model_center("AddModel", values["modelCenterUuid"])
        bound = values.pop("modelServiceUuids", [])
        default = values.pop("defaultModelServiceUuid", None)
        for service_uuid in bound:
            self._require_service("AddModel", "modelServiceUuids", service_uuid)
        if default is not None:
            self._require_service("AddModel", "defaultModelServiceUuid", default)
        self._check_system_tags(system_tags)
        model_uuid = values.pop("resourceUuid", None) or uuidlib.uuid4().hex
        self._require_fresh_uuid(model_uuid)

        now = self.clock()
        tags = Tags()
        tags.merge(system_tags, user_tags)
        self.models[model_uuid] = ModelRecord(model_uuid, values, tags, default, now, now)
        for service_uuid in [*bound, *([default] if default else [])]:
            self.refs[(model_uuid, service_uuid)] = None
        return {"inventory": self.model_inventory(model_uuid)}

    def update_model(self, model_uuid: str, body: Any) -> JSON:
        # the tags of an update message go nowhere: TagManagerImpl creates tags from create messages
        params = self._wrapped(body, "updateModel")
        rec: ModelRecord = self._existing(self.models, model_uuid, "UpdateModel", "ModelVO")
        values = _validate("UpdateModel", UPDATE_MODEL_SPEC, params)
        if "modelCenterUuid" in values:
            self._require_model_center("UpdateModel", values["modelCenterUuid"])
        default = values.pop("defaultModelServiceUuid", None)
        clear = values.pop("clearDefaultModelService", False)
        if default is not None:
            if clear:
                raise invalid_argument("field[defaultModelServiceUuid] cannot be combined with clearDefaultModelService=true")
            self._require_service("UpdateModel", "defaultModelServiceUuid", default)

        rec.fields.update(values)
        if clear:
            rec.default_service = None
        elif default is not None:
            rec.default_service = default
            self.refs[(model_uuid, default)] = None
        rec.last_op = self._next_op_time(rec.last_op)
        return {"inventory": self.model_inventory(model_uuid)}

    def set_inventory_fields(self, model_uuid: str, fields: Mapping[str, Any]) -> JSON:
        """Stand in for the server filling the inventory fields no API sets (GPU memory,
        accelerator, architecture, framework version, pipeline tag...)."""
        rec: ModelRecord = self._existing(self.models, model_uuid, "UpdateModel", "ModelVO")
        unknown = sorted(set(fields) - set(MODEL_SERVER_FIELDS))
        if unknown:
            raise invalid_argument(f"field[{unknown[0]}] is not one the server fills; settable: "
                                   f"{', '.join(MODEL_SERVER_FIELDS)}")
        for key, value in fields.items():
            if value is None:
                rec.server_fields.pop(key, None)
            else:
                rec.server_fields[key] = MODEL_SERVER_FIELDS[key](key, value)
        return {"inventory": self.model_inventory(model_uuid)}

    def delete_model(self, model_uuid: str) -> JSON:
        if self.models.pop(model_uuid, None) is not None:
            for key in [k for k in self.refs if k[0] == model_uuid]:
                del self.refs[key]
        return {}

    def query_models(self, conditions: Iterable[Condition] = (), start: int = 0, limit: int | None = None) -> JSON:
        conditions = list(conditions)
        inventories = [self.model_inventory(u) for u in _candidates(self.models, conditions)]
        return _query(inventories, MODEL_INVENTORY_FIELDS, conditions, start, limit)

    # ---------------------------------------------------------------- model services

    def model_service_inventory(self, service_uuid: str) -> JSON:
        rec = self.services[service_uuid]
        inventory: JSON = {name: None for name in MODEL_SERVICE_INVENTORY_FIELDS}
        inventory.update({k: v for k, v in rec.fields.items() if k in inventory})
        inventory.update(
            {
                "uuid": rec.uuid,
                "system": False,
                "hasNewVersion": False,
                "cpuArchitectures": [image.cpu_architecture for image in rec.images],
                "modelServiceRefs": self._refs_of(service=rec.uuid),
                "modelServiceImages": [
                    {
                        "uuid": image.uuid,
                        "modelServiceUuid": rec.uuid,
                        "cpuArchitecture": image.cpu_architecture,
                        "vmImageUuid": image.vm_image_uuid,
                        "dockerImage": image.docker_image,
                        "createDate": zstack_date(image.created),
                        "lastOpDate": zstack_date(image.last_op),
                    }
                    for image in rec.images
                ],
                "createDate": zstack_date(rec.created),
                "lastOpDate": zstack_date(rec.last_op),
            }
        )
        return inventory

    def _images(self, previous: list[ServiceImage], wanted: list[tuple[str, str | None, str | None]],
                when: float) -> list[ServiceImage]:
        """The new image list; an architecture already present keeps its uuid and createDate."""
        by_arch = {image.cpu_architecture: image for image in previous}
        images: list[ServiceImage] = []
        for arch, docker_image, vm_image in wanted:
            old = by_arch.get(arch)
            if old is None:
                images.append(ServiceImage(uuidlib.uuid4().hex, arch, docker_image, when, when, vm_image))
            elif (old.docker_image, old.vm_image_uuid) == (docker_image, vm_image):
                images.append(old)
            else:
                images.append(dataclasses.replace(old, docker_image=docker_image, vm_image_uuid=vm_image,
                                                  last_op=when))
        return images

    def add_model_service(self, body: Any) -> JSON:
        params = self._wrapped(body, "param")
        system_tags, user_tags = _collect_tags(body, params)
        values = _validate("AddModelService", ADD_MODEL_SERVICE_SPEC, params, required=ADD_MODEL_SERVICE_REQUIRED)
        self._require_model_center("AddModelService", values["modelCenterUuid"])
        for model_uuid in values.pop("modelUuids", []):
            if model_uuid not in self.models:
                raise reference_not_found("modelUuids", "AddModelService", model_uuid, "ModelVO")
        self._check_system_tags(system_tags)
        service_uuid = values.pop("resourceUuid", None) or uuidlib.uuid4().hex
        self._require_fresh_uuid(service_uuid)
        wanted = values.pop("architectureImages", [])

        now = self.clock()
        tags = Tags()
        tags.merge(system_tags, user_tags)
        images = self._images([], wanted, now)
        self.services[service_uuid] = ServiceRecord(service_uuid, values, images, tags, now, now)
        return {"inventory": self.model_service_inventory(service_uuid)}

    def update_model_service(self, service_uuid: str, body: Any) -> JSON:
        params = self._wrapped(body, "updateModelService")
        rec: ServiceRecord = self._existing(self.services, service_uuid, "UpdateModelService", "ModelServiceVO")
        values = _validate("UpdateModelService", UPDATE_MODEL_SERVICE_SPEC, params)
        wanted = values.pop("architectureImages", None)

        when = self._next_op_time(rec.last_op)
        # the service* fields are stored; the inventory does not show them
        rec.fields.update(values)
        if wanted is not None:
            rec.images = self._images(rec.images, wanted, when)
        rec.last_op = when
        return {"inventory": self.model_service_inventory(service_uuid)}

    def delete_model_service(self, service_uuid: str) -> JSON:
        if self.services.pop(service_uuid, None) is not None:
            for key in [k for k in self.refs if k[1] == service_uuid]:
                del self.refs[key]
            for model in self.models.values():
                if model.default_service == service_uuid:
                    model.default_service = None
        return {}

    def query_model_services(self, conditions: Iterable[Condition] = (), start: int = 0, limit: int | None = None) -> JSON:
        conditions = list(conditions)
        inventories = [self.model_service_inventory(u) for u in _candidates(self.services, conditions)]
        return _query(inventories, MODEL_SERVICE_INVENTORY_FIELDS, conditions, start, limit)

    def query_model_centers(self, conditions: Iterable[Condition] = (), start: int = 0, limit: int | None = None) -> JSON:
        inventories = [dict(c) for c in self.model_centers.values()]
        return _query(inventories, MODEL_CENTER_INVENTORY_FIELDS, conditions, start, limit)

    def query_user_tags(self, conditions: Iterable[Condition] = (), start: int = 0, limit: int | None = None) -> JSON:
        """QueryUserTag: the user tags of models (``ModelVO``) and services (``ModelServiceVO``);
        a resource's tags go with it when it is deleted."""
        inventories: list[JSON] = []
        tables: tuple[tuple[str, Mapping[str, ModelRecord | ServiceRecord]], ...] = (
            ("ModelVO", self.models), ("ModelServiceVO", self.services))
        for resource_type, table in tables:
            for rec in table.values():
                for tag in rec.tags.user:
                    inventories.append({
                        "uuid": uuidlib.uuid5(_USER_TAG_NAMESPACE, f"{rec.uuid}/{tag}").hex,
                        "resourceUuid": rec.uuid, "resourceType": resource_type, "tag": tag, "type": "User",
                        "createDate": zstack_date(rec.created), "lastOpDate": zstack_date(rec.created),
                    })
        return _query(inventories, USER_TAG_INVENTORY_FIELDS, conditions, start, limit)

    # ---------------------------------------------------------------- jobs and admin

    def new_job(self) -> Job:
        job = Job(uuidlib.uuid4().hex)
        self.jobs[job.uuid] = job
        return job

    def run_job(self, job_uuid: str, operation: Callable[[], JSON]) -> None:
        """Apply a deferred write; its outcome is what polling the job returns."""
        job = self.jobs.get(job_uuid)
        if job is None:  # dropped by clear()
            return
        try:
            job.body = operation()
        except ZStackError as exc:
            job.state, job.status, job.body = "failed", exc.status, exc.envelope()
        except RestError as exc:
            job.state, job.status, job.body = "failed", exc.status, {"error": error_envelope(
                "SYS.1000", "An internal error happened in the system", exc.text)["error"]}
        else:
            job.state, job.status = "succeeded", 200

    def clear(self) -> None:
        """Forget every model, service, binding and job (sessions survive)."""
        self.models.clear()
        self.services.clear()
        self.refs.clear()
        self.jobs.clear()


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _field_matches(inventory: Mapping[str, Any], name: str, expected: str) -> bool:
    head, _, rest = name.partition(".")
    actual = inventory.get(head)
    items = actual if isinstance(actual, list) else [actual]
    if rest:
        return any(isinstance(item, dict) and _field_matches(item, rest, expected) for item in items)
    return any(_scalar(item) == expected for item in items)


def _candidates(records: Mapping[str, Any], conditions: list[Condition]) -> list[str]:
    """The uuids worth building an inventory for: the one a ``uuid=`` condition names (a GET by
    uuid, the common case), else all. Building every inventory per lookup made a read cost
    O(objects) and slowed the simulator, not the client, at 10,000 models."""
    named = {v for n, v in conditions if n == "uuid"}
    if len(named) == 1:
        (uuid,) = named
        return [uuid] if uuid in records else []
    return list(records)


def _query(inventories: list[JSON], fields: Iterable[str], conditions: Iterable[Condition], start: int, limit: int | None) -> JSON:
    """ZStack's query API, reduced to ``field=value`` (``a.b=value`` reaches into lists)."""
    known = set(fields)
    conditions = list(conditions)
    for name, _ in conditions:
        if name.partition(".")[0] not in known:
            raise invalid_argument(f"condition name[{name}] is invalid, no such field on the inventory")
    hits = [inv for inv in inventories if all(_field_matches(inv, n, v) for n, v in conditions)]
    hits = hits[start:]
    if limit is not None:
        hits = hits[:limit]
    return {"inventories": hits}


# --------------------------------------------------------------------------- HTTP layer


@dataclasses.dataclass
class _Scheduler:
    """Timers of pending api-jobs, so shutdown and ``clear`` can cancel them."""

    pending: dict[str, asyncio.TimerHandle] = dataclasses.field(default_factory=dict)

    def cancel_all(self) -> None:
        for handle in self.pending.values():
            handle.cancel()
        self.pending.clear()


_SCHEDULER = web.AppKey("zstack_scheduler", _Scheduler)


def _state(request: web.Request) -> ZStackState:
    state: ZStackState = request.app[STATE_KEY]
    return state


def _authenticate(request: web.Request) -> web.Response | None:
    """None when the session is good, else the refusal to send (400 text for a missing or
    non-OAuth header, 503 ID.1001 for a session that is not valid)."""
    try:
        _state(request).authenticate(request.headers.get("Authorization"))
    except ZStackError as exc:
        return _error(exc)
    except RestError as exc:
        return exc.response()
    return None


async def _read_json(request: web.Request, key: str, *, action: bool = False) -> JSON:
    """The body as RestServer reads it, before anything is sent to the API: JSON that does not
    parse is a 500 with the parser's text; a PUT without its action key is a 400 in plain text
    (its path serves several actions); a create without ``key`` binds an empty message."""
    raw = await request.read()
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        raise RestError(500, f"com.google.gson.JsonSyntaxException: {exc}") from None
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise RestError(500, f"java.lang.IllegalStateException: Expected BEGIN_OBJECT but was "
                             f"{_type_name(body).upper()} at path $")
    if action and key not in body:
        raise RestError(400, f"the body doesn't contain action mapping to the URL[{request.path}]")
    params = body.get(key)
    if params is not None and not isinstance(params, dict):
        raise RestError(500, f"java.lang.IllegalStateException: Expected BEGIN_OBJECT but was "
                             f"{_type_name(params).upper()} at path $")
    if isinstance(params, dict) and params.get("architectureImages") is not None:
        try:
            _architecture_images("architectureImages", params["architectureImages"])
        except ZStackError:
            pass  # bound fine; the API's own validation reports it
    return body


def _wants_async(request: web.Request) -> bool:
    header = request.headers.get(ASYNC_HEADER)
    if header is None:
        return _state(request).async_mode
    return header.strip().lower() in ("1", "true", "yes", "on")


def _respond(operation: Callable[[], JSON]) -> web.Response:
    try:
        return web.json_response(operation())
    except ZStackError as exc:
        return _error(exc)
    except RestError as exc:
        return exc.response()


def _write(request: web.Request, operation: Callable[[], JSON]) -> web.Response:
    """Run a write now, or as an api-job that applies it after ``job_delay``."""
    if not _wants_async(request):
        return _respond(operation)
    state = _state(request)
    scheduler = request.app[_SCHEDULER]
    job = state.new_job()

    def run() -> None:
        scheduler.pending.pop(job.uuid, None)
        state.run_job(job.uuid, operation)

    scheduler.pending[job.uuid] = asyncio.get_running_loop().call_later(state.job_delay, run)
    location = f"{request.scheme}://{request.host}{API}/api-jobs/{job.uuid}"
    return web.json_response({"location": location}, status=202)


def _conditions(request: web.Request) -> tuple[list[Condition], int, int | None]:
    conditions: list[Condition] = []
    for cond in request.query.getall("q", []):
        name, sep, value = cond.partition("=")
        name = name.strip()
        if not sep or not name:
            raise bad_request(f"Invalid query parameter. The '{cond}' in the parameter[q] is not a field=value condition")
        if name[-1] in "!<>~?":
            raise bad_request(f"the query operator in '{cond}' is not supported by the simulator; use field=value")
        conditions.append((name, value))
    start = _query_number(request, "start")
    return conditions, start or 0, _query_number(request, "limit")


def _query_number(request: web.Request, key: str) -> int | None:
    text = request.query.get(key)
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        raise bad_request(f"Invalid query parameter. '{key}' must be an integer") from None
    if number < 0:
        raise bad_request(f"Invalid query parameter. '{key}' cannot be negative")
    return number


# ---- accounts


async def login(request: web.Request) -> web.Response:
    try:
        body = await _read_json(request, "logInByAccount")
    except RestError as exc:
        return exc.response()
    return _respond(lambda: _state(request).login(body.get("logInByAccount") or {}))


async def validate_session(request: web.Request) -> web.Response:
    return web.json_response({"valid": _state(request).session_valid(request.match_info["uuid"])})


async def logout(request: web.Request) -> web.Response:
    return web.json_response(_state(request).logout(request.match_info["uuid"]))


# ---- queries


def _query_handler(method: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        if (denied := _authenticate(request)) is not None:
            return denied
        try:
            conditions, start, limit = _conditions(request)
            if "uuid" in request.match_info:
                conditions.append(("uuid", request.match_info["uuid"]))
            return web.json_response(getattr(_state(request), method)(conditions, start, limit))
        except ZStackError as exc:
            return _error(exc)

    return handler


# ---- writes


def _create_handler(method: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        if (denied := _authenticate(request)) is not None:
            return denied
        try:
            body = await _read_json(request, "param")
        except RestError as exc:
            return exc.response()
        return _write(request, lambda: getattr(_state(request), method)(body))

    return handler


def _update_handler(method: str, key: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        if (denied := _authenticate(request)) is not None:
            return denied
        try:
            body = await _read_json(request, key, action=True)
        except RestError as exc:
            return exc.response()
        resource_uuid = request.match_info["uuid"]
        return _write(request, lambda: getattr(_state(request), method)(resource_uuid, body))

    return handler


def _delete_handler(method: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        if (denied := _authenticate(request)) is not None:
            return denied
        resource_uuid = request.match_info["uuid"]
        return _write(request, lambda: getattr(_state(request), method)(resource_uuid))

    return handler


async def get_job(request: web.Request) -> web.Response:
    if (denied := _authenticate(request)) is not None:
        return denied
    job_uuid = request.match_info["uuid"]
    job = _state(request).jobs.get(job_uuid)
    if job is None:
        return web.json_response(not_found(f"api-job[uuid:{job_uuid}] is not found").envelope(), status=404)
    return web.json_response(job.body, status=job.status)


# ---- admin


async def expire_sessions(request: web.Request) -> web.Response:
    return web.json_response({"expired": _state(request).expire_sessions()})


async def set_inventory_fields(request: web.Request) -> web.Response:
    """Fill a model's inventory fields that no API sets, as the server would."""
    try:
        fields = await request.json()
    except ValueError:
        return web.json_response({"error": "the body must be a JSON object"}, status=400)
    if not isinstance(fields, dict):
        return web.json_response({"error": "the body must be a JSON object"}, status=400)
    return _respond(lambda: _state(request).set_inventory_fields(request.match_info["uuid"], fields))


async def clear(request: web.Request) -> web.Response:
    request.app[_SCHEDULER].cancel_all()
    _state(request).clear()
    return web.json_response({})


# --------------------------------------------------------------------------- module interface


def create_app(
    *,
    account: str = "admin",
    password: str = "password",
    async_mode: bool = False,
    job_delay: float = 0.2,
    session_ttl: float = 3600.0,
    faults: faultlib.Faults | None = None,
    model_center_uuid: str | None = None,
    rng_seed: int | None = None,
    clock: Callable[[], float] = time.time,
    lenient: bool = False,
    system_tag_patterns: Iterable[str] = (),
) -> web.Application:
    """The simulator as an aiohttp app: API routes, fault knobs, ``/_sim`` admin."""
    state = ZStackState(
        account=account,
        password=password,
        session_ttl=session_ttl,
        model_center_uuid=model_center_uuid,
        async_mode=async_mode,
        job_delay=job_delay,
        clock=clock,
        lenient=lenient,
        system_tag_patterns=system_tag_patterns,
    )
    app = faultlib.make_app(faults=faults or faultlib.Faults(), error_response=error_response, rng_seed=rng_seed)
    with warnings.catch_warnings():
        # "zstack" is the documented key tests use; aiohttp would rather see an AppKey.
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        app[STATE_KEY] = state
    scheduler = _Scheduler()
    app[_SCHEDULER] = scheduler

    async def cancel_jobs(_: web.Application) -> None:
        scheduler.cancel_all()

    app.on_cleanup.append(cancel_jobs)

    r = app.router
    r.add_put(f"{API}/accounts/login", login)
    r.add_get(f"{API}/accounts/sessions/{{uuid}}/valid", validate_session)
    r.add_delete(f"{API}/accounts/sessions/{{uuid}}", logout)

    r.add_get(f"{API}/ai/model-centers", _query_handler("query_model_centers"))
    r.add_get(f"{API}/ai/model-centers/{{uuid}}", _query_handler("query_model_centers"))

    r.add_post(f"{API}/ai/models", _create_handler("add_model"))
    r.add_get(f"{API}/ai/models", _query_handler("query_models"))
    r.add_get(f"{API}/ai/models/{{uuid}}", _query_handler("query_models"))
    r.add_put(f"{API}/ai/models/{{uuid}}", _update_handler("update_model", "updateModel"))
    r.add_delete(f"{API}/ai/models/{{uuid}}", _delete_handler("delete_model"))

    r.add_post(f"{API}/ai/model-services", _create_handler("add_model_service"))
    r.add_get(f"{API}/ai/model-services", _query_handler("query_model_services"))
    r.add_get(f"{API}/ai/model-services/{{uuid}}", _query_handler("query_model_services"))
    r.add_put(f"{API}/ai/model-services/{{uuid}}", _update_handler("update_model_service", "updateModelService"))
    r.add_delete(f"{API}/ai/model-services/{{uuid}}", _delete_handler("delete_model_service"))

    r.add_get(f"{API}/user-tags", _query_handler("query_user_tags"))
    r.add_get(f"{API}/user-tags/{{uuid}}", _query_handler("query_user_tags"))

    r.add_get(f"{API}/api-jobs/{{uuid}}", get_job)

    r.add_post(f"{faultlib.ADMIN_PREFIX}/zstack/expire-sessions", expire_sessions)
    r.add_post(f"{faultlib.ADMIN_PREFIX}/zstack/clear", clear)
    r.add_put(f"{faultlib.ADMIN_PREFIX}/zstack/models/{{uuid}}/inventory", set_inventory_fields)
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (ZStack's is 8080)")
    parser.add_argument("--account", default="admin", help="account name that may log in")
    parser.add_argument("--password", default="password", help="its password (clients send the SHA-512 hex digest)")
    parser.add_argument("--async", dest="async_mode", action="store_true", help="answer every write with 202 and an api-job")
    parser.add_argument("--job-delay", type=float, default=0.2, help="seconds before an async job's work is applied")
    parser.add_argument("--session-ttl", type=float, default=3600.0, help="seconds a session stays valid")
    parser.add_argument("--model-center-uuid", default=None, help="uuid of the model center (random when omitted)")
    parser.add_argument("--system-tag-pattern", dest="system_tag_patterns", action="append", default=[],
                        metavar="FORMAT", help="a system tag format this server has registered besides the "
                        "framework's (e.g. 'modelFamily::{name}'); repeatable")
    parser.add_argument("--lenient", action="store_true",
                        help="accept system tags that match no registered pattern (the faithful default "
                        "refuses them with SYS.1007)")
    faultlib.add_fault_arguments(parser)


def app_from_args(args: argparse.Namespace) -> web.Application:
    return create_app(
        account=args.account,
        password=args.password,
        async_mode=args.async_mode,
        job_delay=args.job_delay,
        session_ttl=args.session_ttl,
        faults=faultlib.faults_from_args(args),
        model_center_uuid=args.model_center_uuid,
        rng_seed=args.seed,
        lenient=args.lenient,
        system_tag_patterns=args.system_tag_patterns,
    )


def banner(app: web.Application, url: str) -> str:
    state: ZStackState = app[STATE_KEY]
    mode = f"async (writes answer 202, jobs finish after {state.job_delay:g}s)" if state.async_mode else "sync"
    return "\n".join(
        [
            f"ZStack AI model center simulator listening on {url}",
            f"  API:           {url.rstrip('/')}{API}",
            f"  account:       {state.account}",
            f"  password:      {state.password}  (log in with its SHA-512 hex digest)",
            f"  model center:  {state.model_center_uuid} ({DEFAULT_MODEL_CENTER_NAME})",
            f"  mode:          {mode}; sessions last {state.session_ttl:g}s",
        ]
    )
