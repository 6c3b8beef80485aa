"""Spec → ZStack wire mapping: pure functions, table tests."""
from __future__ import annotations

from typing import Any

import pytest

from modelsync import api
from modelsync.vendors.zstack import mapping as zstack
from modelsync.backends.base import RegistryConnection, Resource, Terminal, retry_after_seconds

CONN = RegistryConnection(key="ModelRegistry/ml/z", name="z", kind="ModelRegistry", backend="zstack",
                          endpoint="http://z", credentials={"accountName": "a", "password": "p"},
                          settings={"modelCenterUuid": "ebf96ce1de2c46fa8af9d503c29bb93d"})


#: what ZStack requires of every model service
SVC: dict[str, Any] = {"config": "services: []\n", "resources": {"cpu": 1, "memory": "1Gi"},
                       "startCommand": "python3 app.py", "zstack": {"installPath": "/opt/svc"}}


def res(kind: str = "Model", uid: str = "uid-1", refs: dict[str, str] | None = None, **spec: Any) -> Resource:
    body = {"registries": [{"name": "z"}], **spec}
    return Resource(kind=kind, name="qwen", namespace="ml", uid=uid, generation=1,  # type: ignore[arg-type]
                    spec=api.parse_spec(kind, body), references=refs or {})


@pytest.mark.parametrize("spec,expected", [
    ({"installPath": "/m"}, {"name": "qwen", "installPath": "/m", "modelCenterUuid": CONN.settings["modelCenterUuid"]}),
    ({"installPath": "/m", "gpu": {"recommendedCount": [1, 2], "constraintDescription": "Ampere"}},
     {"recommendedGpuNum": [1, 2], "gpuConstraintDescription": "Ampere"}),
    ({"installPath": "/m", "readme": "# hi"}, {"introduction": "# hi"}),
    ({"installPath": "/m", "readme": "# hi", "zstack": {"introduction": "own"}}, {"introduction": "own"}),
    ({"installPath": "/m", "zstack": {"name": "Qwen3 8B", "modelId": "Qwen/Qwen3-8B"}},
     {"name": "Qwen3 8B", "modelId": "Qwen/Qwen3-8B"}),
    ({"installPath": "/m", "zstack": {"systemTags": ["resourceConfig::a::b::c"]}},
     {"systemTags": ["resourceConfig::a::b::c"]}),
])
def test_desired_model(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    desired = zstack.desired_model(res(**spec), CONN)
    for key, value in expected.items():
        assert desired[key] == value, key
    assert "description" not in desired  # unset fields are not managed


EVERY_UNSETTABLE = dict(installPath="/m", gpu={"minMemory": "16Gi", "recommendedMemory": "24G",
                                                "accelerator": "cuda:12.1"},
                        architecture="A", frameworkVersion="F", task="text-generation", license="apache-2.0",
                        zstack={"pipelineTag": "text-gen"})


def test_fields_no_model_api_sets_are_never_desired_or_sent() -> None:
    # AddModelDetailParam / UpdateModelDetailParam have no GPU memory, accelerator, architecture,
    # framework version, pipeline tag or license: the invented system tags are gone
    r = res(**EVERY_UNSETTABLE)
    desired = zstack.desired_model(r, CONN)
    assert set(desired) == {"name", "installPath", "modelCenterUuid"}
    body = zstack.add_model_body(r, CONN, desired)
    assert body["systemTags"] == [] and set(body["param"]) <= zstack.ADD_MODEL_FIELDS
    assert "::" not in str(body["systemTags"]) and "17179869184" not in str(body)


def test_fields_no_model_api_sets_are_reported_with_the_registry_value() -> None:
    r = res(**EVERY_UNSETTABLE)
    inv = {"minGpuMemory": 17179869184, "recommendedGpuMemory": 1, "requiredAccelerator": "cuda:12.1",
           "architectureType": None, "pipelineTag": "text-generation"}
    found = {n.field: n for n in zstack.model_not_settable(r, inv)}
    assert list(found) == ["spec.gpu.minMemory", "spec.gpu.recommendedMemory", "spec.gpu.accelerator",
                           "spec.architecture", "spec.frameworkVersion", "spec.task", "spec.zstack.pipelineTag",
                           "spec.license"]
    assert found["spec.gpu.minMemory"].registry_value == 17179869184
    assert "the same as the spec" in found["spec.gpu.minMemory"].why
    assert "not the spec's value" in found["spec.gpu.recommendedMemory"].why  # 24G is not 1 byte
    assert found["spec.architecture"].registry_value is None and "reports no value" in found["spec.architecture"].why
    assert found["spec.zstack.pipelineTag"].registry_value == "text-generation"
    assert "not the spec's value" in found["spec.zstack.pipelineTag"].why
    assert "license" in found["spec.license"].why and found["spec.license"].registry_value is None
    for n in found.values():
        assert "ZStack" in n.why
    assert zstack.model_not_settable(res(installPath="/m"), inv) == ()


def test_service_readme_is_reported_not_sent() -> None:
    r = res("ModelService", readme="# vllm", **SVC)
    desired = zstack.desired_service(r, CONN)
    assert "readme" not in desired and "readme" not in zstack.add_service_body(r, CONN, desired)["param"]
    (entry,) = zstack.service_not_settable(r, {"readme": None})
    assert entry.field == "spec.readme" and "AddModelService and UpdateModelService" in entry.why


def test_default_service_reference() -> None:
    desired = zstack.desired_model(res(installPath="/m", refs={"defaultService": "ab" * 16}), CONN)
    assert desired["defaultModelServiceUuid"] == "ab" * 16


def test_install_path_required_names_field() -> None:
    with pytest.raises(Terminal, match="spec.installPath"):
        zstack.desired_model(res(), CONN)


def test_fractional_bytes_are_compared_not_refused() -> None:
    # GPU memory is never sent to ZStack, so a fraction of a byte is only a difference to show
    (entry,) = zstack.model_not_settable(res(installPath="/m", gpu={"minMemory": "0.5"}), {"minGpuMemory": 0})
    assert entry.field == "spec.gpu.minMemory" and "not the spec's value" in entry.why


def test_add_model_body_shape() -> None:
    r = res(installPath="/m", gpu={"minMemory": "1Gi", "recommendedCount": [1, 2]}, vendor="Qwen",
            zstack={"systemTags": ["resourceConfig::ai::x::1", "site::own"]})
    body = zstack.add_model_body(r, CONN, zstack.desired_model(r, CONN))
    assert set(body) == {"param", "systemTags", "userTags"}
    p = body["param"]
    assert p["recommendedGpuNum"] == "1,2"
    assert p["resourceUuid"] == zstack.resource_uuid(r, CONN)
    assert "minGpuMemory" not in p and "systemTags" not in p
    assert body["systemTags"] == ["resourceConfig::ai::x::1", "site::own"]  # verbatim, nothing added
    assert body["userTags"] == ["modelsync.io/owner::ml/qwen"]


def test_resource_uuid_is_deterministic_and_distinct() -> None:
    a, b = res(installPath="/m"), res(installPath="/other")
    assert zstack.resource_uuid(a, CONN) == zstack.resource_uuid(b, CONN)  # same uid → same uuid
    assert len(zstack.resource_uuid(a, CONN)) == 32
    other_registry = RegistryConnection(**{**CONN.__dict__, "key": "ModelRegistry/ml/z2"})
    assert zstack.resource_uuid(a, CONN) != zstack.resource_uuid(a, other_registry)
    assert zstack.resource_uuid(a, CONN) != zstack.resource_uuid(res(uid="uid-2", installPath="/m"), CONN)


@pytest.mark.parametrize("fields,expected", [
    (("description",), {"updateModel": {"description": "new"}}),
    (("recommendedGpuNum",), {"updateModel": {"recommendedGpuNum": "2,4"}}),
    (("vendor", "description"), {"updateModel": {"vendor": "V", "description": "new"}}),
])
def test_update_model_body_carries_only_the_diff(fields: tuple[str, ...], expected: dict[str, Any]) -> None:
    r = res(installPath="/m", description="new", vendor="V", gpu={"minMemory": "2Gi", "recommendedCount": [2, 4]})
    assert zstack.update_model_body(zstack.desired_model(r, CONN), fields) == expected


def test_update_model_body_never_carries_what_update_model_lacks() -> None:
    r = res(installPath="/m", version="2", readme="r", zstack={"logo": "L", "size": 1, "shareMode": "s"})
    body = zstack.update_model_body(zstack.desired_model(r, CONN), zstack.MODEL_CREATE_ONLY)
    assert body == {"updateModel": {}}
    assert set(zstack.MODEL_CREATE_ONLY).isdisjoint(zstack.UPDATE_MODEL_FIELDS)


def test_diff_skips_unmanaged_fields_and_sees_create_only_ones() -> None:
    r = res(installPath="/m", zstack={"size": 5})
    desired = zstack.desired_model(r, CONN)
    inv = {**desired, "description": "set elsewhere", "lastOpDate": "x"}
    assert zstack.diff(desired, inv) == ()
    inv["installPath"] = "/old"
    inv["size"] = 1
    assert zstack.diff(desired, inv) == ("installPath", "size")


@pytest.mark.parametrize("spec,inv,field,stored", [
    ({"version": "2.0"}, {"version": "1.0"}, "spec.version", "'1.0'"),
    ({"readme": "new"}, {"introduction": "old"}, "spec.readme", "'old'"),
    ({"zstack": {"introduction": "new"}}, {"introduction": "old"}, "spec.zstack.introduction", "'old'"),
    ({"zstack": {"logo": "b"}}, {"logo": "a"}, "spec.zstack.logo", "'a'"),
    ({"zstack": {"size": 2}}, {"size": 1}, "spec.zstack.size", "1"),
    ({"zstack": {"shareMode": "Public"}}, {}, "spec.zstack.shareMode", "does not show"),
    ({"zstack": {"systemTags": ["a::b"]}}, {}, "spec.zstack.systemTags", "does not show"),
])
def test_a_create_only_change_is_invalid_spec_naming_field_and_stored_value(
        spec: dict[str, Any], inv: dict[str, Any], field: str, stored: str) -> None:
    r = res(installPath="/m", **spec)
    desired = zstack.desired_model(r, CONN)
    changed = zstack.diff(desired, {**desired, **{k: None for k in ("shareMode", "systemTags")}, **inv})
    err = zstack.create_only_change(r, changed, inv, zstack.MODEL_CREATE_ONLY, "UpdateModel")
    assert err is not None and err.reason == "InvalidSpec" and err.fields == (field,)
    assert field in err.message and stored in err.message and "cannot change after create" in err.message
    assert "create a new Model" in err.message
    assert zstack.create_only_change(r, ("description",), inv, zstack.MODEL_CREATE_ONLY, "UpdateModel") is None


@pytest.mark.parametrize("resources,expected", [
    ({"cpu": 4, "memory": "16Gi"}, {"requestCpu": 4, "requestMemory": 16384}),
    ({"cpu": "2", "memory": "512Mi"}, {"requestCpu": 2, "requestMemory": 512}),
    ({"memory": "1G"}, None),  # 10^9 bytes is not a whole number of MiB
    ({"cpu": "1500m"}, None),
])
def test_service_resources_convert_exactly(resources: dict[str, Any], expected: dict[str, Any] | None) -> None:
    r = res("ModelService", **{**SVC, "resources": resources})
    if expected is None:
        with pytest.raises(Terminal, match="spec.resources"):
            zstack.desired_service(r, CONN)
    else:
        desired = zstack.desired_service(r, CONN)
        assert {k: desired[k] for k in expected} == expected


def test_service_wire_shapes() -> None:
    r = res("ModelService", command=["python3", "-m", "vllm x"], args=["--port", "8000"], ports=[8000], **SVC,
            images=[{"cpuArchitecture": "x86_64", "image": "img:1"}], livenessPath="/h", readinessPath="/r",
            bootupTimeSeconds=30)
    desired = zstack.desired_service(r, CONN)
    assert desired["containerCommand"] == "python3 -m 'vllm x'"
    body = zstack.add_service_body(r, CONN, desired)["param"]
    # objects, as the SDK's examples and the inventory's modelServiceImages have them
    assert body["architectureImages"] == [{"cpuArchitecture": "x86_64", "dockerImage": "img:1"}]
    assert "images" not in body and set(body) <= zstack.ADD_MODEL_SERVICE_FIELDS
    # AddModelService has none of the service* fields: they go in the update after the create
    assert not set(zstack.SERVICE_UPDATE_ONLY) & set(body)
    later = zstack.update_service_body(desired, [f for f in zstack.SERVICE_UPDATE_ONLY if f in desired])
    later = later["updateModelService"]
    assert later == {"servicePorts": [8000], "serviceLivez": "/h", "serviceReadyz": "/r", "serviceBootupTime": 30}
    inv = {"modelServiceImages": [{"cpuArchitecture": "x86_64", "dockerImage": "img:1"}],
           **{k: v for k, v in desired.items() if k != "images"}}
    assert zstack.diff(desired, inv) == ()
    assert zstack.update_service_body(desired, ("images",)) == {
        "updateModelService": {"architectureImages": [{"cpuArchitecture": "x86_64", "dockerImage": "img:1"}]}}
    assert "installPath" not in zstack.update_service_body(desired, ("installPath",))["updateModelService"]


def test_invalid_service_yaml_is_terminal() -> None:
    with pytest.raises(Terminal, match="spec.config is not valid YAML"):
        zstack.desired_service(res("ModelService", **{**SVC, "config": "a: [1, 2"}), CONN)


def test_a_config_is_parsed_once_and_judged_the_same_every_time() -> None:
    """The YAML check is kept per config text (every unchanged resync asks it again): the second
    answer, good or bad, is the first one, and a changed text is parsed anew."""
    zstack.yaml_problem.cache_clear()
    bad = res("ModelService", **{**SVC, "config": "b: [1, 2"})
    for _ in range(2):
        with pytest.raises(Terminal, match="spec.config is not valid YAML: .*flow sequence"):
            zstack.desired_service(bad, CONN)
    good = res("ModelService", **{**SVC, "config": "b: [1, 2]\n"})
    assert zstack.desired_service(good, CONN)["yaml"] == "b: [1, 2]\n"
    assert zstack.desired_service(good, CONN)["yaml"] == "b: [1, 2]\n"
    info = zstack.yaml_problem.cache_info()
    assert (info.misses, info.hits) == (2, 2)


def test_service_required_fields_named() -> None:
    with pytest.raises(Terminal, match="requires spec.config, spec.resources.cpu, spec.resources.memory, "
                                       "spec.startCommand, spec.zstack.installPath"):
        zstack.desired_service(res("ModelService"), CONN)


@pytest.mark.parametrize("value,expected", [("3", 3.0), ("0.5", 0.5), (None, None), ("soon", None)])
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected
