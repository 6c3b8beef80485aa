"""The CRD sections of Instill AI: ``ModelRegistry.spec.instill`` and ``Model.spec.instill``, and the
Model rules Instill needs (its limits on common fields; its immutable fields at the root).

Instill's limits are those of model-backend v0.38.5's published JSON Schema for a create
(config/model/model.json) and its container model definition (model_definitions.json); copies in
``specs/``. Built on :mod:`modelsync.fields`; :mod:`modelsync.api` places them in the specs through
:data:`~modelsync.vendors.instill.VENDOR`.
"""
from __future__ import annotations

from typing import Any, Literal

import pydantic
from pydantic import ConfigDict, Field, field_validator

from ...fields import Schema as _Schema, rules


class InstillRegistrySettings(_Schema):
    """Instill AI settings."""

    namespace: str = Field(pattern=r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$", max_length=32)
    """Instill namespace (user or organization id) that owns the models."""
    apiGeneration: Literal["Auto", "Legacy", "AIP"] = "Auto"
    """Which generation of Instill's model API the server speaks. Auto: found from the server (the
    shape of the models it returns). Legacy: model-backend up to v0.38.x, where the client chooses a
    model's id. AIP: model-backend after its AIP-compliant resource names change, where the server
    generates ids (mod-...) and a model has a displayName and a slug."""


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
    """Model id (lowercase RFC-1034 label, at most 32); defaults to an id derived from the resource.
    On a registry of the AIP generation (server-generated ids) this is the model's slug."""
    displayName: str | None = Field(default=None, min_length=1, max_length=255)
    """Display name (AIP generation; 1 to 255 characters); defaults to the resource's name. The
    Legacy generation has no display name: there it is listed in status.registries[].notSettable."""
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


def immutable_root_rules() -> tuple[tuple[str, str], ...]:
    """Model root-level transition rules: Instill's immutable fields may not change once
    status records the model as created in an Instill registry. They live at the root
    because they need ``oldSelf.status``; before creation the fields stay editable, so a
    spec that Instill rejected can still be fixed."""
    created = ("has(oldSelf.status) && has(oldSelf.status.registries) && oldSelf.status.registries.exists("
               "r, has(r.backend) && r.backend == 'instill' && has(r.externalId) && r.externalId != '')")
    pairs: list[tuple[str, str]] = []
    for f in ("id", "modelDefinition", "configuration", "task", "region"):
        old = f"(has(oldSelf.spec.instill) && has(oldSelf.spec.instill.{f}))"
        new = f"(has(self.spec.instill) && has(self.spec.instill.{f}))"
        same = f"({old} == {new} && (!{new} || self.spec.instill.{f} == oldSelf.spec.instill.{f}))"
        pairs.append((f"!({created}) || {same}", f"spec.instill.{f} {_IMMUTABLE}"))
    return tuple(pairs)
