"""Instill AI model API simulator (``/v1alpha/namespaces/{ns}/models``), faithful to
model-backend v0.38.5 (the API generation of the seed page; protobufs @ 80d2c12).

Where the behaviour comes from (instill-ai/model-backend @ v0.38.5 unless said otherwise):

* ``POST   /v1alpha/namespaces/{ns}/models`` → 201 ``{"model": {...}}`` (``pkg/handler/public.go``
  ``CreateNamespaceModel``), in the server's order: the id (RFC-1034, 400); the body, converted
  to snake_case as ``protojson`` marshals it (proto names, unpopulated fields left out), validated
  with the published JSON Schema ``config/model/model.json`` (shipped in ``specs/instill/``,
  draft-07, ``format`` asserted: 400 "Model spec is invalid …"); the namespace (500, see below);
  an existing id (409); the model definition; ``configuration`` against the definition's
  ``configurationSchema`` (the container definition allows no keys: 400 "Model configuration is
  invalid …"). What is stored for ``configuration`` is ``{}`` (``ContainerizedModelConfiguration``
  has no fields);
* ``GET    …/models`` and ``…/models/{id}`` → the model with every field (the gateway marshals
  with ``EmitUnpopulated``); ``configuration`` is null unless ``view=VIEW_FULL``;
  ``profileImage`` always reads back as ``<host>/v1alpha/<ownerName>/models/<id>/image``
  (``pkg/service/convert.go`` ``DBToPBModel``);
* ``PATCH  …/models/{id}`` → ``{"model": {...}}`` in the basic view: the body's fields are the
  update mask, an immutable field (``id``, ``modelDefinition``, ``configuration``, ``task``,
  ``region``) with another value than stored is 400, nothing is validated against the schema;
  the row is written with gorm's ``Updates(struct)``, which skips zero values, so ``hardware: ""``
  changes nothing, while the optional strings (``description``, ``readme``, ``sourceUrl``,
  ``documentationUrl``, ``license``) are cleared by ``""``;
* ``profileImage`` (create and PATCH) is kept only when it starts with ``data:``; anything else is
  dropped without an error (``compressProfileImage``);
* ``DELETE …/models/{id}`` → 204;
* a namespace that does not exist: ``GetRscNamespace`` gets ``NAMESPACE_AVAILABLE`` from
  mgmt-backend's ``CheckNamespaceAdmin`` and returns a plain error, which the gateway answers
  with HTTP 500 ``{"code": 2, "message": "namespace error"}``;
* ``POST /v1beta/check-namespace`` ``{"id": ns}`` → ``{"type": "NAMESPACE_USER"}`` for a namespace
  that exists, ``NAMESPACE_AVAILABLE`` otherwise (mgmt-backend's public API, in the same swagger);
* request bodies are read like ``protojson`` with ``DiscardUnknown``: camelCase or snake_case
  names, unknown fields and unknown enum names ignored, ``null`` the same as absent.

Errors are ``{"code": <grpc code>, "message": "...", "details": [...]}`` with the grpc-gateway
status mapping. Requests need ``Authorization: Bearer <token>`` (``instill_sk_local`` unless
``--token`` says otherwise). Namespace ``local`` exists from the start.

``create_app(strict=False)`` (``--lenient``) skips the two JSON Schema checks; tests, the demo and
the examples use the default, faithful mode.

The state is ``app["instill"]`` (:class:`InstillState`): ``models`` holds what the server stored
(``profileImage`` as the data URL it kept); ``POST /_sim/reset`` empties it.
"""
from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import re
import string
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
from aiohttp import web

from .faults import Faults, add_fault_arguments, faults_from_args, make_app

DEFAULT_TOKEN = "instill_sk_local"
DEFAULT_NAMESPACE = "local"
DEFAULT_PORT = 8080

#: the published files (see specs/instill/README.md for their sources)
SPEC_PACKAGE = "modelsync.simulators"
MODEL_SCHEMA_FILE = "specs/instill/model-backend-v0.38.5-config-model.json"
MODEL_DEFINITIONS_FILE = "specs/instill/model-backend-v0.38.5-model_definitions.json"

#: the proto enum common.task.v1alpha.Task (names protojson accepts; the JSON Schema allows fewer)
TASKS = (
    "TASK_CLASSIFICATION", "TASK_DETECTION", "TASK_KEYPOINT", "TASK_OCR",
    "TASK_INSTANCE_SEGMENTATION", "TASK_SEMANTIC_SEGMENTATION", "TASK_TEXT_TO_IMAGE",
    "TASK_IMAGE_TO_IMAGE", "TASK_EMBEDDING", "TASK_SPEECH_RECOGNITION", "TASK_CHAT",
    "TASK_COMPLETION", "TASK_CUSTOM",
)
VISIBILITIES = ("VISIBILITY_PRIVATE", "VISIBILITY_PUBLIC")

#: grpc status code for each HTTP status grpc-gateway answers with
GRPC_CODES = {
    400: 3,   # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,   # PERMISSION_DENIED
    404: 5,   # NOT_FOUND
    409: 6,   # ALREADY_EXISTS
    412: 9,   # FAILED_PRECONDITION
    429: 8,   # RESOURCE_EXHAUSTED
    499: 1,   # CANCELLED
    500: 13,  # INTERNAL
    501: 12,  # UNIMPLEMENTED
    502: 14,  # UNAVAILABLE
    503: 14,  # UNAVAILABLE
    504: 4,   # DEADLINE_EXCEEDED
}

#: the input fields of the v1alpha Model message (JSON names)
WRITABLE_FIELDS = (
    "id", "description", "modelDefinition", "configuration", "task", "visibility",
    "region", "hardware", "readme", "sourceUrl", "documentationUrl", "license", "profileImage",
)
OUTPUT_ONLY_FIELDS = (
    "name", "uid", "createTime", "updateTime", "deleteTime", "ownerName", "owner", "creatorUid", "creator",
    "ownerUid", "permission", "inputSchema", "outputSchema", "tags", "versions", "stats",
)
IMMUTABLE_FIELDS = ("id", "modelDefinition", "configuration", "task", "region")
#: ``optional string`` in the proto: present even when "" (and then cleared on PATCH)
OPTIONAL_STRINGS = ("description", "readme", "sourceUrl", "documentationUrl", "license", "profileImage")
#: plain proto3 strings and enums: their zero value is "not set"
PLAIN_STRINGS = ("id", "modelDefinition", "region", "hardware")
ENUMS = {"task": TASKS, "visibility": VISIBILITIES}

RFC1034_ID = re.compile(r"^[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
STRICT_ID = re.compile(r"^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$")


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


#: protojson accepts the JSON (camelCase) and the proto (snake_case) names
_ALIASES = {_snake(f): f for f in WRITABLE_FIELDS + OUTPUT_ONLY_FIELDS}
_ALIASES.update({f: f for f in WRITABLE_FIELDS + OUTPUT_ONLY_FIELDS})


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------- the published schemas


def _spec_file(name: str) -> Any:
    return json.loads(resources.files(SPEC_PACKAGE).joinpath(name).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def model_schema() -> dict[str, Any]:
    """``config/model/model.json`` of model-backend v0.38.5, as published."""
    schema: dict[str, Any] = _spec_file(MODEL_SCHEMA_FILE)
    return schema


@lru_cache(maxsize=None)
def model_definitions() -> dict[str, dict[str, Any]]:
    """The seeded model definitions by id (``container``), as published."""
    return {d["id"]: d for d in _spec_file(MODEL_DEFINITIONS_FILE)}


_HEX = set(string.hexdigits)
#: what Go's url.Parse accepts in a host name (shouldEscape(c, encodeHost) is false), besides non-ASCII
_HOST_CHARS = set(string.ascii_letters + string.digits + "-_.~!$&'()*+,;=:[]<>\"%")


def _valid_optional_port(port: str) -> bool:
    """Go's ``validOptionalPort``: empty, or ``:`` and digits."""
    return port == "" or (port.startswith(":") and all(c in string.digits for c in port[1:]))


def _escapes_ok(text: str) -> bool:
    """Every ``%`` starts a two-hex-digit escape (Go's ``url.unescape``)."""
    i = 0
    while True:
        i = text.find("%", i)
        if i < 0:
            return True
        if len(text) < i + 3 or not (text[i + 1] in _HEX and text[i + 2] in _HEX):
            return False
        i += 3


def is_absolute_uri(value: object) -> bool:
    """JSON Schema ``format: uri`` as the server checks it: santhosh-tekuri/jsonschema v5's
    ``isURI``, which is Go's ``url.Parse(s)`` without error and ``u.IsAbs()`` (a scheme).

    Go's parser, as far as it decides here: no ASCII control character; a scheme is a letter
    followed by letters, digits, ``+``, ``-`` or ``.`` before the first ``:`` (``:`` first is an
    error, any other character first means "no scheme", i.e. not absolute); ``%`` escapes well
    formed outside the query; a ``//`` authority's host made of host characters or a bracketed
    IPv6 address, its port digits only."""
    if not isinstance(value, str):
        return True  # the format applies to strings only
    s = value
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in s):
        return False
    scheme_end = -1
    for i, c in enumerate(s):
        if c.isascii() and c.isalpha():
            continue
        if c.isascii() and (c.isdigit() or c in "+-."):
            if i == 0:
                return False
            continue
        if c == ":":
            if i == 0:
                return False
            scheme_end = i
        break
    if scheme_end < 0:
        return False
    rest = s[scheme_end + 1:]
    rest, _, fragment = rest.partition("#")
    rest, _, _query = rest.partition("?")
    if not _escapes_ok(fragment):
        return False
    if rest.startswith("//"):
        authority, _, path = rest[2:].partition("/")
        if not _escapes_ok(path):
            return False
        host = authority.rpartition("@")[2]
        if host.startswith("["):
            close = host.find("]")
            if close < 0 or not _valid_optional_port(host[close + 1:]):
                return False
            try:
                ipaddress.IPv6Address(host[1:close].split("%")[0])
            except ValueError:
                return False
            return True
        name, colon, port = host.rpartition(":")
        if not colon:
            name, port = host, ""
        elif not _valid_optional_port(":" + port):
            return False
        return all(ord(c) >= 0x80 or c in _HOST_CHARS for c in name) and _escapes_ok(name)
    return _escapes_ok(rest)


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("uri")(is_absolute_uri)
    return checker


@lru_cache(maxsize=None)
def model_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(model_schema(), format_checker=_format_checker())


def _detailed_output(errors: list[jsonschema.ValidationError]) -> str:
    """The shape of santhosh-tekuri/jsonschema's ``DetailedOutput()`` that the server puts in
    its message (``keywordLocation``, ``instanceLocation``, ``error`` per violation)."""
    def pointer(parts: Any) -> str:
        return "".join(f"/{p}" for p in parts)

    return json.dumps({
        "valid": False, "keywordLocation": "", "instanceLocation": "",
        "errors": [{"valid": False, "keywordLocation": pointer(e.absolute_schema_path),
                    "instanceLocation": pointer(e.absolute_path), "error": e.message} for e in errors],
    }, indent=2)


def schema_errors(validator: jsonschema.Draft7Validator, document: Any) -> list[jsonschema.ValidationError]:
    return sorted(validator.iter_errors(document), key=lambda e: (list(e.absolute_path), e.message))


def proto_json(model: dict[str, Any]) -> dict[str, Any]:
    """What ``protojson.MarshalOptions{UseProtoNames: true}`` makes of a request's Model: snake_case
    names, zero values of plain fields left out, optional strings kept when present."""
    out: dict[str, Any] = {}
    for f, v in model.items():
        if f in OUTPUT_ONLY_FIELDS:
            continue
        if f in PLAIN_STRINGS or f in ENUMS:
            if v in (None, ""):
                continue
        out[_snake(f)] = v
    return out


# ---------------------------------------------------------------- state


@dataclasses.dataclass
class InstillState:
    token: str = DEFAULT_TOKEN
    namespaces: tuple[str, ...] = (DEFAULT_NAMESPACE,)
    #: False: skip the JSON Schema checks (``--lenient``)
    strict: bool = True
    #: (namespace, model id) → stored model (wire names; ``profileImage`` as stored, not as read)
    models: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)

    def reset(self) -> None:
        self.models.clear()

    def get(self, namespace: str, model_id: str) -> dict[str, Any] | None:
        return self.models.get((namespace, model_id))


class ApiError(Exception):
    def __init__(self, status: int, message: str, violations: list[tuple[str, str]] | None = None,
                 code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.violations = violations or []
        self.code = code


def error_response(status: int, message: str, details: list[Any] | None = None,
                   code: int | None = None) -> web.Response:
    """The grpc-gateway error envelope."""
    return web.json_response(
        {"code": GRPC_CODES.get(status, 2) if code is None else code, "message": message, "details": details or []},
        status=status,
    )


def _bad_request_details(violations: list[tuple[str, str]]) -> list[dict[str, Any]]:
    if not violations:
        return []
    return [{
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": f, "description": d} for f, d in violations],
    }]


def id_problem(model_id: Any) -> str | None:
    if not isinstance(model_id, str) or not RFC1034_ID.match(model_id):
        return (
            "`id` needs to follow RFC-1034: letters, digits and hyphens, the first a letter, "
            "the last a letter or a digit, at most 63 characters"
        )
    if not STRICT_ID.match(model_id):
        return "`id` must be lowercase letters, digits and hyphens, at most 32 characters"
    return None


# ---------------------------------------------------------------- request plumbing


def _state(request: web.Request) -> InstillState:
    state: InstillState = request.app["instill"]
    return state


def _authenticate(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "Unauthorized: missing bearer token")
    if token.strip() != _state(request).token:
        raise ApiError(401, "Unauthorized: invalid API token")


def _namespace(request: web.Request) -> str:
    """``GetRscNamespace``: a namespace mgmt-backend does not know is a plain error → HTTP 500."""
    ns = request.match_info["namespace"]
    if ns not in _state(request).namespaces:
        raise ApiError(500, "namespace error", code=2)
    return ns


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise ApiError(400, "invalid JSON in the request body") from None


async def _body(request: web.Request) -> dict[str, Any]:
    """The request's Model as ``protojson`` with ``DiscardUnknown`` reads it (JSON names)."""
    body = await _json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a Model object")
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = _ALIASES.get(key)
        if name is None or value is None or name in OUTPUT_ONLY_FIELDS:
            continue  # unknown fields discarded; null is absent; output-only cleared by the handler
        if name == "configuration":
            if not isinstance(value, dict):
                raise ApiError(400, f"proto: invalid value for Struct field configuration: {json.dumps(value)}",
                               [("configuration", "must be an object")])
        elif not isinstance(value, str):
            raise ApiError(400, f"proto: invalid value for string field {_snake(name)}: {json.dumps(value)}",
                           [(name, "must be a string")])
        elif name in ENUMS and value not in ENUMS[name]:
            continue  # DiscardUnknown ignores an unknown enum name too
        out[name] = value
    return out


def _profile_image_url(request: web.Request, model: dict[str, Any]) -> str:
    return f"{request.url.origin()}/v1alpha/{model['ownerName']}/models/{model['id']}/image"


def _render(request: web.Request, model: dict[str, Any], view: str | None) -> dict[str, Any]:
    out = {k: v for k, v in model.items()}
    out["profileImage"] = _profile_image_url(request, model)
    if view != "VIEW_FULL":
        out["configuration"] = None  # the basic view's query omits the column
    return out


def _handler(fn: Any) -> Any:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            _authenticate(request)
            resp: web.StreamResponse = await fn(request)
            return resp
        except ApiError as exc:
            return error_response(exc.status, exc.message, _bad_request_details(exc.violations), exc.code)

    return wrapped


# ---------------------------------------------------------------- handlers


def _kept_profile_image(value: Any) -> str | None:
    """``compressProfileImage``: only a ``data:`` URL is kept."""
    return value if isinstance(value, str) and value.startswith("data:") else None


async def create_model(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    body = await _body(request)
    problem = id_problem(body.get("id", ""))
    if problem:
        raise ApiError(400, problem, [("id", problem)])
    if state.strict:
        errors = schema_errors(model_validator(), proto_json(body))
        if errors:
            raise ApiError(400, f"Model spec is invalid {_detailed_output(errors)}")
    ns = _namespace(request)
    model_id = body["id"]
    if state.get(ns, model_id) is not None:
        raise ApiError(409, "Model already existed")
    if "configuration" not in body:
        raise ApiError(400, "Missing Configuration")
    definition_name = str(body.get("modelDefinition", ""))
    definition_id = definition_name.removeprefix("model-definitions/")
    definition = model_definitions().get(definition_id) if definition_name.startswith("model-definitions/") else None
    if definition is None:
        raise ApiError(400, f"model definition {definition_name or '(empty)'} is not supported",
                       [("modelDefinition", "unknown")])
    if state.strict:
        config_schema = definition["modelSpec"]["configurationSchema"]
        errors = schema_errors(jsonschema.Draft7Validator(config_schema, format_checker=_format_checker()),
                               body["configuration"])
        if errors:
            raise ApiError(400, f"Model configuration is invalid {_detailed_output(errors)}")
    now = _now()
    model: dict[str, Any] = {
        "name": f"namespaces/{ns}/models/{model_id}",
        "uid": str(uuid.uuid4()),
        "id": model_id,
        "createTime": now,
        "updateTime": now,
        "deleteTime": None,
        "description": body.get("description", ""),
        "modelDefinition": f"model-definitions/{definition_id}",
        # ContainerizedModelConfiguration has no fields: whatever passed the schema is stored as {}
        "configuration": {},
        "task": body.get("task", "TASK_UNSPECIFIED"),
        "visibility": body.get("visibility", "VISIBILITY_UNSPECIFIED"),
        "ownerName": f"users/{ns}",
        "owner": {"user": {"name": f"users/{ns}", "id": ns}},
        "region": body.get("region", ""),
        "hardware": body.get("hardware", ""),
        "readme": body.get("readme", ""),
        "sourceUrl": body.get("sourceUrl", ""),
        "documentationUrl": body.get("documentationUrl", ""),
        "license": body.get("license", ""),
        "profileImage": _kept_profile_image(body.get("profileImage")),
        "permission": {"canEdit": True, "canTrigger": True},
        "inputSchema": {},
        "outputSchema": {},
        "tags": [],
        "versions": [],
        "stats": {"numberOfRuns": 0, "lastRunTime": None},
    }
    state.models[(ns, model_id)] = model
    return web.json_response({"model": _render(request, model, "VIEW_FULL")}, status=201)


async def list_models(request: web.Request) -> web.StreamResponse:
    ns = _namespace(request)
    view = request.query.get("view")
    models = [_render(request, m, view) for (n, _), m in _state(request).models.items() if n == ns]
    return web.json_response({"models": models, "nextPageToken": "", "totalSize": len(models)})


def _existing(request: web.Request, ns: str) -> tuple[str, dict[str, Any]]:
    model_id = request.match_info["model"]
    model = _state(request).get(ns, model_id)
    if model is None:
        raise ApiError(404, f"The model id {model_id} you specified is not found in namespace {ns}")
    return model_id, model


async def get_model(request: web.Request) -> web.StreamResponse:
    ns = _namespace(request)
    _, model = _existing(request, ns)
    return web.json_response({"model": _render(request, model, request.query.get("view"))})


async def update_model(request: web.Request) -> web.StreamResponse:
    ns = _namespace(request)
    model_id, model = _existing(request, ns)
    body = await _body(request)
    if not body:
        raise ApiError(400, "The update_mask is invalid")
    changed = [f for f in IMMUTABLE_FIELDS if f in body and body[f] not in ("", None)
               and body[f] != (model_id if f == "id" else model.get(f))]
    if changed:
        raise ApiError(
            400, "update of immutable field(s) not allowed: " + ", ".join(f"`{_snake(f)}` is immutable" for f in changed),
            [(f, "immutable") for f in changed],
        )
    for f, value in body.items():
        if f in IMMUTABLE_FIELDS:
            continue
        if f == "profileImage":
            kept = _kept_profile_image(value)
            if kept is not None:
                model[f] = kept
        elif f in OPTIONAL_STRINGS:
            model[f] = value
        elif value not in ("", None):  # gorm's Updates(struct) skips zero values
            model[f] = value
    model["updateTime"] = _now()
    return web.json_response({"model": _render(request, model, "VIEW_BASIC")})


async def delete_model(request: web.Request) -> web.StreamResponse:
    ns = _namespace(request)
    model_id, _ = _existing(request, ns)
    del _state(request).models[(ns, model_id)]
    return web.Response(status=204)


async def check_namespace(request: web.Request) -> web.StreamResponse:
    """mgmt-backend ``POST /v1beta/check-namespace``: who uses the id, or that it is free."""
    body = await _json(request)
    ns = body.get("id") if isinstance(body, dict) else None
    if not isinstance(ns, str) or not ns:
        raise ApiError(400, "`id` is required", [("id", "required")])
    kind = "NAMESPACE_USER" if ns in _state(request).namespaces else "NAMESPACE_AVAILABLE"
    return web.json_response({"type": kind})


# ---------------------------------------------------------------- the module interface


def create_app(
    *,
    token: str = DEFAULT_TOKEN,
    namespaces: tuple[str, ...] | list[str] = (DEFAULT_NAMESPACE,),
    faults: Faults | None = None,
    rng_seed: int | None = None,
    strict: bool = True,
) -> web.Application:
    app = make_app(faults=faults or Faults(), error_response=error_response, rng_seed=rng_seed)
    state = InstillState(token=token, namespaces=tuple(namespaces), strict=strict)
    app["instill"] = state
    app["reset_hooks"] = [state.reset]
    base = "/v1alpha/namespaces/{namespace}/models"
    app.router.add_post(base, _handler(create_model))
    app.router.add_get(base, _handler(list_models))
    app.router.add_get(base + "/{model}", _handler(get_model))
    app.router.add_patch(base + "/{model}", _handler(update_model))
    app.router.add_delete(base + "/{model}", _handler(delete_model))
    app.router.add_post("/v1beta/check-namespace", _handler(check_namespace))
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the API token clients must send as Bearer")
    parser.add_argument(
        "--namespace", action="append", default=None,
        help=f"a namespace that exists (repeatable; default {DEFAULT_NAMESPACE})",
    )
    parser.add_argument(
        "--lenient", action="store_true",
        help="skip the published JSON Schema checks of create bodies (the real server makes them)",
    )
    add_fault_arguments(parser)


def app_from_args(args: argparse.Namespace) -> web.Application:
    return create_app(
        token=args.token,
        namespaces=tuple(args.namespace or (DEFAULT_NAMESPACE,)),
        faults=faults_from_args(args),
        rng_seed=getattr(args, "seed", None),
        strict=not getattr(args, "lenient", False),
    )


def banner(app: web.Application, url: str) -> str:
    state: InstillState = app["instill"]
    ns = state.namespaces[0]
    return "\n".join([
        f"Instill AI model API simulator on {url}" + ("" if state.strict else " (lenient: no JSON Schema checks)"),
        f"  models:    {url}/v1alpha/namespaces/{ns}/models",
        f"  namespace: {', '.join(state.namespaces)}",
        f"  token:     {state.token}  (Authorization: Bearer {state.token})",
        f"  registry:  backend: instill, endpoint: {url}, instill.namespace: {ns}, Secret key \"token\"",
        f"  admin:     {url}/_sim/requests, {url}/_sim/faults, {url}/_sim/reset",
    ])
