"""Spec → ZStack wire mapping: pure functions, table tests."""
from __future__ import annotations

from typing import Any

import pytest

from modelsync import api
from modelsync.backends import zstack
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
    ({"installPath": "/m", "gpu": {"minMemory": "16Gi"}}, {"minGpuMemory": 17179869184}),
    ({"installPath": "/m", "gpu": {"minMemory": "4295991296"}}, {"minGpuMemory": 4295991296}),
    ({"installPath": "/m", "gpu": {"recommendedMemory": "24G"}}, {"recommendedGpuMemory": 24_000_000_000}),
    ({"installPath": "/m", "gpu": {"recommendedCount": [1, 2], "accelerator": "cuda:12.1"}},
     {"recommendedGpuNum": [1, 2], "requiredAccelerator": "cuda:12.1"}),
    ({"installPath": "/m", "readme": "# hi"}, {"introduction": "# hi"}),
    ({"installPath": "/m", "readme": "# hi", "zstack": {"introduction": "own"}}, {"introduction": "own"}),
    ({"installPath": "/m", "task": "text-generation"}, {"pipelineTag": "text-generation"}),
    ({"installPath": "/m", "zstack": {"name": "Qwen3 8B", "modelId": "Qwen/Qwen3-8B"}},
     {"name": "Qwen3 8B", "modelId": "Qwen/Qwen3-8B"}),
    ({"installPath": "/m", "architecture": "A", "frameworkVersion": "F"}, {"architectureType": "A", "frameworkVersion": "F"}),
])
def test_desired_model(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    desired = zstack.desired_model(res(**spec), CONN)
    for key, value in expected.items():
        assert desired[key] == value, key
    assert "description" not in desired  # unset fields are not managed


def test_default_service_reference() -> None:
    desired = zstack.desired_model(res(installPath="/m", refs={"defaultService": "ab" * 16}), CONN)
    assert desired["defaultModelServiceUuid"] == "ab" * 16


def test_install_path_required_names_field() -> None:
    with pytest.raises(Terminal, match="spec.installPath"):
        zstack.desired_model(res(), CONN)


def test_fractional_bytes_rejected_naming_field() -> None:
    with pytest.raises(Terminal, match="spec.gpu.minMemory"):
        zstack.desired_model(res(installPath="/m", gpu={"minMemory": "0.5"}), CONN)


def test_add_model_body_shape() -> None:
    r = res(installPath="/m", gpu={"minMemory": "1Gi", "recommendedCount": [1, 2]}, vendor="Qwen")
    body = zstack.add_model_body(r, CONN, zstack.desired_model(r, CONN))
    assert set(body) == {"param", "systemTags", "userTags"}
    p = body["param"]
    assert p["recommendedGpuNum"] == "1,2"
    assert p["resourceUuid"] == zstack.resource_uuid(r, CONN)
    assert "minGpuMemory" not in p and "minGpuMemory::1073741824" in body["systemTags"]
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
    (("minGpuMemory",), {"updateModel": {"systemTags": ["minGpuMemory::2147483648"]}}),
    (("vendor", "minGpuMemory"), {"updateModel": {"vendor": "V", "systemTags": ["minGpuMemory::2147483648"]}}),
])
def test_update_model_body_carries_only_the_diff(fields: tuple[str, ...], expected: dict[str, Any]) -> None:
    r = res(installPath="/m", description="new", vendor="V", gpu={"minMemory": "2Gi", "recommendedCount": [2, 4]})
    assert zstack.update_model_body(zstack.desired_model(r, CONN), fields) == expected


def test_diff_skips_unmanaged_and_create_only_fields() -> None:
    r = res(installPath="/m", zstack={"size": 5})
    desired = zstack.desired_model(r, CONN)
    inv = {**desired, "size": 1, "description": "set elsewhere", "lastOpDate": "x"}
    assert zstack.diff(desired, inv, ignore=zstack.MODEL_CREATE_ONLY) == ()
    inv["installPath"] = "/old"
    assert zstack.diff(desired, inv, ignore=zstack.MODEL_CREATE_ONLY) == ("installPath",)


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
            images=[{"cpuArchitecture": "x86_64", "image": "img:1"}], livenessPath="/h")
    desired = zstack.desired_service(r, CONN)
    assert desired["containerCommand"] == "python3 -m 'vllm x'"
    body = zstack.add_service_body(r, CONN, desired)["param"]
    assert body["architectureImages"] == ["x86_64::img:1"] and "images" not in body
    assert body["servicePorts"] == [8000] and body["serviceLivez"] == "/h"
    inv = {"modelServiceImages": [{"cpuArchitecture": "x86_64", "dockerImage": "img:1"}], "servicePorts": ["8000"],
           **{k: v for k, v in desired.items() if k not in ("images", "servicePorts")}}
    assert zstack.diff(desired, inv, ignore=zstack.SERVICE_CREATE_ONLY) == ()
    assert zstack.update_service_body(desired, ("images",)) == {"updateModelService": {"architectureImages": ["x86_64::img:1"]}}


def test_invalid_service_yaml_is_terminal() -> None:
    with pytest.raises(Terminal, match="spec.config is not valid YAML"):
        zstack.desired_service(res("ModelService", **{**SVC, "config": "a: [1, 2"}), CONN)


def test_service_required_fields_named() -> None:
    with pytest.raises(Terminal, match="requires spec.config, spec.resources.cpu, spec.resources.memory, "
                                       "spec.startCommand, spec.zstack.installPath"):
        zstack.desired_service(res("ModelService"), CONN)


@pytest.mark.parametrize("value,expected", [("3", 3.0), ("0.5", 0.5), (None, None), ("soon", None)])
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected
