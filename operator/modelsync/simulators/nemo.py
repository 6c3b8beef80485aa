"""A NeMo platform Models service (model entities) simulator.

Endpoints (as the platform's ``/apis/models/v2`` workspace API)::

    GET    /apis/models/v2/workspaces/{workspace}/models          list: {"object", "data", "pagination", ...}
    POST   /apis/models/v2/workspaces/{workspace}/models          201 ModelEntity; 409 if the name exists
    GET    /apis/models/v2/workspaces/{workspace}/models/{name}   ModelEntity
    PATCH  /apis/models/v2/workspaces/{workspace}/models/{name}   absent/empty fields keep their value
    DELETE /apis/models/v2/workspaces/{workspace}/models/{name}   204

Workspaces live in the entity store, as on the platform::

    GET  /apis/entities/v2/workspaces            {"object": "list", "data": [...]}
    POST /apis/entities/v2/workspaces            {"name": ..., "description"?: ...} -> 201
    GET  /apis/entities/v2/workspaces/{name}

``default`` and ``system`` exist from the start. Request bodies are validated
with pydantic models mirroring the platform's (unknown fields are ignored, as
there), and errors use FastAPI's shapes: 422 ``{"detail": [{"type", "loc",
"msg", "input"}]}`` with ``loc`` like ``["body", "description"]``; other
errors ``{"detail": "..."}``. With ``token`` set every API request needs
``Authorization: Bearer <token>`` (401 otherwise). The state is
``app["nemo"]`` (:class:`NemoState`); ``POST /_sim/reset`` empties it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import secrets
from typing import Any, Dict, List, Literal, Optional

import pydantic
from aiohttp import web
from pydantic import AnyUrl, BaseModel, Field

from . import faults as faults_mod

MODELS_PREFIX = "/apis/models/v2/workspaces"
WORKSPACES_PATH = "/apis/entities/v2/workspaces"
BUILTIN_WORKSPACES = ("default", "system")

NAME_PATTERN = r"^[\w\-.]+$"
#: the naming rule of newer platform releases (``strict_names=True``)
STRICT_NAME_RE = re.compile(r"^(?!.*--)[a-z][a-z0-9.-]{0,61}[a-z0-9.]$")

FinetuningType = Literal[
    "lora_merged", "all_weights", "last_layer", "top_layers", "gradual_unfreezing", "bias_only",
    "attention_only", "lora", "qlora", "adalora", "dora", "lora_plus", "prompt_tuning", "prefix_tuning",
    "p_tuning", "p_tuning_v2", "soft_prompt", "ppo", "dpo", "cdpo", "ipo", "orpo", "kto", "rrhf", "grpo",
]
BackendFormat = Literal["OPENAI_CHAT", "ANTHROPIC_MESSAGES"]


# ---------------------------------------------------------------- wire models


class MoEConfig(BaseModel):
    num_experts: int
    num_experts_per_tok: int
    num_expert_layers: int
    expert_ffn_size: Optional[int] = None
    num_shared_experts: int = 0


class MambaConfig(BaseModel):
    is_hybrid: bool
    num_mamba_layers: int
    num_attention_layers: int = 0
    num_mlp_layers: int = 0
    state_size: int = 16
    conv_kernel: int = 4


class SlidingWindowConfig(BaseModel):
    window_size: int


class ToolCallConfig(BaseModel):
    tool_call_parser: Optional[str] = Field(None, max_length=255)
    tool_call_plugin: Optional[str] = Field(None, max_length=255)
    auto_tool_choice: Optional[bool] = None


class LinearLayerSpec(BaseModel):
    name: str
    in_features: int
    out_features: int


class ModelSpec(BaseModel):
    context_size: Optional[int] = None
    num_virtual_tokens: Optional[int] = None
    is_chat: Optional[bool] = None
    is_embedding_model: bool = False
    checkpoint_model_name: str
    family: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    ffn_hidden_size: int
    vocab_size: int
    tied_embeddings: bool
    gated_mlp: bool
    base_num_parameters: int
    precision: str
    head_type: Optional[Literal["causal_lm", "embedding", "cross_encoder", "unknown"]] = None
    moe_config: Optional[MoEConfig] = None
    mamba_config: Optional[MambaConfig] = None
    sliding_window_config: Optional[SlidingWindowConfig] = None
    linear_layers: Optional[List[LinearLayerSpec]] = None
    chat_template: Optional[str] = None
    tool_call_config: Optional[ToolCallConfig] = None
    minimum_gpus_all_weights: Optional[int] = None
    minimum_gpus_lora: Optional[int] = None


class APIEndpointData(BaseModel):
    url: Optional[AnyUrl] = None
    model_id: Optional[str] = None
    api_key: Optional[str] = None
    format: Optional[str] = None


class PromptData(BaseModel):
    system_prompt: Optional[str] = None
    icl_few_shot_examples: Optional[str] = None
    inference_params: Optional[Dict[str, Any]] = None
    system_prompt_template: Optional[str] = None


class _Fields(BaseModel):
    description: Optional[str] = Field(None, max_length=1000)
    spec: Optional[ModelSpec] = None
    finetuning_type: Optional[FinetuningType] = None
    fileset: Optional[str] = None
    base_model: Optional[str] = None
    api_endpoint: Optional[APIEndpointData] = None
    backend_format: Optional[BackendFormat] = None
    prompt: Optional[PromptData] = None
    custom_fields: Optional[Dict[str, Any]] = None
    ownership: Optional[Dict[str, Any]] = None
    model_providers: Optional[List[str]] = None


class CreateModelEntityRequest(_Fields):
    name: str = Field(max_length=255, pattern=NAME_PATTERN)
    project: Optional[str] = Field(None, max_length=255, pattern=r"^[\w\-./]+$")
    trust_remote_code: bool = False


class UpdateModelEntityRequest(_Fields):
    trust_remote_code: Optional[bool] = None


class CreateWorkspaceRequest(BaseModel):
    name: str = Field(max_length=255, pattern=NAME_PATTERN)
    description: Optional[str] = Field(None, max_length=1000)


ENTITY_FIELDS = (
    "id", "name", "workspace", "project", "created_at", "updated_at", "description", "spec",
    "finetuning_type", "fileset", "trust_remote_code", "base_model", "api_endpoint", "backend_format",
    "adapters", "prompt", "custom_fields", "ownership", "model_providers",
)
UPDATABLE = (
    "description", "spec", "fileset", "finetuning_type", "base_model", "api_endpoint", "backend_format",
    "prompt", "custom_fields", "ownership", "model_providers", "trust_remote_code",
)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


class NemoState:
    """Workspaces and their model entities, keyed by name."""

    def __init__(self, token: str | None = None, workspaces: tuple[str, ...] = (), strict_names: bool = False) -> None:
        self.token = token
        self.strict_names = strict_names
        self.extra_workspaces = tuple(workspaces)
        self.workspaces: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, dict[str, Any]]] = {}
        self.reset()

    def reset(self) -> None:
        self.workspaces.clear()
        self.models.clear()
        for name in (*BUILTIN_WORKSPACES, *self.extra_workspaces):
            self.add_workspace(name)

    def add_workspace(self, name: str, description: str | None = None) -> dict[str, Any]:
        now = _now()
        ws = {"id": f"workspace-{secrets.token_hex(8)}", "name": name, "description": description,
              "created_at": now, "updated_at": now}
        self.workspaces.setdefault(name, ws)
        self.models.setdefault(name, {})
        return self.workspaces[name]


# ---------------------------------------------------------------- responses


def _detail(status: int, message: str) -> web.Response:
    return web.json_response({"detail": message}, status=status)


def _validation_error(exc: pydantic.ValidationError) -> web.Response:
    detail = []
    for err in exc.errors(include_url=False):
        item: dict[str, Any] = {"type": err["type"], "loc": ["body", *err["loc"]], "msg": err["msg"],
                                "input": err.get("input")}
        if err.get("ctx"):
            item["ctx"] = {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v))
                           for k, v in err["ctx"].items()}
        detail.append(item)
    return web.json_response({"detail": json.loads(json.dumps(detail, default=str))}, status=422)


def _loc_error(loc: list[Any], msg: str, typ: str, value: Any = None) -> web.Response:
    return web.json_response({"detail": [{"type": typ, "loc": loc, "msg": msg, "input": value}]}, status=422)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise _HTTP(_loc_error(["body"], "Field required", "missing"))
    try:
        return json.loads(raw)
    except ValueError as exc:
        pos = getattr(exc, "pos", 0)
        raise _HTTP(_loc_error(["body", pos], "JSON decode error", "json_invalid")) from None


class _HTTP(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _state(request: web.Request) -> NemoState:
    state: NemoState = request.app["nemo"]
    return state


def _workspace(request: web.Request) -> dict[str, dict[str, Any]]:
    name = request.match_info["workspace"]
    state = _state(request)
    if name not in state.workspaces:
        raise _HTTP(_detail(404, f"Workspace '{name}' not found"))
    return state.models[name]


def _entity_out(entity: dict[str, Any]) -> dict[str, Any]:
    return {k: entity.get(k) for k in ENTITY_FIELDS}


def _dump_fields(req: BaseModel, fields: tuple[str, ...]) -> dict[str, Any]:
    data = req.model_dump(mode="json")
    return {k: data.get(k) for k in fields}


# ---------------------------------------------------------------- handlers


async def list_models(request: web.Request) -> web.Response:
    models = _workspace(request)
    try:
        page = max(1, int(request.query.get("page", "1")))
        page_size = max(1, int(request.query.get("page_size", "10")))
    except ValueError:
        return _loc_error(["query", "page"], "Input should be a valid integer", "int_parsing")
    sort = request.query.get("sort", "created_at")
    key = sort.lstrip("-")
    if key not in ("name", "created_at", "updated_at"):
        return _loc_error(["query", "sort"], "Input should be 'name', 'created_at' or 'updated_at' (optionally prefixed by '-')", "enum", sort)
    items = sorted(models.values(), key=lambda e: (e.get(key) or "", e["name"]), reverse=sort.startswith("-"))
    total = len(items)
    chunk = items[(page - 1) * page_size: page * page_size]
    return web.json_response({
        "object": "list",
        "data": [_entity_out(e) for e in chunk],
        "pagination": {
            "page": page, "page_size": page_size, "current_page_size": len(chunk),
            "total_pages": (total + page_size - 1) // page_size, "total_results": total,
        },
        "sort": sort,
        "filter": None,
    })


async def create_model(request: web.Request) -> web.Response:
    models = _workspace(request)
    workspace = request.match_info["workspace"]
    body = await _body(request)
    try:
        req = CreateModelEntityRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        return _validation_error(exc)
    if _state(request).strict_names and not STRICT_NAME_RE.match(req.name):
        return _loc_error(
            ["body", "name"],
            "Name must start with a lowercase letter, be 2-63 characters, and use lowercase letters, digits, "
            "hyphens, and dots (no consecutive hyphens, cannot end with a hyphen).",
            "value_error", req.name)
    if req.name in models:
        return _detail(409, f"Model '{workspace}/{req.name}' already exists")
    now = _now()
    entity = _dump_fields(req, ("project", *UPDATABLE))
    entity.update({
        "id": f"model-{secrets.token_hex(11)}",
        "name": req.name,
        "workspace": workspace,
        "created_at": now,
        "updated_at": now,
        "adapters": None,
        "custom_fields": entity.get("custom_fields") or {},
        "model_providers": entity.get("model_providers") or [],
    })
    models[req.name] = entity
    return web.json_response(_entity_out(entity), status=201)


def _get_entity(request: web.Request) -> dict[str, Any]:
    models = _workspace(request)
    name = request.match_info["name"]
    entity = models.get(name)
    if entity is None:
        raise _HTTP(_detail(404, f"Model '{request.match_info['workspace']}/{name}' not found"))
    return entity


async def get_model(request: web.Request) -> web.Response:
    return web.json_response(_entity_out(_get_entity(request)))


async def update_model(request: web.Request) -> web.Response:
    entity = _get_entity(request)
    body = await _body(request)
    try:
        req = UpdateModelEntityRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        return _validation_error(exc)
    changes = {k: v for k, v in _dump_fields(req, UPDATABLE).items() if not _empty(v)}
    if changes:
        entity.update(changes)
        entity["updated_at"] = _now()
    return web.json_response(_entity_out(entity))


async def delete_model(request: web.Request) -> web.Response:
    _get_entity(request)
    del _state(request).models[request.match_info["workspace"]][request.match_info["name"]]
    return web.Response(status=204)


async def list_workspaces(request: web.Request) -> web.Response:
    data = sorted(_state(request).workspaces.values(), key=lambda w: w["name"])
    return web.json_response({"object": "list", "data": data})


async def create_workspace(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        req = CreateWorkspaceRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        return _validation_error(exc)
    state = _state(request)
    if req.name in state.workspaces:
        return _detail(409, f"Workspace '{req.name}' already exists")
    return web.json_response(state.add_workspace(req.name, req.description), status=201)


async def get_workspace(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    ws = _state(request).workspaces.get(name)
    if ws is None:
        return _detail(404, f"Workspace '{name}' not found")
    return web.json_response(ws)


# ---------------------------------------------------------------- app


@web.middleware
async def _api_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Bearer auth and FastAPI-shaped errors for every API route (not ``/_sim``)."""
    if request.path.startswith(faults_mod.ADMIN_PREFIX):
        return await handler(request)
    token = _state(request).token
    if token is not None:
        auth = request.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(value.strip(), token):
            resp = _detail(401, "Not authenticated" if not auth else "Invalid authentication credentials")
            resp.headers["WWW-Authenticate"] = "Bearer"
            return resp
    try:
        return await handler(request)
    except _HTTP as exc:
        return exc.response
    except web.HTTPNotFound:
        return _detail(404, "Not Found")
    except web.HTTPMethodNotAllowed:
        return _detail(405, "Method Not Allowed")


def create_app(
    *,
    token: str | None = None,
    workspaces: tuple[str, ...] | list[str] = (),
    strict_names: bool = False,
    faults: faults_mod.Faults | None = None,
    rng_seed: int | None = None,
    **_: Any,
) -> web.Application:
    """The simulator app. ``token``: require ``Authorization: Bearer <token>``;
    ``workspaces``: extra workspaces besides ``default`` and ``system``;
    ``strict_names``: enforce the newer lowercase 2–63 character name rule."""
    app = faults_mod.make_app(faults=faults or faults_mod.Faults(), error_response=_detail, rng_seed=rng_seed)
    app.middlewares.append(_api_middleware)
    state = NemoState(token=token, workspaces=tuple(workspaces or ()), strict_names=strict_names)
    app["nemo"] = state
    app.setdefault("reset_hooks", []).append(state.reset)  # type: ignore[attr-defined]

    models = MODELS_PREFIX + "/{workspace}/models"
    app.router.add_get(models, list_models)
    app.router.add_post(models, create_model)
    app.router.add_get(models + "/{name}", get_model)
    app.router.add_patch(models + "/{name}", update_model)
    app.router.add_delete(models + "/{name}", delete_model)
    app.router.add_get(WORKSPACES_PATH, list_workspaces)
    app.router.add_post(WORKSPACES_PATH, create_workspace)
    app.router.add_get(WORKSPACES_PATH + "/{name}", get_workspace)
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' (default: no auth)")
    parser.add_argument("--workspace", action="append", default=[], metavar="NAME",
                        help="create this workspace at start-up besides default and system (repeatable)")
    parser.add_argument("--strict-names", action="store_true",
                        help="enforce the newer model name rule (lowercase, 2-63 characters)")
    faults_mod.add_fault_arguments(parser)


def app_from_args(args: argparse.Namespace) -> web.Application:
    return create_app(
        token=args.token,
        workspaces=tuple(args.workspace or ()),
        strict_names=bool(getattr(args, "strict_names", False)),
        faults=faults_mod.faults_from_args(args),
        rng_seed=args.seed,
    )


def banner(app: web.Application, url: str) -> str:
    state: NemoState = app["nemo"]
    auth = "on (Authorization: Bearer <token>)" if state.token else "off"
    return "\n".join([
        f"NeMo Models service simulator listening on {url}",
        f"  models API:  {url}{MODELS_PREFIX}/<workspace>/models",
        f"  workspaces:  {', '.join(sorted(state.workspaces))} (add: POST {url}{WORKSPACES_PATH})",
        f"  auth:        {auth}",
        f"  registry:    backend: nemo, endpoint: {url}, nemo.workspace: default",
        f"  admin:       {url}{faults_mod.ADMIN_PREFIX}/requests, {url}{faults_mod.ADMIN_PREFIX}/faults",
    ])
