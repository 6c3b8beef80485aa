"""The import-linter contracts (pyproject.toml, run by `make lint`) cover every module of the package.

A module no contract names can import anything: a new core module must be placed in a layer or
in the list of modules that reach a vendor only through its descriptor, or this test fails.
"""
from __future__ import annotations

import pkgutil
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import modelsync

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def contracts() -> list[dict[str, Any]]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["tool"]["importlinter"]["contracts"])


def named(contract: dict[str, Any]) -> list[str]:
    """The modules a contract constrains: its layers (siblings split on ``|`` or ``:``), its
    independent modules, its source modules."""
    out: list[str] = []
    for layer in contract.get("layers", []):
        out += [m.strip() for m in re.split(r"[|:]", layer) if m.strip()]
    out += contract.get("modules", [])
    out += contract.get("source_modules", [])
    return out


def covers(pattern: str, module: str) -> bool:
    """Whether ``pattern`` (a module, or with ``*`` standing for one part of a name) names
    ``module`` or a package holding it, as import-linter reads the contracts."""
    regex = r"\.".join("[^.]+" if part == "*" else re.escape(part) for part in pattern.split("."))
    return re.fullmatch(regex + r"(\..+)?", module) is not None


def uncovered(modules: Iterable[str], patterns: list[str]) -> list[str]:
    return [m for m in modules if not any(covers(p, m) for p in patterns)]


def package_modules() -> list[str]:
    found = [info.name for info in pkgutil.walk_packages(modelsync.__path__, "modelsync.")]
    return sorted(m for m in found if m != "modelsync")


def test_every_module_is_named_by_a_contract() -> None:
    patterns = [m for c in contracts() for m in named(c)]
    modules = package_modules()
    assert "modelsync.status" in modules and "modelsync.vendors.zstack.client" in modules
    assert uncovered(modules, patterns) == []


def test_the_rule_finds_a_module_no_contract_names() -> None:
    patterns = ["modelsync.handlers", "modelsync.vendors.*.client"]
    assert uncovered(["modelsync.handlers", "modelsync.vendors.nemo.client", "modelsync.vendors.nemo.client.x",
                      "modelsync.status", "modelsync.vendors.nemo.schema", "modelsync.handlersx"],
                     patterns) == ["modelsync.status", "modelsync.vendors.nemo.schema", "modelsync.handlersx"]
