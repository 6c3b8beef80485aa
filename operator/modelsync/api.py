"""Pydantic models of the custom resources: the one source of the CRD schemas.

``modelsync.crdgen`` turns these models into the OpenAPI schemas in ``crds/``
(descriptions come from the attribute docstrings, admission rules from
``json_schema_extra``), and a unit test fails when ``crds/`` is stale. The
operator parses each resource's spec with the same models, so the apiserver and
the operator can never disagree on a field. Field names are the CRDs' camelCase
except inside backend sections that mirror a vendor's own snake_case names.
The vendors' sections (``spec.<name>``) and rules come from their descriptors
(:data:`modelsync.vendors.VENDORS`).

Kubernetes quantities stay strings here and are converted exactly (``Decimal``)
with the kubernetes client's own parser where a backend needs a number.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic
from pydantic import BaseModel  # noqa: F401  (crdgen's type of a schema model)
from pydantic import AfterValidator, ConfigDict, Field, create_model, field_validator

from .fields import (  # noqa: F401  (re-exported: the schema primitives, here as before)
    DNS_LABEL, DNS_SUBDOMAIN, INT32_MAX, INT64_MAX, LONG_TEXT_BYTES, QUANTITY_PATTERN, SECRET_KEY, Image128K,
    LongText, Quantity, Text64K, _Schema, quantity, quantity_int, rules, text,
)
from .vendors import Vendor, vendors

GROUP = "modelsync.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: the registries, in the table's order (modelsync.vendors.VENDORS)
VENDORS: tuple[Vendor, ...] = vendors()

if TYPE_CHECKING:
    BackendName = str
else:  # the registries of the vendor table, as an enum in the CRD
    BackendName = Literal[tuple(v.name for v in VENDORS)]


def join_words(items: list[str], last: str = " or ") -> str:
    """a, b, c or d"""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + last + items[-1]


def _credentials(lead: str) -> str:
    return f"{lead}: " + "; ".join(v.credentials for v in VENDORS if v.credentials) + "."


def _sections(attr: str, doc: Any) -> dict[str, Any]:
    """The vendors' sections of one spec (``spec.<name>``), for ``create_model``: each optional."""
    return {v.name: (getattr(v, attr) | None, Field(default=None, description=doc(v)))
            for v in VENDORS if getattr(v, attr) is not None}


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

    caSecretRef: LocalSecretKeyRef | None = None  # type: ignore[assignment]  # narrows the base's type
    """A Secret in this namespace holding the CA bundle (PEM) that signed the registry's certificate."""


class ClusterTLSSpec(TLSSpec):
    """How to verify the registry's TLS certificate. Verification is on unless turned off here."""

    caSecretRef: ClusterSecretKeyRef | None = None  # type: ignore[assignment]  # narrows the base's type
    """A Secret (namespace required) holding the CA bundle (PEM) that signed the registry's certificate."""


class _RegistrySpecHead(_Schema):
    backend: BackendName = Field(description="Registry type: " + join_words([f"{v.name} ({v.title})" for v in VENDORS]) + ".")
    endpoint: Annotated[str, AfterValidator(_check_endpoint)] = Field(max_length=2048, json_schema_extra=rules(
        (f"self.matches(r'{ENDPOINT_PATTERN}')", ENDPOINT_MESSAGE),
    ))
    """Base URL of the registry's API, e.g. https://registry.example.com:8080 or http://[fd00::1]:8080
    (no trailing API path): http or https, a DNS name, IPv4 or bracketed IPv6 host, an optional
    port 1-65535 and an optional path; no user:password@, spaces or control characters."""
    credentialsSecretRef: SecretRef | None = Field(default=None, description=_credentials("Secret with the credentials"))


#: spec.<name>: each vendor's settings, after the fields every registry has
_RegistrySpecSettings: type[_RegistrySpecHead] = create_model(
    "_RegistrySpecSettings", __base__=_RegistrySpecHead,
    **_sections("settings", lambda v: f"Settings for backend {v.name}."))


class ModelRegistrySpec(_RegistrySpecSettings):  # type: ignore[misc,valid-type]
    """A model registry the operator publishes Models and ModelServices to.

    The fields both registry kinds share. Each kind's own spec (``SPEC_MODELS``: LocalRegistrySpec,
    ClusterRegistrySpec) adds where its Secrets live; this base accepts either form.
    """

    tls: TLSSpec | None = None
    """TLS verification settings for https endpoints."""
    requestTimeout: Annotated[str, AfterValidator(_check_timeout)] = Field(
        default="30s", max_length=20, json_schema_extra=rules(
            (f"self.matches(r'^{_TIMEOUT_RE.pattern}$') && duration(self) >= duration('{TIMEOUT_MIN}') "
             f"&& duration(self) <= duration('{TIMEOUT_MAX}')", TIMEOUT_MESSAGE),
        ))
    """Timeout of one request to the registry, as a duration from 100ms to 10m: 500ms, 30s, 2m."""

    # a vendor's settings (spec.<name>) and its credentials Secret, when the vendor needs them
    model_config = ConfigDict(json_schema_extra=rules(
        *((f"self.backend != '{v.name}' || has(self.{v.name})",
           f"spec.{v.name}.{v.settings_required} is required when spec.backend is {v.name}")
          for v in VENDORS if v.settings_required),
        *((f"self.backend != '{v.name}' || has(self.credentialsSecretRef)",
           f"spec.credentialsSecretRef is required when spec.backend is {v.name} ({v.credentials_required})")
          for v in VENDORS if v.credentials_required),
    ))

    def timeout_seconds(self) -> float:
        return float(duration_seconds(self.requestTimeout))

    def backend_settings(self) -> dict[str, Any]:
        section = getattr(self, self.backend)
        return section.model_dump(exclude_none=True) if section is not None else {}


class LocalRegistrySpec(ModelRegistrySpec):
    """A model registry the operator publishes Models and ModelServices in this namespace to."""

    credentialsSecretRef: LocalSecretRef | None = Field(
        default=None, description=_credentials("Secret in this namespace with the credentials"))
    tls: LocalTLSSpec | None = None
    """TLS verification settings for https endpoints."""


class ClusterRegistrySpec(ModelRegistrySpec):
    """A model registry the operator publishes Models and ModelServices of every namespace to."""

    credentialsSecretRef: ClusterSecretRef | None = Field(
        default=None, description=_credentials("Secret with the credentials, namespace required"))
    tls: ClusterTLSSpec | None = None
    """TLS verification settings for https endpoints."""


# ====================================================================== shared pieces


class RegistryRef(_Schema):
    """A registry to publish to."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    """Name of the ModelRegistry (same namespace) or ClusterModelRegistry."""
    kind: Literal["ModelRegistry", "ClusterModelRegistry"] = "ModelRegistry"
    """Kind of the registry object."""
    externalId: str | None = Field(
        default=None, min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._:/-]+$",
        description="Adopt this existing registry entry instead of creating one: "
        + join_words([v.external_id for v in VENDORS if v.external_id])
        + ". The entry must exist; it is then managed (or only observed) like one ModelSync created.")


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



class _ModelSpecCommon(_Schema):
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
    """Where the model artifacts are: install path or artifact URI (some registries require it)."""
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


class ModelSpec(create_model(  # type: ignore[misc]
        "_ModelSpecSections", __base__=_ModelSpecCommon, **_sections("model_section", lambda v: f"{v.short}-only fields."))):
    """A model to publish to one or more registries."""

    model_config = ConfigDict(json_schema_extra=rules(
        ("self.registries.all(r, self.registries.exists_one(s, s.name == r.name && s.kind == r.kind))",
         "spec.registries must not name the same registry twice"),
        *(rule for v in VENDORS for rule in v.model_rules),
    ))


# ====================================================================== ModelService


class ResourceRequests(_Schema):
    """CPU and memory the service requests."""

    cpu: Quantity | None = None
    """CPU request, a Kubernetes quantity of whole CPUs (2); registries take an integer."""
    memory: Quantity | None = None
    """Memory request, a Kubernetes quantity in whole MiB (8Gi, 512Mi); registries take MiB."""

    model_config = ConfigDict(json_schema_extra=rules(
        ("!has(self.cpu) || (quantity(string(self.cpu)).isInteger() && quantity(string(self.cpu)).asInteger() >= 1 "
         f"&& quantity(string(self.cpu)).asInteger() <= {INT32_MAX})",
         f"spec.resources.cpu must be a whole number of CPUs, 1 to {INT32_MAX} (registries request whole CPUs, a 32-bit Integer)"),
        ("!has(self.memory) || (quantity(string(self.memory)).isInteger() && quantity(string(self.memory)).asInteger() >= 1048576 "
         "&& quantity(string(self.memory)).asInteger() % 1048576 == 0)",
         "spec.resources.memory must be a whole number of MiB, at least 1Mi (registries take MiB)"),
    ))


class ServiceImage(_Schema):
    """A container image for one CPU architecture."""

    cpuArchitecture: Literal["x86_64", "aarch64"]
    """CPU architecture the image is built for."""
    image: str = Field(min_length=1, max_length=1024)
    """Image reference, e.g. registry.example.com/vllm/vllm-openai:v0.6.0."""


class _ModelServiceSpecCommon(_Schema):
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


class ModelServiceSpec(create_model(  # type: ignore[misc]
        "_ModelServiceSpecSections", __base__=_ModelServiceSpecCommon,
        **_sections("service_section", lambda v: f"{v.short}-only fields."))):
    """An inference service definition to publish to one or more registries."""

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
    """The registry's id for this resource, as spec.registries[].externalId names it."""
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


#: rules at the root of a kind's schema (they may read metadata and status): the vendors' Model root rules
ROOT_RULES: dict[str, dict[str, Any]] = {
    kind: rules(*found) for kind, found in {
        "Model": tuple(rule for v in VENDORS for rule in v.model_root_rules),
    }.items() if found
}


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
