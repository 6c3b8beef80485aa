"""The Instill simulator's wire behaviour: shapes, validation, auth, faults, CLI hooks."""
from __future__ import annotations

import argparse
from typing import Any, Iterator

import httpx
import pytest

from modelsync.simulators import simulator_module
from modelsync.simulators import instill as sim_module
from modelsync.simulators.instill import create_app
from modelsync.simulators.server import serve_in_thread

TOKEN = "instill_sk_local"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODELS = "/v1alpha/namespaces/local/models"

VALID = {
    "id": "chat-model",
    "modelDefinition": "model-definitions/container",
    "configuration": {"image": "llama"},
    "task": "TASK_CHAT",
    "visibility": "VISIBILITY_PRIVATE",
    "region": "REGION_LOCAL",
    "hardware": "CPU",
}


@pytest.fixture
def app() -> Any:
    return create_app()


@pytest.fixture
def client(app: Any) -> Iterator[httpx.Client]:
    with serve_in_thread(app) as url, httpx.Client(base_url=url, headers=AUTH) as c:
        yield c


def create(client: httpx.Client, **changes: Any) -> httpx.Response:
    body = {**VALID, **changes}
    return client.post(MODELS, json={k: v for k, v in body.items() if v is not None})


def assert_error(resp: httpx.Response, status: int, code: int, *words: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    assert isinstance(body["details"], list)
    for w in words:
        assert w in body["message"]
    return body


# ---------------------------------------------------------------- create / get / list / delete


def test_create_returns_the_model_message(client: httpx.Client) -> None:
    resp = create(client, description="d", readme="# r", sourceUrl="https://s", license="MIT")
    assert resp.status_code == 201, resp.text
    model = resp.json()["model"]
    assert model["name"] == "namespaces/local/models/chat-model"
    assert model["id"] == "chat-model"
    assert len(model["uid"]) == 36
    assert model["ownerName"] == "users/local"
    assert model["createTime"].endswith("Z") and model["updateTime"] == model["createTime"]
    for f in ("modelDefinition", "configuration", "task", "visibility", "region", "hardware"):
        assert model[f] == VALID[f]
    assert (model["description"], model["readme"], model["sourceUrl"], model["license"]) == ("d", "# r", "https://s", "MIT")
    assert model["tags"] == [] and model["versions"] == [] and "permission" in model and "stats" in model


def test_snake_case_names_are_accepted(client: httpx.Client) -> None:
    body = {k: v for k, v in VALID.items() if k not in ("modelDefinition",)}
    body["model_definition"] = "model-definitions/container"
    body["source_url"] = "https://s"
    resp = client.post(MODELS, json=body)
    assert resp.status_code == 201, resp.text
    assert resp.json()["model"]["sourceUrl"] == "https://s"


def test_output_only_fields_are_ignored(client: httpx.Client) -> None:
    resp = create(client, uid="not-a-uid", tags=["mine"], name="x", ownerName="users/evil")
    assert resp.status_code == 201
    model = resp.json()["model"]
    assert model["uid"] != "not-a-uid" and model["tags"] == [] and model["ownerName"] == "users/local"


def test_get_default_view_leaves_out_configuration(client: httpx.Client) -> None:
    create(client)
    basic = client.get(f"{MODELS}/chat-model").json()["model"]
    assert "configuration" not in basic
    full = client.get(f"{MODELS}/chat-model", params={"view": "VIEW_FULL"}).json()["model"]
    assert full["configuration"] == {"image": "llama"}


def test_list(client: httpx.Client) -> None:
    create(client)
    create(client, id="other")
    body = client.get(MODELS).json()
    assert body["totalSize"] == 2 and body["nextPageToken"] == ""
    assert sorted(m["id"] for m in body["models"]) == ["chat-model", "other"]


def test_duplicate_is_409(client: httpx.Client) -> None:
    assert create(client).status_code == 201
    assert_error(create(client), 409, 6, "already exist")


def test_delete_then_404(client: httpx.Client, app: Any) -> None:
    create(client)
    resp = client.delete(f"{MODELS}/chat-model")
    assert resp.status_code == 204 and resp.content == b""
    assert app["instill"].models == {}
    assert_error(client.delete(f"{MODELS}/chat-model"), 404, 5, "chat-model")
    assert_error(client.get(f"{MODELS}/chat-model"), 404, 5, "not found")


def test_unknown_namespace_is_404(client: httpx.Client) -> None:
    assert_error(client.post("/v1alpha/namespaces/nope/models", json=VALID), 404, 5, "nope")
    assert_error(client.get("/v1alpha/namespaces/nope/models/x"), 404, 5)


# ---------------------------------------------------------------- create validation


@pytest.mark.parametrize("bad_id", [
    "Chat-Model",  # uppercase: RFC-1034 allows it, deployed backends do not
    "a" * 33,  # over 32
    "a" * 64,  # over 63
    "1chat", "chat-", "-chat", "chat_model", "chat.model", "",
])
def test_create_rejects_bad_ids(client: httpx.Client, bad_id: str) -> None:
    body = assert_error(create(client, id=bad_id), 400, 3, "id")
    assert body["details"][0]["fieldViolations"][0]["field"] == "id"


@pytest.mark.parametrize("good_id", ["a", "chat-model", "a" * 32, "m0-1"])
def test_create_accepts_good_ids(client: httpx.Client, good_id: str) -> None:
    assert create(client, id=good_id).status_code == 201


@pytest.mark.parametrize("field", ["modelDefinition", "configuration", "task", "visibility", "region", "hardware"])
def test_create_requires(client: httpx.Client, field: str) -> None:
    body = assert_error(create(client, **{field: None}), 400, 3, field)
    assert [v["field"] for v in body["details"][0]["fieldViolations"]] == [field]


@pytest.mark.parametrize("changes, field", [
    ({"task": "TASK_DANCE"}, "task"),
    ({"visibility": "VISIBILITY_UNSPECIFIED"}, "visibility"),
    ({"visibility": "PUBLIC"}, "visibility"),
    ({"configuration": "image=llama"}, "configuration"),
    ({"configuration": ["image"]}, "configuration"),
    ({"hardware": 3}, "hardware"),
])
def test_create_validates_values(client: httpx.Client, changes: dict[str, Any], field: str) -> None:
    body = assert_error(create(client, **changes), 400, 3, field)
    assert field in [v["field"] for v in body["details"][0]["fieldViolations"]]


def test_create_rejects_unknown_definition_and_fields(client: httpx.Client) -> None:
    assert_error(create(client, modelDefinition="model-definitions/magic"), 400, 3, "model definition magic is not supported")
    assert_error(create(client, displayName="x"), 400, 3, 'unknown field "displayName"')
    assert_error(client.post(MODELS, json=["not", "an", "object"]), 400, 3)
    assert_error(client.post(MODELS, content=b"{nope", headers={"Content-Type": "application/json"}), 400, 3)


# ---------------------------------------------------------------- update


def test_patch_updates_only_supplied_fields(client: httpx.Client, app: Any) -> None:
    created = create(client, description="old", license="MIT").json()["model"]
    resp = client.patch(f"{MODELS}/chat-model", json={"description": "new", "hardware": "GPU"})
    assert resp.status_code == 200, resp.text
    model = resp.json()["model"]
    assert (model["description"], model["hardware"], model["license"]) == ("new", "GPU", "MIT")
    assert model["configuration"] == created["configuration"]
    assert model["updateTime"] > created["updateTime"]
    assert model["createTime"] == created["createTime"]
    # an empty string clears an optional field
    model = client.patch(f"{MODELS}/chat-model", json={"license": ""}).json()["model"]
    assert model["license"] == ""


@pytest.mark.parametrize("field, value", [
    ("configuration", {"image": "llama"}),  # even unchanged: the server refuses it
    ("modelDefinition", "model-definitions/container"),
    ("task", "TASK_COMPLETION"),
    ("region", "REGION_OTHER"),
    ("id", "renamed"),
])
def test_patch_rejects_immutable_fields(client: httpx.Client, app: Any, field: str, value: Any) -> None:
    create(client)
    before = dict(app["instill"].models[("local", "chat-model")])
    resp = client.patch(f"{MODELS}/chat-model", json={field: value, "description": "x"})
    assert_error(resp, 400, 3, f"`{field}` is immutable")
    assert app["instill"].models[("local", "chat-model")] == before


def test_patch_same_id_is_fine(client: httpx.Client) -> None:
    create(client)
    resp = client.patch(f"{MODELS}/chat-model", json={"id": "chat-model", "description": "x"})
    assert resp.status_code == 200 and resp.json()["model"]["description"] == "x"


def test_patch_errors(client: httpx.Client) -> None:
    create(client)
    assert_error(client.patch(f"{MODELS}/chat-model", json={}), 400, 3, "update_mask")
    assert_error(client.patch(f"{MODELS}/chat-model", json={"uid": "x"}), 400, 3, "update_mask")  # output-only only
    assert_error(client.patch(f"{MODELS}/chat-model", json={"visibility": "NOPE"}), 400, 3, "visibility")
    assert_error(client.patch(f"{MODELS}/chat-model", json={"hardware": ""}), 400, 3, "hardware")
    assert_error(client.patch(f"{MODELS}/missing", json={"description": "x"}), 404, 5, "missing")


# ---------------------------------------------------------------- auth


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}])
def test_auth_required(app: Any, headers: dict[str, str]) -> None:
    with serve_in_thread(app) as url:
        for method, path in (("GET", f"{MODELS}/x"), ("POST", MODELS), ("PATCH", f"{MODELS}/x"), ("DELETE", f"{MODELS}/x")):
            resp = httpx.request(method, url + path, headers=headers, json=VALID if method == "POST" else None)
            assert_error(resp, 401, 16, "Unauthorized")
        assert app["instill"].models == {}


def test_custom_token() -> None:
    app = create_app(token="instill_sk_other")
    with serve_in_thread(app) as url:
        assert httpx.get(url + MODELS, headers=AUTH).status_code == 401
        assert httpx.get(url + MODELS, headers={"Authorization": "Bearer instill_sk_other"}).status_code == 200


# ---------------------------------------------------------------- faults and admin


def test_injected_503_uses_the_envelope(client: httpx.Client) -> None:
    client.put("/_sim/faults", json={"fail_next": 1, "retry_after": 4}).raise_for_status()
    resp = client.get(MODELS)
    assert_error(resp, 503, 14)
    assert resp.headers["Retry-After"] == "4"
    assert client.get(MODELS).status_code == 200


def test_injected_429_uses_the_envelope(client: httpx.Client) -> None:
    client.put("/_sim/faults", json={"throttle_next": 1, "retry_after": 2}).raise_for_status()
    resp = client.get(MODELS)
    assert_error(resp, 429, 8)
    assert resp.headers["Retry-After"] == "2"


def test_lost_reply_still_creates(app: Any) -> None:
    with serve_in_thread(app) as url:
        httpx.put(url + "/_sim/faults", json={"lose_next": 1, "match": "POST"}).raise_for_status()
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(url + MODELS, json=VALID, headers=AUTH)
        assert ("local", "chat-model") in app["instill"].models


def test_journal_and_reset(client: httpx.Client, app: Any) -> None:
    create(client)
    journal = client.get("/_sim/requests").json()
    assert journal == [{"method": "POST", "path": MODELS, "body": VALID}]
    client.post("/_sim/reset").raise_for_status()
    assert app["instill"].models == {}
    assert client.get("/_sim/requests").json() == []


# ---------------------------------------------------------------- CLI hooks


def test_module_interface_and_flags() -> None:
    assert simulator_module("instill") is sim_module
    parser = argparse.ArgumentParser()
    sim_module.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.token) == ("127.0.0.1", 8080, TOKEN)
    args = parser.parse_args(["--port", "9000", "--token", "T0ken", "--namespace", "local", "--namespace", "org",
                              "--error-rate", "0.5", "--retry-after", "3"])
    app = sim_module.app_from_args(args)
    state = app["instill"]
    assert state.token == "T0ken" and state.namespaces == ("local", "org")
    assert app["faults"].error_rate == 0.5 and app["faults"].retry_after == 3.0
    text = sim_module.banner(app, "http://127.0.0.1:9000")
    for part in ("http://127.0.0.1:9000", "namespaces/local/models", "local", "org", "T0ken"):
        assert part in text


def test_default_banner() -> None:
    text = sim_module.banner(create_app(), "http://127.0.0.1:8080")
    assert "http://127.0.0.1:8080" in text and "instill_sk_local" in text and "namespace: local" in text
