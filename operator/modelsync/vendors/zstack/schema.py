"""The CRD sections of ZStack: ``ModelRegistry.spec.zstack``, ``Model.spec.zstack`` and ``ModelService.spec.zstack``.

Built on :mod:`modelsync.fields` (frozen models that refuse unknown keys, attribute docstrings as the
CRD's descriptions); :mod:`modelsync.api` places them in the specs through :data:`~modelsync.vendors.zstack.VENDOR`.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ...fields import INT64_MAX, Image128K, LongText, Schema as _Schema


class ZStackRegistrySettings(_Schema):
    """ZStack AI model center settings."""

    modelCenterUuid: str = Field(pattern=r"^[0-9a-f]{32}$", max_length=32)
    """UUID of the model center models and services are added to (GET /zstack/v1/ai/model-centers)."""


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
