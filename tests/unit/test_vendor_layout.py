"""One folder per registry: a vendor's name appears in no module outside ``modelsync/vendors/<name>/``
but the table that lists the vendors (``modelsync/vendors/__init__.py``), and every listed vendor is
a complete package that the core's tables are built from."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import modelsync
from modelsync import api, vendors
from modelsync.backends import BACKENDS, backend_class
from modelsync.backends.base import Backend
from modelsync.simulators import SIMULATORS, simulator_module

PACKAGE = Path(modelsync.__file__).resolve().parent
#: the one module outside vendors/<name>/ that names the vendors: the table
TABLE = "vendors/__init__.py"
#: further files allowed to name a vendor (vendor name → paths), each with why; keep it empty
EXCEPTIONS: dict[str, set[str]] = {}
SUFFIXES = {".py", ".toml", ".md", ".txt", ".json", ".yaml", ".go"}


def mentions(name: str, root: Path = PACKAGE) -> set[str]:
    """The files under ``root`` (relative to it), outside its vendors/<name>/, whose text has ``name``
    as a word (any case: ZStack, zstack)."""
    word = re.compile(rf"\b{re.escape(name)}\b", re.IGNORECASE)
    own = root / "vendors" / name
    found = set()
    for path in root.rglob("*"):
        if not path.is_file() or path.suffix not in SUFFIXES or "__pycache__" in path.parts or own in path.parents:
            continue
        if word.search(path.read_text(encoding="utf-8", errors="replace")):
            found.add(path.relative_to(root).as_posix())
    return found


@pytest.mark.parametrize("name", vendors.VENDORS)
def test_vendor_named_only_in_its_folder_and_the_table(name: str) -> None:
    allowed = {TABLE} | EXCEPTIONS.get(name, set())
    found = mentions(name)
    assert found <= allowed, f"{name} is named outside vendors/{name}/ in {sorted(found - allowed)}"
    assert TABLE in found


def test_the_rule_finds_a_stray_mention(tmp_path: Path) -> None:
    (tmp_path / "vendors" / "zstack").mkdir(parents=True)
    (tmp_path / "vendors" / "zstack" / "client.py").write_text('"""ZStack client."""\n')
    (tmp_path / "core.py").write_text('"""Keeps a session (e.g. a ZStack login)."""\n')
    (tmp_path / "other.py").write_text("ZStackBackend = None  # a longer word is not the name\n")
    assert mentions("zstack", tmp_path) == {"core.py"}


@pytest.mark.parametrize("name", vendors.VENDORS)
def test_descriptor_is_complete_and_the_tables_come_from_it(name: str) -> None:
    v = vendors.vendor(name)
    assert v.name == name and v.title and v.short and v.external_id and v.docs
    assert issubclass(backend_class(name), Backend) and BACKENDS[name] == v.backend
    assert v.backend.startswith(f"modelsync.vendors.{name}.") and v.simulator.startswith(f"modelsync.vendors.{name}.")
    sim = simulator_module(name)
    for hook in ("add_arguments", "create_app", "app_from_args", "banner"):
        assert callable(getattr(sim, hook)), hook
    # the specs' sections are the descriptor's
    for spec, attr in ((api.ModelRegistrySpec, "settings"), (api.ModelSpec, "model_section"),
                       (api.ModelServiceSpec, "service_section")):
        section = getattr(v, attr)
        if section is None:
            assert name not in spec.model_fields
        else:
            assert spec.model_fields[name].annotation.__args__[0] is section
    assert (PACKAGE.parent.parent / v.docs).is_file()


def test_every_vendor_package_is_listed() -> None:
    packages = {p.name for p in (PACKAGE / "vendors").iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(vendors.VENDORS) == set(SIMULATORS) == set(BACKENDS)
    assert api.BackendName.__args__ == vendors.VENDORS
    with pytest.raises(ValueError, match="unknown backend"):
        vendors.vendor("nope")
