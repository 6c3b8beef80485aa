"""NemoBackend: the pure mapping, and the wire behaviour against the in-process simulator."""
from __future__ import annotations

import email.utils
import time
from typing import Any, Iterator

import httpx
import pydantic
import pytest

from modelsync.api import ModelSpec, describe_validation_error
from modelsync.backends import backend_class, make_backend
from modelsync.backends import base
from modelsync.vendors.nemo import mapping as nemo
from modelsync.vendors.nemo.client import NemoBackend
from modelsync.vendors.nemo.schema import NemoModelSection
from modelsync.backends.base import (
    CredentialsRejected,
    NameTaken,
    Observation,
    Recoverable,
    RegistryConnection,
    Resource,
    Terminal,
    deterministic_id,
)
from modelsync.vendors.nemo import simulator as sim
from modelsync.simulators.server import serve_in_thread

MODELS = "/apis/models/v2/workspaces/default/models"
UID = "0b7e4a4e-2f1c-4b7a-9a57-1f6c7d1e2a3b"
KEY = "ModelRegistry/ns/reg"

SPEC = {
    "base_num_parameters": 8_000_000_000, "checkpoint_model_name": "meta-llama/Llama-3.1-8B",
    "family": "llama", "ffn_hidden_size": 14336, "gated_mlp": True, "hidden_size": 4096,
    "num_attention_heads": 32, "num_kv_heads": 8, "num_layers": 32, "precision": "bf16",
    "tied_embeddings": False, "vocab_size": 128256,
}

# Some tests build specs the CRD would refuse (model_copy skips validation) to prove the
# backend refuses them too; pydantic warns when it serializes those.
pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")


def conn(url: str = "http://127.0.0.1:1", **kw: Any) -> RegistryConnection:
    kw.setdefault("settings", {"workspace": "default"})
    return RegistryConnection(key=KEY, name="reg", kind="ModelRegistry", backend="nemo", endpoint=url, **kw)


def model(spec: dict[str, Any] | None = None, *, nemo_extra: dict[str, Any] | None = None,
          top_extra: dict[str, Any] | None = None, name: str = "llama", namespace: str = "ns",
          uid: str = UID, kind: str = "Model") -> Resource:
    """A Resource from a validated ModelSpec. ``nemo_extra`` / ``top_extra`` are laid over
    ``spec.nemo`` / ``spec`` *without* validation, so the backend's own checks can be tested
    whatever api.py already rejects (and fields api.py does not model, e.g. the real ``spec``)."""
    parsed = ModelSpec.model_validate({"registries": [{"name": "reg"}], **(spec or {})})
    if nemo_extra:
        section = parsed.nemo or NemoModelSection()
        parsed = parsed.model_copy(update={"nemo": section.model_copy(update=nemo_extra)})
    if top_extra:
        parsed = parsed.model_copy(update=top_extra)
    return Resource(kind=kind, name=name, namespace=namespace, uid=uid, generation=1, spec=parsed)  # type: ignore[arg-type]


def marker(uid: str = UID) -> str:
    return str(deterministic_id(uid, KEY))


# ---------------------------------------------------------------- pure mapping


def test_registered_as_nemo_and_model_only() -> None:
    assert backend_class("nemo") is NemoBackend
    b = make_backend(conn())
    assert isinstance(b, NemoBackend) and b.name == "nemo"
    assert b.supports("Model") and not b.supports("ModelService")
    assert b.workspace == "default"
    assert NemoBackend(conn(settings={})).workspace == "default"
    assert NemoBackend(conn(settings={"workspace": "team"})).workspace == "team"


def test_deterministic_name_rules() -> None:
    c = conn()
    n = nemo.entity_name(model(), c)
    assert n == nemo.entity_name(model(), c)  # stable
    assert n.startswith("ns-llama-") and n.endswith(deterministic_id(UID, KEY).hex[:8])
    assert n != nemo.entity_name(model(uid="other-uid"), c)  # unique per incarnation
    other = RegistryConnection(key="ModelRegistry/ns/reg2", name="reg2", kind="ModelRegistry",
                               backend="nemo", endpoint="http://x")
    assert n != nemo.entity_name(model(), other)  # and per registry
    weird = nemo.entity_name(model(name="9.Weird_Name..x", namespace="A" * 80), c)
    assert 2 <= len(weird) <= 63
    assert sim.STRICT_NAME_RE.match(weird), weird
    digit_first = nemo.entity_name(model(namespace="1ns", name="m"), c)
    assert digit_first[0].isalpha() and sim.STRICT_NAME_RE.match(digit_first)


def test_user_name_used_and_validated() -> None:
    c = conn()
    assert nemo.entity_name(model({"nemo": {"name": "My_Model.v1"}}), c) == "My_Model.v1"
    for bad in ("has space", "slash/name", "x" * 256):
        with pytest.raises(Terminal) as ei:
            nemo.entity_name(model(nemo_extra={"name": bad}), c)
        assert "spec.nemo.name" in str(ei.value) and ei.value.fields == ("spec.nemo.name",)


FULL = {
    "description": "Llama 3.1 8B",
    "vendor": "Meta", "version": "3.1", "task": "text-generation", "license": "llama3.1",
    "parameters": "8B", "architecture": "LlamaForCausalLM", "frameworkVersion": "4.44",
    "installPath": "s3://bucket/llama", "readme": "# not mapped",
    "gpu": {"minMemory": "16Gi", "recommendedCount": [1, 2]},
    "nemo": {
        "fileset": "default/llama-fs", "base_model": "default/base", "finetuning_type": "lora",
        "api_endpoint": {"url": "http://nim:8000/v1", "model_id": "meta/llama"},
        "backend_format": "OPENAI_CHAT", "prompt": {"system_prompt": "be nice"},
        "custom_fields": {"team": "ml", "modelsync.io/owner": "forged"}, "ownership": {"created_by": "ops"},
        "model_providers": ["default/nim"], "trust_remote_code": False,
    },
}


@pytest.mark.parametrize("spec, nemo_extra, expected", [
    pytest.param({}, None, {}, id="minimal"),
    pytest.param({"description": "hello"}, None, {"description": "hello"}, id="description"),
    # empty means empty: the PATCH endpoint applies "", {} and [], so what the resource sets is sent;
    # only a field left out (None) is not
    pytest.param({"description": ""}, None, {"description": ""}, id="empty-description-sent"),
    pytest.param(
        {"nemo": {"custom_fields": {}, "model_providers": [], "base_model": "", "prompt": {}, "ownership": {}}},
        None, {"model_providers": [], "base_model": "", "prompt": {}, "ownership": {}},
        id="empty-nemo-values-sent"),
    pytest.param({"nemo": {"base_model": None}}, None, {}, id="absent-not-sent"),
    pytest.param(FULL, None, {
        "description": "Llama 3.1 8B", "fileset": "default/llama-fs", "base_model": "default/base",
        "finetuning_type": "lora", "api_endpoint": {"url": "http://nim:8000/v1", "model_id": "meta/llama"},
        "backend_format": "OPENAI_CHAT", "prompt": {"system_prompt": "be nice"},
        "ownership": {"created_by": "ops"}, "model_providers": ["default/nim"], "trust_remote_code": False,
    }, id="full"),
    pytest.param({"nemo": {"fileset": "default/fs"}}, {"spec": SPEC}, {"fileset": "default/fs", "spec": SPEC},
                 id="spec"),
])
def test_desired_entity_table(spec: dict[str, Any], nemo_extra: dict[str, Any] | None,
                              expected: dict[str, Any]) -> None:
    res = model(spec, nemo_extra=nemo_extra)
    body = nemo.desired_entity(res, conn())
    custom = body.pop("custom_fields")
    assert body.pop("name") == nemo.entity_name(res, conn())
    assert body == expected
    assert custom[nemo.OWNER_KEY] == marker()
    assert custom[nemo.RESOURCE_KEY] == "ns/llama"


def test_desired_entity_custom_fields_mapping() -> None:
    custom = nemo.desired_entity(model(FULL), conn())["custom_fields"]
    assert custom == {
        "team": "ml",
        "modelsync.io/vendor": "Meta", "modelsync.io/version": "3.1", "modelsync.io/task": "text-generation",
        "modelsync.io/license": "llama3.1", "modelsync.io/parameters": "8B",
        "modelsync.io/architecture": "LlamaForCausalLM", "modelsync.io/framework-version": "4.44",
        "modelsync.io/install-path": "s3://bucket/llama",
        "modelsync.io/gpu": {"minMemory": "16Gi", "recommendedCount": [1, 2]},
        "modelsync.io/resource": "ns/llama",
        "modelsync.io/owner": marker(),  # the user's forged marker never wins
    }


@pytest.mark.parametrize("top_extra, nemo_extra, field", [
    ({"description": "x" * 1001}, None, "spec.description"),
    (None, {"api_endpoint": {"url": "nope", "model_id": "m"}}, "spec.nemo.api_endpoint.url"),
])
def test_desired_entity_validation(top_extra: dict[str, Any] | None, nemo_extra: dict[str, Any] | None,
                                   field: str) -> None:
    """What NeMo rejects and the schema admits is refused by the backend, naming the field."""
    with pytest.raises(Terminal) as ei:
        nemo.desired_entity(model(nemo_extra=nemo_extra, top_extra=top_extra), conn())
    assert field in ei.value.fields
    assert f"{field}:" in str(ei.value)


@pytest.mark.parametrize("nemo_section, field", [
    ({"fileset": "no-slash"}, "spec.nemo.fileset"),
    ({"fileset": "a/b/c"}, "spec.nemo.fileset"),
    ({"finetuning_type": "sideways"}, "spec.nemo.finetuning_type"),
    ({"backend_format": "OPENAI_EMBEDDINGS"}, "spec.nemo.backend_format"),
    ({"api_endpoint": {"host": "x"}}, "spec.nemo.api_endpoint.host"),
    ({"prompt": {"text": "x"}}, "spec.nemo.prompt.text"),
    ({"model_providers": "default/nim"}, "spec.nemo.model_providers"),
    ({"spec": {k: v for k, v in SPEC.items() if k != "family"}}, "spec.nemo.spec.family"),
    ({"spec": {**SPEC, "num_layers": "32"}}, "spec.nemo.spec.num_layers"),
    ({"spec": {**SPEC, "gated_mlp": 1}}, "spec.nemo.spec.gated_mlp"),
    ({"spec": {**SPEC, "num_layers": True}}, "spec.nemo.spec.num_layers"),
    ({"spec": {**SPEC, "num_parameters": 8}}, "spec.nemo.spec.num_parameters"),
    ({"spec": {**SPEC, "head_type": "weird"}}, "spec.nemo.spec.head_type"),
])
def test_schema_refuses_what_nemo_rejects(nemo_section: dict[str, Any], field: str) -> None:
    """Enums, forms and the whole ``spec`` set live in api.py (the CRD's source and the core's
    parser), so the backend never sees such a spec; the error names the field."""
    with pytest.raises(pydantic.ValidationError) as ei:
        ModelSpec.model_validate({"registries": [{"name": "reg"}], "nemo": nemo_section})
    assert f"{field}:" in describe_validation_error(ei.value)


def test_spec_from_the_old_entity_store_api_is_refused_naming_fields() -> None:
    # num_parameters & co. belong to the older v1 Entity Store API, not to the platform's spec
    with pytest.raises(pydantic.ValidationError) as ei:
        ModelSpec.model_validate({"registries": [{"name": "reg"}], "nemo": {"spec": {
            "num_parameters": 8, "context_size": 4096, "num_virtual_tokens": 0, "is_chat": True}}})
    message = describe_validation_error(ei.value)
    assert "spec.nemo.spec.family:" in message and "spec.nemo.spec.num_parameters:" in message


@pytest.mark.parametrize("desired, entity, diff", [
    ({"description": "a"}, {"description": "a"}, ()),
    ({"description": "a"}, {"description": "b"}, ("description",)),
    ({"custom_fields": {"x": 1}}, {"custom_fields": {"x": 1, "added": "by-platform"}}, ()),
    ({"custom_fields": {"x": 1}}, {"custom_fields": {"x": 2}}, ("custom_fields",)),
    ({"custom_fields": {"x": 1}}, {"custom_fields": None}, ("custom_fields",)),
    ({"spec": {"family": "llama"}}, {"spec": {"family": "llama", "context_size": None}}, ()),
    ({"api_endpoint": {"url": "http://nim"}}, {"api_endpoint": {"url": "http://nim/", "api_key": None}}, ()),
    ({"api_endpoint": {"url": "http://nim/a"}}, {"api_endpoint": {"url": "http://nim/b"}}, ("api_endpoint",)),
    ({"model_providers": ["a"]}, {"model_providers": ["a", "b"]}, ("model_providers",)),
    ({"trust_remote_code": False}, {"trust_remote_code": False}, ()),
    ({"trust_remote_code": False}, {"trust_remote_code": True}, ("trust_remote_code",)),
    ({"ownership": {"o": {"n": 1}}}, {"ownership": {"o": {"n": 1, "m": 2}}}, ()),
    ({"name": "ignored", "fileset": "a/b"}, {"fileset": "a/c"}, ("fileset",)),
])
def test_diff_entity_table(desired: dict[str, Any], entity: dict[str, Any], diff: tuple[str, ...]) -> None:
    assert nemo.diff_entity(desired, entity) == diff


def test_retry_after_parsing() -> None:
    assert base.retry_after_seconds("7") == 7.0
    assert base.retry_after_seconds("1.5") == 1.5
    assert base.retry_after_seconds(None) is None and base.retry_after_seconds("soon") is None
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= base.retry_after_seconds(date, now=now) <= 31  # type: ignore[operator]
    assert base.retry_after_seconds(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_inventory_masks_api_key() -> None:
    inv = nemo.inventory_of({"name": "m", "api_endpoint": {"url": "http://x/", "api_key": "sk-123456"}})
    assert inv["api_endpoint"]["api_key"] == "***"


# ---------------------------------------------------------------- against the simulator


#: a Hugging Face config.json: what the simulator's model-spec job reads from a fileset
HF_CONFIG = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
             "tie_word_embeddings": False, "torch_dtype": "bfloat16", "max_position_embeddings": 131072}
FILESETS = {"default/fs": {"README.md": "no config"}, "default/llama-fs": {"README.md": "x"},
            "default/ckpt": {"config.json": HF_CONFIG}}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    app = sim.create_app(filesets=FILESETS, job_delay=0.05)
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture
def admin(server: tuple[str, Any]) -> Iterator[httpx.Client]:
    url, _ = server
    with httpx.Client(base_url=url, timeout=10) as c:
        c.post("/_sim/reset").raise_for_status()
        yield c


@pytest.fixture
async def backend(server: tuple[str, Any], admin: httpx.Client) -> Any:
    b = NemoBackend(conn(server[0], timeout=5.0))
    yield b
    await b.aclose()


def writes(admin: httpx.Client) -> list[dict[str, Any]]:
    return [e for e in admin.get("/_sim/requests").json() if e["method"] not in ("GET", "HEAD")]


async def test_create_returns_inventory_and_observe_is_clean(backend: NemoBackend, admin: httpx.Client) -> None:
    res = model(FULL, nemo_extra={"spec": SPEC})
    assert (await backend.observe(res)) == Observation(exists=False)
    inv = await backend.create(res)
    name = nemo.entity_name(res, backend.conn)
    assert inv["name"] == name and inv["id"].startswith("model-") and inv["workspace"] == "default"
    assert inv["custom_fields"][nemo.OWNER_KEY] == marker()
    assert inv["spec"]["family"] == "llama"
    obs = await backend.observe(res)
    assert obs.exists and obs.up_to_date and obs.diff == ()
    assert obs.external_id == name
    assert obs.inventory is not None and obs.inventory["id"] == inv["id"]
    assert admin.get(f"{MODELS}/{name}").status_code == 200


async def test_update_sends_only_changed_fields(backend: NemoBackend, admin: httpx.Client) -> None:
    res = model({"description": "v1", "nemo": {"fileset": "default/fs", "custom_fields": {"a": "1"}}},
                nemo_extra={"spec": SPEC})
    await backend.create(res)
    name = nemo.entity_name(res, backend.conn)
    # someone else adds a custom field; that is not drift and must survive our update
    admin.patch(f"{MODELS}/{name}", json={"custom_fields": {**admin.get(f"{MODELS}/{name}").json()["custom_fields"],
                                                            "other": "keep"}}).raise_for_status()
    changed = model({"description": "v2", "nemo": {"fileset": "default/fs", "custom_fields": {"a": "2"}}},
                    nemo_extra={"spec": {**SPEC, "precision": "fp16"}})
    obs = await backend.observe(changed)
    assert set(obs.diff) == {"description", "custom_fields", "spec"}
    admin.delete("/_sim/requests").raise_for_status()
    inv = await backend.update(changed, obs)
    (patch,) = writes(admin)
    assert patch["method"] == "PATCH" and patch["path"] == f"{MODELS}/{name}"
    assert set(patch["body"]) == {"description", "custom_fields", "spec"}
    # spec is replaced whole by the endpoint: sent as the registry's spec with ours laid over it
    sent = patch["body"]["spec"]
    assert {k: sent[k] for k in SPEC} == {**SPEC, "precision": "fp16"}
    assert {k: v for k, v in sent.items() if k not in SPEC} == {"is_embedding_model": False}  # the server's default
    assert inv["description"] == "v2" and inv["custom_fields"]["a"] == "2"
    assert inv["custom_fields"]["other"] == "keep" and inv["custom_fields"][nemo.OWNER_KEY] == marker()
    assert (await backend.observe(changed)).diff == ()


async def test_update_single_field(backend: NemoBackend, admin: httpx.Client) -> None:
    await backend.create(model({"description": "a", "nemo": {"base_model": "default/b1"}}))
    res = model({"description": "a", "nemo": {"base_model": "default/b2"}})
    obs = await backend.observe(res)
    assert obs.diff == ("base_model",)
    admin.delete("/_sim/requests").raise_for_status()
    await backend.update(res, obs)
    assert [w["body"] for w in writes(admin)] == [{"base_model": "default/b2"}]


async def test_422_is_terminal_naming_field(backend: NemoBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    # bypass local validation to see the registry's own 422 classified
    monkeypatch.setattr(nemo, "_validate", lambda body: None)
    with pytest.raises(Terminal) as ei:
        await backend.create(model(top_extra={"description": "x" * 1001}))
    assert not isinstance(ei.value, (CredentialsRejected, NameTaken))
    assert "body.description:" in str(ei.value) and "1000" in str(ei.value)
    assert "description" in ei.value.fields
    assert "xxxxxxxxxx" not in str(ei.value)  # the echoed input is not repeated


async def test_local_validation_sends_nothing(backend: NemoBackend, admin: httpx.Client) -> None:
    with pytest.raises(Terminal) as ei:
        await backend.create(model(top_extra={"description": "x" * 1001}))
    assert ei.value.fields == ("spec.description",)
    assert writes(admin) == []


async def test_409_adopts_when_marker_ours(backend: NemoBackend, admin: httpx.Client) -> None:
    res = model({"description": "mine"})
    name = nemo.entity_name(res, backend.conn)
    admin.post(MODELS, json={"name": name, "description": "stale",
                             "custom_fields": {nemo.OWNER_KEY: marker()}}).raise_for_status()
    inv = await backend.create(res)
    assert inv["description"] == "stale"  # adopted as is; the next observe reports the diff
    assert (await backend.observe(res)).diff == ("description", "custom_fields")


async def test_timeout_is_recoverable(server: tuple[str, Any], admin: httpx.Client) -> None:
    admin.put("/_sim/faults", json={"latency": 1.0}).raise_for_status()
    b = NemoBackend(conn(server[0], timeout=0.2))
    try:
        with pytest.raises(Recoverable) as ei:
            await b.observe(model())
        assert "timed out" in str(ei.value)
    finally:
        await b.aclose()


async def test_connection_refused_is_recoverable() -> None:
    from modelsync.simulators.server import free_port
    b = NemoBackend(conn(f"http://127.0.0.1:{free_port()}", timeout=2.0))
    try:
        with pytest.raises(Recoverable):
            await b.observe(model())
    finally:
        await b.aclose()


async def test_delete_and_delete_again(backend: NemoBackend, admin: httpx.Client) -> None:
    res = model()
    await backend.create(res)
    await backend.delete(res)
    assert admin.get(MODELS).json()["data"] == []
    await backend.delete(res)  # 404 is success
    assert [w["method"] for w in writes(admin)] == ["POST", "DELETE"]


async def test_missing_workspace(server: tuple[str, Any], admin: httpx.Client) -> None:
    """The platform answers a create in a missing workspace with 422 and a list with 500; asked,
    the entity store says 404: the registry's fault (RegistryMisconfigured), not the spec's."""
    b = NemoBackend(conn(server[0], settings={"workspace": "ghost"}))
    try:
        assert not (await b.observe(model())).exists
        with pytest.raises(Terminal) as ei:
            await b.create(model())
        assert ei.value.reason == "RegistryMisconfigured" and "ghost" in str(ei.value)
        with pytest.raises(Terminal) as ei:
            await b.check()
        assert ei.value.reason == "RegistryMisconfigured" and "spec.nemo.workspace" in str(ei.value)
    finally:
        await b.aclose()


async def test_other_workspace(server: tuple[str, Any], admin: httpx.Client) -> None:
    admin.post("/apis/entities/v2/workspaces", json={"name": "team"}).raise_for_status()
    b = NemoBackend(conn(server[0], settings={"workspace": "team"}))
    try:
        inv = await b.create(model())
        assert inv["workspace"] == "team"
        assert admin.get(MODELS).json()["data"] == []
    finally:
        await b.aclose()


SECRET = "tok-very-secret-123"


@pytest.fixture
def auth_server() -> Iterator[str]:
    with serve_in_thread(sim.create_app(token=SECRET)) as url:
        yield url


async def test_token_required_credentials_rejected(auth_server: str) -> None:
    b = NemoBackend(conn(auth_server))
    try:
        with pytest.raises(CredentialsRejected) as ei:
            await b.observe(model())
        assert "401" in str(ei.value)
    finally:
        await b.aclose()
    b = NemoBackend(conn(auth_server, credentials={"token": "wrong-token-xyz"}))
    try:
        with pytest.raises(CredentialsRejected) as ei:
            await b.create(model())
        assert "wrong-token-xyz" not in str(ei.value)
    finally:
        await b.aclose()


async def test_token_accepted(auth_server: str) -> None:
    b = NemoBackend(conn(auth_server, credentials={"token": SECRET}))
    try:
        inv = await b.create(model())
        assert (await b.observe(model())).up_to_date
        assert inv["name"]
    finally:
        await b.aclose()


async def test_secrets_never_in_messages(auth_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry that echoes the token and request headers in its errors: all masked."""
    c = conn(auth_server, credentials={"token": SECRET})

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"detail": f"bad request with {request.headers['Authorization']} "
                                                   f"token={SECRET}"})

    b = NemoBackend(c, transport=httpx.MockTransport(echo))
    try:
        with pytest.raises(Terminal) as ei:
            await b.create(model())
        assert SECRET not in str(ei.value) and "tok-very" not in str(ei.value)
        assert "HTTP 400" in str(ei.value)
    finally:
        await b.aclose()

    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"failed for {request.url} Authorization: Bearer {SECRET}")

    b = NemoBackend(c, transport=httpx.MockTransport(boom))
    try:
        with pytest.raises(Recoverable) as ei2:
            await b.observe(model())
        assert SECRET not in str(ei2.value)
    finally:
        await b.aclose()


async def test_headers_and_tls_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    seen_headers: list[httpx.Headers] = []

    def capture(request: httpx.Request) -> httpx.Response:
        seen_headers.append(request.headers)
        return httpx.Response(404, json={"detail": "not found"})

    b = NemoBackend(conn(credentials={"token": "abc-123"}), transport=httpx.MockTransport(capture))
    await b.observe(model())
    assert seen_headers[-1]["Authorization"] == "Bearer abc-123"
    assert seen_headers[-1]["Accept"] == "application/json"
    await b.aclose()
    b = NemoBackend(conn(credentials={"user": "x"}), transport=httpx.MockTransport(capture))
    await b.observe(model())
    assert "Authorization" not in seen_headers[-1]
    await b.aclose()

    b = NemoBackend(conn(insecure_skip_verify=True, timeout=12.0))
    session = b.transport._http()._open()  # type: ignore[attr-defined]
    assert session.connector._ssl is False and session.timeout.sock_read == 12.0
    await b.aclose()


# ---------------------------------------------------------------- what the platform's server does (issue 14)


async def test_empty_values_reach_the_registry(backend: NemoBackend, admin: httpx.Client) -> None:
    """Empty means empty: "", {} and [] set in the resource are sent and land; nothing absent is sent."""
    res = model({"description": "old", "nemo": {
        "base_model": "default/base", "model_providers": ["default/nim"], "prompt": {"system_prompt": "s"},
        "ownership": {"team": "a"}, "custom_fields": {"team": "ml"}, "finetuning_type": "lora"}})
    await backend.create(res)
    name = nemo.entity_name(res, backend.conn)
    emptied = model({"description": "", "nemo": {
        "base_model": "", "model_providers": [], "prompt": {}, "ownership": {}, "custom_fields": {}}})
    obs = await backend.observe(emptied)
    assert set(obs.diff) == {"description", "base_model", "model_providers", "prompt", "ownership", "custom_fields"}
    admin.delete("/_sim/requests").raise_for_status()
    await backend.update(emptied, obs)
    (patch,) = writes(admin)
    body = patch["body"]
    assert (body["description"], body["base_model"], body["model_providers"], body["prompt"], body["ownership"]) \
        == ("", "", [], {}, {})
    assert "finetuning_type" not in body  # left out of the resource: left as it is
    assert set(body["custom_fields"]) == {nemo.OWNER_KEY, nemo.RESOURCE_KEY}  # only ModelSync's own keys
    stored = admin.get(f"{MODELS}/{name}").json()
    assert (stored["description"], stored["base_model"], stored["model_providers"], stored["ownership"]) \
        == ("", None, [], {})
    assert stored["prompt"]["system_prompt"] is None and stored["finetuning_type"] == "lora"
    assert "team" not in stored["custom_fields"]
    assert (await backend.observe(emptied)).diff == ()  # converged: no write repeated


async def test_fields_nemo_cannot_set_are_reported_not_sent(backend: NemoBackend, admin: httpx.Client) -> None:
    spec = {**SPEC, "head_type": "causal_lm"}
    res = model({"readme": "# hi", "defaultServiceRef": {"name": "vllm"}, "nemo": {"spec": spec}})
    await backend.create(res)
    (post,) = writes(admin)
    assert "head_type" not in post["body"]["spec"] and "readme" not in str(post["body"])
    obs = await backend.observe(res)
    assert obs.diff == ()
    reported = {n.field: n.why for n in obs.not_settable}
    assert set(reported) == {"spec.readme", "spec.defaultServiceRef", "spec.nemo.spec.head_type"}
    assert "head_type" in reported["spec.nemo.spec.head_type"] and "schemas.py" in reported["spec.readme"]
    assert (await backend.observe(model())).not_settable == ()


async def test_minimum_gpus_sent_never_compared(server: tuple[str, Any], backend: NemoBackend,
                                                admin: httpx.Client) -> None:
    """Reads return spec.minimum_gpus_* as null: sent with spec, stored, and no perpetual diff."""
    res = model(nemo_extra={"spec": {**SPEC, "minimum_gpus_lora": 1, "minimum_gpus_all_weights": 4}})
    await backend.create(res)
    name = nemo.entity_name(res, backend.conn)
    assert server[1]["nemo"].models["default"][name]["spec"]["minimum_gpus_all_weights"] == 4
    assert admin.get(f"{MODELS}/{name}").json()["spec"]["minimum_gpus_all_weights"] is None
    assert (await backend.observe(res)).diff == ()


def _wait_jobs(app: Any) -> None:
    deadline = time.monotonic() + 5
    while app["nemo"].pending_jobs() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not app["nemo"].pending_jobs()


async def test_fileset_job_output_is_kept_when_spec_is_written(server: tuple[str, Any], backend: NemoBackend,
                                                               admin: httpx.Client) -> None:
    """A fileset starts the model-spec job, which replaces spec whole. The user's own spec keys
    are set back once; what the job filled in that the user did not set survives the write."""
    app = server[1]
    mine = {**SPEC, "family": "mine"}  # no context_size: the job's value must survive
    res = model({"nemo": {"fileset": "default/ckpt"}}, nemo_extra={"spec": mine})
    await backend.create(res)
    name = nemo.entity_name(res, backend.conn)
    _wait_jobs(app)
    assert admin.get(f"{MODELS}/{name}").json()["spec"]["family"] == "llama"  # the job's
    obs = await backend.observe(res)
    assert obs.diff == ("spec",)
    admin.delete("/_sim/requests").raise_for_status()
    await backend.update(res, obs)
    patch = [w for w in writes(admin)]
    assert len(patch) == 1 and set(patch[0]["body"]) == {"spec"}
    assert patch[0]["body"]["spec"]["family"] == "mine"
    assert patch[0]["body"]["spec"]["context_size"] == 131072  # the job's, kept
    assert len(app["nemo"].jobs) == 1  # the same fileset and a spec: no new job
    assert (await backend.observe(res)).diff == ()
    stored = admin.get(f"{MODELS}/{name}").json()["spec"]
    assert stored["family"] == "mine" and stored["context_size"] == 131072


async def test_fileset_only_lets_the_job_own_spec(server: tuple[str, Any], backend: NemoBackend,
                                                  admin: httpx.Client) -> None:
    res = model({"nemo": {"fileset": "default/ckpt"}})
    await backend.create(res)
    _wait_jobs(server[1])
    admin.delete("/_sim/requests").raise_for_status()
    assert (await backend.observe(res)).diff == ()  # the job's spec is not ours to compare
    assert writes(admin) == []


async def test_missing_fileset_is_invalid_spec_naming_it(backend: NemoBackend, admin: httpx.Client) -> None:
    with pytest.raises(Terminal) as ei:
        await backend.create(model({"nemo": {"fileset": "default/not-there"}}))
    assert ei.value.reason == "InvalidSpec" and ei.value.fields == ("spec.nemo.fileset",)
    assert "HTTP 400" in str(ei.value) and "default/not-there" in str(ei.value)


async def test_trust_remote_code_403_is_invalid_spec_not_credentials() -> None:
    with serve_in_thread(sim.create_app(trust_remote_code_permission=False)) as url:
        b = NemoBackend(conn(url))
        try:
            with pytest.raises(Terminal) as ei:
                await b.create(model({"nemo": {"trust_remote_code": True}}))
            assert not isinstance(ei.value, CredentialsRejected)
            assert ei.value.reason == "InvalidSpec" and ei.value.fields == ("spec.nemo.trust_remote_code",)
            assert "HTTP 403" in str(ei.value) and "trust_remote_code" in str(ei.value)
            assert await b.check()  # the token (none here) is fine: the registry stays Ready
        finally:
            await b.aclose()


async def test_other_403_is_still_credentials_rejected() -> None:
    def deny(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"detail": "Forbidden"})

    b = NemoBackend(conn(), transport=httpx.MockTransport(deny))
    try:
        with pytest.raises(CredentialsRejected):
            await b.create(model())
    finally:
        await b.aclose()


@pytest.mark.parametrize("workspace_reply, expected", [
    (httpx.Response(200, json={"name": "default"}), "RegistryUnavailable"),  # the workspace exists: a real 500
    (httpx.Response(404, json={"detail": "Not Found"}), "RegistryUnavailable"),  # no entities route: cannot tell
    (httpx.Response(503, json={"detail": "down"}), "RegistryUnavailable"),  # no answer: cannot tell
    (httpx.Response(404, json={"detail": "Workspace 'default' not found"}), "RegistryMisconfigured"),
])
async def test_list_500_asks_the_entity_store(workspace_reply: httpx.Response, expected: str) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith(nemo.WORKSPACES_PATH):
            return workspace_reply
        return httpx.Response(500, json={"detail": "Failed to list model entities"})

    b = NemoBackend(conn(), transport=httpx.MockTransport(reply))
    try:
        with pytest.raises(base.BackendError) as ei:
            await b.check()
        assert ei.value.reason == expected
        assert "HTTP 500" in str(ei.value)
    finally:
        await b.aclose()


async def test_api_key_set_in_nemo_survives_an_endpoint_change(backend: NemoBackend,
                                                               admin: httpx.Client) -> None:
    """api_endpoint is replaced whole by PATCH: a key set in NeMo must be sent back, not dropped."""
    res = model({"nemo": {"api_endpoint": {"url": "http://nim-a:8000/v1", "model_id": "m"}}})
    await backend.create(res)
    name = nemo.entity_name(res, backend.conn)
    admin.patch(f"{MODELS}/{name}", json={"api_endpoint": {"url": "http://nim-a:8000/v1", "model_id": "m",
                                                           "api_key": "sk-kept"}}).raise_for_status()
    moved = model({"nemo": {"api_endpoint": {"url": "http://nim-b:8000/v1", "model_id": "m"}}})
    obs = await backend.observe(moved)
    assert obs.diff == ("api_endpoint",) and obs.inventory["api_endpoint"]["api_key"] == "***"  # type: ignore[index]
    await backend.update(moved, obs)
    stored = admin.get(f"{MODELS}/{name}").json()["api_endpoint"]
    assert stored["url"] == "http://nim-b:8000/v1" and stored["api_key"] == "sk-kept"
