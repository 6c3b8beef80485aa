"""The ZStack simulator and client take exactly the fields ZStack publishes for each API: the
SDK's request structs (copies in operator/modelsync/vendors/zstack/specs/) plus what the seed
pages add. Anything else is dropped by the real server, so sending it would be a silent no-op."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelsync.vendors.zstack import mapping as client
from modelsync.vendors.zstack import simulator as sim

SPECS = Path(sim.__file__).resolve().parent / "specs"
#: seed 002 (AddModel) and seed 000 (UpdateModel) list these besides the SDK's structs
SEED_ADD_MODEL = {"modelId", "shareMode", "defaultModelServiceUuid"}
SEED_UPDATE_MODEL = {"vendor", "modelId", "defaultModelServiceUuid", "clearDefaultModelService"}


def struct_fields(file: str, struct: str) -> set[str]:
    """The json names of a Go struct's fields in one of the shipped SDK files."""
    text = (SPECS / file).read_text()
    body = re.search(rf"type {struct} struct \{{(.*?)\n\}}", text, re.S)
    assert body, f"{struct} not in {file}"
    return set(re.findall(r'json:"([A-Za-z0-9_]+)', body.group(1)))


def test_the_shipped_copies_are_the_published_ones() -> None:
    shared = Path("/work/shared/specs/zstack")
    if not shared.is_dir():
        pytest.skip("the shared specs are not on this machine")
    for f in shared.glob("*.go"):
        assert (SPECS / f.name).read_text() == f.read_text(), f.name


@pytest.mark.parametrize("file,struct,extra,sim_spec,client_fields", [
    ("add_model_params.go", "AddModelDetailParam", SEED_ADD_MODEL, sim.ADD_MODEL_SPEC, client.ADD_MODEL_FIELDS),
    ("update_model_params.go", "UpdateModelDetailParam", SEED_UPDATE_MODEL, sim.UPDATE_MODEL_SPEC,
     client.UPDATE_MODEL_FIELDS | {"uuid"}),
    ("add_model_service_params.go", "AddModelServiceDetailParam", set(), sim.ADD_MODEL_SERVICE_SPEC,
     client.ADD_MODEL_SERVICE_FIELDS),
    ("update_model_service_params.go", "UpdateModelServiceDetailParam", set(), sim.UPDATE_MODEL_SERVICE_SPEC,
     client.UPDATE_MODEL_SERVICE_FIELDS | {"uuid"}),
])
def test_each_api_takes_the_published_fields_and_no_other(
        file: str, struct: str, extra: set[str], sim_spec: dict, client_fields: frozenset[str]) -> None:
    published = struct_fields(file, struct) | extra
    # the uuid of an update travels in the path, not in the body the simulator validates
    assert set(sim_spec) | ({"uuid"} if "update" in file else set()) == published
    assert set(client_fields) == published


def test_the_service_inventory_is_the_published_view_plus_the_seed_fields() -> None:
    view = struct_fields("model_service_views.go", "ModelServiceInventoryView")
    assert view <= set(sim.MODEL_SERVICE_INVENTORY_FIELDS)
    # seed 001 lists hasNewVersion and version besides the view; nothing else is shown
    assert set(sim.MODEL_SERVICE_INVENTORY_FIELDS) - view == {"hasNewVersion", "version"}
    assert not set(client.SERVICE_UPDATE_ONLY) & set(sim.MODEL_SERVICE_INVENTORY_FIELDS)
