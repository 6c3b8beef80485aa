"""The ZStack AI model center simulator keeps the contract the ZStack backend is written to, and
behaves like the real server as its published sources show: the SDK's request structs
(../shared/specs/zstack/), RestServer's Gson binding (unknown keys dropped), TagManagerImpl
(SYS.1007 "no system tag matches"), PortApiValidator (SYS.1003 naming the field) and HTTP 503
for API errors."""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import time
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import urlparse

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from modelsync.vendors.zstack import simulator as zstack
from modelsync.simulators.server import serve_in_thread

API = "/zstack/v1"
CENTER = "c0ffee00c0ffee00c0ffee00c0ffee00"
UUID_RE = re.compile(r"^[0-9a-f]{32}$")
DATE_RE = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} [AP]M$")

#: ModelInventory fields listed on the UpdateModel/AddModel seed pages.
SEED_MODEL_FIELDS = (
    "uuid", "name", "description", "installPath", "parameters", "modelCenterUuid", "logo", "vendor",
    "modelId", "introduction", "size", "version", "type", "minGpuMemory", "recommendedGpuMemory",
    "recommendedGpuNum", "gpuConstraintDescription", "versionSemver", "isLatestVersion",
    "artifactChecksum", "artifactSizeBytes", "architectureType", "frameworkVersion",
    "requiredAccelerator", "pipelineTag", "modelServiceRefs", "extraGpuMemRequest", "SAMPLE_SIZE",
    "createDate", "lastOpDate",
)

#: ModelServiceInventory fields listed on the UpdateModelService seed page.
SEED_SERVICE_FIELDS = (
    "uuid", "name", "description", "readme", "yaml", "requestCpu", "requestMemory", "modelCenterUuid",
    "type", "framework", "source", "size", "system", "hasNewVersion", "gpuComputeCapability",
    "installPath", "pythonVersion", "condaVersion", "version", "startCommand", "containerCommand",
    "containerArgs", "supportDistributed", "cpuArchitectures", "vendorToSpecUuidsMap",
    "modelServiceRefs", "modelServiceImages", "createDate", "lastOpDate",
)

Make = Callable[..., Awaitable[TestClient]]


def sha512(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()


@pytest.fixture
async def make_client() -> AsyncIterator[Make]:
    clients: list[TestClient] = []

    async def make(**options: Any) -> TestClient:
        options.setdefault("model_center_uuid", CENTER)
        client = TestClient(TestServer(zstack.create_app(**options)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: Make) -> TestClient:
    return await make_client()


async def login(client: TestClient, password: str = "password") -> dict[str, str]:
    resp = await client.put(f"{API}/accounts/login", json={"logInByAccount": {"accountName": "admin", "password": sha512(password)}})
    assert resp.status == 200, await resp.text()
    return {"Authorization": f"OAuth {(await resp.json())['inventory']['uuid']}"}


def model_param(**overrides: Any) -> dict[str, Any]:
    return {"name": "llama", "installPath": "s3://models/llama", "modelCenterUuid": CENTER, **overrides}


async def add_model(client: TestClient, auth: dict[str, str], system_tags: list[str] | None = None, **param: Any) -> dict[str, Any]:
    resp = await client.post(f"{API}/ai/models", json={"param": model_param(**param), "systemTags": system_tags or []}, headers=auth)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["inventory"]


#: what AddModelService requires besides the name and the model center
SERVICE_REQUIRED = {"yaml": "services: []\n", "requestCpu": 1, "requestMemory": 1024,
                    "installPath": "/opt/vllm", "startCommand": "python3 -m vllm"}


async def add_service(client: TestClient, auth: dict[str, str], **param: Any) -> dict[str, Any]:
    body = {"param": {"name": "vllm", "modelCenterUuid": CENTER, **SERVICE_REQUIRED, **param}}
    resp = await client.post(f"{API}/ai/model-services", json=body, headers=auth)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["inventory"]


async def assert_text(resp: Any, status: int, *needles: str) -> str:
    """RestServer's own refusals: a status with plain text, not the envelope."""
    assert resp.status == status, await resp.text()
    text = await resp.text()
    assert not text.startswith("{"), text
    for needle in needles:
        assert needle in text, text
    return text


async def assert_error(resp: Any, status: int, code: str, *in_details: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    error = (await resp.json())["error"]
    assert set(error) == {"code", "description", "details", "elaboration", "opaque", "cause"}
    assert error["code"] == code
    assert error["elaboration"] is None and error["opaque"] is None and error["cause"] is None
    for text in in_details:
        assert text in error["details"], error
    return error


async def poll_job(client: TestClient, location: str, auth: dict[str, str], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        resp = await client.get(urlparse(location).path, headers=auth)
        if resp.status != 202:
            return resp
        assert time.monotonic() < deadline, "job never finished"
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- sessions


async def test_login_opens_a_session_that_validates(client: TestClient) -> None:
    resp = await client.put(f"{API}/accounts/login", json={"logInByAccount": {"accountName": "admin", "password": sha512("password")}})
    assert resp.status == 200
    inventory = (await resp.json())["inventory"]
    assert set(inventory) == {"uuid", "accountUuid", "userUuid", "expiredDate", "createDate"}
    assert UUID_RE.match(inventory["uuid"]) and DATE_RE.match(inventory["expiredDate"])

    valid = await client.get(f"{API}/accounts/sessions/{inventory['uuid']}/valid")
    assert valid.status == 200 and await valid.json() == {"valid": True}
    unknown = await client.get(f"{API}/accounts/sessions/{'0' * 32}/valid")
    assert await unknown.json() == {"valid": False}


async def test_login_with_wrong_password_is_ID_1000(client: TestClient) -> None:
    # The plaintext password is wrong too: ZStack wants its SHA-512 hex digest.
    for password in (sha512("nope"), "password"):
        resp = await client.put(f"{API}/accounts/login", json={"logInByAccount": {"accountName": "admin", "password": password}})
        await assert_error(resp, 503, "ID.1000")
    assert client.app[zstack.STATE_KEY].sessions == {}


async def test_api_without_authorization_is_a_400_and_a_bad_session_ID_1001(client: TestClient) -> None:
    # RestServer refuses a missing or non-OAuth header itself (RestException: 400, plain text);
    # a session the API does not know is an API error: 503 with ID.1001
    await assert_text(await client.get(f"{API}/ai/models"), 400, "missing header 'Authorization'")
    await assert_text(await client.post(f"{API}/ai/models", json={"param": model_param()}), 400, "Authorization")
    await assert_text(await client.get(f"{API}/ai/models", headers={"Authorization": "Bearer x"}), 400, "OAuth")
    bad = {"Authorization": f"OAuth {'f' * 32}"}
    await assert_error(await client.get(f"{API}/ai/models", headers=bad), 503, "ID.1001")
    assert client.app[zstack.STATE_KEY].models == {}


async def test_expired_sessions_answer_ID_1001_until_login_again(client: TestClient) -> None:
    auth = await login(client)
    assert (await client.get(f"{API}/ai/models", headers=auth)).status == 200

    assert (await client.post("/_sim/zstack/expire-sessions")).status == 200
    await assert_error(await client.get(f"{API}/ai/models", headers=auth), 503, "ID.1001")
    session = auth["Authorization"].split()[1]
    assert await (await client.get(f"{API}/accounts/sessions/{session}/valid")).json() == {"valid": False}

    fresh = await login(client)
    assert (await client.get(f"{API}/ai/models", headers=fresh)).status == 200


async def test_sessions_expire_after_the_ttl(make_client: Make) -> None:
    now = [1_700_000_000.0]
    client = await make_client(session_ttl=60, clock=lambda: now[0])
    auth = await login(client)
    now[0] += 59
    assert (await client.get(f"{API}/ai/models", headers=auth)).status == 200
    now[0] += 2
    await assert_error(await client.get(f"{API}/ai/models", headers=auth), 503, "ID.1001")


async def test_logout_ends_the_session(client: TestClient) -> None:
    auth = await login(client)
    session = auth["Authorization"].split()[1]
    resp = await client.delete(f"{API}/accounts/sessions/{session}")
    assert resp.status == 200 and await resp.json() == {}
    await assert_error(await client.get(f"{API}/ai/models", headers=auth), 503, "ID.1001")


# --------------------------------------------------------------------------- model center


async def test_one_model_center_is_listed(client: TestClient) -> None:
    auth = await login(client)
    listed = await (await client.get(f"{API}/ai/model-centers", headers=auth)).json()
    assert [c["uuid"] for c in listed["inventories"]] == [CENTER]
    assert set(listed["inventories"][0]) == set(zstack.MODEL_CENTER_INVENTORY_FIELDS)
    assert listed["inventories"][0]["name"] == "default-model-center"
    one = await (await client.get(f"{API}/ai/model-centers/{CENTER}", headers=auth)).json()
    assert one == listed


# --------------------------------------------------------------------------- models


async def test_add_model_returns_every_seed_field(client: TestClient) -> None:
    auth = await login(client)
    wanted = "0123456789abcdef0123456789abcdef"
    resp = await client.post(f"{API}/ai/models", headers=auth, json={
        "param": model_param(resourceUuid=wanted, recommendedGpuNum="1,2", vendor="Meta", token="hf_secret"),
        "userTags": ["modelsync.io/owner::ns/llama"]})
    assert resp.status == 200, await resp.text()
    inv = (await resp.json())["inventory"]
    assert set(SEED_MODEL_FIELDS) <= set(inv)
    assert set(inv) == set(SEED_MODEL_FIELDS) | {"defaultModelServiceUuid"}
    assert inv["uuid"] == wanted
    assert inv["type"] == "Customized" and inv["isLatestVersion"] is True
    assert inv["size"] == 0 and inv["SAMPLE_SIZE"] is None and inv["modelServiceRefs"] == []
    assert inv["recommendedGpuNum"] == [1, 2]
    # no API sets these: the server fills them, and until then they read null
    for field in ("minGpuMemory", "recommendedGpuMemory", "requiredAccelerator", "architectureType",
                  "frameworkVersion", "pipelineTag", "artifactSizeBytes", "versionSemver"):
        assert inv[field] is None, field
    assert inv["description"] is None
    assert inv["defaultModelServiceUuid"] is None and inv["vendor"] == "Meta"
    assert "hf_secret" not in str(inv) and "owner" not in str(inv)
    assert DATE_RE.match(inv["createDate"]) and DATE_RE.match(inv["lastOpDate"])

    fetched = await (await client.get(f"{API}/ai/models/{wanted}", headers=auth)).json()
    assert fetched == {"inventories": [inv]}


async def test_inventory_fields_no_api_sets_show_once_the_server_fills_them(client: TestClient) -> None:
    auth = await login(client)
    inv = await add_model(client, auth)
    resp = await client.put(f"/_sim/zstack/models/{inv['uuid']}/inventory",
                            json={"minGpuMemory": 4294967296, "requiredAccelerator": "cuda:12.1"})
    assert resp.status == 200, await resp.text()
    fetched = (await (await client.get(f"{API}/ai/models/{inv['uuid']}", headers=auth)).json())["inventories"][0]
    assert fetched["minGpuMemory"] == 4294967296 and fetched["requiredAccelerator"] == "cuda:12.1"
    refused = await client.put(f"/_sim/zstack/models/{inv['uuid']}/inventory", json={"name": "x"})
    await assert_error(refused, 503, "SYS.1007", "name")


async def test_add_model_without_install_path_names_the_field(client: TestClient) -> None:
    auth = await login(client)
    param = model_param()
    del param["installPath"]
    resp = await client.post(f"{API}/ai/models", json={"param": param}, headers=auth)
    error = await assert_error(resp, 503, "SYS.1007", "field[installPath] is mandatory")
    assert error["description"] == "One or more API argument is invalid"
    assert client.app[zstack.STATE_KEY].models == {}


@pytest.mark.parametrize(
    ("param", "named"),
    [
        ({"resourceUuid": "6d0f1c2e-5a7b-4c8e-9f3a-2b1d4e6c8a90"}, "resourceUuid"),
        ({"size": "10"}, "size"),
        ({"recommendedGpuNum": "one"}, "recommendedGpuNum"),
    ],
)
async def test_add_model_rejects_invalid_arguments(client: TestClient, param: dict[str, Any], named: str) -> None:
    auth = await login(client)
    resp = await client.post(f"{API}/ai/models", json={"param": model_param(**param)}, headers=auth)
    await assert_error(resp, 503, "SYS.1007", named)
    assert client.app[zstack.STATE_KEY].models == {}


@pytest.mark.parametrize(
    ("param", "details"),
    [
        ({"modelCenterUuid": "f" * 32},
         f"invalid field[modelCenterUuid] for APIAddModelMsg, resource[uuid:{'f' * 32}, type:ModelCenterVO] not found"),
        ({"defaultModelServiceUuid": "e" * 32},
         f"invalid field[defaultModelServiceUuid] for APIAddModelMsg, resource[uuid:{'e' * 32}, type:ModelServiceVO]"),
        ({"modelServiceUuids": ["d" * 32]}, "invalid field[modelServiceUuids] for APIAddModelMsg"),
    ],
)
async def test_a_missing_referenced_uuid_is_SYS_1003_naming_the_field(
        client: TestClient, param: dict[str, Any], details: str) -> None:
    # PortApiValidator: SysErrors.RESOURCE_NOT_FOUND, not an invalid argument
    auth = await login(client)
    resp = await client.post(f"{API}/ai/models", json={"param": model_param(**param)}, headers=auth)
    await assert_error(resp, 503, "SYS.1003", details)
    assert client.app[zstack.STATE_KEY].models == {}


@pytest.mark.parametrize("tag", [
    "minGpuMemory::4294967296", "requiredAccelerator::cuda:12.1", "architectureType::Qwen3ForCausalLM",
    "frameworkVersion::PyTorch 2.4.0", "pipelineTag::text-generation", "modelsync.io/owner::ns/llama",
])
async def test_a_system_tag_matching_no_registered_pattern_refuses_the_create(client: TestClient, tag: str) -> None:
    # TagManagerImpl.intercept (APICreateMessage): "no system tag matches <tag>", SYS.1007
    auth = await login(client)
    resp = await client.post(f"{API}/ai/models", json={"param": model_param(), "systemTags": [tag]}, headers=auth)
    await assert_error(resp, 503, "SYS.1007", f"no system tag matches {tag}")
    assert client.app[zstack.STATE_KEY].models == {}
    svc = {"param": {"name": "vllm", "modelCenterUuid": CENTER, **SERVICE_REQUIRED}, "systemTags": [tag]}
    await assert_error(await client.post(f"{API}/ai/model-services", json=svc, headers=auth), 503, "SYS.1007", tag)


async def test_registered_ephemeral_and_user_tags_pass_and_a_site_registers_its_own(make_client: Make) -> None:
    client = await make_client(system_tag_patterns=["modelFamily::{family}"])
    auth = await login(client)
    tags = ["resourceConfig::ai::gpuOvercommit::true", "ephemeral::anything", "modelFamily::qwen"]
    resp = await client.post(f"{API}/ai/models", headers=auth, json={
        "param": model_param(resourceUuid="ab" * 16), "systemTags": tags,
        "userTags": ["modelsync.io/owner::ns/llama", "free text"]})
    assert resp.status == 200, await resp.text()
    rec = client.app[zstack.STATE_KEY].models["ab" * 16]
    assert rec.tags.system == ["resourceConfig::ai::gpuOvercommit::true", "modelFamily::qwen"]  # ephemeral: not kept
    assert rec.tags.user == ["modelsync.io/owner::ns/llama", "free text"]
    unregistered = await client.post(f"{API}/ai/models", headers=auth,
                                     json={"param": model_param(), "systemTags": ["modelFamily"]})
    await assert_error(unregistered, 503, "SYS.1007", "no system tag matches modelFamily")


async def test_lenient_mode_takes_any_system_tag(make_client: Make) -> None:
    client = await make_client(lenient=True)
    auth = await login(client)
    inv = await add_model(client, auth, system_tags=["minGpuMemory::1"])
    assert client.app[zstack.STATE_KEY].models[inv["uuid"]].tags.system == ["minGpuMemory::1"]
    assert inv["minGpuMemory"] is None  # stored as a tag, never an inventory field


async def test_add_model_drops_keys_it_does_not_take(client: TestClient) -> None:
    # RestServer binds the body with Gson: a key the API message has no field for is dropped
    # without an error and never lands
    auth = await login(client)
    inv = await add_model(client, auth, colour="red", minGpuMemory=4294967296, license="apache-2.0",
                          architectureType="Qwen3ForCausalLM", version="1.0.0")
    assert inv["minGpuMemory"] is None and inv["architectureType"] is None and inv["version"] == "1.0.0"
    stored = client.app[zstack.STATE_KEY].models[inv["uuid"]].fields
    assert not {"colour", "minGpuMemory", "license", "architectureType"} & set(stored)


async def test_duplicate_resource_uuid_is_an_operation_error(client: TestClient) -> None:
    auth = await login(client)
    wanted = "ab" * 16
    await add_model(client, auth, resourceUuid=wanted)
    resp = await client.post(f"{API}/ai/models", json={"param": model_param(resourceUuid=wanted, name="other")}, headers=auth)
    error = await assert_error(resp, 503, "SYS.1006", "already exists")
    assert error["details"] == f"resourceUuid[{wanted}] already exists"
    assert client.app[zstack.STATE_KEY].models[wanted].fields["name"] == "llama"


async def test_unreadable_bodies_are_refused_by_RestServer(client: TestClient) -> None:
    auth = await login(client)
    bad_json = await client.post(f"{API}/ai/models", data=b"{not json", headers={**auth, "Content-Type": "application/json"})
    await assert_text(bad_json, 500, "JsonSyntaxException")
    # no wrapper: an empty message is bound, and its mandatory fields fail validation
    no_wrapper = await client.post(f"{API}/ai/models", json=model_param(), headers=auth)
    await assert_error(no_wrapper, 503, "SYS.1007", "is mandatory")
    wrong_wrapper = await client.put(f"{API}/ai/models/{'a' * 32}", json={"params": {"name": "x"}}, headers=auth)
    await assert_text(wrong_wrapper, 400, "doesn't contain action mapping")
    assert client.app[zstack.STATE_KEY].models == {}


async def test_update_changes_only_the_supplied_keys(make_client: Make) -> None:
    now = [1_700_000_000.0]
    client = await make_client(clock=lambda: now[0])  # a frozen clock: lastOpDate must move anyway
    auth = await login(client)
    before = await add_model(client, auth, description="first", vendor="Meta", size=42)

    body = {"updateModel": {"name": "llama-3", "vendor": "Meta AI"}}
    resp = await client.put(f"{API}/ai/models/{before['uuid']}", json=body, headers=auth)
    assert resp.status == 200, await resp.text()
    after = (await resp.json())["inventory"]

    assert after["name"] == "llama-3" and after["vendor"] == "Meta AI"
    assert after["lastOpDate"] != before["lastOpDate"] and after["createDate"] == before["createDate"]
    unchanged = {k: v for k, v in before.items() if k not in ("name", "vendor", "lastOpDate")}
    assert {k: after[k] for k in unchanged} == unchanged

    again = await client.put(f"{API}/ai/models/{before['uuid']}", json={"updateModel": {"description": "second"}}, headers=auth)
    assert (await again.json())["inventory"]["lastOpDate"] != after["lastOpDate"]


async def test_update_drops_what_only_add_model_takes(client: TestClient) -> None:
    # UpdateModelDetailParam has no version, logo, introduction or size: dropped, never applied
    auth = await login(client)
    inv = await add_model(client, auth, version="1.0", logo="L", introduction="I", size=7)
    body = {"updateModel": {"name": "renamed", "version": "2.0", "logo": "L2", "introduction": "I2", "size": 5,
                            "systemTags": ["minGpuMemory::2"]}}
    resp = await client.put(f"{API}/ai/models/{inv['uuid']}", json=body, headers=auth)
    assert resp.status == 200, await resp.text()
    after = (await resp.json())["inventory"]
    assert after["name"] == "renamed"
    assert (after["version"], after["logo"], after["introduction"], after["size"]) == ("1.0", "L", "I", 7)
    assert after["minGpuMemory"] is None
    assert client.app[zstack.STATE_KEY].models[inv["uuid"]].tags.system == []


async def test_update_of_an_absent_model_is_SYS_1003(client: TestClient) -> None:
    auth = await login(client)
    resp = await client.put(f"{API}/ai/models/{'9' * 32}", json={"updateModel": {"name": "x"}}, headers=auth)
    await assert_error(resp, 503, "SYS.1003", f"invalid field[uuid] for APIUpdateModelMsg, resource[uuid:{'9' * 32}")
    inv = await add_model(client, auth)
    missing = {"updateModel": {"defaultModelServiceUuid": "8" * 32}}
    resp = await client.put(f"{API}/ai/models/{inv['uuid']}", json=missing, headers=auth)
    await assert_error(resp, 503, "SYS.1003", "invalid field[defaultModelServiceUuid] for APIUpdateModelMsg")


async def test_get_absent_model_is_an_empty_query_result(client: TestClient) -> None:
    auth = await login(client)
    resp = await client.get(f"{API}/ai/models/{'1' * 32}", headers=auth)
    assert resp.status == 200 and await resp.json() == {"inventories": []}


async def test_query_by_field_and_limit(client: TestClient) -> None:
    auth = await login(client)
    for name in ("a", "b", "b"):
        await add_model(client, auth, name=name)
    found = await (await client.get(f"{API}/ai/models", params={"q": "name=b"}, headers=auth)).json()
    assert [m["name"] for m in found["inventories"]] == ["b", "b"]
    both = await (await client.get(f"{API}/ai/models", params=[("q", "name=b"), ("q", "vendor=x")], headers=auth)).json()
    assert both == {"inventories": []}
    limited = await (await client.get(f"{API}/ai/models", params={"limit": "2"}, headers=auth)).json()
    assert [m["name"] for m in limited["inventories"]] == ["a", "b"]
    await assert_error(await client.get(f"{API}/ai/models", params={"q": "nmae=b"}, headers=auth), 503, "SYS.1007", "nmae")


async def test_delete_is_idempotent(client: TestClient) -> None:
    auth = await login(client)
    inv = await add_model(client, auth)
    for _ in range(2):
        resp = await client.delete(f"{API}/ai/models/{inv['uuid']}", headers=auth)
        assert resp.status == 200 and await resp.json() == {}
    assert await (await client.get(f"{API}/ai/models/{inv['uuid']}", headers=auth)).json() == {"inventories": []}


# --------------------------------------------------------------------------- model services


async def test_add_model_service_with_images_and_probes(client: TestClient) -> None:
    auth = await login(client)
    inv = await add_service(
        client, auth,
        architectureImages=[{"cpuArchitecture": "x86_64", "dockerImage": "registry.example.com/vllm:0.6"},
                            {"cpuArchitecture": "aarch64", "dockerImage": "registry.example.com/vllm-arm:0.6"}],
        yaml="services:\n  - ports: [8000]\n", requestCpu=4, requestMemory=16384,
        # AddModelServiceDetailParam has none of these: dropped without an error
        servicePorts=[8000, "9000"], serviceLivez="/health", serviceReadyz="/ready", serviceBootupTime=30,
        serviceName="svc", readme="# vllm", environmentParameters={"HF_HOME": "/models"}, supportDistributed=True,
    )
    assert set(inv) == set(SEED_SERVICE_FIELDS)
    stored = client.app[zstack.STATE_KEY].services[inv["uuid"]].fields
    assert not {"servicePorts", "serviceLivez", "serviceReadyz", "serviceBootupTime", "serviceName", "readme",
                "environmentParameters"} & set(stored)
    assert inv["requestCpu"] == 4 and inv["requestMemory"] == 16384 and inv["supportDistributed"] is True
    assert inv["cpuArchitectures"] == ["x86_64", "aarch64"]
    assert inv["readme"] is None and inv["condaVersion"] is None and inv["modelServiceRefs"] == []
    images = inv["modelServiceImages"]
    assert [(i["cpuArchitecture"], i["dockerImage"]) for i in images] == [
        ("x86_64", "registry.example.com/vllm:0.6"), ("aarch64", "registry.example.com/vllm-arm:0.6")]
    for image in images:
        assert set(image) == {"uuid", "modelServiceUuid", "cpuArchitecture", "vmImageUuid", "dockerImage", "createDate", "lastOpDate"}
        assert UUID_RE.match(image["uuid"]) and image["modelServiceUuid"] == inv["uuid"] and image["vmImageUuid"] is None


async def test_update_model_service_replaces_images_and_rejects_invalid_yaml(client: TestClient) -> None:
    auth = await login(client)
    inv = await add_service(client, auth, architectureImages=[{"cpuArchitecture": "x86_64", "dockerImage": "img:1"}],
                            description="keep me")
    url = f"{API}/ai/model-services/{inv['uuid']}"

    images_v2 = [{"cpuArchitecture": "x86_64", "dockerImage": "img:2", "unknownKey": 1},
                 {"cpuArchitecture": "aarch64", "dockerImage": "img-arm:2"}]
    resp = await client.put(url, json={"updateModelService": {"architectureImages": images_v2}}, headers=auth)
    assert resp.status == 200, await resp.text()
    updated = (await resp.json())["inventory"]
    images = [(i["cpuArchitecture"], i["dockerImage"]) for i in updated["modelServiceImages"]]
    assert images == [("x86_64", "img:2"), ("aarch64", "img-arm:2")]
    assert updated["modelServiceImages"][0]["uuid"] == inv["modelServiceImages"][0]["uuid"]
    assert updated["description"] == "keep me"

    bad = await client.put(url, json={"updateModelService": {"yaml": "services: [unclosed"}}, headers=auth)
    await assert_error(bad, 503, "SYS.1007", "field[yaml] is not valid YAML")
    assert client.app[zstack.STATE_KEY].services[inv["uuid"]].fields.get("yaml") == SERVICE_REQUIRED["yaml"]


async def test_update_model_service_stores_the_service_fields_it_does_not_show(client: TestClient) -> None:
    auth = await login(client)
    inv = await add_service(client, auth)
    body = {"updateModelService": {"servicePorts": [8000], "serviceLivez": "/health", "serviceReadyz": "/ready",
                                   "serviceBootupTime": 30, "serviceName": "svc", "readme": "# not a field"}}
    resp = await client.put(f"{API}/ai/model-services/{inv['uuid']}", json=body, headers=auth)
    assert resp.status == 200, await resp.text()
    after = (await resp.json())["inventory"]
    assert set(after) == set(SEED_SERVICE_FIELDS) and after["readme"] is None
    stored = client.app[zstack.STATE_KEY].services[inv["uuid"]].fields
    assert {k: stored[k] for k in ("servicePorts", "serviceLivez", "serviceReadyz", "serviceBootupTime",
                                   "serviceName")} == {"servicePorts": [8000], "serviceLivez": "/health",
                                                       "serviceReadyz": "/ready", "serviceBootupTime": 30,
                                                       "serviceName": "svc"}
    assert "readme" not in stored
    for field, value in (("servicePorts", [70000]), ("serviceLivez", "health"), ("serviceBootupTime", -1)):
        bad = await client.put(f"{API}/ai/model-services/{inv['uuid']}", json={"updateModelService": {field: value}},
                               headers=auth)
        await assert_error(bad, 503, "SYS.1007", field)


@pytest.mark.parametrize("images", [["x86_64::img:1"], "x86_64::img:1", [["x86_64", "img:1"]]])
async def test_architecture_images_that_are_not_objects_cannot_be_bound(client: TestClient, images: Any) -> None:
    # the SDK's examples and the inventory's modelServiceImages are objects; Gson cannot bind a
    # string into one, and RestServer answers the exception as a 500 in plain text
    auth = await login(client)
    body = {"param": {"name": "vllm", "modelCenterUuid": CENTER, **SERVICE_REQUIRED, "architectureImages": images}}
    await assert_text(await client.post(f"{API}/ai/model-services", json=body, headers=auth), 500, "Expected BEGIN_")
    assert client.app[zstack.STATE_KEY].services == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("requestCpu", 0),
        ("requestMemory", "1Gi"),
        ("architectureImages", [{"cpuArchitecture": "riscv64", "dockerImage": "img"}]),
        ("architectureImages", [{"cpuArchitecture": "x86_64"}]),
        ("supportDistributed", "yes"),
    ],
)
async def test_add_model_service_rejects_invalid_fields(client: TestClient, field: str, value: Any) -> None:
    auth = await login(client)
    body = {"param": {"name": "vllm", "modelCenterUuid": CENTER, **SERVICE_REQUIRED, field: value}}
    await assert_error(await client.post(f"{API}/ai/model-services", json=body, headers=auth), 503, "SYS.1007", field)
    assert client.app[zstack.STATE_KEY].services == {}


async def test_add_model_service_in_a_missing_model_center_is_SYS_1003(client: TestClient) -> None:
    auth = await login(client)
    body = {"param": {"name": "vllm", **SERVICE_REQUIRED, "modelCenterUuid": "0" * 32}}
    resp = await client.post(f"{API}/ai/model-services", json=body, headers=auth)
    await assert_error(resp, 503, "SYS.1003", "invalid field[modelCenterUuid] for APIAddModelServiceMsg")


async def test_default_model_service_binds_both_sides(client: TestClient) -> None:
    auth = await login(client)
    service = await add_service(client, auth)
    model = await add_model(client, auth, defaultModelServiceUuid=service["uuid"])
    ref = {"modelUuid": model["uuid"], "modelServiceUuid": service["uuid"]}
    assert model["defaultModelServiceUuid"] == service["uuid"] and model["modelServiceRefs"] == [ref]
    svc = await (await client.get(f"{API}/ai/model-services/{service['uuid']}", headers=auth)).json()
    assert svc["inventories"][0]["modelServiceRefs"] == [ref]

    resp = await client.put(f"{API}/ai/models/{model['uuid']}", json={"updateModel": {"clearDefaultModelService": True}}, headers=auth)
    assert (await resp.json())["inventory"]["defaultModelServiceUuid"] is None

    await client.delete(f"{API}/ai/model-services/{service['uuid']}", headers=auth)
    after = await (await client.get(f"{API}/ai/models/{model['uuid']}", headers=auth)).json()
    assert after["inventories"][0]["modelServiceRefs"] == []


# --------------------------------------------------------------------------- async jobs


async def test_async_write_answers_202_then_the_job_gives_the_result(make_client: Make) -> None:
    client = await make_client(async_mode=True, job_delay=0.1)
    auth = await login(client)  # login stays synchronous
    resp = await client.post(f"{API}/ai/models", json={"param": model_param(resourceUuid="cd" * 16)}, headers=auth)
    assert resp.status == 202
    location = (await resp.json())["location"]
    assert re.match(rf"^http://{re.escape(client.host)}:{client.port}{API}/api-jobs/[0-9a-f]{{32}}$", location)

    running = await client.get(urlparse(location).path, headers=auth)
    assert running.status == 202 and await running.json() == {}
    assert client.app[zstack.STATE_KEY].models == {}

    done = await poll_job(client, location, auth)
    assert done.status == 200
    inventory = (await done.json())["inventory"]
    assert inventory["uuid"] == "cd" * 16 and set(SEED_MODEL_FIELDS) <= set(inventory)
    assert "cd" * 16 in client.app[zstack.STATE_KEY].models

    await assert_text(await client.get(urlparse(location).path), 400, "Authorization")


async def test_a_failing_async_job_answers_503_with_the_envelope(client: TestClient) -> None:
    auth = await login(client)
    param = model_param()
    del param["installPath"]
    headers = {**auth, "X-Sim-Async": "true"}
    resp = await client.post(f"{API}/ai/models", json={"param": param}, headers=headers)
    assert resp.status == 202  # validation belongs to the job, not to the 202
    failed = await poll_job(client, (await resp.json())["location"], auth)
    await assert_error(failed, 503, "SYS.1007", "field[installPath] is mandatory")


async def test_async_delete_and_unknown_job(client: TestClient) -> None:
    auth = await login(client)
    inv = await add_model(client, auth)
    resp = await client.delete(f"{API}/ai/models/{inv['uuid']}", headers={**auth, "X-Sim-Async": "true"})
    assert resp.status == 202
    done = await poll_job(client, (await resp.json())["location"], auth)
    assert done.status == 200 and await done.json() == {}
    await assert_error(await client.get(f"{API}/api-jobs/{'7' * 32}", headers=auth), 404, "SYS.1003")


# --------------------------------------------------------------------------- faults and admin


async def test_fail_next_is_a_503_envelope_with_retry_after(client: TestClient) -> None:
    auth = await login(client)
    assert (await client.put("/_sim/faults", json={"fail_next": 1, "retry_after": 3})).status == 200
    resp = await client.post(f"{API}/ai/models", json={"param": model_param()}, headers=auth)
    await assert_error(resp, 503, "SYS.1000")
    assert resp.headers["Retry-After"] == "3"
    assert client.app[zstack.STATE_KEY].models == {}
    await add_model(client, auth)  # the knob fired once


async def test_throttle_next_is_a_429_with_retry_after(client: TestClient) -> None:
    auth = await login(client)
    await client.put("/_sim/faults", json={"throttle_next": 1, "retry_after": 2})
    resp = await client.get(f"{API}/ai/models", headers=auth)
    await assert_error(resp, 429, "SYS.1012")
    assert resp.headers["Retry-After"] == "2"


def test_lose_next_drops_the_reply_but_keeps_the_model() -> None:
    app = zstack.create_app(model_center_uuid=CENTER)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=5) as http:
        token = http.put(f"{API}/accounts/login", json={"logInByAccount": {"accountName": "admin", "password": sha512("password")}}).json()
        auth = {"Authorization": f"OAuth {token['inventory']['uuid']}"}
        http.put("/_sim/faults", json={"lose_next": 1})
        wanted = "ef" * 16
        with pytest.raises(httpx.TransportError):
            http.post(f"{API}/ai/models", json={"param": model_param(resourceUuid=wanted)}, headers=auth)
        found = http.get(f"{API}/ai/models/{wanted}", headers=auth).json()
        assert [m["uuid"] for m in found["inventories"]] == [wanted]
        retry = http.post(f"{API}/ai/models", json={"param": model_param(resourceUuid=wanted)}, headers=auth)
        assert retry.status_code == 503 and retry.json()["error"]["code"] == "SYS.1006"


async def test_reset_keeps_models_and_clear_removes_them(client: TestClient) -> None:
    auth = await login(client)
    await add_model(client, auth)
    await add_service(client, auth)
    assert (await client.post("/_sim/reset")).status == 200
    assert len((await (await client.get(f"{API}/ai/models", headers=auth)).json())["inventories"]) == 1
    assert (await client.post("/_sim/zstack/clear")).status == 200
    assert await (await client.get(f"{API}/ai/models", headers=auth)).json() == {"inventories": []}
    assert await (await client.get(f"{API}/ai/model-services", headers=auth)).json() == {"inventories": []}


# --------------------------------------------------------------------------- module interface


def test_flags_build_the_app_and_the_banner_says_how_to_log_in() -> None:
    parser = argparse.ArgumentParser()
    zstack.add_arguments(parser)
    args = parser.parse_args(["--async", "--job-delay", "0.5", "--account", "ops", "--password", "s3cret",
                              "--model-center-uuid", CENTER, "--port", "9999", "--system-tag-pattern", "a::{b}"])
    assert (args.host, args.port, args.session_ttl) == ("127.0.0.1", 9999, 3600.0)
    app = zstack.app_from_args(args)
    state: zstack.ZStackState = app[zstack.STATE_KEY]
    assert state.async_mode and state.job_delay == 0.5 and state.model_center_uuid == CENTER
    assert not state.lenient and "a::{b}" in state.system_tag_patterns
    assert zstack.app_from_args(parser.parse_args(["--lenient"]))[zstack.STATE_KEY].lenient
    text = zstack.banner(app, "http://127.0.0.1:9999")
    for needle in ("http://127.0.0.1:9999", "ops", "s3cret", CENTER):
        assert needle in text

    default = zstack.create_app()
    assert UUID_RE.match(default[zstack.STATE_KEY].model_center_uuid)


def test_state_rules_hold_without_http() -> None:
    state = zstack.ZStackState(model_center_uuid=CENTER, clock=lambda: 1_700_000_000.0)
    added = state.add_model({"param": model_param()})["inventory"]
    assert added["extraGpuMemRequest"] is None
    added = state.set_inventory_fields(added["uuid"], {"extraGpuMemRequest": 4294967296})["inventory"]
    assert added["extraGpuMemRequest"] == 4294967296
    with pytest.raises(zstack.ZStackError) as refused:
        state.add_model({"param": model_param(), "systemTags": ["extraGpuMemRequest::4294967296"]})
    assert refused.value.code == "SYS.1007" and refused.value.status == 503
    with pytest.raises(zstack.ZStackError) as caught:
        state.update_model(added["uuid"], {"updateModel": {"recommendedGpuNum": 2}})
    assert caught.value.code == "SYS.1007" and "recommendedGpuNum" in caught.value.details
    assert state.query_models()["inventories"] == [added]
    assert zstack.zstack_date(time.mktime((2025, 11, 25, 11, 51, 50, 0, 0, -1))) == "Nov 25, 2025 11:51:50 AM"
