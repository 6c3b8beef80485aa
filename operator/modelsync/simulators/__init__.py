"""Local servers faithful to each registry's published API, with fault knobs.

Each vendor's simulator lives in its package (``modelsync.vendors.<name>.simulator``, named by its
descriptor) and exposes:

* ``add_arguments(parser)``: its own flags (port, credentials, ...);
* ``create_app(**options) -> aiohttp.web.Application``: built with
  :func:`modelsync.simulators.faults.make_app`, usable in-process by tests;
* ``app_from_args(args) -> Application`` and ``banner(app, url) -> str``
  (what the CLI prints when it starts: where it listens and how to log in).

Here: the shared plumbing (:mod:`.faults`, :mod:`.server`) and the table.
``modelsync simulate <vendor> --port N`` runs one in the foreground.
"""
from __future__ import annotations

from types import ModuleType

from ..vendors import VENDORS, vendor

SIMULATORS: tuple[str, ...] = VENDORS


def simulator_module(name: str) -> ModuleType:
    if name not in SIMULATORS:
        raise ValueError(f"unknown simulator {name!r}; known: {', '.join(SIMULATORS)}")
    return vendor(name).simulator_module()
