"""InstillBackend against the Instill simulator (in-process) and pure mapping tables."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from typing import Any, Iterator

import httpx
import pytest

import re

import pydantic

from modelsync.api import ModelSpec, describe_validation_error
from modelsync.backends import backend_class
from modelsync.backends.base import (
    CredentialsRejected,
    NameTaken,
    Recoverable,
    RegistryConnection,
    Resource,
    Terminal,
)
from modelsync.vendors.instill.client import InstillBackend
from modelsync.vendors.instill.mapping import (
    STRICT_ID,
    counted,
    create_body,
    default_model_id,
    desired_model,
    diff_model,
    fields_from_details,
    fields_from_message,
    marker_line,
    marker_owner,
    model_id_for,
    parse_error,
    validate_desired,
)
from modelsync.backends.base import retry_after_seconds
from modelsync.vendors.instill.simulator import create_app
from modelsync.simulators.server import serve_in_thread

TOKEN = "instill_sk_local"

BASE_INSTILL = {
    "modelDefinition": "container",
    "configuration": {},
    "task": "TASK_CHAT",
    "region": "REGION_LOCAL",
    "hardware": "CPU",
}


def make_conn(url: str = "http://127.0.0.1:9", token: str = TOKEN, key: str = "ModelRegistry/ns/reg") -> RegistryConnection:
    return RegistryConnection(
        key=key, name="reg", kind="ModelRegistry", backend="instill", endpoint=url,
        credentials={"token": token}, settings={"namespace": "local"}, timeout=5.0,
    )


def make_res(
    instill: dict[str, Any] | None = None, *, name: str = "llama", uid: str = "uid-1",
    kind: str = "Model", external_id: str | None = None, **common: Any,
) -> Resource:
    spec: dict[str, Any] = {"registries": [{"name": "reg"}], **common}
    if instill is not None:
        spec["instill"] = instill
    return Resource(
        kind=kind, name=name, namespace="team", uid=uid, generation=1,
        spec=ModelSpec.model_validate(spec), external_id=external_id,
    )


class Sim:
    def __init__(self, app: Any, url: str) -> None:
        self.app, self.url = app, url
        self.conn = make_conn(url)

    @property
    def models(self) -> dict[tuple[str, str], dict[str, Any]]:
        return self.app["instill"].models

    def journal(self) -> list[dict[str, Any]]:
        return httpx.get(self.url + "/_sim/requests").json()

    def clear_journal(self) -> None:
        httpx.delete(self.url + "/_sim/requests")

    def faults(self, **knobs: Any) -> None:
        httpx.put(self.url + "/_sim/faults", json=knobs).raise_for_status()

    def writes(self, method: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.journal() if e["method"] not in ("GET", "HEAD") and (method is None or e["method"] == method)]

    def put_model(self, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1alpha/namespaces/local/models", json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )


@pytest.fixture
def sim() -> Iterator[Sim]:
    app = create_app()
    with serve_in_thread(app) as url:
        yield Sim(app, url)


@pytest.fixture
async def backend(sim: Sim) -> Any:
    b = InstillBackend(sim.conn)
    yield b
    await b.aclose()


# ---------------------------------------------------------------- registration and kinds


def test_registered_under_instill() -> None:
    assert backend_class("instill") is InstillBackend
    assert InstillBackend.name == "instill"
    assert InstillBackend(make_conn()).supports("Model")
    assert not InstillBackend(make_conn()).supports("ModelService")


# ---------------------------------------------------------------- ids


#: the rule Instill documents: RFC-1034 labels (letters, digits, hyphens; first a letter; last
#: a letter or digit; at most 63)
RFC1034_ID = re.compile(r"^[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

LONG = "a-very-long-kubernetes-name-that-goes-on.and.on-for-many-characters-" * 3


@pytest.mark.parametrize("name", [
    "a", "llama", "Llama-3.1-70B-Instruct", "0-starts-with-a-digit", "9", "my.model.v2",
    "a--b---c", "x" * 253, LONG[:253], "ends-with-hyphen-after-truncation-xxxxxxx-", "-.-.-",
])
def test_default_id_is_valid_under_both_rules(name: str) -> None:
    conn = make_conn()
    res = make_res(BASE_INSTILL, name=name)
    model_id = default_model_id(res, conn)
    assert RFC1034_ID.match(model_id), model_id  # the documented rule
    assert STRICT_ID.match(model_id), model_id  # what deployed backends enforce
    assert len(model_id) <= 32
    assert model_id.startswith("ms-")
    # stable for the same resource and registry
    assert default_model_id(make_res(BASE_INSTILL, name=name), conn) == model_id


def test_default_id_depends_on_uid_and_registry() -> None:
    res = make_res(BASE_INSTILL, uid="uid-1")
    a = default_model_id(res, make_conn())
    assert a == "ms-llama-" + a[-8:]
    assert default_model_id(make_res(BASE_INSTILL, uid="uid-2"), make_conn()) != a
    assert default_model_id(res, make_conn(key="ModelRegistry/ns/other")) != a


@pytest.mark.parametrize("user_id, ok", [
    ("my-model", True),
    ("m", True),
    ("a" * 32, True),
    ("a" * 33, False),  # RFC-1034 allows 63; deployed backends 32
    ("a" * 64, False),
    ("My-Model", False),  # RFC-1034 allows uppercase; deployed backends do not
    ("1model", False),
    ("model-", False),
    ("mo_del", False),
    ("mo.del", False),
])
def test_user_id_rules(user_id: str, ok: bool) -> None:
    """The schema (CRD and the core's parser) enforces the id rule; a valid id is used as is."""
    spec = {"registries": [{"name": "reg"}], "instill": {**BASE_INSTILL, "id": user_id}}
    if ok:
        res = dataclasses.replace(make_res(BASE_INSTILL), spec=ModelSpec.model_validate(spec))
        assert model_id_for(res, make_conn()) == user_id
    else:
        with pytest.raises(pydantic.ValidationError) as info:
            ModelSpec.model_validate(spec)
        assert "spec.instill.id:" in describe_validation_error(info.value)


# ---------------------------------------------------------------- mapping tables


@pytest.mark.parametrize("common, instill, expected", [
    (
        {}, BASE_INSTILL,
        {"modelDefinition": "model-definitions/container", "configuration": {},
         "task": "TASK_CHAT", "visibility": "VISIBILITY_PRIVATE", "region": "REGION_LOCAL", "hardware": "CPU"},
    ),
    (
        # configuration left out: {} (the only value the container definition allows)
        {}, {k: v for k, v in BASE_INSTILL.items() if k != "configuration"},
        {"modelDefinition": "model-definitions/container", "configuration": {},
         "task": "TASK_CHAT", "visibility": "VISIBILITY_PRIVATE", "region": "REGION_LOCAL", "hardware": "CPU"},
    ),
    (
        # "" is managed as empty (a PATCH clears it); absent is not managed at all
        {"description": "", "license": ""}, {**BASE_INSTILL, "sourceUrl": ""},
        {"description": "", "license": "", "sourceUrl": "", "modelDefinition": "model-definitions/container",
         "configuration": {}, "task": "TASK_CHAT", "visibility": "VISIBILITY_PRIVATE", "region": "REGION_LOCAL",
         "hardware": "CPU"},
    ),
    (
        {"description": "A chat model", "license": "https://spdx.org/licenses/Apache-2.0"},
        {**BASE_INSTILL, "modelDefinition": "model-definitions/container", "visibility": "VISIBILITY_PUBLIC",
         "sourceUrl": "https://github.com/x/y", "documentationUrl": "https://docs.x/y", "profileImage": "data:image/png;base64,AA=="},
        {"description": "A chat model", "license": "https://spdx.org/licenses/Apache-2.0",
         "modelDefinition": "model-definitions/container", "configuration": {}, "task": "TASK_CHAT", "visibility": "VISIBILITY_PUBLIC",
         "region": "REGION_LOCAL", "hardware": "CPU", "sourceUrl": "https://github.com/x/y",
         "documentationUrl": "https://docs.x/y", "profileImage": "data:image/png;base64,AA=="},
    ),
    (
        {"description": "only common"}, None,
        {"description": "only common"},
    ),
    (
        # fields with no Instill counterpart are not sent
        {"vendor": "Meta", "parameters": "70B", "installPath": "/models/llama", "task": "text-generation"},
        {"hardware": "GPU"},
        {"configuration": {}, "visibility": "VISIBILITY_PRIVATE", "hardware": "GPU"},
    ),
])
def test_desired_model_table(common: dict[str, Any], instill: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    res = make_res(instill, **common)
    conn = make_conn()
    body = desired_model(res, conn)
    readme = body.pop("readme")
    assert body == expected
    assert readme == marker_line(res, conn)  # no user readme: just the marker
    assert "id" not in body


def test_readme_keeps_user_text_and_carries_marker() -> None:
    res = make_res(BASE_INSTILL, readme="# Llama\n\nA model.\n")
    conn = make_conn()
    readme = desired_model(res, conn)["readme"]
    assert readme.startswith("# Llama\n\nA model.")
    assert readme.endswith(marker_line(res, conn))
    assert marker_owner(readme) == marker_owner(marker_line(res, conn))
    assert marker_owner("# someone else's readme") is None
    assert marker_owner(None) is None


@pytest.mark.parametrize("instill, fields", [
    ({}, ("spec.instill.modelDefinition", "spec.instill.task", "spec.instill.region", "spec.instill.hardware")),
    ({k: v for k, v in BASE_INSTILL.items() if k != "task"}, ("spec.instill.task",)),
    ({k: v for k, v in BASE_INSTILL.items() if k != "region"}, ("spec.instill.region",)),
    ({**{k: v for k, v in BASE_INSTILL.items() if k != "hardware"}}, ("spec.instill.hardware",)),
])
def test_required_on_create(instill: dict[str, Any], fields: tuple[str, ...]) -> None:
    res = make_res(instill)
    body = desired_model(res, make_conn())
    with pytest.raises(Terminal) as info:
        validate_desired(body, creating=True)
    assert info.value.fields == fields
    for f in fields:
        assert f in str(info.value)
    validate_desired(body, creating=False)  # an update of such a spec is not refused for it


def test_enums_and_types_are_the_schemas() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        ModelSpec.model_validate({"registries": [{"name": "reg"}], "instill": {
            "task": "TASK_NOPE", "visibility": "VISIBILITY_SECRET", "configuration": []}})
    message = describe_validation_error(info.value)
    for field in ("spec.instill.task:", "spec.instill.visibility:", "spec.instill.configuration:"):
        assert field in message


@pytest.mark.parametrize("observed_changes, expected", [
    ({}, ()),
    ({"modelDefinition": "container"}, ()),  # same definition, short form
    ({"visibility": "VISIBILITY_UNSPECIFIED"}, ()),  # documented as PRIVATE
    ({"configuration": {"server-default": 1}}, ()),  # server-added keys are not drift
    ({"readme": None}, ("readme",)),  # marker lost
    ({"description": "changed in the UI"}, ()),  # not in the spec: left as it is
    ({"hardware": "GPU", "task": "TASK_COMPLETION"}, ("hardware", "task")),  # mutable first
    ({"configuration": None}, ("configuration",)),
    ({"license": "https://spdx.org/licenses/MIT"}, ()),  # unset in spec: not managed, left as it is
    ({"profileImage": "http://x/v1alpha/users/local/models/x/image"}, ()),  # not set in spec
])
def test_diff_table(observed_changes: dict[str, Any], expected: tuple[str, ...]) -> None:
    res = make_res(BASE_INSTILL)
    desired = desired_model(res, make_conn())
    observed = {**desired, "name": "namespaces/local/models/x", "uid": "u", "createTime": "t", **observed_changes}
    observed = {k: v for k, v in observed.items() if v is not None}
    assert diff_model(desired, observed) == expected


def test_retry_after_parsing() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_fields_from_details() -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "model.source_url", "description": "bad"}, {"field": "task", "description": "x"}]}]
    assert fields_from_details(details) == ("spec.instill.sourceUrl", "spec.instill.task")
    assert fields_from_details([]) == ()
    assert fields_from_details(None) == ()


# ---------------------------------------------------------------- lifecycle against the simulator


async def test_create_then_observe_is_up_to_date(sim: Sim, backend: InstillBackend) -> None:
    res = make_res(BASE_INSTILL, description="chat", readme="# Llama")
    obs = await backend.observe(res)
    assert not obs.exists
    inventory = await backend.create(res)
    model_id = default_model_id(res, sim.conn)
    assert inventory["id"] == model_id
    assert inventory["name"] == f"namespaces/local/models/{model_id}"
    assert inventory["uid"]
    assert "readme" not in inventory and "profileImage" not in inventory
    stored = sim.models[("local", model_id)]
    assert stored["description"] == "chat"
    assert marker_owner(stored["readme"]) is not None
    [post] = sim.writes("POST")
    assert post["body"]["id"] == model_id
    obs = await backend.observe(res)
    assert obs.exists and obs.up_to_date, obs.diff
    assert obs.external_id == model_id
    assert obs.inventory is not None and obs.inventory["uid"] == stored["uid"]
    # observe asked for the full view: configuration was compared, not missing (null in the basic view)
    assert obs.inventory["configuration"] == {}


async def test_update_sends_only_changed_mutable_fields(sim: Sim, backend: InstillBackend) -> None:
    await backend.create(make_res(BASE_INSTILL, description="old"))
    sim.clear_journal()
    changed = make_res({**BASE_INSTILL, "hardware": "GPU"}, description="new", license="https://spdx.org/licenses/MIT")
    obs = await backend.observe(changed)
    assert obs.diff == ("description", "hardware", "license")
    inventory = await backend.update(changed, obs)
    [patch] = sim.writes("PATCH")
    assert patch["body"] == {"description": "new", "hardware": "GPU", "license": "https://spdx.org/licenses/MIT"}
    assert inventory["hardware"] == "GPU"
    assert (await backend.observe(changed)).up_to_date


async def test_clearing_an_optional_field_sends_empty_string(sim: Sim, backend: InstillBackend) -> None:
    lic = "https://spdx.org/licenses/MIT"
    await backend.create(make_res(BASE_INSTILL, description="old", license=lic))
    sim.clear_journal()
    res = make_res(BASE_INSTILL, description="", license=lic)
    obs = await backend.observe(res)
    assert obs.diff == ("description",)
    await backend.update(res, obs)
    [patch] = sim.writes("PATCH")
    assert patch["body"] == {"description": ""}
    assert sim.models[("local", default_model_id(res, sim.conn))]["description"] == ""
    assert (await backend.observe(res)).up_to_date


async def test_a_field_removed_from_the_spec_is_left_as_it_is(sim: Sim, backend: InstillBackend) -> None:
    """Absent from the spec = not managed (README: removed fields stay in the registry)."""
    await backend.create(make_res({**BASE_INSTILL, "sourceUrl": "https://github.com/x/y"}, description="old"))
    res = make_res(BASE_INSTILL)
    obs = await backend.observe(res)
    assert obs.up_to_date, obs.diff
    stored = sim.models[("local", default_model_id(res, sim.conn))]
    assert (stored["description"], stored["sourceUrl"]) == ("old", "https://github.com/x/y")


async def test_immutable_change_is_terminal_and_never_patched(sim: Sim, backend: InstillBackend) -> None:
    await backend.create(make_res(BASE_INSTILL))
    sim.clear_journal()
    changed = make_res({**BASE_INSTILL, "task": "TASK_COMPLETION", "region": "REGION_GCP_EUROPE_WEST4"},
                       description="new")
    obs = await backend.observe(changed)
    assert obs.diff == ("description", "task", "region")
    with pytest.raises(Terminal) as info:
        await backend.update(changed, obs)
    assert "spec.instill.task cannot change after create; to change it, create a new Model (new name) and delete this one" in str(info.value)
    assert "spec.instill.region cannot change after create" in str(info.value)
    assert info.value.fields == ("spec.instill.task", "spec.instill.region")
    # the mutable change landed; no PATCH carried an immutable field
    patches = sim.writes("PATCH")
    assert [p["body"] for p in patches] == [{"description": "new"}]
    # the next sync: only the immutable drift is left, no request, the same error
    obs = await backend.observe(changed)
    assert obs.diff == ("task", "region")
    sim.clear_journal()
    with pytest.raises(Terminal, match="spec.instill.task cannot change"):
        await backend.update(changed, obs)
    assert sim.writes() == []


async def test_adopt_after_lost_reply_converges_changed_spec(sim: Sim, backend: InstillBackend) -> None:
    sim.faults(lose_next=1, match="POST")
    with pytest.raises(Recoverable):
        await backend.create(make_res(BASE_INSTILL, description="v1"))
    sim.clear_journal()
    res = make_res(BASE_INSTILL, description="v2")  # the spec changed before the retry
    inventory = await backend.create(res)
    assert inventory["description"] == "v2"
    assert [p["body"] for p in sim.writes("PATCH")] == [{"description": "v2"}]
    assert len(sim.models) == 1


async def test_recorded_external_id_counts_as_ours_and_restores_marker(sim: Sim, backend: InstillBackend) -> None:
    res = make_res(BASE_INSTILL)
    await backend.create(res)
    model_id = default_model_id(res, sim.conn)
    sim.models[("local", model_id)]["readme"] = "edited in the console"
    with pytest.raises(NameTaken):
        await backend.observe(res)  # without evidence it is not ours
    res = make_res(BASE_INSTILL, external_id=model_id)
    obs = await backend.observe(res)
    assert obs.diff == ("readme",)
    await backend.update(res, obs)
    assert marker_owner(sim.models[("local", model_id)]["readme"]) is not None
    assert (await backend.observe(make_res(BASE_INSTILL))).up_to_date


async def test_delete_and_delete_again(sim: Sim, backend: InstillBackend) -> None:
    res = make_res(BASE_INSTILL)
    await backend.create(res)
    await backend.delete(res)
    assert sim.models == {}
    await backend.delete(res)  # not found is success
    assert len(sim.writes("DELETE")) == 1
    assert not (await backend.observe(res)).exists


# ---------------------------------------------------------------- error classification


async def test_400_from_registry_is_terminal(sim: Sim, backend: InstillBackend) -> None:
    # the schema's format: uri refuses a bare license name (the CRD refuses it at admission: a CEL
    # rule, which pydantic does not repeat); the field comes from the validator's instanceLocation
    res = make_res(BASE_INSTILL, license="apache-2.0")
    with pytest.raises(Terminal) as info:
        await backend.create(res)
    assert not isinstance(info.value, (NameTaken, CredentialsRejected))
    assert info.value.reason == "InvalidSpec"
    assert "HTTP 400: Model spec is invalid: /license:" in str(info.value)
    assert info.value.fields == ("spec.license",)
    assert sim.models == {}


def _mock(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        content = json.dumps(body).encode() if body is not None else b""
        return httpx.Response(status, content=content, headers={"Content-Type": "application/json", **(headers or {})})
    return httpx.MockTransport(handler)


async def test_422_is_terminal_with_fields() -> None:
    body = {"code": 3, "message": "Model spec is invalid", "details": [
        {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "region", "description": "unknown region"}]}]}
    b = InstillBackend(make_conn(), transport=_mock(422, body))
    with pytest.raises(Terminal) as info:
        await b.create(make_res(BASE_INSTILL))
    assert "HTTP 422: Model spec is invalid" in str(info.value)
    assert info.value.fields == ("spec.instill.region",)
    await b.aclose()


async def test_401_is_credentials_rejected_without_the_token(sim: Sim) -> None:
    secret = "instill_sk_wrongwrongwrong"
    b = InstillBackend(make_conn(sim.url, token=secret))
    with pytest.raises(CredentialsRejected) as info:
        await b.observe(make_res(BASE_INSTILL))
    message = str(info.value)
    assert "rejected the API token in Secret" in message
    assert "HTTP 401" in message
    assert secret not in message
    await b.aclose()


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_echoing_the_token_are_scrubbed(status: int) -> None:
    secret = "s3cr3t-token-value"
    b = InstillBackend(make_conn(token=secret), transport=_mock(status, {"code": 16, "message": f"bad token {secret}", "details": []}))
    with pytest.raises(CredentialsRejected) as info:
        await b.create(make_res(BASE_INSTILL))
    assert secret not in str(info.value)
    assert f"HTTP {status}" in str(info.value)
    await b.aclose()


async def test_missing_token_key_is_credentials_rejected() -> None:
    conn = RegistryConnection(key="k", name="reg", kind="ModelRegistry", backend="instill",
                              endpoint="http://127.0.0.1:9", credentials={}, settings={"namespace": "local"})
    b = InstillBackend(conn)
    with pytest.raises(CredentialsRejected, match='no "token" key'):
        await b.observe(make_res(BASE_INSTILL))


async def test_retry_after_http_date() -> None:
    b = InstillBackend(make_conn(), transport=_mock(503, {"code": 14, "message": "down"}, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}))
    with pytest.raises(Recoverable) as info:
        await b.observe(make_res(BASE_INSTILL))
    assert info.value.retry_after is not None and info.value.retry_after > 1e6
    await b.aclose()


async def test_timeout_and_connection_errors_are_recoverable() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    for handler in (timeout, refused):
        b = InstillBackend(make_conn(), transport=httpx.MockTransport(handler))
        with pytest.raises(Recoverable):
            await b.observe(make_res(BASE_INSTILL))
        await b.aclose()


async def test_unknown_namespace_is_registry_misconfigured(sim: Sim) -> None:
    """The server answers 500 "namespace error" for a namespace that does not exist; the backend
    asks check-namespace and reports RegistryMisconfigured (README's reason table)."""
    conn = RegistryConnection(key="k", name="reg", kind="ModelRegistry", backend="instill", endpoint=sim.url,
                              credentials={"token": TOKEN}, settings={"namespace": "nope"})
    b = InstillBackend(conn)
    for call in (b.check(), b.observe(make_res(BASE_INSTILL)), b.create(make_res(BASE_INSTILL))):
        with pytest.raises(Terminal) as info:
            await call
        assert info.value.reason == "RegistryMisconfigured"
        assert "HTTP 500: namespace error; the Instill namespace 'nope' does not exist" in str(info.value)
        assert "spec.instill.namespace of registry reg" in str(info.value)
    checks = [e for e in sim.journal() if e["path"] == "/v1beta/check-namespace"]
    assert [e["body"] for e in checks] == [{"id": "nope"}] * 3
    await b.aclose()


async def test_a_500_in_an_existing_namespace_stays_recoverable(sim: Sim, backend: InstillBackend) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1beta/check-namespace":
            return httpx.Response(200, json={"type": "NAMESPACE_ORGANIZATION"})
        return httpx.Response(500, json={"code": 13, "message": "database is down", "details": []})
    b = InstillBackend(make_conn(), transport=httpx.MockTransport(handler))
    with pytest.raises(Recoverable, match="HTTP 500: database is down"):
        await b.observe(make_res(BASE_INSTILL))
    await b.aclose()


async def test_create_validates_before_sending(sim: Sim, backend: InstillBackend) -> None:
    with pytest.raises(Terminal) as info:
        await backend.create(make_res({"hardware": "CPU"}))
    assert "spec.instill.task" in info.value.fields
    assert sim.journal() == []


async def test_aclose_closes_the_client(sim: Sim) -> None:
    b = InstillBackend(sim.conn)
    await b.observe(make_res(BASE_INSTILL))
    client = b.transport.client
    assert client is not None and not client.is_closed
    await b.aclose()
    assert client.is_closed
    await b.aclose()  # twice is fine


# ---------------------------------------------------------------- what the real server accepts (issue 14)


EVERY_INSTILL = {**BASE_INSTILL, "visibility": "VISIBILITY_PUBLIC", "sourceUrl": "https://github.com/x/y",
                 "documentationUrl": "https://docs.example.com/y", "profileImage": "data:image/png;base64,iVBORw0KGgo="}
EVERY_COMMON = {"description": "every field", "readme": "# Every", "license": "https://spdx.org/licenses/MIT"}


def test_create_body_table() -> None:
    desired = {"description": "", "modelDefinition": "model-definitions/container", "configuration": {},
               "task": "TASK_CHAT", "visibility": "VISIBILITY_PRIVATE", "region": "REGION_LOCAL", "hardware": "CPU",
               "readme": "r", "sourceUrl": "https://s", "documentationUrl": "https://d", "license": "https://l",
               "profileImage": "data:,"}
    body, later = create_body("m", desired)
    assert "description" not in body and later == {}  # "" is not sent on create: 12 left
    assert len(body) == 12
    body, later = create_body("m", {**desired, "description": "d"})
    assert len(body) == 12 and later == {"profileImage": "data:,"}
    body, later = create_body("m", {**desired, "description": "d", "extra1": 1, "extra2": 2})
    assert len(body) == 12 and list(later) == ["profileImage", "documentationUrl", "sourceUrl"]


async def test_every_field_lands_with_at_most_12_properties_per_create(sim: Sim, backend: InstillBackend) -> None:
    res = make_res(EVERY_INSTILL, **EVERY_COMMON)
    await backend.create(res)
    [post] = sim.writes("POST")
    # the namespace is empty, so the generation is not known yet: the body carries the Legacy id and
    # the AIP displayName and slug, and fits the 12 properties of either generation's schema
    assert {"id", "displayName", "slug"} <= set(post["body"]) and "profileImage" not in post["body"]
    assert counted(post["body"], "Legacy") <= 12 and counted(post["body"], "AIP") == 12
    assert backend.generation == "Legacy"  # the reply told
    [patch] = sim.writes("PATCH")
    # AIP would count 14 (displayName and slug, not id): the image and the documentation link follow
    assert patch["body"] == {"profileImage": EVERY_INSTILL["profileImage"],
                             "documentationUrl": EVERY_INSTILL["documentationUrl"]}
    stored = sim.models[("local", default_model_id(res, sim.conn))]
    for field in ("sourceUrl", "documentationUrl", "profileImage", "visibility", "hardware", "region", "task"):
        assert stored[field] == EVERY_INSTILL[field], field
    assert (stored["description"], stored["license"]) == (EVERY_COMMON["description"], EVERY_COMMON["license"])
    assert stored["readme"].startswith("# Every")
    # what the registry cannot show back: only the image (read as a URL); the core records it as sent
    obs = await backend.observe(res)
    assert obs.diff == ("profileImage",)
    assert "profileImage" not in (obs.inventory or {})


async def test_fields_without_an_instill_counterpart_are_reported_and_never_sent(sim: Sim, backend: InstillBackend) -> None:
    common = {"installPath": "oci://registry/x", "vendor": "Meta", "version": "3.1", "parameters": "8B",
              "gpu": {"minMemory": "16Gi", "recommendedMemory": "24Gi", "recommendedCount": [1],
                      "constraintDescription": "Ampere", "accelerator": "cuda:12.1"},
              "architecture": "LlamaForCausalLM", "frameworkVersion": "vLLM 0.6", "task": "text-generation",
              "defaultServiceRef": {"name": "vllm"}}
    res = make_res(BASE_INSTILL, **common)
    await backend.create(res)
    obs = await backend.observe(res)
    assert obs.up_to_date, obs.diff
    reported = {n.field: n for n in obs.not_settable}
    assert set(reported) == {
        "spec.installPath", "spec.vendor", "spec.version", "spec.parameters", "spec.gpu.minMemory",
        "spec.gpu.recommendedMemory", "spec.gpu.recommendedCount", "spec.gpu.constraintDescription",
        "spec.gpu.accelerator", "spec.architecture", "spec.frameworkVersion", "spec.task", "spec.defaultServiceRef"}
    assert all("Instill" in n.why for n in reported.values())
    sent = json.dumps([e["body"] for e in sim.writes()])
    for value in ("oci://registry/x", "Meta", "LlamaForCausalLM", "vLLM 0.6", "text-generation", "cuda:12.1", "Ampere"):
        assert value not in sent
    # nothing set, nothing reported
    assert (await backend.observe(make_res(BASE_INSTILL))).not_settable == ()


def test_fields_from_a_schema_refusal() -> None:
    message = ('Model spec is invalid {"valid": false, "errors": [{"keywordLocation": "/properties/license/format", '
               '"instanceLocation": "/license", "error": "x"}, {"keywordLocation": "/properties/source_url/maxLength",'
               ' "instanceLocation": "/source_url", "error": "y"}]}')
    assert fields_from_message(message) == ("spec.license", "spec.instill.sourceUrl")
    assert fields_from_message("missing properties: 'task', 'hardware'") == ("spec.instill.task", "spec.instill.hardware")
    error = parse_error(400, {"code": 3, "message": message, "details": []}, "")
    assert error.message == "Model spec is invalid: /license: x; /source_url: y"
    assert error.fields == ("spec.license", "spec.instill.sourceUrl")


@pytest.mark.parametrize("instill, field", [
    ({"sourceUrl": "github.com/x/y"}, "spec.instill.sourceUrl"),
    ({"documentationUrl": "https://example.com/" + "a" * 44}, "spec.instill.documentationUrl"),
    ({"configuration": {"image": "llama"}}, "spec.instill.configuration"),
    ({"modelDefinition": "model-definitions/magic"}, "spec.instill.modelDefinition"),
    ({"task": "TASK_SPEECH_RECOGNITION"}, "spec.instill.task"),
    ({"region": "REGION_MARS"}, "spec.instill.region"),
    ({"region": "REGION_GCP_EUROPE_WEST4", "hardware": "GPU"}, "spec.instill"),
    ({"hardware": "x" * 64}, "spec.instill.hardware"),
    ({"profileImage": "https://example.com/logo.png"}, "spec.instill.profileImage"),
    ({"profileImage": "data:image/png;base64,not base64!"}, "spec.instill.profileImage"),
])
def test_the_schema_knows_the_published_limits(instill: dict[str, Any], field: str) -> None:
    """What model-backend's JSON Schema (and its container definition) refuses, pydantic refuses too,
    naming the field (the CRD has the same patterns and CEL rules)."""
    with pytest.raises(pydantic.ValidationError) as info:
        ModelSpec.model_validate({"registries": [{"name": "reg"}], "instill": {**BASE_INSTILL, **instill}})
    assert f"{field}" in describe_validation_error(info.value)


def test_the_schema_accepts_what_the_server_accepts() -> None:
    ModelSpec.model_validate({"registries": [{"name": "reg"}], "instill": {
        **BASE_INSTILL, **EVERY_INSTILL, "region": "REGION_GCP_EUROPE_WEST4", "hardware": "NVIDIA_A100_80G",
        "sourceUrl": "https://example.com/" + "a" * 43, "documentationUrl": ""}})
    ModelSpec.model_validate({"registries": [{"name": "reg"}], "instill": {**BASE_INSTILL, "hardware": "my-tpu-pool"}})
