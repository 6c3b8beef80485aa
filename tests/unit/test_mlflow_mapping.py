"""MLflow: the CRD section's admission rules and the pure spec → wire mapping, as tables."""
from __future__ import annotations

from typing import Any

import pydantic
import pytest

from modelsync.api import ModelRegistrySpec, ModelSpec
from modelsync.backends.base import RegistryConnection, Resource, Terminal, deterministic_id
from modelsync.backends.http import Outcome, VendorError
from modelsync.vendors.mlflow import VENDOR, mapping
from modelsync.vendors.mlflow.client import parse_error, refine

UID = "0b6c5a3e-8f0f-4d7c-9a43-2f1d6c1e9b11"
CONN = RegistryConnection(key="ModelRegistry/ml/mlflow", name="mlflow", kind="ModelRegistry", backend="mlflow",
                          endpoint="http://127.0.0.1:5000")


def res(adopted: bool = False, external_id: str | None = None, name: str = "qwen3-8b", **spec: Any) -> Resource:
    return Resource(kind="Model", name=name, namespace="ml", uid=UID, generation=3,
                    spec=ModelSpec.model_validate({"registries": [{"name": "mlflow"}], **spec}),
                    external_id=external_id, adopted=adopted)


def test_vendor_descriptor() -> None:
    assert VENDOR.name == "mlflow" and VENDOR.service_section is None
    assert ModelSpec.model_fields["mlflow"].annotation.__args__[0] is VENDOR.model_section
    assert ModelRegistrySpec.model_fields["mlflow"].annotation.__args__[0] is VENDOR.settings
    module, _, attr = VENDOR.backend.partition(":")
    assert attr == "MlflowBackend" and module == "modelsync.vendors.mlflow.client"


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("spec, settings, adopted, expected", [
    ({"mlflow": {"name": "Qwen3 8B.chat"}}, {}, None, "Qwen3 8B.chat"),
    ({}, {}, None, f"ml-qwen3-8b-{deterministic_id(UID, CONN.key).hex[:8]}"),
    ({}, {"namePrefix": "main.models."}, None, f"main.models.ml-qwen3-8b-{deterministic_id(UID, CONN.key).hex[:8]}"),
    ({"mlflow": {"name": "ignored"}}, {}, "by-hand", "by-hand"),
])
def test_registered_model_name(spec: dict[str, Any], settings: dict[str, Any], adopted: str | None,
                               expected: str) -> None:
    conn = RegistryConnection(**{**CONN.__dict__, "settings": settings})
    r = res(adopted=bool(adopted), external_id=adopted, **spec)
    assert mapping.registered_model_name(r, conn) == expected


def test_derived_name_fits_mlflow_and_differs_per_registry() -> None:
    long = res(name="m" * 253)
    name = mapping.registered_model_name(long, CONN)
    assert len(name) == 256 and name.endswith("-" + deterministic_id(UID, CONN.key).hex[:8])
    other = RegistryConnection(**{**CONN.__dict__, "key": "ModelRegistry/ml/other"})
    assert mapping.registered_model_name(res(), other) != mapping.registered_model_name(res(), CONN)


# ---------------------------------------------------------------- spec → wire


EVERY = {
    "description": "Qwen3 8B", "installPath": "hf://Qwen/Qwen3-8B", "vendor": "Qwen", "version": "3.0",
    "parameters": "8B", "architecture": "Qwen3ForCausalLM", "frameworkVersion": "vLLM 0.6", "task": "text-generation",
    "license": "apache-2.0", "readme": "# Qwen3", "defaultServiceRef": {"name": "vllm"},
    "gpu": {"minMemory": "16Gi", "recommendedMemory": "24Gi", "recommendedCount": [1, 2],
            "constraintDescription": "Ampere", "accelerator": "cuda:12.1"},
    "mlflow": {"tags": [{"key": "team", "value": "nlp"}, {"key": "stage"}], "alias": "champion"},
}


def test_desired_every_field() -> None:
    want = mapping.desired(res(**EVERY))
    assert want == {
        "description": "Qwen3 8B",
        "tags.modelsync.io/vendor": "Qwen", "tags.modelsync.io/version": "3.0", "tags.modelsync.io/parameters": "8B",
        "tags.modelsync.io/gpu.minMemory": "17179869184", "tags.modelsync.io/gpu.recommendedMemory": "25769803776",
        "tags.modelsync.io/gpu.recommendedCount": "1,2", "tags.modelsync.io/gpu.constraintDescription": "Ampere",
        "tags.modelsync.io/gpu.accelerator": "cuda:12.1", "tags.modelsync.io/architecture": "Qwen3ForCausalLM",
        "tags.modelsync.io/frameworkVersion": "vLLM 0.6", "tags.modelsync.io/task": "text-generation",
        "tags.modelsync.io/license": "apache-2.0", "tags.team": "nlp", "tags.stage": "",
        "source": "hf://Qwen/Qwen3-8B", "alias": "champion",
    }
    assert {n.field for n in mapping.not_settable(res(**EVERY))} == {"spec.readme", "spec.defaultServiceRef"}
    # every managed field maps back to the spec path a user edits
    paths = {mapping.spec_path(f) for f in want}
    assert paths >= {"spec.description", "spec.installPath", "spec.mlflow.alias", "spec.mlflow.tags", "spec.gpu.minMemory"}
    assert all(p.startswith("spec.") for p in paths)


@pytest.mark.parametrize("spec, expected", [
    ({}, {}),  # nothing set: nothing managed, nothing reported
    ({"description": ""}, {"description": ""}),  # an empty value is managed as empty
    ({"gpu": {"minMemory": "1.5Gi"}}, {"tags.modelsync.io/gpu.minMemory": "1610612736"}),
    ({"gpu": {"recommendedCount": [4]}}, {"tags.modelsync.io/gpu.recommendedCount": "4"}),
    ({"installPath": "s3://bucket/qwen"}, {"source": "s3://bucket/qwen"}),
])
def test_desired_table(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    assert mapping.desired(res(**spec)) == expected
    assert mapping.not_settable(res(**spec)) == ()


def test_create_bodies_carry_the_markers() -> None:
    r = res(**EVERY)
    body = mapping.create_model_body("n", mapping.desired(r), r)
    tags = {t["key"]: t["value"] for t in body["tags"]}
    assert tags["modelsync.io/owner"] == "ml/qwen3-8b" and tags["modelsync.io/uid"] == UID
    assert tags["team"] == "nlp" and body["description"] == "Qwen3 8B" and "source" not in body
    version = mapping.create_version_body("n", "hf://Qwen/Qwen3-8B", r)
    assert version["source"] == "hf://Qwen/Qwen3-8B"
    assert {t["key"]: t["value"] for t in version["tags"]} == {
        "modelsync.io/owner": "ml/qwen3-8b", "modelsync.io/uid": UID, "modelsync.io/generation": "3"}


@pytest.mark.parametrize("spec, field", [
    ({"parameters": "p" * 5001}, "spec.parameters"),
    ({"installPath": "s3://b/" + "x" * 500}, "spec.installPath"),
    ({"installPath": " "}, "spec.installPath"),
    ({"mlflow": {"alias": "champion"}}, "spec.mlflow.alias"),  # an alias needs the version installPath makes
])
def test_validate_refuses_what_mlflow_cannot_hold(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(Terminal) as info:
        mapping.validate(mapping.desired(res(**spec)))
    assert info.value.fields == (field,) and info.value.reason == "InvalidSpec"
    assert field in info.value.message


# ---------------------------------------------------------------- wire → observation


MODEL = {"name": "n", "description": "old", "creation_timestamp": 1, "last_updated_timestamp": 2,
         "tags": [{"key": "modelsync.io/uid", "value": UID}, {"key": "team", "value": "nlp"}, {"key": "empty"}],
         "aliases": [{"alias": "champion", "version": "1"}]}
VERSIONS = [{"name": "n", "version": "1", "source": "s3://a", "status": "READY"},
            {"name": "n", "version": "3", "source": "s3://b", "status": "READY"},
            {"name": "n", "version": "2", "source": "s3://b", "status": "READY", "run_id": "r1"}]


def test_inventory_holds_the_model_and_its_versions() -> None:
    inv = mapping.inventory(MODEL, VERSIONS, "s3://b")
    assert inv["tags"] == {"modelsync.io/uid": UID, "team": "nlp", "empty": ""}
    assert inv["aliases"] == {"champion": "1"}
    assert [v["version"] for v in inv["versions"]] == ["3", "2", "1"]  # newest first
    assert inv["version"] == "3"  # the newest version holding the source
    assert inv["versions"][1]["runId"] == "r1" and inv["versionCount"] == 3
    assert "version" not in mapping.inventory(MODEL, VERSIONS, "s3://c")


@pytest.mark.parametrize("want, source, expected", [
    ({"description": "old"}, None, ()),
    ({"description": "new"}, None, ("description",)),
    ({"tags.team": "nlp", "tags.empty": ""}, None, ()),
    ({"tags.team": "cv", "tags.new": "x"}, None, ("tags.team", "tags.new")),
    ({"source": "s3://a", "alias": "champion"}, "s3://a", ()),
    ({"source": "s3://b", "alias": "champion"}, "s3://b", ("alias",)),  # the alias is on version 1, not 3
    ({"source": "s3://c", "alias": "champion"}, "s3://c", ("source", "alias")),
    ({"source": "s3://a", "alias": "prod"}, "s3://a", ("alias",)),
])
def test_diff_table(want: dict[str, Any], source: str | None, expected: tuple[str, ...]) -> None:
    assert mapping.diff(want, mapping.inventory(MODEL, VERSIONS, source)) == expected


def test_ownership() -> None:
    tags = mapping.tags_of(MODEL)
    assert mapping.is_ours(res(), "n", tags)
    assert not mapping.is_ours(res(), "n", {"modelsync.io/uid": "someone-else"})
    assert mapping.is_ours(res(external_id="n"), "n", {})  # recorded in status: ours


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("status, body, text, outcome, fields", [
    (400, {"error_code": "RESOURCE_ALREADY_EXISTS", "message": "Registered Model (name=x) already exists."}, "",
     Outcome.CONFLICT, ()),
    (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "not found"}, "", None, ()),
    (404, None, "<html><title>404 Not Found</title></html>", Outcome.MISCONFIGURED, ()),
    (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid model version source: '/tmp/x'."}, "",
     None, ("spec.installPath",)),
    (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid alias name: 'x y'."}, "",
     None, ("spec.mlflow.alias",)),
    (403, {"error_code": "PERMISSION_DENIED", "message": "Permission denied"}, "", Outcome.CREDENTIALS, ()),
    (401, None, "You are not authenticated.", None, ()),
    (429, {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}, "", Outcome.UNAVAILABLE, ()),
    (403, None, "Invalid Host header - possible DNS rebinding attack detected", Outcome.MISCONFIGURED, ()),
])
def test_errors(status: int, body: Any, text: str, outcome: Outcome | None, fields: tuple[str, ...]) -> None:
    err = parse_error(status, body, text)
    assert refine(status, err) is outcome
    assert err.fields == fields
    if isinstance(body, dict):
        assert err.message.startswith(body["error_code"])


def test_refine_leaves_unknown_codes_to_the_status() -> None:
    assert refine(500, VendorError(code="SOMETHING_NEW")) is None


# ---------------------------------------------------------------- the schema


@pytest.mark.parametrize("section, message", [
    ({"tags": [{"key": "mlflow.source.type", "value": "x"}]}, "mlflow."),
    ({"tags": [{"key": "modelsync.io/uid", "value": "x"}]}, "modelsync.io/"),
    ({"tags": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]}, "same key twice"),
    ({"tags": [{"key": "bad\"key", "value": "1"}]}, "pattern"),
    ({"tags": [{"key": "a", "value": "v" * 5001}]}, "5000"),
    ({"alias": "latest"}, "reserve"),
    ({"alias": "V12"}, "reserve"),
    ({"alias": "no spaces"}, "pattern"),
    ({"name": "a/b"}, "pattern"),
    ({"name": "it's"}, "pattern"),
])
def test_section_refuses(section: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        ModelSpec.model_validate({"registries": [{"name": "m"}], "mlflow": section})
    assert message in str(info.value)


def test_section_admits() -> None:
    spec = ModelSpec.model_validate({"registries": [{"name": "m"}], "mlflow": {
        "name": "main.models.Qwen3 8B", "tags": [{"key": "team/area: nlp", "value": ""}], "alias": "v1-candidate"}})
    assert spec.mlflow is not None and spec.mlflow.alias == "v1-candidate"
    assert ModelRegistrySpec.model_validate({"backend": "mlflow", "endpoint": "http://127.0.0.1:5000"}).mlflow is None
