"""crds/ is generated from api.py: it must be current, and every field must be explained."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import yaml

from modelsync import crdgen

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_crds_are_generated_from_api_models() -> None:
    rendered = crdgen.render()
    on_disk = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert set(on_disk) == set(rendered)
    for name, text in rendered.items():
        assert on_disk[name] == text, f"crds/{name} is stale: run `make crds`"


def _fields(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, sub in (schema.get("properties") or {}).items():
        yield f"{path}.{name}", sub
        yield from _fields(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _fields(schema["items"], f"{path}[]")


def test_every_spec_and_status_field_has_a_description() -> None:
    missing = []
    for name, text in crdgen.render().items():
        crd = yaml.safe_load(text.split("\n", 1)[1])
        root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for part in ("spec", "status"):
            for path, sub in _fields(root["properties"][part], part):
                if not sub.get("description"):
                    missing.append(f"{name}: {path}")
    assert not missing, missing


def test_quantities_are_int_or_string_checked_by_cel() -> None:
    crd = yaml.safe_load(crdgen.render()["modelsync.io_models.yaml"].split("\n", 1)[1])
    gpu = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["gpu"]
    mem = gpu["properties"]["minMemory"]
    assert mem["x-kubernetes-int-or-string"] is True
    assert any("isQuantity" in r["rule"] for r in mem["x-kubernetes-validations"])
