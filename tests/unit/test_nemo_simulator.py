"""The NeMo Models service simulator: endpoints, validation, error shapes, auth, faults."""
from __future__ import annotations

import argparse
import time
from typing import Any, Iterator

import httpx
import pytest

from modelsync.vendors.nemo import simulator as sim
from modelsync.simulators import simulator_module
from modelsync.simulators.server import serve_in_thread

MODELS = "/apis/models/v2/workspaces/default/models"

SPEC = {
    "base_num_parameters": 8_000_000_000, "checkpoint_model_name": "meta-llama/Llama-3.1-8B",
    "family": "llama", "ffn_hidden_size": 14336, "gated_mlp": True, "hidden_size": 4096,
    "num_attention_heads": 32, "num_kv_heads": 8, "num_layers": 32, "precision": "bf16",
    "tied_embeddings": False, "vocab_size": 128256,
}


#: a Hugging Face config.json, as the model-spec job reads it from a fileset
HF_CONFIG = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
             "tie_word_embeddings": False, "torch_dtype": "bfloat16", "max_position_embeddings": 131072,
             "hidden_act": "silu"}
FILESETS = {
    "default/fs": {"README.md": "weights elsewhere"},      # exists, holds a file, no config.json
    "default/fs2": {"README.md": "another"},
    "default/llama": {"config.json": HF_CONFIG, "model.safetensors": b"\0"},
    "default/empty": {},                                    # exists, holds nothing
}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    app = sim.create_app(filesets=FILESETS, job_delay=0.05)
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
    assert r.json()["detail"] == "Model with workspace 'default' and name 'dup' already exists"


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


def test_patch_applies_empty_values_and_keeps_absent_and_null(client: httpx.Client) -> None:
    """model_entity_service.update_model_entity applies model_dump(exclude_none=True): "", {} and []
    reach the entity; a null or absent field keeps its value."""
    client.post(MODELS, json={"name": "p", "description": "old", "base_model": "default/base",
                              "custom_fields": {"k": "v"}, "fileset": "default/fs", "model_providers": ["default/x"],
                              "ownership": {"team": "a"}, "prompt": {"system_prompt": "s"},
                              "api_endpoint": {"url": "http://nim:8000/v1", "model_id": "m"},
                              "finetuning_type": "lora"}).raise_for_status()
    before = client.get(f"{MODELS}/p").json()
    r = client.patch(f"{MODELS}/p", json={"description": "", "custom_fields": {}, "model_providers": [],
                                          "ownership": {}, "prompt": {}, "api_endpoint": {},
                                          "finetuning_type": None, "fileset": "default/fs2"})
    assert r.status_code == 200, r.text
    e = r.json()
    assert (e["description"], e["custom_fields"], e["model_providers"], e["ownership"]) == ("", {}, [], {})
    assert e["prompt"] == {"system_prompt": None, "icl_few_shot_examples": None, "inference_params": None,
                           "system_prompt_template": None}
    assert e["api_endpoint"] == {"url": None, "model_id": None, "api_key": None, "format": None}
    assert e["finetuning_type"] == "lora" and e["base_model"] == "default/base"  # null / absent: kept
    assert e["fileset"] == "default/fs2"
    assert e["created_at"] == before["created_at"] and e["id"] == before["id"]
    assert client.get(f"{MODELS}/p").json()["description"] == ""


def test_patch_empty_base_model_clears_it_and_null_backend_format_clears_it(client: httpx.Client) -> None:
    client.post(MODELS, json={"name": "bm", "base_model": "default/base",
                              "backend_format": "OPENAI_CHAT"}).raise_for_status()
    e = client.patch(f"{MODELS}/bm", json={"base_model": ""}).json()
    assert e["base_model"] is None and e["backend_format"] == "OPENAI_CHAT"
    e = client.patch(f"{MODELS}/bm", json={"backend_format": None}).json()
    assert e["backend_format"] is None


def test_patch_empty_fileset_is_400(client: httpx.Client) -> None:
    client.post(MODELS, json={"name": "fe", "fileset": "default/fs"}).raise_for_status()
    r = client.patch(f"{MODELS}/fe", json={"fileset": ""})
    assert r.status_code == 400 and r.json() == {"detail": "Fileset reference is required"}
    assert client.get(f"{MODELS}/fe").json()["fileset"] == "default/fs"


def test_fileset_must_exist_on_create_and_update(client: httpx.Client) -> None:
    r = client.post(MODELS, json={"name": "nofs", "fileset": "default/missing"})
    assert r.status_code == 400
    assert r.json() == {"detail": "Fileset 'default/missing' not found in workspace 'default'"}
    assert client.get(f"{MODELS}/nofs").status_code == 404
    client.post(MODELS, json={"name": "upfs"}).raise_for_status()
    r = client.patch(f"{MODELS}/upfs", json={"fileset": "team/missing"})
    assert r.status_code == 400 and "not found in workspace 'team'" in r.json()["detail"]
    assert client.get(f"{MODELS}/upfs").json()["fileset"] is None


def test_empty_fileset_allowed_on_create_refused_on_update(client: httpx.Client) -> None:
    # create only checks that the fileset exists; update also lists its files
    assert client.post(MODELS, json={"name": "ef", "fileset": "default/empty"}).status_code == 201
    client.post(MODELS, json={"name": "ef2"}).raise_for_status()
    r = client.patch(f"{MODELS}/ef2", json={"fileset": "default/empty"})
    assert r.status_code == 400 and r.json() == {"detail": "Fileset default/empty, exists but is empty"}


def test_reads_null_minimum_gpus_and_drop_head_type(server: tuple[str, Any], client: httpx.Client) -> None:
    _, app = server
    spec = {**SPEC, "minimum_gpus_lora": 1, "minimum_gpus_all_weights": 2, "head_type": "causal_lm",
            "linear_layers": [{"name": "q_proj", "in_features": 4096, "out_features": 4096}]}
    created = client.post(MODELS, json={"name": "mg", "spec": spec}).json()
    stored = app["nemo"].models["default"]["mg"]["spec"]
    assert (stored["minimum_gpus_lora"], stored["minimum_gpus_all_weights"]) == (1, 2)  # kept...
    assert "head_type" not in stored  # ...unknown members are ignored
    for read in (created, client.get(f"{MODELS}/mg").json(), client.get(f"{MODELS}/mg?verbose=true").json()):
        assert read["spec"]["minimum_gpus_lora"] is None and read["spec"]["minimum_gpus_all_weights"] is None
        assert "head_type" not in read["spec"]
    assert created["spec"]["linear_layers"][0]["name"] == "q_proj"  # a create's reply is verbose
    assert client.get(f"{MODELS}/mg").json()["spec"]["linear_layers"] is None
    assert client.get(f"{MODELS}/mg", params={"verbose": "true"}).json()["spec"]["linear_layers"][0]["in_features"] == 4096
    listed = client.get(MODELS).json()["data"]
    assert "minimum_gpus_lora" not in next(e for e in listed if e["name"] == "mg")["spec"]  # nulls left out


def _wait_jobs(app: Any) -> None:
    deadline = time.monotonic() + 5
    while app["nemo"].pending_jobs() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not app["nemo"].pending_jobs()


def test_fileset_starts_job_that_rewrites_spec(server: tuple[str, Any], client: httpx.Client) -> None:
    _, app = server
    mine = {**SPEC, "family": "mine", "num_layers": 2, "chat_template": "{{ messages }}"}
    client.post(MODELS, json={"name": "job", "fileset": "default/llama", "spec": mine}).raise_for_status()
    assert [j["model"] for j in app["nemo"].jobs] == ["default/job"]
    _wait_jobs(app)
    spec = client.get(f"{MODELS}/job").json()["spec"]
    assert spec["family"] == "llama" and spec["num_layers"] == 32 and spec["num_kv_heads"] == 8  # replaced whole
    assert spec["chat_template"] == "{{ messages }}"  # kept by _merge_existing_spec
    assert spec["minimum_gpus_lora"] is None  # estimated and stored, never shown
    assert app["nemo"].models["default"]["job"]["spec"]["minimum_gpus_lora"] >= 1
    # an update that keeps the fileset and has a spec starts no job; a new fileset does
    client.patch(f"{MODELS}/job", json={"spec": mine}).raise_for_status()
    assert len(app["nemo"].jobs) == 1
    client.patch(f"{MODELS}/job", json={"fileset": "default/fs"}).raise_for_status()
    assert len(app["nemo"].jobs) == 2
    _wait_jobs(app)
    assert app["nemo"].jobs[-1]["status"] == "failed"  # no config.json: spec left as it was
    assert client.get(f"{MODELS}/job").json()["spec"]["family"] == "mine"


def test_trust_remote_code_needs_the_permission() -> None:
    app = sim.create_app(filesets=FILESETS, trust_remote_code_permission=False)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as c:
        r = c.post(MODELS, json={"name": "t", "trust_remote_code": True})
        assert r.status_code == 403
        assert r.json() == {"detail": "Insufficient permissions to set the trust_remote_code field"}
        assert c.post(MODELS, json={"name": "t", "trust_remote_code": False}).status_code == 201
        assert c.patch(f"{MODELS}/t", json={"trust_remote_code": True}).status_code == 403
        assert c.patch(f"{MODELS}/t", json={"trust_remote_code": False}).status_code == 200


def test_lenient_mode_looks_nothing_up() -> None:
    app = sim.create_app(lenient=True, trust_remote_code_permission=False)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as c:
        r = c.post(MODELS, json={"name": "l", "fileset": "default/nowhere", "trust_remote_code": True})
        assert r.status_code == 201 and r.json()["trust_remote_code"] is True
        assert app["nemo"].jobs == []
    assert "lenient" in sim.banner(app, "http://h:1")


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
    assert r.status_code == 404 and r.json() == {"detail": "Model with workspace 'default' and name 'nope' not found"}


def test_delete_is_204_then_404(client: httpx.Client) -> None:
    client.post(MODELS, json={"name": "d"}).raise_for_status()
    r = client.delete(f"{MODELS}/d")
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"{MODELS}/d").status_code == 404
    r = client.delete(f"{MODELS}/d")
    assert r.status_code == 404 and r.json()["detail"] == "Model with workspace 'default' and name 'd' not found"


def test_list_shape_and_paging(client: httpx.Client) -> None:
    for n in ("l1", "l2", "l3"):
        client.post(MODELS, json={"name": n}).raise_for_status()
    body = client.get(MODELS, params={"page": 2, "page_size": 2, "sort": "name"}).json()
    assert [e["name"] for e in body["data"]] == ["l3"]
    assert body["pagination"] == {"page": 2, "page_size": 2, "current_page_size": 1,
                                  "total_pages": 2, "total_results": 3}
    names = [e["name"] for e in client.get(MODELS, params={"sort": "-name"}).json()["data"]]
    assert names == ["l3", "l2", "l1"]


def test_unknown_workspace_answers_like_the_platform(client: httpx.Client) -> None:
    # create: the entity store's 422; list: the service's generic 500; get: the model is not found
    r = client.post("/apis/models/v2/workspaces/nope/models", json={"name": "x"})
    assert r.status_code == 422
    assert r.json() == {"detail": "Workspace 'nope' does not exist. Please create the workspace first."}
    r = client.get("/apis/models/v2/workspaces/nope/models")
    assert r.status_code == 500 and r.json() == {"detail": "Failed to list model entities"}
    r = client.get("/apis/models/v2/workspaces/nope/models/x")
    assert r.status_code == 404
    assert r.json() == {"detail": "Model with workspace 'nope' and name 'x' not found"}
    r = client.get("/apis/entities/v2/workspaces/nope")
    assert r.status_code == 404 and r.json() == {"detail": "Workspace 'nope' not found"}


def test_files_api_creates_filesets_and_files(client: httpx.Client) -> None:
    base = "/apis/files/v2/workspaces/default/filesets"
    assert client.post(base, json={"name": "up"}).status_code == 200
    assert client.post(base, json={"name": "up"}).status_code == 409
    assert client.get(f"{base}/up").json()["name"] == "up"
    assert client.get(f"{base}/nope").status_code == 404
    client.post(MODELS, json={"name": "usesup"}).raise_for_status()
    assert client.patch(f"{MODELS}/usesup", json={"fileset": "default/up"}).status_code == 400  # empty
    assert client.put(f"{base}/up/-/dir/config.json", content=b"{}").status_code == 200
    assert client.patch(f"{MODELS}/usesup", json={"fileset": "default/up"}).status_code == 200


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
    args = parser.parse_args(["--token", "tkn-123", "--workspace", "extra", "--error-rate", "0.5",
                              "--fileset", "default/ckpt", "--no-trust-remote-code-permission"])
    assert args.port == 8000
    app = sim.app_from_args(args)
    assert app["nemo"].token == "tkn-123"
    assert "extra" in app["nemo"].workspaces
    assert app["faults"].error_rate == 0.5
    assert app["nemo"].filesets[("default", "ckpt")]["files"]  # a fileset that holds a file
    assert app["nemo"].trust_remote_code_permission is False and app["nemo"].lenient is False
    text = sim.banner(app, "http://127.0.0.1:8000")
    assert "http://127.0.0.1:8000" in text and "default" in text and "auth:        on" in text
    assert "tkn-123" not in text
    assert "auth:        off" in sim.banner(sim.create_app(), "http://h:1")
