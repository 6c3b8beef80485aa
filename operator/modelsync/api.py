"""Pydantic models of the custom resources' specs.

The CRDs in ``crds/`` are the admission-time contract (the apiserver validates
and prunes); these models are what the operator reads. ``tests/unit/test_api_crd_sync.py``
keeps the two in step field by field. Field names are the CRDs' camelCase.

Kubernetes quantities stay strings here and are converted exactly (``Decimal``)
with the kubernetes client's own parser where a backend needs a number.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import pydantic
from kubernetes.utils import parse_quantity
from pydantic import BaseModel, ConfigDict, Field

GROUP = "modelsync.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

BackendName = Literal["zstack", "nemo", "instill"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def quantity(value: str | int | None) -> Decimal | None:
    """A Kubernetes quantity as an exact Decimal (``16Gi`` → 17179869184)."""
    if value is None:
        return None
    return Decimal(parse_quantity(value))


def quantity_int(value: str | int | None, *, field: str, unit: int = 1) -> int | None:
    """A quantity as a whole number of ``unit``; ValueError naming ``field`` if not whole."""
    q = quantity(value)
    if q is None:
        return None
    n = q / unit
    if n != n.to_integral_value():
        raise ValueError(f"{field}: {value} is not a whole number of {unit if unit != 1 else 'units'}")
    return int(n)


# ---------------------------------------------------------------- registries


class SecretKeyRef(_Spec):
    name: str
    namespace: str | None = None  # only for ClusterModelRegistry
    key: str | None = None


class SecretRef(_Spec):
    name: str
    namespace: str | None = None  # only for ClusterModelRegistry


class TLSSpec(_Spec):
    caSecretRef: SecretKeyRef | None = None
    insecureSkipVerify: bool = False


class ZStackRegistrySettings(_Spec):
    modelCenterUuid: str


class NemoRegistrySettings(_Spec):
    workspace: str = "default"


class InstillRegistrySettings(_Spec):
    namespace: str


class ModelRegistrySpec(_Spec):
    backend: BackendName
    endpoint: str
    credentialsSecretRef: SecretRef | None = None
    zstack: ZStackRegistrySettings | None = None
    nemo: NemoRegistrySettings | None = None
    instill: InstillRegistrySettings | None = None
    tls: TLSSpec | None = None
    requestTimeout: str = "30s"

    def timeout_seconds(self) -> float:
        v = self.requestTimeout
        if v.endswith("ms"):
            return float(v[:-2]) / 1000
        if v.endswith("m"):
            return float(v[:-1]) * 60
        return float(v.rstrip("s"))

    def backend_settings(self) -> dict[str, Any]:
        section = getattr(self, self.backend)
        return section.model_dump(exclude_none=True) if section is not None else {}


# ---------------------------------------------------------------- shared pieces


class RegistryRef(_Spec):
    name: str
    kind: Literal["ModelRegistry", "ClusterModelRegistry"] = "ModelRegistry"


class LocalRef(_Spec):
    name: str


class GPUSpec(_Spec):
    minMemory: str | int | None = None
    recommendedMemory: str | int | None = None
    recommendedCount: list[int] | None = None
    constraintDescription: str | None = None
    accelerator: str | None = None


# ---------------------------------------------------------------- Model


class ZStackModelSection(_Spec):
    name: str | None = None  # defaults to metadata.name
    modelId: str | None = None
    logo: str | None = None
    introduction: str | None = None
    size: int | None = None
    shareMode: str | None = None


NemoFinetuningType = Literal["lora", "lora_merged", "p_tuning", "all_weights"]
NemoBackendFormat = Literal["OPENAI_CHAT", "OPENAI_COMPLETIONS", "OPENAI_EMBEDDINGS", "NIM_RANKING"]


class NemoModelSpecSection(_Spec):
    """NeMo's ``spec`` object: all of its fields are required when it is sent."""

    num_parameters: int
    context_size: int
    num_virtual_tokens: int
    is_chat: bool


class NemoModelSection(_Spec):
    name: str | None = None  # entity name; defaults to a deterministic one
    fileset: str | None = None
    base_model: str | None = None
    finetuning_type: NemoFinetuningType | None = None
    api_endpoint: dict[str, Any] | None = None
    backend_format: NemoBackendFormat | None = None
    prompt: dict[str, Any] | None = None
    custom_fields: dict[str, Any] | None = None
    ownership: dict[str, Any] | None = None
    model_providers: list[str] | None = None
    trust_remote_code: bool | None = None
    spec: NemoModelSpecSection | None = None


InstillTask = Literal[
    "TASK_CLASSIFICATION", "TASK_DETECTION", "TASK_KEYPOINT", "TASK_OCR",
    "TASK_INSTANCE_SEGMENTATION", "TASK_SEMANTIC_SEGMENTATION", "TASK_TEXT_TO_IMAGE",
    "TASK_IMAGE_TO_IMAGE", "TASK_EMBEDDING", "TASK_SPEECH_RECOGNITION", "TASK_CHAT",
    "TASK_COMPLETION", "TASK_CUSTOM",
]


class InstillModelSection(_Spec):
    id: str | None = None  # model id; defaults to a deterministic one
    modelDefinition: str | None = None
    configuration: dict[str, Any] | None = None
    task: InstillTask | None = None
    visibility: Literal["VISIBILITY_PRIVATE", "VISIBILITY_PUBLIC"] = "VISIBILITY_PRIVATE"
    region: str | None = None
    hardware: str | None = None
    sourceUrl: str | None = None
    documentationUrl: str | None = None
    profileImage: str | None = None


class ModelSpec(_Spec):
    registries: list[RegistryRef] = Field(min_length=1)
    description: str | None = None
    installPath: str | None = None
    vendor: str | None = None
    version: str | None = None
    parameters: str | None = None
    gpu: GPUSpec | None = None
    architecture: str | None = None
    frameworkVersion: str | None = None
    task: str | None = None
    license: str | None = None
    readme: str | None = None
    defaultServiceRef: LocalRef | None = None
    zstack: ZStackModelSection | None = None
    nemo: NemoModelSection | None = None
    instill: InstillModelSection | None = None


# ---------------------------------------------------------------- ModelService


class ResourceRequests(_Spec):
    cpu: str | int | None = None
    memory: str | int | None = None


class ServiceImage(_Spec):
    cpuArchitecture: Literal["x86_64", "aarch64"]
    image: str


class ZStackServiceSection(_Spec):
    name: str | None = None
    type: str | None = None
    source: str | None = None
    installPath: str | None = None
    serviceName: str | None = None


class ModelServiceSpec(_Spec):
    registries: list[RegistryRef] = Field(min_length=1)
    description: str | None = None
    readme: str | None = None
    config: str | None = None  # the service's YAML configuration
    resources: ResourceRequests | None = None
    gpuComputeCapability: str | None = None
    startCommand: str | None = None
    framework: str | None = None
    pythonVersion: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    images: list[ServiceImage] | None = None
    ports: list[int] | None = None
    livenessPath: str | None = None
    readinessPath: str | None = None
    bootupTimeSeconds: int | None = None
    supportDistributed: bool | None = None
    zstack: ZStackServiceSection | None = None


SPEC_MODELS: dict[str, type[_Spec]] = {
    "ModelRegistry": ModelRegistrySpec,
    "ClusterModelRegistry": ModelRegistrySpec,
    "Model": ModelSpec,
    "ModelService": ModelServiceSpec,
}


def parse_spec(kind: str, spec: dict[str, Any]) -> Any:
    """Parse a resource's spec; :class:`pydantic.ValidationError` names the field."""
    return SPEC_MODELS[kind].model_validate(dict(spec))


def describe_validation_error(exc: pydantic.ValidationError) -> str:
    """One line per problem, each naming the field as ``spec.a.b[0]``."""
    parts = []
    for err in exc.errors():
        loc = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
