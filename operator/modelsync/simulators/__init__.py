"""Local servers faithful to each registry's published API, with fault knobs.

Each vendor module exposes:

* ``add_arguments(parser)``: its own flags (port, credentials, ...);
* ``create_app(**options) -> aiohttp.web.Application``: built with
  :func:`modelsync.simulators.faults.make_app`, usable in-process by tests;
* ``app_from_args(args) -> Application`` and ``banner(app, url) -> str``
  (what the CLI prints when it starts: where it listens and how to log in).

``modelsync simulate <vendor> --port N`` runs one in the foreground.
"""
from __future__ import annotations

import importlib
from types import ModuleType

SIMULATORS = ("zstack", "nemo", "instill", "mlflow")
#: simulators that live in their vendor's package (modelsync.vendors.<name>), not here
_VENDOR_PACKAGES = {"mlflow": "modelsync.vendors.mlflow.simulator"}


def simulator_module(name: str) -> ModuleType:
    if name not in SIMULATORS:
        raise ValueError(f"unknown simulator {name!r}; known: {', '.join(SIMULATORS)}")
    return importlib.import_module(_VENDOR_PACKAGES.get(name, f"modelsync.simulators.{name}"))
