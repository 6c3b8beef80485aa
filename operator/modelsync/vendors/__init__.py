"""One package per registry: everything of one vendor in one folder, described by a :class:`Vendor`.

``modelsync.vendors.<name>`` holds ``schema`` (its CRD sections, pydantic), ``mapping`` (spec → wire,
pure), ``client`` (the :class:`~modelsync.backends.base.Backend`), ``simulator`` (a local server
imitating the registry) and ``specs/`` (the vendor's published spec files it is held to); its
``__init__`` exports ``VENDOR``, a :class:`Vendor`. :data:`VENDORS` here lists the vendors: the one
place outside ``modelsync/vendors/<name>/`` that names them. The CRD schemas (:mod:`modelsync.api`),
the backend table, the simulators' command and the CLI are built from it, so adding a registry is a
new folder and one word there.

This module imports no vendor statically: :func:`vendor` loads a package by its name, and a
descriptor names its client and simulator by import path, loaded on first use. So no vendor module
imports another, and a broken one cannot stop the others from working.
"""
from __future__ import annotations

import dataclasses
import importlib
from functools import cache
from types import ModuleType
from typing import Any

#: the registries ModelSync knows, each a package ``modelsync.vendors.<name>`` exporting ``VENDOR``; the
#: order is that of the CRD sections, of the backend enum and of the CLI's choices
VENDORS: tuple[str, ...] = ("zstack", "nemo", "instill", "mlflow")

#: a CEL rule as :func:`modelsync.fields.rules` takes it: (rule, message[, fieldPath[, reason]])
Rule = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Vendor:
    """What the rest of ModelSync knows of one registry."""

    name: str
    """``spec.backend`` and the key of every vendor section (``spec.<name>``)."""
    title: str
    """The registry's name in prose, e.g. "NVIDIA NeMo Entity Store"."""
    short: str
    """Its short name in prose ("NeMo"): "NeMo-only fields"."""
    backend: str
    """The Backend class as ``module:Class``, imported on first use."""
    simulator: str
    """The simulator's module (``add_arguments``, ``create_app``, ``app_from_args``, ``banner``)."""
    settings: type[Any] | None = None
    """The model of ``ModelRegistry.spec.<name>`` (None: the registry has no settings)."""
    model_section: type[Any] | None = None
    """The model of ``Model.spec.<name>`` (None: none)."""
    service_section: type[Any] | None = None
    """The model of ``ModelService.spec.<name>`` (None: none)."""
    secret_keys: tuple[str, ...] = ()
    """Keys of the registry's credentials Secret that it reads."""
    credentials: str = ""
    """What the credentials Secret holds, in words ("ZStack accountName and password")."""
    settings_required: str | None = None
    """The settings field that makes ``spec.<name>`` required when ``spec.backend`` is this vendor
    (named in the CEL rule's message); None: ``spec.<name>`` is optional."""
    credentials_required: str | None = None
    """What the Secret must hold, when ``spec.credentialsSecretRef`` is required for this vendor
    (named in the CEL rule's message); None: optional."""
    external_id: str = ""
    """What ``spec.registries[].externalId`` names in this registry, in words ("a ZStack uuid")."""
    model_rules: tuple[Rule, ...] = ()
    """CEL rules on ``Model.spec`` for the common fields this registry constrains."""
    model_root_rules: tuple[Rule, ...] = ()
    """CEL rules at the root of the Model schema (they may read ``oldSelf.status``)."""
    secret_patterns: tuple[tuple[str, str], ...] = ()
    """(regex, replacement) pairs that mask this registry's credentials wherever they appear in text."""
    docs: str = ""
    """The registry's page in docs/."""

    def backend_class(self) -> type[Any]:
        module, _, attr = self.backend.partition(":")
        cls: type[Any] = getattr(importlib.import_module(module), attr)
        return cls

    def simulator_module(self) -> ModuleType:
        return importlib.import_module(self.simulator)


@cache
def vendor(name: str) -> Vendor:
    """The descriptor of ``name``; ValueError if it is not a known registry."""
    if name not in VENDORS:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(sorted(VENDORS))}")
    found = importlib.import_module(f"{__name__}.{name}").VENDOR
    if not isinstance(found, Vendor) or found.name != name:
        raise TypeError(f"{__name__}.{name}.VENDOR is not the Vendor named {name!r}")
    return found


def vendors() -> tuple[Vendor, ...]:
    """Every vendor's descriptor, in :data:`VENDORS` order."""
    return tuple(vendor(n) for n in VENDORS)
