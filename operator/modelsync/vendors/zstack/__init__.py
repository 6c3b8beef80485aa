"""ZStack AI model center: everything of this registry in one package.

``schema`` (the CRD sections), ``mapping`` (spec → wire, pure), ``client`` (the Backend), ``simulator``
(a local server faithful to the published API) and ``specs/`` (the SDK's request structs the client
and simulator are held to). :data:`VENDOR` describes the vendor to the rest of ModelSync.
"""
from __future__ import annotations

from .. import Vendor
from .schema import ZStackModelSection, ZStackRegistrySettings, ZStackServiceSection

VENDOR = Vendor(
    name="zstack",
    title="ZStack AI model center",
    short="ZStack",
    backend="modelsync.vendors.zstack.client:ZStackBackend",
    simulator="modelsync.vendors.zstack.simulator",
    settings=ZStackRegistrySettings,
    model_section=ZStackModelSection,
    service_section=ZStackServiceSection,
    secret_keys=("accountName", "password"),
    credentials="ZStack accountName and password",
    settings_required="modelCenterUuid",
    credentials_required="accountName and password",
    external_id="a ZStack uuid",
    docs="docs/zstack.md",
)

__all__ = ["VENDOR", "ZStackModelSection", "ZStackRegistrySettings", "ZStackServiceSection"]
