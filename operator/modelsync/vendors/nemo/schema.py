"""The CRD sections of NVIDIA NeMo Entity Store: ``ModelRegistry.spec.nemo`` and ``Model.spec.nemo``.

Built on :mod:`modelsync.fields`; limits and types are those of NeMo's model entity schemas
(``docs/nemo.md``). :mod:`modelsync.api` places them in the specs through :data:`~modelsync.vendors.nemo.VENDOR`.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field

from ...fields import INT32_MAX, INT64_MAX, Schema as _Schema, Text64K, rules


class NemoRegistrySettings(_Schema):
    """NVIDIA NeMo Entity Store settings."""

    workspace: str = Field(default="default", pattern=r"^[\w\-.]+$", max_length=255)
    """Workspace the model entities live in."""


NemoFinetuningType = Literal[
    "lora_merged", "all_weights", "last_layer", "top_layers", "gradual_unfreezing", "bias_only",
    "attention_only", "lora", "qlora", "adalora", "dora", "lora_plus", "prompt_tuning", "prefix_tuning",
    "p_tuning", "p_tuning_v2", "soft_prompt", "ppo", "dpo", "cdpo", "ipo", "orpo", "kto", "rrhf", "grpo",
]


NemoBackendFormat = Literal["OPENAI_CHAT", "ANTHROPIC_MESSAGES"]


class NemoModelSpecSection(_Schema):
    """NeMo's model ``spec``: the API rejects it unless every required field is present. With a
    fileset, NeMo's model-spec job rewrites it from the checkpoint; the keys set here win."""

    # strict: no "32" → 32 or 1 → True; the apiserver sends typed JSON, and NeMo wants these types
    model_config = ConfigDict(strict=True)

    base_num_parameters: int = Field(ge=1, le=INT64_MAX)
    """Number of parameters of the base model."""
    ffn_hidden_size: int = Field(ge=1, le=INT32_MAX)
    """Feed-forward hidden size."""
    hidden_size: int = Field(ge=1, le=INT32_MAX)
    """Hidden size."""
    num_attention_heads: int = Field(ge=1, le=INT32_MAX)
    """Number of attention heads."""
    num_kv_heads: int = Field(ge=1, le=INT32_MAX)
    """Number of key/value heads."""
    num_layers: int = Field(ge=1, le=INT32_MAX)
    """Number of layers."""
    vocab_size: int = Field(ge=1, le=INT32_MAX)
    """Vocabulary size."""
    checkpoint_model_name: str = Field(max_length=255)
    """Model name inside the checkpoint."""
    family: str = Field(max_length=255)
    """Model family, e.g. llama."""
    precision: str = Field(max_length=64)
    """Weights precision, e.g. bf16."""
    gated_mlp: bool
    """Whether the MLP is gated."""
    tied_embeddings: bool
    """Whether input and output embeddings are tied."""
    context_size: int | None = Field(default=None, ge=1, le=INT32_MAX)
    """Maximum context size in tokens."""
    num_virtual_tokens: int | None = Field(default=None, ge=0, le=INT32_MAX)
    """Number of virtual tokens (p-tuning)."""
    minimum_gpus_all_weights: int | None = Field(default=None, ge=0, le=INT32_MAX)
    """GPUs needed to fine-tune all weights. Sent, but NeMo computes it and every read returns
    null, so it is never compared."""
    minimum_gpus_lora: int | None = Field(default=None, ge=0, le=INT32_MAX)
    """GPUs needed for LoRA fine-tuning. Sent, but NeMo computes it and every read returns null,
    so it is never compared."""
    is_chat: bool | None = None
    """Whether the model is a chat model."""
    is_embedding_model: bool | None = None
    """Whether the model produces embeddings."""
    chat_template: Text64K | None = None
    """Chat template, at most 64 KiB in UTF-8."""
    head_type: Literal["causal_lm", "embedding", "cross_encoder", "unknown"] | None = None
    """Deprecated: NeMo's model spec has no head type. Not sent; listed in
    status.registries[].notSettable when set."""


#: an absolute URL (scheme://authority[...]), as NeMo's api_endpoint.url (pydantic AnyUrl) needs;
#: plain regex syntax that RE2 (CEL at admission) and Python's re read alike
NEMO_URL_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]+([/?#]\S*)?$"


NEMO_URL_MESSAGE = "must be an absolute URL (scheme://host[:port][/path]), as NeMo's api_endpoint.url is"


def _check_nemo_url(value: str) -> str:
    if not re.fullmatch(NEMO_URL_PATTERN[1:-1], value):
        raise ValueError(NEMO_URL_MESSAGE)
    return value


class NemoApiEndpoint(_Schema):
    """Where the model is served. No API key here: a key in a custom resource is a leaked secret.
    {} empties the registry's endpoint data."""

    url: Annotated[str, AfterValidator(_check_nemo_url)] | None = Field(
        default=None, max_length=2048, json_schema_extra=rules((f"self.matches(r'{NEMO_URL_PATTERN}')",
                                                                 NEMO_URL_MESSAGE)))
    """Inference endpoint URL (absolute)."""
    model_id: str | None = Field(default=None, max_length=255)
    """Model id at that endpoint."""
    format: str | None = Field(default=None, max_length=64)
    """Wire format of the endpoint, e.g. openai or nim."""


class NemoPrompt(_Schema):
    """Prompt engineering configuration."""

    system_prompt: Text64K | None = None
    """System prompt, at most 64 KiB in UTF-8."""
    system_prompt_template: Text64K | None = None
    """System prompt template, at most 64 KiB in UTF-8."""
    icl_few_shot_examples: Text64K | None = None
    """In-context few-shot examples, at most 64 KiB in UTF-8."""
    inference_params: dict[str, Any] | None = None
    """Inference parameters (temperature, top_p, max_tokens, ...)."""


class NemoModelSection(_Schema):
    """What only NVIDIA NeMo Entity Store has for a model."""

    name: str | None = Field(default=None, pattern=r"^[\w\-.]+$", max_length=255)
    """Entity name in the workspace; defaults to a name derived from the resource."""
    fileset: str | None = Field(default=None, pattern=r"^[\w\-.]+/[\w\-.]+$", max_length=511)
    """Checkpoint files, configs and other auxiliary info: {workspace}/{fileset_name}."""
    base_model: str | None = Field(default=None, max_length=512)
    """Another model used as the base of this one."""
    finetuning_type: NemoFinetuningType | None = None
    """Set for fine-tuned models."""
    api_endpoint: NemoApiEndpoint | None = None
    """Data about the model's inference endpoint."""
    backend_format: NemoBackendFormat | None = None
    """Inference API wire format the backend expects; unset means OPENAI_CHAT."""
    prompt: NemoPrompt | None = None
    """Prompt engineering configuration."""
    custom_fields: dict[str, Any] | None = None
    """Custom metadata (keys under modelsync.io/ are reserved)."""
    ownership: dict[str, Any] | None = None
    """Ownership information."""
    model_providers: list[str] | None = None
    """ModelProvider workspace/name resource names that serve this model."""
    trust_remote_code: bool | None = None
    """Trust remote code in the checkpoint (admins or pre-approved sources only)."""
    spec: NemoModelSpecSection | None = None
    """Detailed model specification; all of its fields are required together."""
