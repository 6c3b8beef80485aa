"""The Instill simulator's wire behaviour: shapes, validation, auth, faults, CLI hooks."""
from __future__ import annotations

import argparse
import json
from typing import Any, Iterator

import httpx
import pytest

from modelsync.simulators import simulator_module
from modelsync.vendors.instill import simulator as sim_module
from modelsync.vendors.instill.simulator import create_app
from modelsync.simulators.server import serve_in_thread

TOKEN = "instill_sk_local"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODELS = "/v1alpha/namespaces/local/models"

VALID = {
    "id": "chat-model",
    "modelDefinition": "model-definitions/container",
    "configuration": {},
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
    resp = create(client, description="d", readme="# r", sourceUrl="https://s", license="https://l")
    assert resp.status_code == 201, resp.text
    model = resp.json()["model"]
    assert model["name"] == "namespaces/local/models/chat-model"
    assert model["id"] == "chat-model"
    assert len(model["uid"]) == 36
    assert model["ownerName"] == "users/local"
    assert model["createTime"].endswith("Z") and model["updateTime"] == model["createTime"]
    for f in ("modelDefinition", "configuration", "task", "visibility", "region", "hardware"):
        assert model[f] == VALID[f]
    assert (model["description"], model["readme"], model["sourceUrl"], model["license"]) == ("d", "# r", "https://s", "https://l")
    assert model["documentationUrl"] == ""  # every field is in the reply (EmitUnpopulated)
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
    assert resp.status_code == 201, resp.text
    model = resp.json()["model"]
    assert model["uid"] != "not-a-uid" and model["tags"] == [] and model["ownerName"] == "users/local"


def test_unknown_fields_are_ignored(client: httpx.Client, app: Any) -> None:
    """protojson with DiscardUnknown (cmd/main/main.go): no error, nothing stored."""
    resp = create(client, displayName="x", slug="y")
    assert resp.status_code == 201, resp.text
    stored = app["instill"].models[("local", "chat-model")]
    assert "displayName" not in stored and "slug" not in stored
    resp = client.patch(f"{MODELS}/chat-model", json={"description": "new", "aliases": ["z"]})
    assert resp.status_code == 200, resp.text
    assert "aliases" not in stored and stored["description"] == "new"


def test_get_default_view_leaves_out_configuration(client: httpx.Client) -> None:
    create(client)
    basic = client.get(f"{MODELS}/chat-model").json()["model"]
    assert basic["configuration"] is None
    full = client.get(f"{MODELS}/chat-model", params={"view": "VIEW_FULL"}).json()["model"]
    assert full["configuration"] == {}


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


def test_unknown_namespace_is_500(client: httpx.Client) -> None:
    """GetRscNamespace returns a plain error for a namespace mgmt-backend calls available: HTTP 500, code 2."""
    other = "/v1alpha/namespaces/nope/models"
    assert_error(client.post(other, json=VALID), 500, 2, "namespace error")
    assert_error(client.get(other), 500, 2, "namespace error")
    assert_error(client.get(f"{other}/x"), 500, 2, "namespace error")
    assert_error(client.patch(f"{other}/x", json={"description": "x"}), 500, 2, "namespace error")
    assert_error(client.delete(f"{other}/x"), 500, 2, "namespace error")
    # the body is validated before the namespace is looked up
    assert_error(client.post(other, json={**VALID, "license": "MIT"}), 400, 3, "Model spec is invalid")


def test_check_namespace(client: httpx.Client) -> None:
    assert client.post("/v1beta/check-namespace", json={"id": "local"}).json() == {"type": "NAMESPACE_USER"}
    assert client.post("/v1beta/check-namespace", json={"id": "nope"}).json() == {"type": "NAMESPACE_AVAILABLE"}
    assert_error(client.post("/v1beta/check-namespace", json={}), 400, 3, "id")


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


def schema_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The validator output the server puts after "Model spec is invalid "."""
    message = body["message"]
    assert message.startswith("Model spec is invalid {"), message
    errors: list[dict[str, Any]] = json.loads(message.removeprefix("Model spec is invalid "))["errors"]
    return errors


@pytest.mark.parametrize("field", ["modelDefinition", "configuration", "task", "visibility", "region", "hardware"])
def test_create_requires(client: httpx.Client, field: str) -> None:
    body = assert_error(create(client, **{field: None}), 400, 3, sim_module._snake(field))
    errors = schema_errors(body)
    assert "/required" in [e["keywordLocation"] for e in errors]  # (and /minProperties: 6 are left)
    assert {e["instanceLocation"] for e in errors} == {""}


@pytest.mark.parametrize("changes, location", [
    ({"task": "TASK_DANCE"}, ""),  # an unknown enum name is discarded: then task is missing
    ({"task": "TASK_SPEECH_RECOGNITION"}, "/task"),  # in the proto enum, not in the schema
    ({"visibility": "VISIBILITY_UNSPECIFIED"}, ""),  # the zero value is not marshalled: missing
    ({"region": "REGION_MARS"}, "/region"),
    ({"hardware": "GPU", "region": "REGION_GCP_EUROPE_WEST4"}, "/hardware"),
    ({"hardware": "x" * 64}, "/hardware"),
    ({"modelDefinition": "model-definitions/magic"}, "/model_definition"),
])
def test_create_validates_values_with_the_schema(client: httpx.Client, changes: dict[str, Any], location: str) -> None:
    body = assert_error(create(client, **changes), 400, 3)
    assert location in [e["instanceLocation"] for e in schema_errors(body)]


@pytest.mark.parametrize("changes, field", [
    ({"configuration": "image=llama"}, "configuration"),
    ({"configuration": ["image"]}, "configuration"),
    ({"hardware": 3}, "hardware"),
])
def test_create_refuses_wrong_types(client: httpx.Client, changes: dict[str, Any], field: str) -> None:
    body = assert_error(create(client, **changes), 400, 3)
    assert field in [v["field"] for v in body["details"][0]["fieldViolations"]]


def test_create_rejects_bad_bodies(client: httpx.Client) -> None:
    assert_error(client.post(MODELS, json=["not", "an", "object"]), 400, 3)
    assert_error(client.post(MODELS, content=b"{nope", headers={"Content-Type": "application/json"}), 400, 3)


# ---------------------------------------------------------------- the published schema's limits (issue 14)


@pytest.mark.parametrize("field", ["license", "sourceUrl", "documentationUrl"])
@pytest.mark.parametrize("value", ["apache-2.0", "MIT", "github.com/x/y", "", "://x", "https://a b"])
def test_uri_fields_must_be_absolute_uris(client: httpx.Client, field: str, value: str) -> None:
    body = assert_error(create(client, **{field: value}), 400, 3)
    errors = schema_errors(body)
    assert [e["instanceLocation"] for e in errors] == [f"/{sim_module._snake(field)}"]
    assert errors[0]["keywordLocation"].endswith("/format")


@pytest.mark.parametrize("field", ["license", "sourceUrl", "documentationUrl"])
def test_uri_fields_accept_absolute_uris(client: httpx.Client, field: str) -> None:
    assert create(client, **{field: "https://www.apache.org/licenses/LICENSE-2.0"}).status_code == 201


@pytest.mark.parametrize("field", ["sourceUrl", "documentationUrl"])
def test_urls_are_at_most_63_characters(client: httpx.Client, field: str) -> None:
    url63 = "https://example.com/" + "a" * 43
    assert len(url63) == 63
    body = assert_error(create(client, **{field: url63 + "a"}), 400, 3)
    assert [e["keywordLocation"] for e in schema_errors(body)] == [f"/properties/{sim_module._snake(field)}/maxLength"]
    assert create(client, **{field: url63}).status_code == 201


def test_license_has_no_length_limit_in_the_schema(client: httpx.Client) -> None:
    assert create(client, license="https://example.com/" + "a" * 100).status_code == 201


def test_description_is_at_most_1023_characters(client: httpx.Client) -> None:
    body = assert_error(create(client, description="d" * 1024), 400, 3)
    assert [e["instanceLocation"] for e in schema_errors(body)] == ["/description"]
    assert create(client, description="d" * 1023).status_code == 201


FULL = {**VALID, "description": "d", "readme": "r", "sourceUrl": "https://s", "documentationUrl": "https://d",
        "license": "https://l"}


def test_a_body_has_at_most_12_properties(client: httpx.Client) -> None:
    assert len(FULL) == 12
    body = assert_error(create(client, **FULL, profileImage="data:image/png;base64,AA=="), 400, 3)
    assert [e["keywordLocation"] for e in schema_errors(body)] == ["/maxProperties"]
    assert create(client, **FULL).status_code == 201


def test_empty_optional_strings_count_as_properties(client: httpx.Client) -> None:
    """optional string fields are marshalled when present, even empty (and "" is no uri)."""
    body = assert_error(create(client, **{**FULL, "license": ""}, profileImage=""), 400, 3)
    assert "/maxProperties" in [e["keywordLocation"] for e in schema_errors(body)]


def test_non_empty_configuration_is_refused(client: httpx.Client, app: Any) -> None:
    """The container definition's configurationSchema has maxProperties 0."""
    body = assert_error(create(client, configuration={"image": "llama"}), 400, 3, "Model configuration is invalid")
    assert app["instill"].models == {}
    assert body["message"].count("maxProperties") == 1


def test_configuration_is_stored_as_empty(client: httpx.Client, app: Any) -> None:
    create(client)
    assert app["instill"].models[("local", "chat-model")]["configuration"] == {}


def test_lenient_mode_skips_the_schemas() -> None:
    app = create_app(strict=False)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, headers=AUTH) as c:
        assert create(c, license="MIT", configuration={"image": "x"}).status_code == 201
        assert app["instill"].models[("local", "chat-model")]["configuration"] == {}


@pytest.mark.parametrize("value, ok", [
    ("https://www.apache.org/licenses/LICENSE-2.0", True), ("mailto:a@b.c", True), ("urn:isbn:1", True),
    ("http://[::1]:80/x", True), ("http://x/?q=%zz", True),
    ("apache-2.0", False), ("", False), ("://x", False), ("1http://x", False), ("http://a b", False),
    ("http://x/%zz", False), ("http://[zz]/", False), ("http://x:port/", False), ("http://x/\n", False),
    ("http://x/\x7f", False),
])
def test_uri_format_is_gos(value: str, ok: bool) -> None:
    """format: uri as santhosh-tekuri/jsonschema v5 checks it: Go's url.Parse without error, and a scheme."""
    assert sim_module.is_absolute_uri(value) is ok


# ---------------------------------------------------------------- profile image


IMAGE = "data:image/png;base64,iVBORw0KGgo="


def test_profile_image_reads_back_as_a_url(client: httpx.Client, app: Any) -> None:
    model = create(client, profileImage=IMAGE).json()["model"]
    url = str(client.base_url).rstrip("/")
    assert model["profileImage"] == f"{url}/v1alpha/users/local/models/chat-model/image"
    assert app["instill"].models[("local", "chat-model")]["profileImage"] == IMAGE
    got = client.get(f"{MODELS}/chat-model", params={"view": "VIEW_FULL"}).json()["model"]
    assert got["profileImage"] == model["profileImage"]


def test_profile_image_without_data_prefix_is_dropped_silently(client: httpx.Client, app: Any) -> None:
    assert create(client, profileImage="iVBORw0KGgo=").status_code == 201
    assert app["instill"].models[("local", "chat-model")]["profileImage"] is None
    assert client.patch(f"{MODELS}/chat-model", json={"profileImage": IMAGE}).status_code == 200
    assert app["instill"].models[("local", "chat-model")]["profileImage"] == IMAGE
    # a PATCH with something else (or "") keeps the stored image
    for other in ("https://x/y.png", ""):
        assert client.patch(f"{MODELS}/chat-model", json={"profileImage": other}).status_code == 200
        assert app["instill"].models[("local", "chat-model")]["profileImage"] == IMAGE


# ---------------------------------------------------------------- update


def test_patch_updates_only_supplied_fields(client: httpx.Client, app: Any) -> None:
    created = create(client, description="old", license="https://l").json()["model"]
    resp = client.patch(f"{MODELS}/chat-model", json={"description": "new", "hardware": "GPU"})
    assert resp.status_code == 200, resp.text
    model = resp.json()["model"]
    assert (model["description"], model["hardware"], model["license"]) == ("new", "GPU", "https://l")
    assert model["configuration"] is None  # the reply is the basic view
    assert model["updateTime"] > created["updateTime"]
    assert model["createTime"] == created["createTime"]
    # an empty string clears an optional field; a PATCH is not validated against the schema
    model = client.patch(f"{MODELS}/chat-model", json={"license": "", "sourceUrl": "not a uri"}).json()["model"]
    assert (model["license"], model["sourceUrl"]) == ("", "not a uri")
    # an empty plain field is a zero value that the row update skips
    model = client.patch(f"{MODELS}/chat-model", json={"hardware": ""}).json()["model"]
    assert model["hardware"] == "GPU"


@pytest.mark.parametrize("field, value", [
    ("configuration", {"image": "llama"}),
    ("task", "TASK_COMPLETION"),
    ("region", "REGION_GCP_EUROPE_WEST4"),
    ("id", "renamed"),
])
def test_patch_rejects_changed_immutable_fields(client: httpx.Client, app: Any, field: str, value: Any) -> None:
    create(client)
    before = dict(app["instill"].models[("local", "chat-model")])
    resp = client.patch(f"{MODELS}/chat-model", json={field: value, "description": "x"})
    assert_error(resp, 400, 3, f"`{sim_module._snake(field)}` is immutable")
    assert app["instill"].models[("local", "chat-model")] == before


@pytest.mark.parametrize("field", ["id", "modelDefinition", "task", "region"])
def test_patch_with_an_unchanged_immutable_field_is_fine(client: httpx.Client, field: str) -> None:
    create(client)
    resp = client.patch(f"{MODELS}/chat-model", json={field: VALID[field], "description": "x"})
    assert resp.status_code == 200 and resp.json()["model"]["description"] == "x"


def test_patch_errors(client: httpx.Client) -> None:
    create(client)
    assert_error(client.patch(f"{MODELS}/chat-model", json={}), 400, 3, "update_mask")
    assert_error(client.patch(f"{MODELS}/chat-model", json={"uid": "x"}), 400, 3, "update_mask")  # output-only only
    assert_error(client.patch(f"{MODELS}/chat-model", json={"visibility": "NOPE"}), 400, 3, "update_mask")
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
