"""The ZStack client against the faithful simulator (in-process) and against replies shaped as
the real server sends them: it sends only what each API documents, reports what no API sets,
refuses a create-only change, and reads ZStack's error codes as the framework defines them."""
from __future__ import annotations

import json
from typing import Any, Iterator

import httpx
import pytest

from modelsync import api
from modelsync.vendors.zstack import mapping as zstack
from modelsync.vendors.zstack.client import ZStackBackend
from modelsync.backends.base import (
    CredentialsRejected, Recoverable, RegistryConnection, Resource, Terminal,
)
from modelsync.vendors.zstack import simulator as zstack_sim
from modelsync.simulators.server import serve_in_thread

CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"
PASSWORD = "password"
CREDS = {"accountName": "admin", "password": PASSWORD}

#: every field the Model CRD allows for ZStack (common fields and spec.zstack)
EVERY_MODEL_FIELD: dict[str, Any] = dict(
    description="Qwen3 8B", installPath="/models/qwen3-8b", vendor="Qwen", version="1.0.0",
    parameters="8B", architecture="Qwen3ForCausalLM", frameworkVersion="PyTorch 2.4.0", task="text-generation",
    license="apache-2.0", readme="# Qwen3",
    gpu={"minMemory": "16Gi", "recommendedMemory": "24Gi", "recommendedCount": [1, 2],
         "constraintDescription": "Ampere or newer", "accelerator": "cuda:12.1"},
    zstack={"name": "Qwen3 8B", "modelId": "Qwen/Qwen3-8B", "logo": "aGVsbG8=", "introduction": "intro",
            "size": 16000000000, "shareMode": "Private", "pipelineTag": "text-generation",
            "systemTags": ["resourceConfig::ai::gpuOvercommit::true"]},
)
SVC: dict[str, Any] = dict(
    description="vLLM", readme="# vLLM", config="services:\n  - name: vllm\n", resources={"cpu": 4, "memory": "16Gi"},
    gpuComputeCapability="8.0", startCommand="python3 -m vllm", framework="vLLM", pythonVersion="3.10.12",
    command=["python3", "-m", "vllm"], args=["--port", "8000"],
    images=[{"cpuArchitecture": "x86_64", "image": "vllm:0.6"}, {"cpuArchitecture": "aarch64", "image": "vllm-arm:0.6"}],
    ports=[8000], livenessPath="/health", readinessPath="/ready", bootupTimeSeconds=120, supportDistributed=True,
    zstack={"name": "vllm", "type": "Endpoint", "source": "custom", "installPath": "/opt/vllm", "serviceName": "vllm"},
)


def res(kind: str, uid: str = "uid-1", refs: dict[str, str] | None = None, **spec: Any) -> Resource:
    return Resource(kind=kind, name="qwen", namespace="ml", uid=uid, generation=1,  # type: ignore[arg-type]
                    spec=api.parse_spec(kind, {"registries": [{"name": "z"}], **spec}), references=refs or {})


def conn(url: str, center: str = CENTER) -> RegistryConnection:
    return RegistryConnection(key="ModelRegistry/ml/z", name="z", kind="ModelRegistry", backend="zstack",
                              endpoint=url, credentials=CREDS, settings={"modelCenterUuid": center}, timeout=5.0)


@pytest.fixture
def zsim() -> Iterator[tuple[str, Any]]:
    app = zstack_sim.create_app(password=PASSWORD, model_center_uuid=CENTER)
    with serve_in_thread(app) as url:
        yield url, app


def journal(url: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=5) as http:
        return [e for e in http.get("/_sim/requests").json() if "/accounts/" not in e["path"]]


def clear_journal(url: str) -> None:
    with httpx.Client(base_url=url, timeout=5) as http:
        http.delete("/_sim/requests").raise_for_status()


def body_of(entry: dict[str, Any]) -> Any:
    body = entry.get("body")
    return json.loads(body) if isinstance(body, str) else body


# ---------------------------------------------------------------- models


async def test_a_model_setting_every_field_lands_or_is_reported(zsim: tuple[str, Any]) -> None:
    url, app = zsim
    state = app["zstack"]
    b = ZStackBackend(conn(url))
    r = res("Model", **EVERY_MODEL_FIELD)
    try:
        inv = await b.create(r)
        uuid = inv["uuid"]
        (post,) = [e for e in journal(url) if e["method"] == "POST"]
        sent = body_of(post)
        # only what AddModel documents, and no system tag but the user's own
        assert set(sent["param"]) <= zstack.ADD_MODEL_FIELDS, set(sent["param"]) - zstack.ADD_MODEL_FIELDS
        assert sent["systemTags"] == ["resourceConfig::ai::gpuOvercommit::true"]
        stored = state.models[uuid]
        assert stored.fields == {
            "name": "Qwen3 8B", "installPath": "/models/qwen3-8b", "description": "Qwen3 8B", "parameters": "8B",
            "modelCenterUuid": CENTER, "vendor": "Qwen", "version": "1.0.0", "modelId": "Qwen/Qwen3-8B",
            "logo": "aGVsbG8=", "introduction": "intro", "gpuConstraintDescription": "Ampere or newer",
            "recommendedGpuNum": [1, 2], "size": 16000000000, "shareMode": "Private"}
        assert stored.tags.system == ["resourceConfig::ai::gpuOvercommit::true"]
        assert stored.tags.user == ["modelsync.io/owner::ml/qwen"]

        # the server fills what no API sets; the client compares and reports it
        state.set_inventory_fields(uuid, {"minGpuMemory": 17179869184, "requiredAccelerator": "cuda:11.8"})
        obs = await b.observe(r)
        # what the inventory does not show (create-only, never read back) is all that differs: the
        # core records it as accepted and not reflected, and never sends it again
        assert set(obs.diff) == {"shareMode", "systemTags"}
        found = {n.field: n for n in obs.not_settable}
        assert set(found) == {"spec.gpu.minMemory", "spec.gpu.recommendedMemory", "spec.gpu.accelerator",
                              "spec.architecture", "spec.frameworkVersion", "spec.task", "spec.zstack.pipelineTag",
                              "spec.license", "spec.readme"}  # readme: spec.zstack.introduction is sent
        assert found["spec.gpu.minMemory"].registry_value == 17179869184
        assert "the same as the spec" in found["spec.gpu.minMemory"].why
        assert found["spec.gpu.accelerator"].registry_value == "cuda:11.8"
        assert "not the spec's value" in found["spec.gpu.accelerator"].why
        assert found["spec.architecture"].registry_value is None
    finally:
        await b.aclose()


async def test_an_update_sends_only_update_model_fields(zsim: tuple[str, Any]) -> None:
    url, app = zsim
    b = ZStackBackend(conn(url))
    try:
        await b.create(res("Model", installPath="/m", vendor="A"))
        r2 = res("Model", installPath="/m2", vendor="B", description="d", gpu={"minMemory": "1Gi"}, architecture="X")
        obs = await b.observe(r2)
        assert set(obs.diff) == {"installPath", "vendor", "description"}
        clear_journal(url)
        after = b.observation(r2, await b.update(r2, obs))
        (put,) = journal(url)
        assert body_of(put) == {"updateModel": {"installPath": "/m2", "vendor": "B", "description": "d"}}
        assert after is not None and after.diff == ()
    finally:
        await b.aclose()


@pytest.mark.parametrize("change,field", [
    ({"version": "2.0.0"}, "spec.version"),
    ({"readme": "# changed"}, "spec.readme"),
    ({"zstack": {"logo": "bmV3"}}, "spec.zstack.logo"),
    ({"zstack": {"size": 1}}, "spec.zstack.size"),
])
async def test_a_create_only_change_is_refused_and_nothing_is_sent(
        zsim: tuple[str, Any], change: dict[str, Any], field: str) -> None:
    url, app = zsim
    b = ZStackBackend(conn(url))
    base = dict(installPath="/m", version="1.0.0", readme="# r", zstack={"logo": "b2xk", "size": 5})
    try:
        await b.create(res("Model", **base))
        changed = res("Model", **{**base, **change, "zstack": {**base["zstack"], **change.get("zstack", {})}})
        obs = await b.observe(changed)
        assert obs.diff, "the change must show"
        clear_journal(url)
        with pytest.raises(Terminal) as info:
            await b.update(changed, obs)
        assert info.value.reason == "InvalidSpec" and info.value.fields == (field,)
        assert "cannot change after create" in info.value.message
        assert journal(url) == []  # refused before anything was sent
    finally:
        await b.aclose()


async def test_a_system_tag_the_server_has_not_registered_is_invalid_spec(zsim: tuple[str, Any]) -> None:
    url, app = zsim
    b = ZStackBackend(conn(url))
    try:
        with pytest.raises(Terminal) as info:
            await b.create(res("Model", installPath="/m", zstack={"systemTags": ["minGpuMemory::1"]}))
        assert info.value.reason == "InvalidSpec"
        assert "SYS.1007" in info.value.message and "no system tag matches minGpuMemory::1" in info.value.message
        assert app["zstack"].models == {}
    finally:
        await b.aclose()


async def test_a_missing_model_center_is_registry_misconfigured(zsim: tuple[str, Any]) -> None:
    url, _ = zsim
    b = ZStackBackend(conn(url, center="0" * 32))
    try:
        with pytest.raises(Terminal) as info:
            await b.create(res("Model", installPath="/m"))
        assert info.value.reason == "RegistryMisconfigured"
        assert "modelCenterUuid" in info.value.message and "SYS.1003" in info.value.message
    finally:
        await b.aclose()


async def test_a_default_service_gone_from_zstack_is_dependency_not_ready(zsim: tuple[str, Any]) -> None:
    url, _ = zsim
    b = ZStackBackend(conn(url))
    try:
        with pytest.raises(Recoverable) as info:
            await b.create(res("Model", installPath="/m", refs={"defaultService": "ab" * 16}))
        assert info.value.reason == "DependencyNotReady" and "defaultModelServiceUuid" in info.value.message
        await b.create(res("Model", uid="uid-2", installPath="/m"))
        r = res("Model", uid="uid-2", installPath="/m", refs={"defaultService": "cd" * 16})
        obs = await b.observe(r)
        with pytest.raises(Recoverable) as info:
            await b.update(r, obs)
        assert info.value.reason == "DependencyNotReady"
    finally:
        await b.aclose()


# ---------------------------------------------------------------- model services


async def test_a_service_setting_every_field_lands_or_is_reported(zsim: tuple[str, Any]) -> None:
    url, app = zsim
    b = ZStackBackend(conn(url))
    r = res("ModelService", **SVC)
    try:
        inv = await b.create(r)
        post, put = journal(url)
        assert post["method"] == "POST" and put["method"] == "PUT"
        param = body_of(post)["param"]
        assert set(param) <= zstack.ADD_MODEL_SERVICE_FIELDS, set(param) - zstack.ADD_MODEL_SERVICE_FIELDS
        assert param["architectureImages"] == [{"cpuArchitecture": "aarch64", "dockerImage": "vllm-arm:0.6"},
                                               {"cpuArchitecture": "x86_64", "dockerImage": "vllm:0.6"}]
        # what only UpdateModelService takes follows in one update
        assert body_of(put) == {"updateModelService": {"serviceName": "vllm", "servicePorts": [8000],
                                                       "serviceLivez": "/health", "serviceReadyz": "/ready",
                                                       "serviceBootupTime": 120}}
        stored = app["zstack"].services[inv["uuid"]]
        assert {k: stored.fields[k] for k in ("serviceName", "servicePorts", "serviceLivez", "serviceReadyz",
                                              "serviceBootupTime", "installPath", "containerArgs", "type")} == {
            "serviceName": "vllm", "servicePorts": [8000], "serviceLivez": "/health", "serviceReadyz": "/ready",
            "serviceBootupTime": 120, "installPath": "/opt/vllm", "containerArgs": "--port 8000", "type": "Endpoint"}
        assert sorted((i.cpu_architecture, i.docker_image) for i in stored.images) == [
            ("aarch64", "vllm-arm:0.6"), ("x86_64", "vllm:0.6")]
        obs = await b.observe(r)
        # the service* fields are stored and not shown: the core records them, never resends
        assert set(obs.diff) == set(zstack.SERVICE_UPDATE_ONLY)
        assert [n.field for n in obs.not_settable] == ["spec.readme"]
    finally:
        await b.aclose()


async def test_a_service_install_path_change_is_refused(zsim: tuple[str, Any]) -> None:
    url, _ = zsim
    b = ZStackBackend(conn(url))
    try:
        await b.create(res("ModelService", **SVC))
        moved = res("ModelService", **{**SVC, "zstack": {**SVC["zstack"], "installPath": "/opt/other"}})
        with pytest.raises(Terminal) as info:
            await b.update(moved, await b.observe(moved))
        assert info.value.fields == ("spec.zstack.installPath",) and "'/opt/vllm'" in info.value.message
    finally:
        await b.aclose()


# ---------------------------------------------------------------- error codes as the framework defines them


def envelope(code: str, details: str = "x", status: int = 503) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "description": "d", "details": details}})


def mock_backend(reply: httpx.Response) -> ZStackBackend:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/accounts/login"):
            return httpx.Response(200, json={"inventory": {"uuid": "5" * 32}})
        if request.method == "GET":
            return httpx.Response(200, json={"inventories": []})
        return reply

    return ZStackBackend(conn("http://zstack.test"), transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("code,expected,reason", [
    ("ID.1003", Recoverable, "RegistryUnavailable"),   # IdentityErrors.QUOTA_EXCEEDING: not the credentials
    ("ID.1006", Recoverable, "RegistryUnavailable"),   # MAX_CONCURRENT_SESSION_EXCEEDED
    ("ID.1002", CredentialsRejected, "CredentialsRejected"),   # PERMISSION_DENIED
    ("ID.1007", CredentialsRejected, "CredentialsRejected"),   # ACCOUNT_DISABLED
    ("SYS.1007", Terminal, "InvalidSpec"),
])
async def test_identity_and_system_codes(code: str, expected: type, reason: str) -> None:
    b = mock_backend(envelope(code, "quota exceeded" if code == "ID.1003" else "x"))
    try:
        with pytest.raises(expected) as info:
            await b.create(res("Model", installPath="/m"))
        assert type(info.value) is expected and info.value.reason == reason
        assert code in info.value.message
    finally:
        await b.aclose()


@pytest.mark.parametrize("details,reason,cls", [
    (f"invalid field[modelCenterUuid] for APIAddModelMsg, resource[uuid:{CENTER}, type:ModelCenterVO] not found",
     "RegistryMisconfigured", Terminal),
    ("invalid field[defaultModelServiceUuid] for APIAddModelMsg, resource[uuid:x, type:ModelServiceVO] not found",
     "DependencyNotReady", Recoverable),
    ("invalid field[tagUuids] for APIAddModelMsg, resource[uuids:[x], type:TagVO] not found", "InvalidSpec", Terminal),
    ("invalid value[xyz] of field[modelServiceUuids]", "DependencyNotReady", Recoverable),
])
async def test_sys_1003_on_create_is_told_by_the_field_it_names(details: str, reason: str, cls: type) -> None:
    b = mock_backend(envelope("SYS.1003", details))
    try:
        with pytest.raises(cls) as info:
            await b.create(res("Model", installPath="/m"))
        assert info.value.reason == reason, info.value.message
    finally:
        await b.aclose()


async def test_a_session_refused_again_after_a_fresh_login_is_rejected_credentials() -> None:
    b = mock_backend(envelope("ID.1001", "Session expired"))
    try:
        with pytest.raises(CredentialsRejected):
            await b.create(res("Model", installPath="/m"))
    finally:
        await b.aclose()
