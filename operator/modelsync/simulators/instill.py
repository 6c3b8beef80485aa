"""Instill AI model API simulator (``/v1alpha/namespaces/{ns}/models``).

Faithful to the public REST surface of Instill Core's model-backend as the
operator uses it:

* ``POST   /v1alpha/namespaces/{ns}/models`` → 201 ``{"model": {...}}``; 409 if the id exists;
* ``GET    /v1alpha/namespaces/{ns}/models`` → ``{"models", "nextPageToken", "totalSize"}``;
* ``GET    /v1alpha/namespaces/{ns}/models/{id}`` → ``{"model": {...}}``; ``configuration``
  only with ``?view=VIEW_FULL`` (the default view leaves it out, as the real server does);
* ``PATCH  /v1alpha/namespaces/{ns}/models/{id}`` → ``{"model": {...}}``; the fields in
  the body are the update mask; ``configuration``, ``modelDefinition``, ``task``,
  ``region`` or a different ``id`` → 400 (immutable);
* ``DELETE /v1alpha/namespaces/{ns}/models/{id}`` → 204.

Errors are ``{"code": <grpc code>, "message": "...", "details": [...]}`` with the
grpc-gateway status mapping. Requests need ``Authorization: Bearer <token>``
(``instill_sk_local`` unless ``--token`` says otherwise). Namespace ``local``
exists from the start; others are 404.

Validation on create: the id (RFC-1034, ≤63, and, as deployed backends
enforce, lowercase and ≤32), the required fields (``id``, ``modelDefinition``,
``configuration``, ``task``, ``visibility``, ``region``, ``hardware``), the task
and visibility enums, ``configuration`` an object, ``modelDefinition`` a known
definition (``model-definitions/container``), unknown body fields (protojson
rejects them). Output-only fields in a body are ignored.

The state is ``app["instill"]`` (:class:`InstillState`); ``POST /_sim/reset``
also empties it.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import uuid
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from .faults import Faults, add_fault_arguments, faults_from_args, make_app

DEFAULT_TOKEN = "instill_sk_local"
DEFAULT_NAMESPACE = "local"
DEFAULT_PORT = 8080

TASKS = (
    "TASK_CLASSIFICATION", "TASK_DETECTION", "TASK_KEYPOINT", "TASK_OCR",
    "TASK_INSTANCE_SEGMENTATION", "TASK_SEMANTIC_SEGMENTATION", "TASK_TEXT_TO_IMAGE",
    "TASK_IMAGE_TO_IMAGE", "TASK_EMBEDDING", "TASK_SPEECH_RECOGNITION", "TASK_CHAT",
    "TASK_COMPLETION", "TASK_CUSTOM",
)
VISIBILITIES = ("VISIBILITY_PRIVATE", "VISIBILITY_PUBLIC")
MODEL_DEFINITIONS = ("container",)

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

WRITABLE_FIELDS = (
    "id", "description", "modelDefinition", "configuration", "task", "visibility",
    "region", "hardware", "readme", "sourceUrl", "documentationUrl", "license", "profileImage",
)
OUTPUT_ONLY_FIELDS = (
    "name", "uid", "createTime", "updateTime", "deleteTime", "ownerName", "owner",
    "permission", "inputSchema", "outputSchema", "tags", "versions", "stats",
)
IMMUTABLE_FIELDS = ("modelDefinition", "configuration", "task", "region")
REQUIRED_ON_CREATE = ("id", "modelDefinition", "configuration", "task", "visibility", "region", "hardware")
STRING_FIELDS = (
    "id", "description", "modelDefinition", "task", "visibility", "region", "hardware",
    "readme", "sourceUrl", "documentationUrl", "license", "profileImage",
)

RFC1034_ID = re.compile(r"^[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
STRICT_ID = re.compile(r"^[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?$")


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


#: protojson accepts the JSON (camelCase) and the proto (snake_case) names
_ALIASES = {_snake(f): f for f in WRITABLE_FIELDS + OUTPUT_ONLY_FIELDS}
_ALIASES.update({f: f for f in WRITABLE_FIELDS + OUTPUT_ONLY_FIELDS})


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass
class InstillState:
    token: str = DEFAULT_TOKEN
    namespaces: tuple[str, ...] = (DEFAULT_NAMESPACE,)
    #: (namespace, model id) → stored model object (wire form, full view)
    models: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)

    def reset(self) -> None:
        self.models.clear()

    def get(self, namespace: str, model_id: str) -> dict[str, Any] | None:
        return self.models.get((namespace, model_id))


class ApiError(Exception):
    def __init__(self, status: int, message: str, violations: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.violations = violations or []


def error_response(status: int, message: str, details: list[Any] | None = None) -> web.Response:
    """The grpc-gateway error envelope."""
    return web.json_response(
        {"code": GRPC_CODES.get(status, 2), "message": message, "details": details or []}, status=status
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
    ns = request.match_info["namespace"]
    if ns not in _state(request).namespaces:
        raise ApiError(404, f"namespace {ns} not found")
    return ns


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "invalid JSON in the request body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a Model object")
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = _ALIASES.get(key)
        if name is None:
            raise ApiError(400, f'proto: (line 1:2): unknown field "{key}"', [(key, "unknown field")])
        if name in OUTPUT_ONLY_FIELDS:
            continue  # output-only fields are cleared by the server
        out[name] = value
    return out


def _check_types(body: dict[str, Any]) -> None:
    violations: list[tuple[str, str]] = []
    for f in STRING_FIELDS:
        if f in body and body[f] is not None and not isinstance(body[f], str):
            violations.append((f, "must be a string"))
    if "configuration" in body and not isinstance(body["configuration"], dict):
        violations.append(("configuration", "must be an object"))
    if "task" in body and isinstance(body["task"], str) and body["task"] not in TASKS:
        violations.append(("task", f"invalid value for enum type: {body['task']!r}"))
    if "visibility" in body and isinstance(body["visibility"], str) and body["visibility"] not in VISIBILITIES:
        violations.append(("visibility", f"invalid value for enum type: {body['visibility']!r}"))
    if violations:
        raise ApiError(400, "Model spec is invalid: " + "; ".join(f"{f}: {d}" for f, d in violations), violations)


def _render(model: dict[str, Any], view: str | None) -> dict[str, Any]:
    out = dict(model)
    if view != "VIEW_FULL":
        out.pop("configuration", None)
    return out


def _handler(fn: Any) -> Any:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            _authenticate(request)
            resp: web.StreamResponse = await fn(request)
            return resp
        except ApiError as exc:
            return error_response(exc.status, exc.message, _bad_request_details(exc.violations))

    return wrapped


# ---------------------------------------------------------------- handlers


async def create_model(request: web.Request) -> web.StreamResponse:
    ns = _namespace(request)
    body = await _body(request)
    problem = id_problem(body.get("id"))
    if problem:
        raise ApiError(400, problem, [("id", problem)])
    missing = [f for f in REQUIRED_ON_CREATE if body.get(f) in (None, "")]
    if missing:
        raise ApiError(
            400, "Model spec is invalid: missing required properties: " + ", ".join(missing),
            [(f, "required") for f in missing],
        )
    _check_types(body)
    state = _state(request)
    model_id = body["id"]
    if state.get(ns, model_id) is not None:
        raise ApiError(409, "Model already existed")
    definition = body["modelDefinition"].removeprefix("model-definitions/")
    if definition not in MODEL_DEFINITIONS:
        raise ApiError(400, f"model definition {definition} is not supported", [("modelDefinition", "unknown")])
    now = _now()
    model: dict[str, Any] = {
        "name": f"namespaces/{ns}/models/{model_id}",
        "uid": str(uuid.uuid4()),
        "id": model_id,
        "modelDefinition": f"model-definitions/{definition}",
        "configuration": body["configuration"],
        "task": body["task"],
        "visibility": body["visibility"],
        "createTime": now,
        "updateTime": now,
        "ownerName": f"users/{ns}",
        "owner": {"user": {"name": f"users/{ns}", "id": ns}},
        "region": body["region"],
        "hardware": body["hardware"],
        "permission": {"canEdit": True, "canTrigger": True},
        "inputSchema": {},
        "outputSchema": {},
        "tags": [],
        "versions": [],
        "stats": {"numberOfRuns": 0},
    }
    for f in ("description", "readme", "sourceUrl", "documentationUrl", "license", "profileImage"):
        if body.get(f) is not None:
            model[f] = body[f]
    state.models[(ns, model_id)] = model
    return web.json_response({"model": _render(model, "VIEW_FULL")}, status=201)


async def list_models(request: web.Request) -> web.StreamResponse:
    ns = _namespace(request)
    view = request.query.get("view")
    models = [_render(m, view) for (n, _), m in _state(request).models.items() if n == ns]
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
    return web.json_response({"model": _render(model, request.query.get("view"))})


async def update_model(request: web.Request) -> web.StreamResponse:
    ns = _namespace(request)
    model_id, model = _existing(request, ns)
    body = await _body(request)
    immutable = [f for f in IMMUTABLE_FIELDS if f in body]
    if "id" in body and body["id"] != model_id:
        immutable.insert(0, "id")
    body.pop("id", None)
    if immutable:
        raise ApiError(
            400,
            "update of immutable field(s) not allowed: " + ", ".join(f"`{f}` is immutable" for f in immutable),
            [(f, "immutable") for f in immutable],
        )
    if not body:
        raise ApiError(400, "The update_mask is invalid: no field to update")
    _check_types(body)
    if body.get("hardware") == "" or body.get("visibility") == "":
        raise ApiError(400, "Model spec is invalid: hardware and visibility cannot be empty")
    model.update(body)
    model["updateTime"] = _now()
    return web.json_response({"model": _render(model, "VIEW_FULL")})


async def delete_model(request: web.Request) -> web.StreamResponse:
    ns = _namespace(request)
    model_id, _ = _existing(request, ns)
    del _state(request).models[(ns, model_id)]
    return web.Response(status=204)


# ---------------------------------------------------------------- the module interface


def create_app(
    *,
    token: str = DEFAULT_TOKEN,
    namespaces: tuple[str, ...] | list[str] = (DEFAULT_NAMESPACE,),
    faults: Faults | None = None,
    rng_seed: int | None = None,
) -> web.Application:
    app = make_app(faults=faults or Faults(), error_response=error_response, rng_seed=rng_seed)
    state = InstillState(token=token, namespaces=tuple(namespaces))
    app["instill"] = state
    app["reset_hooks"] = [state.reset]
    base = "/v1alpha/namespaces/{namespace}/models"
    app.router.add_post(base, _handler(create_model))
    app.router.add_get(base, _handler(list_models))
    app.router.add_get(base + "/{model}", _handler(get_model))
    app.router.add_patch(base + "/{model}", _handler(update_model))
    app.router.add_delete(base + "/{model}", _handler(delete_model))
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the API token clients must send as Bearer")
    parser.add_argument(
        "--namespace", action="append", default=None,
        help=f"a namespace that exists (repeatable; default {DEFAULT_NAMESPACE})",
    )
    add_fault_arguments(parser)


def app_from_args(args: argparse.Namespace) -> web.Application:
    return create_app(
        token=args.token,
        namespaces=tuple(args.namespace or (DEFAULT_NAMESPACE,)),
        faults=faults_from_args(args),
        rng_seed=getattr(args, "seed", None),
    )


def banner(app: web.Application, url: str) -> str:
    state: InstillState = app["instill"]
    ns = state.namespaces[0]
    return "\n".join([
        f"Instill AI model API simulator on {url}",
        f"  models:    {url}/v1alpha/namespaces/{ns}/models",
        f"  namespace: {', '.join(state.namespaces)}",
        f"  token:     {state.token}  (Authorization: Bearer {state.token})",
        f"  registry:  backend: instill, endpoint: {url}, instill.namespace: {ns}, Secret key \"token\"",
        f"  admin:     {url}/_sim/requests, {url}/_sim/faults, {url}/_sim/reset",
    ])
