"""The NeMo Models service simulator: endpoints, validation, error shapes, auth, faults."""
from __future__ import annotations

import argparse
from typing import Any, Iterator

import httpx
import pytest

from modelsync.simulators import nemo as sim
from modelsync.simulators import simulator_module
from modelsync.simulators.server import serve_in_thread

MODELS = "/apis/models/v2/workspaces/default/models"

SPEC = {
    "base_num_parameters": 8_000_000_000, "checkpoint_model_name": "meta-llama/Llama-3.1-8B",
    "family": "llama", "ffn_hidden_size": 14336, "gated_mlp": True, "hidden_size": 4096,
    "num_attention_heads": 32, "num_kv_heads": 8, "num_layers": 32, "precision": "bf16",
    "tied_embeddings": False, "vocab_size": 128256,
}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    app = sim.create_app()
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture
def client(server: tuple[str, Any]) -> Iterator[httpx.Client]:
    url, _ = server
    with httpx.Client(base_url=url, timeout=10) as c:
        c.post("/_sim/reset").raise_for_status()
        yield c


def test_create_returns_201_entity_with_all_fields(client: httpx.Client) -> None:
    r = client.post(MODELS, json={"name": "m1", "description": "d", "fileset": "default/fs",
                                  "custom_fields": {"a": 1}, "unknown_field": "ignored"})
    assert r.status_code == 201
    e = r.json()
    assert e["id"].startswith("model-") and len(e["id"]) > len("model-")
    assert (e["name"], e["workspace"], e["description"], e["fileset"]) == ("m1", "default", "d", "default/fs")
    assert e["trust_remote_code"] is False
    assert e["custom_fields"] == {"a": 1}
    assert e["model_providers"] == [] and e["spec"] is None and e["backend_format"] is None
    for key in ("created_at", "updated_at", "project", "adapters", "prompt", "ownership", "api_endpoint", "base_model"):
        assert key in e
    assert "unknown_field" not in e
    assert "T" in e["created_at"]  # ISO timestamp
    assert client.get(f"{MODELS}/m1").json() == e


def test_ids_are_random(client: httpx.Client) -> None:
    a = client.post(MODELS, json={"name": "a1"}).json()["id"]
    b = client.post(MODELS, json={"name": "b1"}).json()["id"]
    assert a != b


def test_duplicate_name_is_409_detail_string(client: httpx.Client) -> None:
    assert client.post(MODELS, json={"name": "dup"}).status_code == 201
    r = client.post(MODELS, json={"name": "dup"})
    assert r.status_code == 409
    assert isinstance(r.json()["detail"], str) and "dup" in r.json()["detail"]


def test_description_too_long_is_422_naming_body_description(client: httpx.Client) -> None:
    r = client.post(MODELS, json={"name": "long", "description": "x" * 1001})
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"] == ["body", "description"]
    assert "1000" in err["msg"] and err["type"] == "string_too_long"
    assert client.get(f"{MODELS}/long").status_code == 404


@pytest.mark.parametrize("body, loc", [
    ({}, ["body", "name"]),
    ({"name": "bad name!"}, ["body", "name"]),
    ({"name": "x" * 256}, ["body", "name"]),
    ({"name": "ok", "finetuning_type": "nope"}, ["body", "finetuning_type"]),
    ({"name": "ok", "backend_format": "OPENAI_EMBEDDINGS"}, ["body", "backend_format"]),
    ({"name": "ok", "spec": {**SPEC, "family": None}}, ["body", "spec", "family"]),
    ({"name": "ok", "api_endpoint": {"url": "not a url"}}, ["body", "api_endpoint", "url"]),
    ({"name": "ok", "model_providers": "x"}, ["body", "model_providers"]),
])
def test_validation_errors_name_the_field(client: httpx.Client, body: dict[str, Any], loc: list[Any]) -> None:
    r = client.post(MODELS, json=body)
    assert r.status_code == 422, r.text
    assert loc in [d["loc"] for d in r.json()["detail"]]


def test_spec_missing_fields_each_named(client: httpx.Client) -> None:
    r = client.post(MODELS, json={"name": "s", "spec": {"family": "llama"}})
    assert r.status_code == 422
    locs = {tuple(d["loc"]) for d in r.json()["detail"]}
    assert ("body", "spec", "vocab_size") in locs and ("body", "spec", "precision") in locs
    assert ("body", "spec", "family") not in locs


def test_invalid_json_is_422(client: httpx.Client) -> None:
    r = client.post(MODELS, content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


def test_full_spec_accepted_and_defaults_filled(client: httpx.Client) -> None:
    r = client.post(MODELS, json={"name": "sp", "spec": SPEC,
                                  "api_endpoint": {"url": "http://nim.example", "model_id": "m"}})
    assert r.status_code == 201, r.text
    e = r.json()
    assert e["spec"]["family"] == "llama" and e["spec"]["is_embedding_model"] is False
    assert e["spec"]["context_size"] is None
    assert e["api_endpoint"] == {"url": "http://nim.example/", "model_id": "m", "api_key": None, "format": None}


def test_patch_keeps_absent_and_empty_fields(client: httpx.Client) -> None:
    client.post(MODELS, json={"name": "p", "description": "old", "base_model": "default/base",
                              "custom_fields": {"k": "v"}, "fileset": "default/fs"}).raise_for_status()
    before = client.get(f"{MODELS}/p").json()
    r = client.patch(f"{MODELS}/p", json={"description": "", "base_model": None, "custom_fields": {},
                                          "fileset": "default/fs2"})
    assert r.status_code == 200
    e = r.json()
    assert (e["description"], e["base_model"], e["custom_fields"]) == ("old", "default/base", {"k": "v"})
    assert e["fileset"] == "default/fs2"
    assert e["created_at"] == before["created_at"] and e["id"] == before["id"]


def test_patch_replaces_custom_fields_and_sets_false(client: httpx.Client) -> None:
    client.post(MODELS, json={"name": "q", "custom_fields": {"a": 1, "b": 2},
                              "trust_remote_code": True}).raise_for_status()
    e = client.patch(f"{MODELS}/q", json={"custom_fields": {"a": 3}, "trust_remote_code": False}).json()
    assert e["custom_fields"] == {"a": 3}
    assert e["trust_remote_code"] is False


def test_patch_partial_spec_is_422(client: httpx.Client) -> None:
    client.post(MODELS, json={"name": "ps", "spec": SPEC}).raise_for_status()
    r = client.patch(f"{MODELS}/ps", json={"spec": {"family": "mistral"}})
    assert r.status_code == 422
    assert ["body", "spec", "vocab_size"] in [d["loc"] for d in r.json()["detail"]]
    assert client.get(f"{MODELS}/ps").json()["spec"]["family"] == "llama"
    r = client.patch(f"{MODELS}/ps", json={"spec": {**SPEC, "family": "mistral"}})
    assert r.status_code == 200 and r.json()["spec"]["family"] == "mistral"


def test_patch_validation_and_missing(client: httpx.Client) -> None:
    client.post(MODELS, json={"name": "v"}).raise_for_status()
    r = client.patch(f"{MODELS}/v", json={"description": "y" * 1001})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "description"]
    r = client.patch(f"{MODELS}/nope", json={"description": "z"})
    assert r.status_code == 404 and isinstance(r.json()["detail"], str)


def test_delete_is_204_then_404(client: httpx.Client) -> None:
    client.post(MODELS, json={"name": "d"}).raise_for_status()
    r = client.delete(f"{MODELS}/d")
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"{MODELS}/d").status_code == 404
    r = client.delete(f"{MODELS}/d")
    assert r.status_code == 404 and "not found" in r.json()["detail"]


def test_list_shape_and_paging(client: httpx.Client) -> None:
    for n in ("l1", "l2", "l3"):
        client.post(MODELS, json={"name": n}).raise_for_status()
    body = client.get(MODELS, params={"page": 2, "page_size": 2, "sort": "name"}).json()
    assert body["object"] == "list"
    assert [e["name"] for e in body["data"]] == ["l3"]
    assert body["pagination"] == {"page": 2, "page_size": 2, "current_page_size": 1,
                                  "total_pages": 2, "total_results": 3}
    names = [e["name"] for e in client.get(MODELS, params={"sort": "-name"}).json()["data"]]
    assert names == ["l3", "l2", "l1"]


def test_unknown_workspace_is_404(client: httpx.Client) -> None:
    for method, path in (("GET", "/apis/models/v2/workspaces/nope/models"),
                         ("POST", "/apis/models/v2/workspaces/nope/models"),
                         ("GET", "/apis/models/v2/workspaces/nope/models/x")):
        r = client.request(method, path, json={"name": "x"})
        assert r.status_code == 404
        assert r.json() == {"detail": "Workspace 'nope' not found"}


def test_create_workspace_then_use_it(client: httpx.Client) -> None:
    r = client.post("/apis/entities/v2/workspaces", json={"name": "team-a"})
    assert r.status_code == 201 and r.json()["name"] == "team-a"
    assert client.post("/apis/entities/v2/workspaces", json={"name": "team-a"}).status_code == 409
    assert client.post("/apis/models/v2/workspaces/team-a/models", json={"name": "m"}).status_code == 201
    names = [w["name"] for w in client.get("/apis/entities/v2/workspaces").json()["data"]]
    assert {"default", "system", "team-a"} <= set(names)
    # the same name lives separately in another workspace
    assert client.post(MODELS, json={"name": "m"}).status_code == 201
    client.post("/_sim/reset").raise_for_status()
    assert client.get("/apis/entities/v2/workspaces/team-a").status_code == 404
    assert client.get(f"{MODELS}/m").status_code == 404


def test_unknown_route_is_fastapi_404(client: httpx.Client) -> None:
    r = client.get("/apis/nothing")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_token_required_when_configured() -> None:
    app = sim.create_app(token="s3cret-token")
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as c:
        r = c.get(MODELS)
        assert r.status_code == 401 and isinstance(r.json()["detail"], str)
        r = c.get(MODELS, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        assert "s3cret" not in r.text
        r = c.get(MODELS, headers={"Authorization": "Bearer s3cret-token"})
        assert r.status_code == 200
        assert c.get("/_sim/requests").status_code == 200  # admin routes need no token


def test_faults_render_detail_and_journal(client: httpx.Client) -> None:
    client.put("/_sim/faults", json={"throttle_next": 1, "retry_after": 7}).raise_for_status()
    r = client.get(MODELS)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert isinstance(r.json()["detail"], str)
    client.put("/_sim/faults", json={"fail_next": 1}).raise_for_status()
    assert client.get(MODELS).status_code == 503
    client.post(MODELS, json={"name": "j"}).raise_for_status()
    journal = client.get("/_sim/requests").json()
    assert {"method": "POST", "path": MODELS, "body": {"name": "j"}} in journal


def test_lost_response_still_creates(client: httpx.Client) -> None:
    client.put("/_sim/faults", json={"lose_next": 1, "match": "POST"}).raise_for_status()
    with pytest.raises(httpx.TransportError):
        client.post(MODELS, json={"name": "lost"})
    assert client.get(f"{MODELS}/lost").status_code == 200


def test_state_exposed_as_app_nemo(server: tuple[str, Any], client: httpx.Client) -> None:
    _, app = server
    client.post(MODELS, json={"name": "st"}).raise_for_status()
    assert "st" in app["nemo"].models["default"]


def test_strict_names_option() -> None:
    app = sim.create_app(strict_names=True)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as c:
        assert c.post(MODELS, json={"name": "Upper_Case"}).status_code == 422
        assert c.post(MODELS, json={"name": "a--b"}).status_code == 422
        assert c.post(MODELS, json={"name": "ok-name.1"}).status_code == 201


def test_cli_interface() -> None:
    assert simulator_module("nemo") is sim
    parser = argparse.ArgumentParser()
    sim.add_arguments(parser)
    args = parser.parse_args(["--token", "tkn-123", "--workspace", "extra", "--error-rate", "0.5"])
    assert args.port == 8000
    app = sim.app_from_args(args)
    assert app["nemo"].token == "tkn-123"
    assert "extra" in app["nemo"].workspaces
    assert app["faults"].error_rate == 0.5
    text = sim.banner(app, "http://127.0.0.1:8000")
    assert "http://127.0.0.1:8000" in text and "default" in text and "auth:        on" in text
    assert "tkn-123" not in text
    assert "auth:        off" in sim.banner(sim.create_app(), "http://h:1")
