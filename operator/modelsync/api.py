"""Pydantic models of the custom resources: the one source of the CRD schemas.

``modelsync.crdgen`` turns these models into the OpenAPI schemas in ``crds/``
(descriptions come from the attribute docstrings, admission rules from
``json_schema_extra``), and a unit test fails when ``crds/`` is stale. The
operator parses each resource's spec with the same models, so the apiserver and
the operator can never disagree on a field. Field names are the CRDs' camelCase
except inside backend sections that mirror a vendor's own snake_case names.

Kubernetes quantities stay strings here and are converted exactly (``Decimal``)
with the kubernetes client's own parser where a backend needs a number.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

import pydantic
from kubernetes.utils import parse_quantity
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from .vendors.mlflow.schema import MlflowModelSection, MlflowRegistrySettings

GROUP = "modelsync.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

BackendName = Literal["zstack", "nemo", "instill", "mlflow"]

#: Kubernetes' own quantity grammar (resource.Quantity).
QUANTITY_PATTERN = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
Quantity = Union[int, str]  # rendered as x-kubernetes-int-or-string with QUANTITY_PATTERN
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"  # a key of a Secret's data

#: the registries' integer ranges: Java Integer / Long (ZStack), int32 / int64 wire types
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def rules(*entries: tuple[str, ...]) -> dict[str, Any]:
    """CEL admission rules as the CRD's x-kubernetes-validations.

    Each entry is (rule, message) or (rule, message, fieldPath, reason): a fieldPath such as
    ``.credentialsSecretRef.namespace`` makes the apiserver name that field in its error, and a
    reason (FieldValueRequired, FieldValueForbidden, ...) sets the error's kind.
    """
    keys = ("rule", "message", "fieldPath", "reason")
    return {"x-kubernetes-validations": [dict(zip(keys, e)) for e in entries]}


def _utf8_at_most(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise ValueError(f"must be at most {limit} bytes in UTF-8, not {size}")
        return value
    return AfterValidator(check)


def text(max_bytes: int) -> Any:
    """Free text of at most ``max_bytes`` bytes in UTF-8, checked by pydantic and by CEL at
    admission (``maxLength`` counts characters, up to 4 bytes each, so it is the same number:
    a cheap first bound that also keeps the CEL rule's cost estimate small)."""
    return Annotated[str, Field(max_length=max_bytes, json_schema_extra=rules(
        (f"bytes(self).size() <= {max_bytes}", f"must be at most {max_bytes} bytes in UTF-8"),
    )), _utf8_at_most(max_bytes)]


#: readme, introduction and config: 256 KiB each, so one of them can never push an object near
#: the apiserver's request limit (3 MiB) or etcd's object limit (1.5 MiB)
LONG_TEXT_BYTES = 262144
LongText = text(LONG_TEXT_BYTES)
Text64K = text(65536)
#: base64 images (logos)
Image128K = text(131072)


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def quantity(value: str | int | None) -> Decimal | None:
    """A Kubernetes quantity as an exact Decimal (``16Gi`` → 17179869184)."""
    if value is None:
        return None
    return Decimal(parse_quantity(value))


def quantity_int(value: str | int | None, *, field: str, unit: int = 1, unit_name: str = "") -> int | None:
    """A quantity as a whole number of ``unit``; ValueError naming ``field`` if it is not whole."""
    q = quantity(value)
    if q is None:
        return None
    n = q / unit
    if n != n.to_integral_value():
        raise ValueError(f"{field}: {value} is not a whole number of {unit_name or unit}")
    return int(n)


# ====================================================================== registries


def _endpoint_pattern() -> str:
    """The registry endpoint grammar: http(s)://host[:port][/path], nothing else.

    host is a DNS name (its last label starts with a letter), a dotted IPv4 address or a
    bracketed IPv6 address (RFC 3986's IPv6address, no zone); port is 1-65535 without leading
    zeros; the path is printable ASCII. So no user:password@, no whitespace or control
    characters, no query without a path. Plain regex syntax that Go's RE2 (CEL at admission)
    and Python's re read alike.
    """
    octet = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    ipv4 = rf"{octet}(?:\.{octet}){{3}}"
    h16 = r"[0-9A-Fa-f]{1,4}"
    ls32 = rf"(?:{h16}:{h16}|{ipv4})"
    forms = [rf"(?:{h16}:){{6}}{ls32}"]
    for i in range(1, 9):  # RFC 3986 3.2.2: [ *(i-2)( h16 ":" ) h16 ] "::" ...
        head = "" if i == 1 else rf"(?:(?:{h16}:){{0,{i - 2}}}{h16})?"
        tail = rf"(?:{h16}:){{{6 - i}}}{ls32}" if i < 6 else {6: ls32, 7: h16, 8: ""}[i]
        forms.append(f"{head}::{tail}")
    ipv6 = "(?:" + "|".join(forms) + ")"
    label = r"[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
    dns = rf"(?:{label}\.)*[A-Za-z](?:[-A-Za-z0-9]{{0,61}}[A-Za-z0-9])?\.?"
    port = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
    return rf"^https?://(?:{dns}|{ipv4}|\[{ipv6}\])(?::{port})?(?:/[!-~]*)?$"


#: what spec.endpoint must match (see _endpoint_pattern)
ENDPOINT_PATTERN = _endpoint_pattern()
_ENDPOINT_RE = re.compile(ENDPOINT_PATTERN[1:-1])
ENDPOINT_MESSAGE = ("must be an http:// or https:// URL: a DNS name, IPv4 address or [IPv6] address, "
                    "an optional port 1-65535 and an optional path; no user:password@, spaces or control characters")


def _check_endpoint(value: str) -> str:
    if not _ENDPOINT_RE.fullmatch(value):
        raise ValueError(ENDPOINT_MESSAGE)
    return value


#: requestTimeout: a Go/CEL duration in ms, s or m with at most 6 digits before the point
_TIMEOUT_RE = re.compile(r"([0-9]{1,6}(?:\.[0-9]{1,9})?)(ms|s|m)")
TIMEOUT_MIN, TIMEOUT_MAX = "100ms", "10m"
TIMEOUT_MESSAGE = f"must be a duration between {TIMEOUT_MIN} and {TIMEOUT_MAX}, e.g. 500ms, 30s, 2m"


def duration_seconds(value: str) -> Decimal:
    """A requestTimeout (500ms, 30s, 2m) in seconds, exactly; ValueError if it is not one."""
    m = _TIMEOUT_RE.fullmatch(value)
    if not m:
        raise ValueError(TIMEOUT_MESSAGE)
    return Decimal(m.group(1)) * {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60)}[m.group(2)]


def _check_timeout(value: str) -> str:
    if not duration_seconds(TIMEOUT_MIN) <= duration_seconds(value) <= duration_seconds(TIMEOUT_MAX):
        raise ValueError(TIMEOUT_MESSAGE)
    return value


class SecretRef(_Schema):
    """A Secret holding registry credentials.

    Both registry kinds share this shape; each kind's spec says where the Secret lives
    (LocalSecretRef: the ModelRegistry's own namespace; ClusterSecretRef: a namespace it names).
    """

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    """Name of the Secret."""
    namespace: str | None = Field(default=None, pattern=DNS_LABEL, max_length=63)
    """Namespace of the Secret: required for a ClusterModelRegistry, not allowed for a ModelRegistry."""


class SecretKeyRef(SecretRef):
    """A Secret holding the CA bundle."""

    key: str = Field(default="ca.crt", pattern=SECRET_KEY, max_length=253)
    """Key in the Secret that holds the PEM CA bundle."""


class TLSSpec(_Schema):
    """How to verify the registry's TLS certificate. Verification is on unless turned off here."""

    caSecretRef: SecretKeyRef | None = None
    """A Secret holding the CA bundle (PEM) that signed the registry's certificate."""
    insecureSkipVerify: bool = False
    """Do not verify the registry's certificate. For local tests only."""


_NAMESPACE_FORBIDDEN = ("must not be set: a ModelRegistry reads its Secrets from its own namespace "
                        "(use a ClusterModelRegistry to name another namespace)")


class LocalSecretRef(SecretRef):
    """A Secret in the ModelRegistry's own namespace."""

    namespace: str | None = Field(default=None, pattern=DNS_LABEL, max_length=63)
    """Not allowed: a ModelRegistry reads its Secrets from its own namespace."""

    model_config = ConfigDict(json_schema_extra=rules(
        ("!has(self.namespace)", _NAMESPACE_FORBIDDEN, ".namespace", "FieldValueForbidden"),
    ))

    @field_validator("namespace")
    @classmethod
    def _no_namespace(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError(_NAMESPACE_FORBIDDEN)
        return None


class LocalSecretKeyRef(LocalSecretRef):
    """A Secret holding the CA bundle, in the ModelRegistry's own namespace."""

    key: str = Field(default="ca.crt", pattern=SECRET_KEY, max_length=253)
    """Key in the Secret that holds the PEM CA bundle."""


class ClusterSecretRef(SecretRef):
    """A Secret in the namespace the ClusterModelRegistry names."""

    namespace: str = Field(pattern=DNS_LABEL, max_length=63)
    """Namespace of the Secret (required: a ClusterModelRegistry has no namespace of its own)."""


class ClusterSecretKeyRef(ClusterSecretRef):
    """A Secret holding the CA bundle, in the namespace the ClusterModelRegistry names."""

    key: str = Field(default="ca.crt", pattern=SECRET_KEY, max_length=253)
    """Key in the Secret that holds the PEM CA bundle."""


class LocalTLSSpec(TLSSpec):
    """How to verify the registry's TLS certificate. Verification is on unless turned off here."""

    caSecretRef: LocalSecretKeyRef | None = None
    """A Secret in this namespace holding the CA bundle (PEM) that signed the registry's certificate."""


class ClusterTLSSpec(TLSSpec):
    """How to verify the registry's TLS certificate. Verification is on unless turned off here."""

    caSecretRef: ClusterSecretKeyRef | None = None
    """A Secret (namespace required) holding the CA bundle (PEM) that signed the registry's certificate."""


class ZStackRegistrySettings(_Schema):
    """ZStack AI model center settings."""

    modelCenterUuid: str = Field(pattern=r"^[0-9a-f]{32}$", max_length=32)
    """UUID of the model center models and services are added to (GET /zstack/v1/ai/model-centers)."""


class NemoRegistrySettings(_Schema):
    """NVIDIA NeMo Entity Store settings."""

    workspace: str = Field(default="default", pattern=r"^[\w\-.]+$", max_length=255)
    """Workspace the model entities live in."""


class InstillRegistrySettings(_Schema):
    """Instill AI settings."""

    namespace: str = Field(pattern=r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$", max_length=32)
    """Instill namespace (user or organization id) that owns the models."""


class ModelRegistrySpec(_Schema):
    """A model registry the operator publishes Models and ModelServices to.

    The fields both registry kinds share. Each kind's own spec (``SPEC_MODELS``: LocalRegistrySpec,
    ClusterRegistrySpec) adds where its Secrets live; this base accepts either form.
    """

    backend: BackendName
    """Registry type: zstack (ZStack AI model center), nemo (NVIDIA NeMo Entity Store), instill (Instill AI) or
    mlflow (MLflow Model Registry)."""
    endpoint: Annotated[str, AfterValidator(_check_endpoint)] = Field(max_length=2048, json_schema_extra=rules(
        (f"self.matches(r'{ENDPOINT_PATTERN}')", ENDPOINT_MESSAGE),
    ))
    """Base URL of the registry's API, e.g. https://zstack.example.com:8080 or http://[fd00::1]:8080
    (no trailing API path): http or https, a DNS name, IPv4 or bracketed IPv6 host, an optional
    port 1-65535 and an optional path; no user:password@, spaces or control characters."""
    credentialsSecretRef: SecretRef | None = None
    """Secret with the credentials: ZStack accountName and password; NeMo token (optional); Instill token;
    MLflow (optional) token, or username and password."""
    zstack: ZStackRegistrySettings | None = None
    """Settings for backend zstack."""
    nemo: NemoRegistrySettings | None = None
    """Settings for backend nemo."""
    instill: InstillRegistrySettings | None = None
    """Settings for backend instill."""
    mlflow: MlflowRegistrySettings | None = None
    """Settings for backend mlflow."""
    tls: TLSSpec | None = None
    """TLS verification settings for https endpoints."""
    requestTimeout: Annotated[str, AfterValidator(_check_timeout)] = Field(
        default="30s", max_length=20, json_schema_extra=rules(
            (f"self.matches(r'^{_TIMEOUT_RE.pattern}$') && duration(self) >= duration('{TIMEOUT_MIN}') "
             f"&& duration(self) <= duration('{TIMEOUT_MAX}')", TIMEOUT_MESSAGE),
        ))
    """Timeout of one request to the registry, as a duration from 100ms to 10m: 500ms, 30s, 2m."""

    model_config = ConfigDict(json_schema_extra=rules(
        ("self.backend != 'zstack' || has(self.zstack)", "spec.zstack.modelCenterUuid is required when spec.backend is zstack"),
        ("self.backend != 'instill' || has(self.instill)", "spec.instill.namespace is required when spec.backend is instill"),
        ("self.backend != 'zstack' || has(self.credentialsSecretRef)", "spec.credentialsSecretRef is required when spec.backend is zstack (accountName and password)"),
        ("self.backend != 'instill' || has(self.credentialsSecretRef)", "spec.credentialsSecretRef is required when spec.backend is instill (token)"),
    ))

    def timeout_seconds(self) -> float:
        return float(duration_seconds(self.requestTimeout))

    def backend_settings(self) -> dict[str, Any]:
        section = getattr(self, self.backend)
        return section.model_dump(exclude_none=True) if section is not None else {}


class LocalRegistrySpec(ModelRegistrySpec):
    """A model registry the operator publishes Models and ModelServices in this namespace to."""

    credentialsSecretRef: LocalSecretRef | None = None
    """Secret in this namespace with the credentials: ZStack accountName and password; NeMo token (optional);
    Instill token."""
    tls: LocalTLSSpec | None = None
    """TLS verification settings for https endpoints."""


class ClusterRegistrySpec(ModelRegistrySpec):
    """A model registry the operator publishes Models and ModelServices of every namespace to."""

    credentialsSecretRef: ClusterSecretRef | None = None
    """Secret with the credentials, namespace required: ZStack accountName and password; NeMo token (optional);
    Instill token."""
    tls: ClusterTLSSpec | None = None
    """TLS verification settings for https endpoints."""


# ====================================================================== shared pieces


class RegistryRef(_Schema):
    """A registry to publish to."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    """Name of the ModelRegistry (same namespace) or ClusterModelRegistry."""
    kind: Literal["ModelRegistry", "ClusterModelRegistry"] = "ModelRegistry"
    """Kind of the registry object."""
    externalId: str | None = Field(default=None, min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._:/-]+$")
    """Adopt this existing registry entry instead of creating one: a ZStack uuid, a NeMo
    model name, an Instill model id or an MLflow registered model name. The entry must exist; it
    is then managed (or only observed) like one ModelSync created."""


class LocalRef(_Schema):
    """A reference to an object in the same namespace."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    """Name of the object."""


class GPUSpec(_Schema):
    """What the model needs from GPUs."""

    minMemory: Quantity | None = None
    """Minimum GPU memory, a Kubernetes quantity (16Gi) below 8Ei; sent to registries as exact bytes."""
    recommendedMemory: Quantity | None = None
    """Recommended GPU memory, a Kubernetes quantity below 8Ei; at least minMemory."""
    recommendedCount: list[Annotated[int, Field(ge=1, le=1024)]] | None = Field(default=None, max_length=16)
    """Recommended numbers of GPUs, each 1 to 1024, e.g. [1, 2]."""
    constraintDescription: str | None = Field(default=None, max_length=1024)
    """Free text on GPU constraints."""
    accelerator: str | None = Field(default=None, max_length=128)
    """Required accelerator, e.g. cuda:12.1."""

    model_config = ConfigDict(json_schema_extra=rules(
        ("!has(self.minMemory) || quantity(string(self.minMemory)).isGreaterThan(quantity('0'))",
         "spec.gpu.minMemory must be greater than 0"),
        # not isInteger(): the apiserver answers false for 1.5Gi and for 19-digit numbers
        ("!has(self.minMemory) || quantity(string(self.minMemory)).isLessThan(quantity('8Ei'))",
         "spec.gpu.minMemory must be less than 8Ei (registries take the bytes as a 64-bit Long)"),
        ("!has(self.recommendedMemory) || quantity(string(self.recommendedMemory)).isLessThan(quantity('8Ei'))",
         "spec.gpu.recommendedMemory must be less than 8Ei (registries take the bytes as a 64-bit Long)"),
        ("!has(self.minMemory) || !has(self.recommendedMemory) || "
         "quantity(string(self.recommendedMemory)).compareTo(quantity(string(self.minMemory))) >= 0",
         "spec.gpu.recommendedMemory must be at least spec.gpu.minMemory"),
    ))


# ====================================================================== Model


class ZStackModelSection(_Schema):
    """What only ZStack has for a model."""

    name: str | None = Field(default=None, max_length=255)
    """Model name in ZStack; defaults to metadata.name."""
    modelId: str | None = Field(default=None, max_length=255)
    """ZStack model ID (e.g. the upstream repository id)."""
    logo: Image128K | None = None
    """Logo, base64 data; at most 128 KiB. Set on create only (UpdateModel has no logo)."""
    introduction: LongText | None = None
    """Introduction text, at most 256 KiB in UTF-8; defaults to spec.readme. Set on create only
    (UpdateModel has no introduction)."""
    size: int | None = Field(default=None, ge=0, le=INT64_MAX)
    """Model size in bytes (a Long in ZStack). Set on create only (UpdateModel has no size)."""
    shareMode: str | None = Field(default=None, max_length=64)
    """ZStack sharing mode. Set on create only (UpdateModel has no shareMode)."""
    pipelineTag: str | None = Field(default=None, max_length=128)
    """Pipeline tag; defaults to spec.task. ZStack's APIs cannot set it: never sent, listed in
    status.registries[].notSettable with the registry's own value."""
    systemTags: list[Annotated[str, Field(min_length=1, max_length=1024)]] | None = Field(
        default=None, max_length=64)
    """System tags sent verbatim with AddModel (create only), e.g. a site's own registered tags.
    ZStack refuses a create whose system tag matches no pattern registered on that server
    (SYS.1007, "no system tag matches ...")."""


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


# Instill's limits are those of model-backend v0.38.5's published JSON Schema for a create
# (config/model/model.json) and its container model definition (model_definitions.json); copies
# in operator/modelsync/simulators/specs/instill/.

#: the tasks config/model/model.json lets a create name (the proto enum also has
#: TASK_SPEECH_RECOGNITION, which that schema refuses; task cannot change after create)
InstillTask = Literal[
    "TASK_CLASSIFICATION", "TASK_DETECTION", "TASK_KEYPOINT", "TASK_OCR",
    "TASK_INSTANCE_SEGMENTATION", "TASK_SEMANTIC_SEGMENTATION", "TASK_TEXT_TO_IMAGE",
    "TASK_IMAGE_TO_IMAGE", "TASK_EMBEDDING", "TASK_CHAT",
    "TASK_COMPLETION", "TASK_CUSTOM",
]
#: hardware the schema allows in region REGION_GCP_EUROPE_WEST4 (REGION_LOCAL: CPU, GPU or any name of at most 63)
INSTILL_GCP_HARDWARE = ("CPU", "NVIDIA_TESLA_T4", "NVIDIA_L4", "NVIDIA_A100", "NVIDIA_A100_80G")
#: JSON Schema ``format: uri`` (an absolute URI: a scheme, then printable ASCII), for license and the two URLs;
#: "" too, which is never sent on create and clears the field on update
INSTILL_URI_PATTERN = r"^([A-Za-z][A-Za-z0-9+.-]*:[!-~]*)?$"
#: a profile image the server keeps: a data URL with base64 content (anything else is dropped)
INSTILL_DATA_URL_PATTERN = r"^data:[^,]*,(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_INSTILL_URI = "must be an absolute URI such as https://… (Instill validates it as JSON Schema format uri)"

#: Instill model ids: RFC-1034 as documented, and lowercase, at most 32, as deployed backends enforce
INSTILL_ID_PATTERN = r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$"

_IMMUTABLE = "cannot change after the model is created in Instill; to change it, create a new Model (new name) and delete this one"


class InstillModelSection(_Schema):
    """What only Instill AI has for a model. id, modelDefinition, configuration, task and region are immutable."""

    id: str | None = Field(default=None, pattern=INSTILL_ID_PATTERN, max_length=32)
    """Model id (lowercase RFC-1034 label, at most 32); defaults to an id derived from the resource."""
    modelDefinition: Literal["container", "model-definitions/container"] | None = None
    """Model definition used to import the model: model-definitions/container (the only one)."""
    configuration: dict[str, Any] | None = Field(default=None, json_schema_extra={"maxProperties": 0})
    """Model configuration: {} (the container model definition's configurationSchema allows no
    keys); unset sends {}."""
    task: InstillTask | None = None
    """AI task the model solves."""
    visibility: Literal["VISIBILITY_PRIVATE", "VISIBILITY_PUBLIC"] = "VISIBILITY_PRIVATE"
    """Who can see the model."""
    region: Literal["REGION_GCP_EUROPE_WEST4", "REGION_LOCAL"] | None = None
    """Region that hosts the model."""
    hardware: str | None = Field(default=None, min_length=1, max_length=63)
    """Hardware to serve the model on: in REGION_GCP_EUROPE_WEST4 one of CPU, NVIDIA_TESLA_T4,
    NVIDIA_L4, NVIDIA_A100, NVIDIA_A100_80G; in REGION_LOCAL CPU, GPU or a custom name."""
    sourceUrl: str | None = Field(default=None, max_length=63, pattern=INSTILL_URI_PATTERN)
    """Link to the model's source code: an absolute URI of at most 63 characters."""
    documentationUrl: str | None = Field(default=None, max_length=63, pattern=INSTILL_URI_PATTERN)
    """Link to extra information: an absolute URI of at most 63 characters."""
    profileImage: str | None = Field(default=None, max_length=131072, pattern=INSTILL_DATA_URL_PATTERN)
    """Profile image as a data URL (data:image/png;base64,...); at most 128 KiB."""

    model_config = ConfigDict(json_schema_extra=rules(
        ("!has(self.hardware) || !has(self.region) || self.region != 'REGION_GCP_EUROPE_WEST4' || self.hardware in ["
         + ", ".join(f"'{h}'" for h in INSTILL_GCP_HARDWARE) + "]",
         "spec.instill.hardware must be one of " + ", ".join(INSTILL_GCP_HARDWARE)
         + " in region REGION_GCP_EUROPE_WEST4", ".hardware"),
    ))

    @field_validator("configuration")
    @classmethod
    def _empty_configuration(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value:
            raise ValueError("must be empty ({}): the container model definition's configurationSchema allows no keys")
        return value

    @pydantic.model_validator(mode="after")
    def _hardware_in_region(self) -> "InstillModelSection":
        if self.region == "REGION_GCP_EUROPE_WEST4" and self.hardware is not None \
                and self.hardware not in INSTILL_GCP_HARDWARE:
            raise ValueError(f"hardware: must be one of {', '.join(INSTILL_GCP_HARDWARE)} in region {self.region}")
        return self


#: Model rules for the common fields Instill constrains, when the Model has an instill section
#: (an Instill model cannot be created without one)
INSTILL_MODEL_RULES = (
    (f"!has(self.instill) || !has(self.license) || self.license == '' || self.license.matches('{INSTILL_URI_PATTERN}')",
     f"spec.license {_INSTILL_URI} when spec.instill is set", ".license"),
    ("!has(self.instill) || !has(self.description) || self.description.size() <= 1023",
     "spec.description must be at most 1023 characters when spec.instill is set (Instill's limit)", ".description"),
)



class ModelSpec(_Schema):
    """A model to publish to one or more registries."""

    registries: list[RegistryRef] = Field(min_length=1, max_length=16)
    """Registries to publish the model to (at least one)."""
    deletionPolicy: Literal["Delete", "Orphan"] | None = None
    """What deleting this resource (or removing a registry from spec.registries) does to the
    registry entries: Delete removes them, Orphan leaves them. Unset: the operator's
    --default-deletion-policy (Delete unless set otherwise)."""
    managementPolicy: Literal["Manage", "ObserveOnly"] = "Manage"
    """Manage: create, update and (per deletionPolicy) delete the entries. ObserveOnly: only
    read them and report the inventory and any difference from the spec; never write or delete."""
    description: str | None = Field(default=None, max_length=4096)
    """Description of the model."""
    installPath: str | None = Field(default=None, max_length=2048)
    """Where the model artifacts are: install path or artifact URI (required by ZStack)."""
    vendor: str | None = Field(default=None, max_length=255)
    """Vendor or publisher of the model."""
    version: str | None = Field(default=None, max_length=128)
    """Model version."""
    parameters: Text64K | None = None
    """Detailed model parameters, free text; at most 64 KiB in UTF-8."""
    gpu: GPUSpec | None = None
    """GPU requirements."""
    architecture: str | None = Field(default=None, max_length=255)
    """Model architecture type, e.g. Qwen3MoeForCausalLM."""
    frameworkVersion: str | None = Field(default=None, max_length=255)
    """Framework version, e.g. PyTorch 2.0.1+cu118."""
    task: str | None = Field(default=None, max_length=128)
    """Task / pipeline tag, e.g. text-generation."""
    license: str | None = Field(default=None, max_length=255)
    """License the model is distributed under."""
    readme: LongText | None = None
    """README, markdown; at most 256 KiB in UTF-8 (so at most 262144 ASCII characters, fewer in other scripts)."""
    defaultServiceRef: LocalRef | None = None
    """ModelService (same namespace) to use by default with this model."""
    zstack: ZStackModelSection | None = None
    """ZStack-only fields."""
    nemo: NemoModelSection | None = None
    """NeMo-only fields."""
    instill: InstillModelSection | None = None
    """Instill-only fields."""
    mlflow: MlflowModelSection | None = None
    """MLflow-only fields."""

    model_config = ConfigDict(json_schema_extra=rules(
        ("self.registries.all(r, self.registries.exists_one(s, s.name == r.name && s.kind == r.kind))",
         "spec.registries must not name the same registry twice"),
        *INSTILL_MODEL_RULES,
    ))


# ====================================================================== ModelService


class ResourceRequests(_Schema):
    """CPU and memory the service requests."""

    cpu: Quantity | None = None
    """CPU request, a Kubernetes quantity of whole CPUs (2); ZStack takes an integer."""
    memory: Quantity | None = None
    """Memory request, a Kubernetes quantity in whole MiB (8Gi, 512Mi); ZStack takes MiB."""

    model_config = ConfigDict(json_schema_extra=rules(
        ("!has(self.cpu) || (quantity(string(self.cpu)).isInteger() && quantity(string(self.cpu)).asInteger() >= 1 "
         f"&& quantity(string(self.cpu)).asInteger() <= {INT32_MAX})",
         f"spec.resources.cpu must be a whole number of CPUs, 1 to {INT32_MAX} (ZStack requests whole CPUs, an Integer)"),
        ("!has(self.memory) || (quantity(string(self.memory)).isInteger() && quantity(string(self.memory)).asInteger() >= 1048576 "
         "&& quantity(string(self.memory)).asInteger() % 1048576 == 0)",
         "spec.resources.memory must be a whole number of MiB, at least 1Mi (ZStack takes MiB)"),
    ))


class ServiceImage(_Schema):
    """A container image for one CPU architecture."""

    cpuArchitecture: Literal["x86_64", "aarch64"]
    """CPU architecture the image is built for."""
    image: str = Field(min_length=1, max_length=1024)
    """Image reference, e.g. registry.example.com/vllm/vllm-openai:v0.6.0."""


class ZStackServiceSection(_Schema):
    """What only ZStack has for a model service."""

    name: str | None = Field(default=None, max_length=255)
    """Service name in ZStack; defaults to metadata.name."""
    type: str | None = Field(default=None, max_length=64)
    """Model service type, e.g. Endpoint."""
    source: str | None = Field(default=None, max_length=255)
    """Model service source."""
    installPath: str | None = Field(default=None, max_length=2048)
    """Service installation path."""
    serviceName: str | None = Field(default=None, max_length=255)
    """Name of the service inside its YAML configuration. AddModelService has no such field:
    sent with an UpdateModelService right after the create."""


class ModelServiceSpec(_Schema):
    """An inference service definition to publish to one or more registries."""

    registries: list[RegistryRef] = Field(min_length=1, max_length=16)
    """Registries to publish the service to (at least one)."""
    deletionPolicy: Literal["Delete", "Orphan"] | None = None
    """What deleting this resource (or removing a registry from spec.registries) does to the
    registry entries: Delete removes them, Orphan leaves them. Unset: the operator's
    --default-deletion-policy (Delete unless set otherwise)."""
    managementPolicy: Literal["Manage", "ObserveOnly"] = "Manage"
    """Manage: create, update and (per deletionPolicy) delete the entries. ObserveOnly: only
    read them and report the inventory and any difference from the spec; never write or delete."""
    description: str | None = Field(default=None, max_length=4096)
    """Description of the service."""
    readme: LongText | None = None
    """README, markdown; at most 256 KiB in UTF-8 (so at most 262144 ASCII characters, fewer in other scripts)."""
    config: LongText | None = None
    """The service's YAML configuration, as text (must parse as YAML); at most 256 KiB in UTF-8."""
    resources: ResourceRequests | None = None
    """CPU and memory requests."""
    gpuComputeCapability: str | None = Field(default=None, pattern=r"^[0-9]+\.[0-9]+$", max_length=16)
    """Minimum GPU compute capability, e.g. 8.0."""
    startCommand: str | None = Field(default=None, max_length=4096)
    """Command that starts the service."""
    framework: str | None = Field(default=None, max_length=255)
    """Serving framework, e.g. vLLM."""
    pythonVersion: str | None = Field(default=None, pattern=r"^[0-9]+(\.[0-9]+){0,2}$", max_length=32)
    """Python version, e.g. 3.10.12."""
    command: list[str] | None = None
    """Container command (entrypoint), one argument per item."""
    args: list[str] | None = None
    """Container arguments, one per item."""
    images: list[ServiceImage] | None = Field(default=None, max_length=8)
    """Container images per CPU architecture."""
    ports: list[Annotated[int, Field(ge=1, le=65535)]] | None = Field(default=None, max_length=32)
    """Ports the service listens on, each 1 to 65535."""
    livenessPath: str | None = Field(default=None, pattern=r"^/", max_length=2048)
    """HTTP path of the liveness check."""
    readinessPath: str | None = Field(default=None, pattern=r"^/", max_length=2048)
    """HTTP path of the readiness check."""
    bootupTimeSeconds: int | None = Field(default=None, ge=0, le=86400)
    """Seconds the service needs to start, 0 to 86400."""
    supportDistributed: bool | None = None
    """Whether the service can run distributed over several nodes."""
    zstack: ZStackServiceSection | None = None
    """ZStack-only fields."""

    model_config = ConfigDict(json_schema_extra=rules(
        ("!has(self.images) || self.images.all(i, self.images.exists_one(j, j.cpuArchitecture == i.cpuArchitecture))",
         "spec.images must have at most one image per cpuArchitecture"),
        ("self.registries.all(r, self.registries.exists_one(s, s.name == r.name && s.kind == r.kind))",
         "spec.registries must not name the same registry twice"),
    ))


# ====================================================================== status


class Condition(_Schema):
    """A condition in the Kubernetes convention (kubectl wait, kstatus and Argo CD read these)."""

    type: str = Field(max_length=316)
    """Ready: the registries hold the current spec. Synced: the last reconcile succeeded."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: str = Field(max_length=1024)
    """CamelCase reason, e.g. ReconcileSuccess, InvalidSpec, RegistryUnavailable, Unsupported."""
    message: str = Field(default="", max_length=32768)
    """What happened, in words."""
    observedGeneration: int | None = None
    """The metadata.generation this condition was computed for."""
    lastTransitionTime: str
    """When status last changed (RFC 3339)."""


class NotSettableField(_Schema):
    """A spec field the registry's API cannot set: not sent, never a failure; shown so a
    user who set it can see where it went."""

    field: str
    """The spec field, e.g. spec.gpu.minMemory."""
    message: str
    """Why it cannot be set, naming the registry API that lacks it."""
    registryValue: str | None = None
    """What the registry reports for it, when it reports anything (JSON for non-strings)."""


class RegistryStatus(_Schema):
    """The resource as one registry holds it."""

    name: str
    """Name of the registry object."""
    kind: str = "ModelRegistry"
    """ModelRegistry or ClusterModelRegistry."""
    backend: str | None = None
    """Backend type of the registry."""
    externalId: str | None = None
    """The registry's id for this resource (ZStack uuid, NeMo entity name, Instill model id)."""
    synced: bool = False
    """Whether the registry holds the current spec."""
    reason: str | None = None
    """CamelCase reason of the last outcome for this registry."""
    message: str | None = None
    """What happened on the last sync with this registry."""
    lastSyncTime: str | None = None
    """When the registry was last brought in sync (RFC 3339)."""
    observedGeneration: int | None = None
    """The metadata.generation last synced to this registry."""
    registryVersion: str | None = None
    """Fingerprint of the registry object and Secret this entry was computed with: a spec the
    registry rejected is tried again when the spec or this fingerprint changes."""
    inventory: dict[str, Any] | None = None
    """The registry's own record of the resource, as it returned it (texts over 1 KiB, which
    only echo the spec, are replaced by their size)."""
    adopted: bool | None = None
    """The entry was adopted (spec.registries[].externalId), not created."""
    differences: list[str] | None = None
    """Fields where the registry differs from the spec (ObserveOnly reports them; Manage corrects them)."""
    lastDrift: list[str] | None = None
    """Fields found changed in the registry behind ModelSync's back at the last drift (then set back)."""
    unobservedFields: dict[str, str] | None = None
    """Fields the registry accepted but does not show back, each with a digest of the value
    sent: not compared again (and not sent again) until that spec value changes."""
    notSettable: list[NotSettableField] | None = None
    """Spec fields that are set but that this registry's API cannot set: never sent, never a
    failure; each with why and, where the registry reports one, its own value."""


class ResourceStatus(_Schema):
    """Observed state, written by the operator."""

    observedGeneration: int | None = None
    """The metadata.generation the status describes."""
    conditions: list[Condition] | None = None
    """Ready and Synced, aggregated over the registries."""
    registries: list[RegistryStatus] | None = None
    """One entry per registry in spec.registries (and, while being removed, per registry dropped from it)."""
    driftCount: int | None = None
    """How many times a registry entry was found changed behind ModelSync's back."""
    kopf: dict[str, Any] | None = None
    """Bookkeeping of earlier versions; removed by the operator."""


class RegistryObjectStatus(_Schema):
    """Observed state of a registry object."""

    observedGeneration: int | None = None
    """The metadata.generation the status describes."""
    conditions: list[Condition] | None = None
    """Ready: the registry answered with the given credentials."""
    kopf: dict[str, Any] | None = None
    """The operator framework's progress bookkeeping (kept in status, not annotations)."""


def _instill_immutable_root_rules() -> dict[str, Any]:
    """Model root-level transition rules: Instill's immutable fields may not change once
    status records the model as created in an Instill registry. They live at the root
    because they need ``oldSelf.status``; before creation the fields stay editable, so a
    spec that Instill rejected can still be fixed."""
    created = ("has(oldSelf.status) && has(oldSelf.status.registries) && oldSelf.status.registries.exists("
               "r, has(r.backend) && r.backend == 'instill' && has(r.externalId) && r.externalId != '')")
    pairs = []
    for f in ("id", "modelDefinition", "configuration", "task", "region"):
        old = f"(has(oldSelf.spec.instill) && has(oldSelf.spec.instill.{f}))"
        new = f"(has(self.spec.instill) && has(self.spec.instill.{f}))"
        same = f"({old} == {new} && (!{new} || self.spec.instill.{f} == oldSelf.spec.instill.{f}))"
        pairs.append((f"!({created}) || {same}", f"spec.instill.{f} {_IMMUTABLE}"))
    return rules(*pairs)


#: rules at the root of a kind's schema (they may read metadata and status)
ROOT_RULES: dict[str, dict[str, Any]] = {"Model": _instill_immutable_root_rules()}


SPEC_MODELS: dict[str, type[_Schema]] = {
    "ModelRegistry": LocalRegistrySpec,
    "ClusterModelRegistry": ClusterRegistrySpec,
    "Model": ModelSpec,
    "ModelService": ModelServiceSpec,
}


def parse_spec(kind: str, spec: Any) -> Any:
    """Parse a resource's spec; :class:`pydantic.ValidationError` names the field."""
    return SPEC_MODELS[kind].model_validate(dict(spec))


def describe_validation_error(exc: pydantic.ValidationError) -> str:
    """One clause per problem, each naming the field as ``spec.a.b[0]``."""
    parts = []
    for err in exc.errors():
        loc = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
