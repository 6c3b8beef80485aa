"""A NeMo platform Models service (model entities) simulator.

It behaves like the platform's own server, ``NVIDIA-NeMo/nemo-platform`` (NVIDIA publishes no
schema file for this API, so its pydantic source is the schema; the wire models below are
transcribed from it): ``services/core/models/src/nmp/core/models/schemas.py`` @ 0562b361 (the
request and entity models), ``.../api/v2/models.py`` @ 0406d931 (the v2 router: status codes,
fileset and permission checks, the model-spec job), ``.../api/service/model_entity_service.py``
@ 211e58d6 (how PATCH applies a body, what a read nulls), ``.../api/permissions.py`` (fileset
access) and ``.../tasks/model_spec/run.py`` (the job). Endpoints::

    GET    /apis/models/v2/workspaces/{workspace}/models          list (``null`` members left out)
    POST   /apis/models/v2/workspaces/{workspace}/models          201 ModelEntity; 409 if the name exists
    GET    /apis/models/v2/workspaces/{workspace}/models/{name}   ModelEntity (``?verbose=true``: linear_layers)
    PATCH  /apis/models/v2/workspaces/{workspace}/models/{name}   every field that is not null or absent is applied
    DELETE /apis/models/v2/workspaces/{workspace}/models/{name}   204

What the real server does and this one does too:

* **PATCH applies ``model_dump(exclude_none=True)``**: a null or absent field keeps its value;
  ``""``, ``{}`` and ``[]`` are applied (an object replaces the stored one whole). Exceptions as
  in the service: an explicit ``"backend_format": null`` clears it; ``"base_model": ""`` stores
  null; ``"fileset": ""`` is a 400 ("Fileset reference is required").
* **Reads null ``spec.minimum_gpus_all_weights`` and ``spec.minimum_gpus_lora``** (stored, never
  shown), and ``spec.linear_layers`` unless ``?verbose=true`` (a create's reply is verbose).
  The spec has no ``head_type``: pydantic ignores it, like every unknown field.
* **Filesets**: a fileset named on create or update must exist in the Files service (400
  ``Fileset '<ref>' not found in workspace '<ws>'``); on update it must also hold files (400
  ``Fileset <ref>, exists but is empty``). A create with a fileset, or an update that changes
  it (or sets one on an entity without ``spec``), starts the model-spec job: it reads the
  fileset's ``config.json`` (a Hugging Face config) and replaces ``spec`` whole with what it
  infers, keeping an existing ``chat_template`` / ``tool_call_config``, and fills in the
  ``minimum_gpus_*`` estimates. Without a ``config.json`` the job fails and ``spec`` is left.
* **trust_remote_code: true** needs the ``models.trust-remote-code.set`` permission (the
  ``trust_remote_code_permission`` knob): otherwise 403 "Insufficient permissions to set the
  trust_remote_code field" -- a permission on the content, not a refused token.
* **A missing workspace**: 422 on create ("Workspace '<ws>' does not exist. Please create the
  workspace first.", the entity store's answer), 500 "Failed to list model entities" on list,
  404 "Model with workspace ... not found" on get, update and delete.

Filesets live in the Files service, as on the platform::

    POST /apis/files/v2/workspaces/{workspace}/filesets                {"name", "description"?} -> 200
    GET  /apis/files/v2/workspaces/{workspace}/filesets/{name}
    PUT  /apis/files/v2/workspaces/{workspace}/filesets/{name}/-/{path} the file's bytes -> 200

and workspaces in the entity store::

    GET  /apis/entities/v2/workspaces            a page: {"data", "pagination", ...}
    POST /apis/entities/v2/workspaces            {"name": ..., "description"?: ...} -> 201
    GET  /apis/entities/v2/workspaces/{name}     404 "Workspace '<name>' not found"

``default`` and ``system`` exist from the start; ``filesets`` (``{"ws/name": {path: content}}``)
seeds filesets. Errors use FastAPI's shapes: 422 ``{"detail": [{"type", "loc", "msg",
"input"}]}`` for a body the schema refuses, ``{"detail": "..."}`` otherwise. With ``token`` set
every API request needs ``Authorization: Bearer <token>`` (401 otherwise).

``lenient=True`` keeps the older, looser behaviour for experiments: fileset references are not
looked up, no job runs and ``trust_remote_code`` needs no permission. Tests, the demo and the
examples use the faithful default. The state is ``app["nemo"]`` (:class:`NemoState`);
``POST /_sim/reset`` empties it.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import re
import secrets
from typing import Any, Dict, List, Literal, Optional

import pydantic
from aiohttp import web
from pydantic import AnyUrl, BaseModel, Field

from ...simulators import faults as faults_mod

MODELS_PREFIX = "/apis/models/v2/workspaces"
WORKSPACES_PATH = "/apis/entities/v2/workspaces"
FILES_PREFIX = "/apis/files/v2/workspaces"
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
#: spec members every read nulls (model_entity_service._model_to_model_entity)
READ_NULLED = ("minimum_gpus_all_weights", "minimum_gpus_lora")


# ---------------------------------------------------------------- wire models (schemas.py)


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
    """The server's ModelSpec: no ``head_type`` (an unknown member is ignored, as everywhere)."""

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


class CreateFilesetRequest(BaseModel):
    name: str = Field(max_length=255, pattern=NAME_PATTERN)
    description: Optional[str] = Field(None, max_length=1000)
    metadata: Optional[Dict[str, Any]] = None


ENTITY_FIELDS = (
    "id", "name", "workspace", "project", "created_at", "updated_at", "description", "spec",
    "finetuning_type", "fileset", "trust_remote_code", "base_model", "api_endpoint", "backend_format",
    "adapters", "prompt", "custom_fields", "ownership", "model_providers",
)
#: the fields update_model_entity applies, in its order
UPDATABLE = (
    "description", "spec", "fileset", "finetuning_type", "base_model", "api_endpoint", "backend_format",
    "prompt", "custom_fields", "ownership", "model_providers", "trust_remote_code",
)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def split_ref(ref: str, default_workspace: str) -> tuple[str, str]:
    """``workspace/name`` or ``name`` (in ``default_workspace``), as parse_entity_ref reads it."""
    ws, sep, name = ref.partition("/")
    return (ws, name) if sep else (default_workspace, ref)


class NemoState:
    """Workspaces, their model entities (keyed by name), filesets and the model-spec jobs."""

    def __init__(self, token: str | None = None, workspaces: tuple[str, ...] = (), strict_names: bool = False,
                 filesets: dict[str, dict[str, Any]] | None = None, lenient: bool = False,
                 trust_remote_code_permission: bool = True, job_delay: float = 0.2) -> None:
        self.token = token
        self.strict_names = strict_names
        self.lenient = lenient
        self.trust_remote_code_permission = trust_remote_code_permission
        self.job_delay = job_delay
        self.extra_workspaces = tuple(workspaces)
        self.seed_filesets = dict(filesets or {})
        self.workspaces: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, dict[str, Any]]] = {}
        #: (workspace, name) -> {"workspace", "name", "description", "metadata", "files": {path: bytes}}
        self.filesets: dict[tuple[str, str], dict[str, Any]] = {}
        #: every model-spec job started: {"model": "ws/name", "fileset", "status": pending|completed|failed, ...}
        self.jobs: list[dict[str, Any]] = []
        self.reset()

    def reset(self) -> None:
        self.workspaces.clear()
        self.models.clear()
        self.filesets.clear()
        self.jobs.clear()
        for name in (*BUILTIN_WORKSPACES, *self.extra_workspaces):
            self.add_workspace(name)
        for ref, files in self.seed_filesets.items():
            ws, name = split_ref(ref, "default")
            self.add_fileset(ws, name, files)

    def add_workspace(self, name: str, description: str | None = None) -> dict[str, Any]:
        now = _now()
        ws = {"id": f"workspace-{secrets.token_hex(8)}", "name": name, "description": description,
              "created_at": now, "updated_at": now}
        self.workspaces.setdefault(name, ws)
        self.models.setdefault(name, {})
        return self.workspaces[name]

    def add_fileset(self, workspace: str, name: str, files: dict[str, Any] | None = None,
                    description: str | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """A fileset; ``files`` maps paths to content (bytes, text, or JSON-able data)."""
        now = _now()
        fs = self.filesets.setdefault((workspace, name), {
            "id": f"fileset-{secrets.token_hex(8)}", "workspace": workspace, "name": name,
            "description": description, "metadata": metadata, "created_at": now, "updated_at": now, "files": {}})
        for path, content in (files or {}).items():
            if not isinstance(content, (bytes, str)):
                content = json.dumps(content)
            fs["files"][path] = content.encode() if isinstance(content, str) else content
        return fs

    def pending_jobs(self) -> int:
        return sum(1 for j in self.jobs if j["status"] == "pending")


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


def _verbose(request: web.Request) -> bool:
    return request.query.get("verbose", "false").lower() in ("true", "1", "yes")


def _not_found(workspace: str, name: str) -> _HTTP:
    return _HTTP(_detail(404, f"Model with workspace '{workspace}' and name '{name}' not found"))


def _sub(model: type[BaseModel], value: Any) -> Any:
    """A stored object as the entity shows it: validated, every member present."""
    if value is None:
        return None
    return model.model_validate(value).model_dump(mode="json")


def _entity_out(entity: dict[str, Any], *, verbose: bool) -> dict[str, Any]:
    """ModelEntity as ``_model_to_model_entity`` builds it."""
    out = {k: entity.get(k) for k in ENTITY_FIELDS}
    spec = _sub(ModelSpec, entity.get("spec"))
    if spec is not None:
        for key in READ_NULLED:
            spec[key] = None
        if not verbose:
            spec["linear_layers"] = None
    out["spec"] = spec
    out["api_endpoint"] = _sub(APIEndpointData, entity.get("api_endpoint"))
    out["prompt"] = _sub(PromptData, entity.get("prompt"))
    out["custom_fields"] = entity.get("custom_fields") or {}
    out["model_providers"] = entity.get("model_providers") or []
    out["trust_remote_code"] = bool(entity.get("trust_remote_code"))
    out["adapters"] = []
    return out


def _normalize(entity: dict[str, Any]) -> None:
    """Store objects in the shape the entity has (every member present, as the entity store
    keeps the validated model), so the stored record and a read differ only in what reads null."""
    entity["spec"] = _sub(ModelSpec, entity.get("spec"))
    entity["api_endpoint"] = _sub(APIEndpointData, entity.get("api_endpoint"))
    entity["prompt"] = _sub(PromptData, entity.get("prompt"))
    entity["adapters"] = []


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


# ---------------------------------------------------------------- filesets and the model-spec job


def _fileset_or_400(state: NemoState, ref: str, workspace: str) -> dict[str, Any]:
    """check_fileset_access: the fileset must exist (a ValueError, answered 400)."""
    ws, name = split_ref(ref, workspace)
    fs = state.filesets.get((ws, name))
    if fs is None:
        raise _HTTP(_detail(400, f"Fileset '{ref}' not found in workspace '{ws}'"))
    return fs


def _fileset_with_files_or_400(state: NemoState, ref: str, workspace: str) -> dict[str, Any]:
    """get_fileset_and_files_list (update only): given, existing and not empty."""
    if not ref:
        raise _HTTP(_detail(400, "Fileset reference is required"))
    ws, name = split_ref(ref, workspace)
    fs = state.filesets.get((ws, name))
    if fs is None:
        raise _HTTP(_detail(400, f"Fileset {ref}, does not exist"))
    if not fs["files"]:
        raise _HTTP(_detail(400, f"Fileset {ref}, exists but is empty"))
    return fs


def _trust_or_403(state: NemoState, desired: bool | None) -> bool:
    """set_trust_remote_code: true only with the permission (403 otherwise)."""
    if not desired:
        return False
    if state.lenient or state.trust_remote_code_permission:
        return True
    raise _HTTP(_detail(403, "Insufficient permissions to set the trust_remote_code field"))


def infer_spec(config: dict[str, Any], checkpoint: str) -> dict[str, Any]:
    """What the model-spec job infers from a Hugging Face ``config.json`` (a stand-in for
    ``infer_model_cfg_from_hf``), with its GPU estimates (``find_minimum_gpus_from_metadata``)."""
    hidden = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    heads = int(config["num_attention_heads"])
    ffn = int(config.get("intermediate_size") or 4 * hidden)
    vocab = int(config["vocab_size"])
    tied = bool(config.get("tie_word_embeddings", False))
    params = int(config.get("num_parameters") or
                 layers * (4 * hidden * hidden + 3 * hidden * ffn) + vocab * hidden * (1 if tied else 2))
    gb = params * 2 / 1e9
    return {
        "checkpoint_model_name": checkpoint,
        "family": str(config.get("model_type") or "unknown"),
        "num_layers": layers, "hidden_size": hidden, "num_attention_heads": heads,
        "num_kv_heads": int(config.get("num_key_value_heads") or heads),
        "ffn_hidden_size": ffn, "vocab_size": vocab, "tied_embeddings": tied,
        "gated_mlp": str(config.get("hidden_act", "silu")) in ("silu", "swiglu", "geglu"),
        "base_num_parameters": params, "precision": str(config.get("torch_dtype") or "bfloat16"),
        "context_size": config.get("max_position_embeddings"),
        "is_chat": None, "is_embedding_model": False,
        "minimum_gpus_all_weights": max(1, math.ceil(gb * 8 / 80)),
        "minimum_gpus_lora": max(1, math.ceil(gb * 1.2 / 80)),
    }


def _run_job(state: NemoState, job: dict[str, Any]) -> None:
    """The model-spec job: replace ``spec`` with what the fileset's config.json says."""
    ws, name = job["model"].split("/", 1)
    entity = state.models.get(ws, {}).get(name)
    if entity is None:
        job.update(status="failed", error="model entity does not exist")
        return
    fs = state.filesets.get(split_ref(entity.get("fileset") or "", ws))
    raw = (fs or {}).get("files", {}).get("config.json")
    try:
        config = json.loads(raw) if raw else None
        spec = infer_spec(config, f"{fs['workspace']}/{fs['name']}") if isinstance(config, dict) and fs else None
    except (ValueError, KeyError, TypeError) as exc:
        job.update(status="failed", error=f"cannot read config.json: {exc}")
        return
    if spec is None:
        job.update(status="failed", error="no config.json in the fileset")
        return
    old = entity.get("spec") or {}
    for key in ("chat_template", "tool_call_config"):  # _merge_existing_spec
        if spec.get(key) is None and old.get(key):
            spec[key] = old[key]
    entity["spec"] = _sub(ModelSpec, spec)
    entity["updated_at"] = _now()
    job.update(status="completed", spec=dict(entity["spec"]))


def _start_job(request: web.Request, entity: dict[str, Any]) -> None:
    state = _state(request)
    if state.lenient:
        return
    job = {"model": f"{entity['workspace']}/{entity['name']}", "fileset": entity.get("fileset"),
           "status": "pending", "started_at": _now()}
    state.jobs.append(job)
    asyncio.get_running_loop().call_later(state.job_delay, _run_job, state, job)


# ---------------------------------------------------------------- model handlers


async def list_models(request: web.Request) -> web.Response:
    workspace = request.match_info["workspace"]
    state = _state(request)
    if workspace not in state.workspaces:
        # the entity store's 404 surfaces as the service's generic failure
        return _detail(500, "Failed to list model entities")
    models = state.models[workspace]
    try:
        page = max(1, int(request.query.get("page", "1")))
        page_size = max(1, int(request.query.get("page_size", "100")))
    except ValueError:
        return _loc_error(["query", "page"], "Input should be a valid integer", "int_parsing")
    sort = request.query.get("sort", "created_at")
    key = sort.lstrip("-")
    if key not in ("name", "created_at", "updated_at"):
        return _loc_error(["query", "sort"], "Input should be 'name', 'created_at' or 'updated_at' (optionally prefixed by '-')", "enum", sort)
    items = sorted(models.values(), key=lambda e: (e.get(key) or "", e["name"]), reverse=sort.startswith("-"))
    total = len(items)
    chunk = items[(page - 1) * page_size: page * page_size]
    verbose = _verbose(request)
    return web.json_response({  # response_model_exclude_none=True
        "data": [_without_nulls(_entity_out(e, verbose=verbose)) for e in chunk],
        "pagination": {
            "page": page, "page_size": page_size, "current_page_size": len(chunk),
            "total_pages": (total + page_size - 1) // page_size, "total_results": total,
        },
        "sort": sort,
    })


async def create_model(request: web.Request) -> web.Response:
    workspace = request.match_info["workspace"]
    state = _state(request)
    body = await _body(request)
    try:
        req = CreateModelEntityRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        return _validation_error(exc)
    if state.strict_names and not STRICT_NAME_RE.match(req.name):
        return _loc_error(
            ["body", "name"],
            "Name must start with a lowercase letter, be 2-63 characters, and use lowercase letters, digits, "
            "hyphens, and dots (no consecutive hyphens, cannot end with a hyphen).",
            "value_error", req.name)
    if req.fileset and not state.lenient:
        _fileset_or_400(state, req.fileset, workspace)
    trust = _trust_or_403(state, req.trust_remote_code)
    if workspace not in state.workspaces:
        return _detail(422, f"Workspace '{workspace}' does not exist. Please create the workspace first.")
    models = state.models[workspace]
    if req.name in models:
        return _detail(409, f"Model with workspace '{workspace}' and name '{req.name}' already exists")
    now = _now()
    data = req.model_dump(mode="json")
    entity = {k: data.get(k) for k in ("project", *UPDATABLE)}
    entity.update({
        "id": f"model-{secrets.token_hex(11)}",
        "name": req.name,
        "workspace": workspace,
        "created_at": now,
        "updated_at": now,
        "base_model": req.base_model or None,
        "custom_fields": entity.get("custom_fields") or {},
        "model_providers": entity.get("model_providers") or [],
        "trust_remote_code": trust,
    })
    _normalize(entity)
    models[req.name] = entity
    if entity["fileset"]:
        _start_job(request, entity)
    return web.json_response(_entity_out(entity, verbose=True), status=201)


def _get_entity(request: web.Request) -> dict[str, Any]:
    workspace, name = request.match_info["workspace"], request.match_info["name"]
    entity = _state(request).models.get(workspace, {}).get(name)
    if entity is None:
        raise _not_found(workspace, name)
    return entity


async def get_model(request: web.Request) -> web.Response:
    return web.json_response(_entity_out(_get_entity(request), verbose=_verbose(request)))


async def update_model(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        req = UpdateModelEntityRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        return _validation_error(exc)
    entity = _get_entity(request)
    state = _state(request)
    workspace = request.match_info["workspace"]
    trust = req.trust_remote_code
    if not state.lenient:
        if req.fileset:
            _fileset_or_400(state, req.fileset, workspace)
        if req.trust_remote_code or req.fileset:
            trust = _trust_or_403(state, req.trust_remote_code or entity.get("trust_remote_code"))
    original_fileset = entity.get("fileset")
    update = req.model_dump(mode="json", exclude_none=True)
    if trust is not None:
        update["trust_remote_code"] = trust
    if "fileset" in update and not state.lenient:
        _fileset_with_files_or_400(state, update["fileset"], workspace)
    if "backend_format" in req.model_fields_set:  # nullable by contract: an explicit null clears it
        update["backend_format"] = req.backend_format
    for key in UPDATABLE:
        if key in update:
            entity[key] = update[key]
    if "base_model" in update:
        entity["base_model"] = update["base_model"] or None
    _normalize(entity)
    entity["updated_at"] = _now()
    if entity.get("fileset") and (entity["fileset"] != original_fileset or not entity.get("spec")):
        _start_job(request, entity)
    return web.json_response(_entity_out(entity, verbose=_verbose(request)))


async def delete_model(request: web.Request) -> web.Response:
    _get_entity(request)
    del _state(request).models[request.match_info["workspace"]][request.match_info["name"]]
    return web.Response(status=204)


# ---------------------------------------------------------------- workspaces and filesets


async def list_workspaces(request: web.Request) -> web.Response:
    data = sorted(_state(request).workspaces.values(), key=lambda w: w["name"])
    return web.json_response({"data": data, "pagination": {
        "page": 1, "page_size": 100, "current_page_size": len(data), "total_pages": 1,
        "total_results": len(data)}, "sort": "-created_at", "filter": None})


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


def _fileset_out(fs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fs.items() if k != "files"}


async def create_fileset(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        req = CreateFilesetRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        return _validation_error(exc)
    state = _state(request)
    workspace = request.match_info["workspace"]
    if workspace not in state.workspaces:
        return _detail(404, f"Workspace '{workspace}' not found")
    if (workspace, req.name) in state.filesets:
        return _detail(409, f"Fileset '{workspace}/{req.name}' already exists")
    return web.json_response(_fileset_out(state.add_fileset(workspace, req.name, description=req.description,
                                                            metadata=req.metadata)))


def _fileset(request: web.Request) -> dict[str, Any]:
    workspace, name = request.match_info["workspace"], request.match_info["name"]
    fs = _state(request).filesets.get((workspace, name))
    if fs is None:
        raise _HTTP(_detail(404, f"Fileset '{workspace}/{name}' not found"))
    return fs


async def get_fileset(request: web.Request) -> web.Response:
    return web.json_response(_fileset_out(_fileset(request)))


async def put_file(request: web.Request) -> web.Response:
    fs = _fileset(request)
    path = request.match_info["path"]
    fs["files"][path] = await request.read()
    fs["updated_at"] = _now()
    return web.json_response({"path": path, "size": len(fs["files"][path])})


# ---------------------------------------------------------------- app


@web.middleware
async def _api_middleware(request: web.Request, handler: faults_mod.Handler) -> web.StreamResponse:
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
    filesets: dict[str, dict[str, Any]] | None = None,
    lenient: bool = False,
    trust_remote_code_permission: bool = True,
    job_delay: float = 0.2,
    faults: faults_mod.Faults | None = None,
    rng_seed: int | None = None,
    **_: Any,
) -> web.Application:
    """The simulator app. ``token``: require ``Authorization: Bearer <token>``;
    ``workspaces``: extra workspaces besides ``default`` and ``system``;
    ``strict_names``: enforce the newer lowercase 2–63 character name rule;
    ``filesets``: ``{"ws/name": {path: content}}`` to seed the Files service with;
    ``trust_remote_code_permission``: whether the caller holds models.trust-remote-code.set;
    ``job_delay``: seconds before a model-spec job rewrites ``spec``;
    ``lenient``: no fileset lookups, no jobs, no permission checks (not the real server)."""
    app = faults_mod.make_app(faults=faults or faults_mod.Faults(), error_response=_detail, rng_seed=rng_seed)
    app.middlewares.append(_api_middleware)
    state = NemoState(token=token, workspaces=tuple(workspaces or ()), strict_names=strict_names,
                      filesets=filesets, lenient=lenient, trust_remote_code_permission=trust_remote_code_permission,
                      job_delay=job_delay)
    app["nemo"] = state
    app.setdefault("reset_hooks", []).append(state.reset)

    models = MODELS_PREFIX + "/{workspace}/models"
    app.router.add_get(models, list_models)
    app.router.add_post(models, create_model)
    app.router.add_get(models + "/{name}", get_model)
    app.router.add_patch(models + "/{name}", update_model)
    app.router.add_delete(models + "/{name}", delete_model)
    app.router.add_get(WORKSPACES_PATH, list_workspaces)
    app.router.add_post(WORKSPACES_PATH, create_workspace)
    app.router.add_get(WORKSPACES_PATH + "/{name}", get_workspace)
    filesets_path = FILES_PREFIX + "/{workspace}/filesets"
    app.router.add_post(filesets_path, create_fileset)
    app.router.add_get(filesets_path + "/{name}", get_fileset)
    app.router.add_put(filesets_path + "/{name}/-/{path:.+}", put_file)
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' (default: no auth)")
    parser.add_argument("--workspace", action="append", default=[], metavar="NAME",
                        help="create this workspace at start-up besides default and system (repeatable)")
    parser.add_argument("--fileset", action="append", default=[], metavar="WORKSPACE/NAME",
                        help="create this fileset at start-up, holding one file (repeatable); a model may "
                             "only name a fileset that exists")
    parser.add_argument("--no-trust-remote-code-permission", action="store_true",
                        help="answer 403 to trust_remote_code: true, as for a caller without "
                             "models.trust-remote-code.set")
    parser.add_argument("--job-delay", type=float, default=0.2,
                        help="seconds before the model-spec job a fileset starts rewrites spec")
    parser.add_argument("--strict-names", action="store_true",
                        help="enforce the newer model name rule (lowercase, 2-63 characters)")
    parser.add_argument("--lenient", action="store_true",
                        help="unlike the real server: no fileset lookups, no model-spec jobs, no permission checks")
    faults_mod.add_fault_arguments(parser)


def app_from_args(args: argparse.Namespace) -> web.Application:
    return create_app(
        token=args.token,
        workspaces=tuple(args.workspace or ()),
        strict_names=bool(getattr(args, "strict_names", False)),
        filesets={ref: {"README.md": f"fileset {ref}\n"} for ref in getattr(args, "fileset", None) or ()},
        lenient=bool(getattr(args, "lenient", False)),
        trust_remote_code_permission=not getattr(args, "no_trust_remote_code_permission", False),
        job_delay=float(getattr(args, "job_delay", 0.2)),
        faults=faults_mod.faults_from_args(args),
        rng_seed=args.seed,
    )


def banner(app: web.Application, url: str) -> str:
    state: NemoState = app["nemo"]
    auth = "on (Authorization: Bearer <token>)" if state.token else "off"
    filesets = ", ".join(f"{w}/{n}" for w, n in sorted(state.filesets)) or "none"
    return "\n".join([
        f"NeMo Models service simulator listening on {url}",
        f"  models API:  {url}{MODELS_PREFIX}/<workspace>/models",
        f"  workspaces:  {', '.join(sorted(state.workspaces))} (add: POST {url}{WORKSPACES_PATH})",
        f"  filesets:    {filesets} (add: POST {url}{FILES_PREFIX}/<workspace>/filesets)",
        f"  auth:        {auth}",
        f"  mode:        {'lenient (not the real server)' if state.lenient else 'faithful'}",
        f"  registry:    backend: nemo, endpoint: {url}, nemo.workspace: default",
        f"  admin:       {url}{faults_mod.ADMIN_PREFIX}/requests, {url}{faults_mod.ADMIN_PREFIX}/faults",
    ])
