"""The shared transport (modelsync.backends.http): one status table for every backend.

Each test drives the real backend code — ZStack, NeMo and Instill alike — against an
httpx.MockTransport answering in the vendor's own envelope, or against the vendor simulator
and its fault knobs for what only a real socket does (refused connections, timeouts, lost
replies, a full connection pool).
"""
from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import time
from typing import Any, Callable, Iterator

import aiohttp
import httpx
import pytest
from aiohttp import web

from modelsync import api
from modelsync.backends import http
from modelsync.backends.base import (
    Backend,
    BackendError,
    CredentialsInvalid,
    CredentialsRejected,
    Observation,
    Recoverable,
    RegistryConnection,
    Resource,
    Terminal,
)
from modelsync.vendors.instill import mapping as instill
from modelsync.vendors.instill import simulator as instill_sim
from modelsync.vendors.instill.client import InstillBackend
from modelsync.vendors.nemo import mapping as nemo
from modelsync.vendors.nemo import simulator as nemo_sim
from modelsync.vendors.nemo.client import NemoBackend
from modelsync.vendors.zstack import mapping as zstack
from modelsync.vendors.zstack import simulator as zstack_sim
from modelsync.vendors.zstack.client import ZStackBackend
from modelsync.simulators.server import free_port, serve_in_thread

pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")

CENTER = "c" * 32
SESSION = "5e5510a5e5510a5e5510a5e5510a5e55"
ENDPOINT = "http://registry.test"

Handler = Callable[[httpx.Request], httpx.Response]


# ---------------------------------------------------------------- the three vendors


@dataclasses.dataclass(frozen=True)
class Vendor:
    name: str
    cls: type[Backend]
    credentials: dict[str, str]
    settings: dict[str, str]
    spec: dict[str, Any]
    update_method: str

    def conn(self, url: str = ENDPOINT, **kw: Any) -> RegistryConnection:
        kw.setdefault("credentials", self.credentials)
        kw.setdefault("settings", self.settings)
        return RegistryConnection(key="ModelRegistry/ns/reg", name="reg", kind="ModelRegistry", backend=self.name,
                                  endpoint=url, **kw)

    def res(self) -> Resource:
        spec = api.parse_spec("Model", {"registries": [{"name": "reg"}], "description": "d", **self.spec})
        return Resource(kind="Model", name="llama", namespace="ns", uid="uid-1", generation=1, spec=spec)

    def backend(self, handler: Handler, **kw: Any) -> Backend:
        return self.cls(self.conn(**kw), transport=httpx.MockTransport(handler))  # type: ignore[call-arg]

    # what the vendor's server says
    def is_login(self, request: httpx.Request) -> bool:
        return self.name == "zstack" and request.url.path == "/zstack/v1/accounts/login"

    def envelope(self, status: int, message: str) -> dict[str, Any]:
        if self.name == "zstack":
            return {"error": {"code": "SYS.1000", "description": "An internal error happened", "details": message}}
        if self.name == "nemo":
            return {"detail": message}
        return {"code": 13, "message": message, "details": []}

    def found(self, conn: RegistryConnection) -> dict[str, Any]:
        """A GET's body for our object (also what a check lists)."""
        res = self.res()
        if self.name == "zstack":
            return {"inventories": [{"uuid": zstack.resource_uuid(res, conn), "name": "llama"}]}
        if self.name == "nemo":
            return {"name": nemo.entity_name(res, conn), "custom_fields": {nemo.OWNER_KEY: nemo.owner_marker(res, conn)},
                    "data": []}
        return {"model": {"id": instill.model_id_for(res, conn), "readme": instill.marker_line(res, conn)}}

    def written(self, conn: RegistryConnection) -> dict[str, Any]:
        """A create's or an update's reply body."""
        found = self.found(conn)
        if self.name == "zstack":
            return {"inventory": found["inventories"][0]}
        return found

    def absent(self) -> httpx.Response:
        if self.name == "zstack":
            return httpx.Response(200, json={"inventories": []})  # ZStack queries answer empty
        return httpx.Response(404, json=self.envelope(404, "not found"))


ZSTACK = Vendor("zstack", ZStackBackend, {"accountName": "admin", "password": "password"},
                {"modelCenterUuid": CENTER}, {"installPath": "/m"}, "PUT")
NEMO = Vendor("nemo", NemoBackend, {"token": "nemo-token-0123456789"}, {"workspace": "default"}, {}, "PATCH")
INSTILL = Vendor("instill", InstillBackend, {"token": "instill_sk_0123456789"},
                 {"namespace": "local", "apiGeneration": "Legacy"},
                 {"instill": {"modelDefinition": "container", "configuration": {}, "task": "TASK_CHAT",
                              "region": "REGION_LOCAL", "hardware": "CPU"}}, "PATCH")
VENDORS = [ZSTACK, NEMO, INSTILL]


def login_reply() -> httpx.Response:
    return httpx.Response(200, json={"inventory": {"uuid": SESSION}})


async def run(vendor: Vendor, b: Backend, op: str) -> Any:
    res = vendor.res()
    if op == "observe":
        return await b.observe(res)
    if op == "create":
        return await b.create(res)
    if op == "update":
        return await b.update(res, Observation(exists=True, diff=("description",), inventory={}))
    if op == "delete":
        return await b.delete(res)
    assert op == "check"
    return await b.check()


TARGET = {"observe": "GET", "check": "GET", "create": "POST", "delete": "DELETE"}


def answering(vendor: Vendor, op: str, status: int, headers: dict[str, str] | None = None,
              requests: list[httpx.Request] | None = None) -> Handler:
    """The registry answers ``status`` to the call ``op`` is about; the reads around it (a
    create looks for its object, NeMo and Instill read before they delete) see the object
    absent for a create, present otherwise."""
    target = TARGET.get(op, vendor.update_method)
    conn = vendor.conn()

    def handler(request: httpx.Request) -> httpx.Response:
        if requests is not None:
            requests.append(request)
        if vendor.is_login(request):
            return login_reply()
        if vendor.name == "instill" and request.url.path == "/v1beta/check-namespace":
            return httpx.Response(200, json={"type": "NAMESPACE_USER"})  # Instill checks its namespace on a 500
        if request.method == target:
            if 200 <= status < 300:
                if status == 204:
                    return httpx.Response(204, headers=headers)
                body = vendor.found(conn) if target == "GET" else vendor.written(conn)
                return httpx.Response(status, json=body, headers=headers)
            if 300 <= status < 400:
                return httpx.Response(status, headers={
                    "Location": "https://user:hunter2@elsewhere.test/login?token=t0k3n-t0k3n", **(headers or {})})
            return httpx.Response(status, json=vendor.envelope(status, f"injected {status}"), headers=headers)
        if request.method == "GET":
            return vendor.absent() if op == "create" else httpx.Response(200, json=vendor.found(conn))
        raise AssertionError(f"unexpected {request.method} {request.url}")

    return handler


# ---------------------------------------------------------------- the table

OK = "ok"
ABSENT = "absent"
MISCONFIGURED = (Terminal, "RegistryMisconfigured", None)
INVALID = (Terminal, "InvalidSpec", None)
CREDENTIALS = (CredentialsRejected, "CredentialsRejected", None)
UNAVAILABLE = (Recoverable, "RegistryUnavailable", None)

IN_TWO_MINUTES = "in two minutes"  # placeholder: an HTTP date made when the test runs

#: (op, status, Retry-After, expected) — the same for every backend
TABLE: list[tuple[str, int, str | None, Any]] = [
    ("observe", 200, None, OK),
    ("create", 200, None, OK),
    ("create", 201, None, OK),
    ("update", 200, None, OK),
    ("delete", 204, None, OK),
    ("delete", 200, None, OK),
    ("check", 200, None, OK),
    *[(op, s, None, MISCONFIGURED) for op in ("observe", "create", "check") for s in (301, 302, 307, 308)],
    ("update", 302, None, MISCONFIGURED),
    *[(op, 400, None, INVALID) for op in ("observe", "create", "update")],
    *[(op, s, None, CREDENTIALS) for op in ("observe", "create", "update", "delete", "check") for s in (401, 403)],
    ("observe", 404, None, ABSENT),
    ("delete", 404, None, OK),
    ("update", 404, None, (Recoverable, None, None)),  # vanished: it will be created again
    ("create", 404, None, MISCONFIGURED),  # the collection (workspace, namespace, API path) is missing
    ("check", 404, None, MISCONFIGURED),
    *[(op, 405, None, MISCONFIGURED) for op in ("observe", "create", "update")],
    *[(op, 408, None, UNAVAILABLE) for op in ("observe", "create")],
    ("observe", 409, None, INVALID),
    ("create", 409, None, (Recoverable, "RegistryUnavailable", None)),  # conflict, yet the object is gone
    ("update", 409, None, INVALID),
    *[(op, s, None, INVALID) for op in ("observe", "create", "update") for s in (410, 413, 414, 415, 422)],
    *[(op, 425, None, UNAVAILABLE) for op in ("observe", "create")],
    *[(op, 429, None, UNAVAILABLE) for op in ("observe", "create", "delete")],
    *[(op, 429, "7", (Recoverable, "RegistryUnavailable", 7.0)) for op in ("observe", "create", "update")],
    ("observe", 429, "1.5", (Recoverable, "RegistryUnavailable", 1.5)),
    *[(op, 429, IN_TWO_MINUTES, (Recoverable, "RegistryUnavailable", 120.0)) for op in ("observe", "create")],
    *[(op, s, None, UNAVAILABLE) for op in ("observe", "create", "update", "delete", "check")
      for s in (500, 502, 503, 504)],
    *[(op, 503, "3", (Recoverable, "RegistryUnavailable", 3.0)) for op in ("observe", "create", "check")],
    ("observe", 503, IN_TWO_MINUTES, (Recoverable, "RegistryUnavailable", 120.0)),
]


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
@pytest.mark.parametrize("op,status,retry_after,expected", TABLE,
                         ids=[f"{op}-{s}" + (f"-retry-after-{r.replace(' ', '-')}" if r else "")
                              for op, s, r, _ in TABLE])
async def test_status_table(vendor: Vendor, op: str, status: int, retry_after: str | None, expected: Any) -> None:
    headers = {}
    if retry_after == IN_TWO_MINUTES:
        headers["Retry-After"] = email.utils.formatdate(time.time() + 120, usegmt=True)
    elif retry_after is not None:
        headers["Retry-After"] = retry_after
    requests: list[httpx.Request] = []
    b = vendor.backend(answering(vendor, op, status, headers, requests))
    try:
        if expected in (OK, ABSENT):
            result = await run(vendor, b, op)
            if op == "observe":
                assert result.exists is (expected == OK)
            assert any(r.method == TARGET.get(op, vendor.update_method) for r in requests)
            return
        cls, reason, wait = expected
        with pytest.raises(BackendError) as info:
            await run(vendor, b, op)
        err = info.value
        assert type(err) is cls, f"{type(err).__name__}: {err}"
        if reason is not None:
            assert err.reason == reason, str(err)
        if cls is Recoverable:
            if wait is None:
                assert err.retry_after is None  # type: ignore[attr-defined]
            else:
                assert err.retry_after == pytest.approx(wait, abs=3)  # type: ignore[attr-defined]
        if reason == "RegistryMisconfigured" and status != 404:
            assert "spec.endpoint" in str(err) and ENDPOINT in str(err)
        # a redirect's target is named by its origin only: never its userinfo or query
        assert "hunter2" not in str(err) and "t0k3n" not in str(err)
    finally:
        await b.aclose()


def test_the_table_itself() -> None:
    """The single classification, status by status (the backends' tables above follow from it)."""
    O = http.Outcome
    expected = {200: O.OK, 201: O.OK, 202: O.OK, 204: O.OK, 301: O.MISCONFIGURED, 302: O.MISCONFIGURED,
                304: O.MISCONFIGURED, 400: O.INVALID, 401: O.CREDENTIALS, 403: O.CREDENTIALS, 404: O.NOT_FOUND,
                405: O.MISCONFIGURED, 408: O.UNAVAILABLE, 409: O.CONFLICT, 410: O.INVALID, 413: O.INVALID,
                414: O.INVALID, 415: O.INVALID, 422: O.INVALID, 425: O.UNAVAILABLE, 429: O.UNAVAILABLE,
                500: O.UNAVAILABLE, 501: O.UNAVAILABLE, 502: O.UNAVAILABLE, 503: O.UNAVAILABLE, 504: O.UNAVAILABLE}
    assert {s: http.classify(s) for s in expected} == expected


# ---------------------------------------------------------------- transport errors, for real


@dataclasses.dataclass
class Sim:
    vendor: Vendor
    url: str
    match: str  # the faults hit the object reads only (not the ZStack login)
    settings: dict[str, str]
    credentials: dict[str, str]

    def faults(self, **knobs: Any) -> None:
        httpx.post(f"{self.url}/_sim/reset").raise_for_status()
        httpx.put(f"{self.url}/_sim/faults", json={"match": self.match, **knobs}).raise_for_status()

    def backend(self, **kw: Any) -> Backend:
        kw.setdefault("settings", self.settings)
        kw.setdefault("credentials", self.credentials)
        return self.vendor.cls(self.vendor.conn(kw.pop("url", self.url), **kw))


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, Sim]]:
    zapp = zstack_sim.create_app(model_center_uuid=CENTER)
    with serve_in_thread(zapp) as z, serve_in_thread(nemo_sim.create_app()) as n, \
            serve_in_thread(instill_sim.create_app()) as i:
        yield {
            "zstack": Sim(ZSTACK, z, "GET /zstack/v1/ai/models", ZSTACK.settings, ZSTACK.credentials),
            "nemo": Sim(NEMO, n, "GET /apis/models", NEMO.settings, {}),
            "instill": Sim(INSTILL, i, "GET /v1alpha", INSTILL.settings, {"token": "instill_sk_local"}),
        }


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
@pytest.mark.parametrize("fault", ["connect-refused", "read-timeout", "lost-response"])
async def test_transport_errors_are_recoverable(sims: dict[str, Sim], vendor: Vendor, fault: str) -> None:
    sim = sims[vendor.name]
    sim.faults()
    if fault == "connect-refused":
        b = sim.backend(url=f"http://127.0.0.1:{free_port()}", timeout=2.0)
        names: tuple[str, ...] = ("ConnectError",)
    elif fault == "read-timeout":
        sim.faults(latency=1.0)
        b = sim.backend(timeout=0.2)
        names = ("ReadTimeout",)
    else:
        sim.faults(lose_next=1)
        b = sim.backend(timeout=5.0)
        names = ("RemoteProtocolError", "ReadError")  # a dropped connection, with or without a reset
    try:
        with pytest.raises(Recoverable) as info:
            await b.observe(vendor.res())
        err = info.value
        assert type(err) is Recoverable and err.reason == "RegistryUnavailable" and err.retry_after is None
        assert any(n in str(err) for n in names), str(err)
        if fault == "read-timeout":
            assert "timed out" in str(err)
        if fault != "connect-refused":  # the next call goes through: nothing was left broken
            sim.faults()
            assert (await b.observe(vendor.res())).exists is False
    finally:
        await b.aclose()


async def test_zstack_404_without_its_envelope_is_registry_misconfigured(sims: dict[str, Sim]) -> None:
    """A real server at the wrong base URL: not blamed on the Model spec."""
    sim = sims["zstack"]
    sim.faults()
    b = sim.backend(url=sim.url + "/not-zstack")
    try:
        for call in (b.check(), b.observe(ZSTACK.res()), b.create(ZSTACK.res())):
            with pytest.raises(Terminal) as info:
                await call
            assert info.value.reason == "RegistryMisconfigured"
            assert "spec.endpoint" in str(info.value) and f"{sim.url}/not-zstack" in str(info.value)
    finally:
        await b.aclose()


@pytest.mark.parametrize("op", ["check", "observe", "create", "update", "delete"])
async def test_zstack_404_without_envelope_on_every_call(op: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if ZSTACK.is_login(request):
            return login_reply()
        return httpx.Response(404, text="<html><body>Not Found</body></html>", headers={"Content-Type": "text/html"})

    b = ZSTACK.backend(handler)
    try:
        with pytest.raises(Terminal) as info:
            await run(ZSTACK, b, op)
        assert info.value.reason == "RegistryMisconfigured"
        assert f"spec.endpoint ({ENDPOINT})" in str(info.value) and "<html>" not in str(info.value)
    finally:
        await b.aclose()


# ---------------------------------------------------------------- ZStack's codes refine the table


def zstack_error(status: int, code: str, details: str = "x") -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "description": "d", "details": details}})


@pytest.mark.parametrize("op,status,code,expected", [
    ("create", 503, "SYS.1007", INVALID),
    ("update", 503, "SYS.1007", INVALID),
    ("observe", 503, "SYS.1007", INVALID),
    ("observe", 503, "ID.1000", CREDENTIALS),
    ("observe", 503, "ID.1002", CREDENTIALS),
    ("create", 503, "ID.1003", UNAVAILABLE),  # IdentityErrors.QUOTA_EXCEEDING: a quota, not a login
    ("observe", 503, "SYS.1003", ABSENT),
    ("delete", 503, "SYS.1003", OK),
    ("update", 503, "SYS.1003", (Recoverable, None, None)),
    ("create", 503, "SYS.1006", UNAVAILABLE),  # "already exists", yet absent: try again
    ("observe", 503, "SYS.1000", UNAVAILABLE),
    ("observe", 404, "SYS.1003", ABSENT),
])
async def test_zstack_codes(op: str, status: int, code: str, expected: Any) -> None:
    target = TARGET.get(op, "PUT")

    def handler(request: httpx.Request) -> httpx.Response:
        if ZSTACK.is_login(request):
            return login_reply()
        if request.method == target:
            return zstack_error(status, code)
        return ZSTACK.absent()

    b = ZSTACK.backend(handler)
    try:
        if expected in (OK, ABSENT):
            result = await run(ZSTACK, b, op)
            assert op != "observe" or result.exists is False
            return
        cls, reason, _ = expected
        with pytest.raises(BackendError) as info:
            await run(ZSTACK, b, op)
        assert type(info.value) is cls and (reason is None or info.value.reason == reason), str(info.value)
    finally:
        await b.aclose()


async def test_zstack_create_adopts_after_any_refusal_when_the_object_is_there() -> None:
    conn = ZSTACK.conn()

    def handler(request: httpx.Request) -> httpx.Response:
        if ZSTACK.is_login(request):
            return login_reply()
        if request.method == "POST":
            return zstack_error(503, "SYS.1006", "resourceUuid already exists")
        return httpx.Response(200, json=ZSTACK.found(conn))

    b = ZSTACK.backend(handler)
    try:
        assert (await b.create(ZSTACK.res()))["uuid"] == zstack.resource_uuid(ZSTACK.res(), conn)
    finally:
        await b.aclose()


async def test_zstack_invalid_session_logs_in_again_once() -> None:
    logins: list[int] = []
    gets: list[str] = []
    expire = [1]

    def handler(request: httpx.Request) -> httpx.Response:
        if ZSTACK.is_login(request):
            logins.append(1)
            return httpx.Response(200, json={"inventory": {"uuid": f"{len(logins):032x}"}})
        gets.append(request.headers["Authorization"])
        if expire[0] > 0:
            expire[0] -= 1
            return zstack_error(401, "ID.1001", "Session expired")
        return ZSTACK.absent()

    b = ZSTACK.backend(handler)
    try:
        assert (await b.observe(ZSTACK.res())).exists is False
        assert len(logins) == 2 and gets == [f"OAuth {1:032x}", f"OAuth {2:032x}"]
        expire[0] = 5  # a session refused right after a fresh login: the credentials are wrong
        with pytest.raises(CredentialsRejected) as info:
            await b.observe(ZSTACK.res())
        assert len(logins) == 3 and len(gets) == 4  # one re-login and one replay, no more
        assert f"{3:032x}" not in str(info.value)  # the session is a secret too
    finally:
        await b.aclose()


async def test_zstack_login_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert ZSTACK.is_login(request)
        return zstack_error(401, "ID.1000", "wrong account name or password")

    b = ZSTACK.backend(handler)
    try:
        with pytest.raises(CredentialsRejected):
            await b.check()
    finally:
        await b.aclose()


@pytest.mark.parametrize("final,expected", [
    (httpx.Response(200, json={"inventory": {"uuid": "u"}}), OK),
    (zstack_error(503, "SYS.1007", "bad"), INVALID),
    (zstack_error(503, "SYS.1000", "boom"), UNAVAILABLE),
    (zstack_error(404, "SYS.1003", "job gone"), (Recoverable, None, None)),
])
async def test_zstack_api_job_is_polled(final: httpx.Response, expected: Any) -> None:
    polls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if ZSTACK.is_login(request):
            return login_reply()
        if request.method == "POST":
            return httpx.Response(202, json={"location": f"{ENDPOINT}/zstack/v1/api-jobs/j1"})
        if request.url.path == "/zstack/v1/api-jobs/j1":
            polls.append(request.headers["Authorization"])
            return httpx.Response(202, json={}) if len(polls) < 3 else final
        return ZSTACK.absent()

    b = ZSTACK.backend(handler)
    b.poll_interval = 0.01  # type: ignore[attr-defined]
    try:
        if expected == OK:
            assert (await b.create(ZSTACK.res()))["uuid"] == "u"
        else:
            cls, reason, _ = expected
            with pytest.raises(BackendError) as info:
                await b.create(ZSTACK.res())
            assert type(info.value) is cls and (reason is None or info.value.reason == reason)
        assert polls == [f"OAuth {SESSION}"] * 3
    finally:
        await b.aclose()


# ---------------------------------------------------------------- credentials and scrubbing

SECRET = "s3cret-kvalue-9137"


@pytest.mark.parametrize("vendor", [NEMO, INSTILL], ids=lambda v: v.name)
@pytest.mark.parametrize("bad", [f"{SECRET}\n", f"{SECRET}\r\n", f"{SECRET}\x01", "s3cret-kv\nalue-9137",
                                 f"{SECRET}\u00e9"])
async def test_header_credentials_that_cannot_be_sent(vendor: Vendor, bad: str) -> None:
    requests: list[httpx.Request] = []
    b = vendor.backend(answering(vendor, "observe", 200, requests=requests), credentials={"token": bad})
    try:
        for op in ("observe", "create", "check"):
            with pytest.raises(CredentialsInvalid) as info:
                await run(vendor, b, op)
            message = str(info.value)
            assert info.value.reason == "CredentialsInvalid" and "Authorization" in message
            for part in (bad, bad.strip(), "s3cret", "alue-9137"):
                assert part not in message
        assert requests == []  # nothing left the process
    finally:
        await b.aclose()


def echo_everything(vendor: Vendor, status: int) -> Handler:
    """A registry that repeats every header and the whole body of the request in its error."""
    def handler(request: httpx.Request) -> httpx.Response:
        echoed = f"{dict(request.headers)!r} {request.content.decode('utf-8', 'replace')!r} {request.url}"
        if vendor.name == "zstack":
            return zstack_error(status, "SYS.1000" if status != 401 else "ID.1000", echoed)
        return httpx.Response(status, json=vendor.envelope(status, echoed))
    return handler


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
@pytest.mark.parametrize("status", [400, 401, 500])
@pytest.mark.parametrize("suffix", ["\n", "\x01"])
async def test_credentials_never_in_messages(vendor: Vendor, status: int, suffix: str) -> None:
    creds = {k: f"{SECRET}-{k}{suffix}" for k in vendor.credentials}
    b = vendor.backend(echo_everything(vendor, status), credentials=creds)
    try:
        for op in ("observe", "create", "check"):
            with pytest.raises(BackendError) as info:
                await run(vendor, b, op)
            message = str(info.value)
            assert SECRET not in message, message
            for value in creds.values():
                assert value not in message and value.strip() not in message
    finally:
        await b.aclose()


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
async def test_http_stack_exception_text_never_reaches_a_message(vendor: Vendor) -> None:
    """h11 puts the refused header, token included, in its exception text: only the type is shown."""
    token = next(iter(vendor.credentials.values()))

    def handler(request: httpx.Request) -> httpx.Response:
        if vendor.is_login(request):
            return login_reply()
        raise httpx.LocalProtocolError(f"Illegal header value b'Bearer {token}' for {request.url}")

    b = vendor.backend(handler)
    try:
        with pytest.raises(Recoverable) as info:
            await b.observe(vendor.res())
        message = str(info.value)
        assert "LocalProtocolError" in message
        assert "Illegal header" not in message and token not in message and SESSION not in message
    finally:
        await b.aclose()


@pytest.mark.parametrize("vendor", [NEMO, INSTILL], ids=lambda v: v.name)
@pytest.mark.parametrize("bad", [f"{SECRET}\x01", f"{SECRET}\n", "s3cret-kv\r\nX-Injected: alue-9137"])
async def test_real_http_stack_refusal_is_scrubbed_too(sims: dict[str, Sim], vendor: Vendor, bad: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With the header check out of the way, the real stack (h11 on our side, or the server)
    refuses the value; neither its exception text nor the server's echo reaches a message."""
    sim = sims[vendor.name]
    sim.faults()
    monkeypatch.setattr(http, "header_safe", lambda value: True)
    b = sim.backend(credentials={"token": bad})
    try:
        with pytest.raises(BackendError) as info:
            await b.observe(vendor.res())
        message = str(info.value)
        for part in ("s3cret", "alue-9137", "Illegal"):
            assert part not in message, message
    finally:
        await b.aclose()


# ---------------------------------------------------------------- the client, the pool, the observer


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
async def test_client_settings(vendor: Vendor) -> None:
    """The pool under every backend: the connection limit, connect and read timeouts, no wait
    timeout, no redirects followed, no cookies, no proxy from the environment, TLS as asked."""
    b = vendor.cls(vendor.conn(ENDPOINT + "/", timeout=7.5, max_connections=3, insecure_skip_verify=True))
    try:
        pool = b.transport._http()  # type: ignore[attr-defined]
        assert isinstance(pool, http.AiohttpTransport)
        session = pool._open()
        assert session.connector is not None and session.connector.limit == 3
        assert session.timeout == aiohttp.ClientTimeout(total=None, connect=None, sock_connect=7.5, sock_read=7.5)
        assert session.trust_env is False and isinstance(session.cookie_jar, aiohttp.DummyCookieJar)
        assert session.connector._ssl is False  # insecureSkipVerify
        assert session.auto_decompress is False  # httpx decodes, by the reply's headers
    finally:
        await b.aclose()
    assert pool.is_closed and session.closed
    assert RegistryConnection(key="k", name="n", kind="ModelRegistry", backend="x", endpoint="e").max_connections == 8


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
async def test_requests_go_to_the_endpoint(vendor: Vendor) -> None:
    """A trailing slash on spec.endpoint makes no double slash; the path is the API's."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return login_reply() if vendor.is_login(request) else vendor.absent()

    b = vendor.cls(vendor.conn(ENDPOINT + "/"), transport=httpx.MockTransport(handler))
    try:
        await b.observe(vendor.res())
    finally:
        await b.aclose()
    assert seen and all(str(r.url).startswith(ENDPOINT + "/") and "//" not in r.url.raw_path.decode()
                        for r in seen), [str(r.url) for r in seen]


def trickling_app(vendor: Vendor, gap: float, chunks: int) -> web.Application:
    """A registry whose reads answer "absent" a byte at a time: every read gets data within
    ``gap`` seconds, the whole reply takes ``gap * chunks``."""
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/zstack/v1/accounts/login":
            return web.json_response({"inventory": {"uuid": SESSION}})
        absent = vendor.absent()
        resp = web.StreamResponse(status=absent.status_code, headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(absent.content)
        for _ in range(chunks):
            await asyncio.sleep(gap)
            await resp.write(b" ")  # JSON allows trailing whitespace
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
async def test_queued_behind_a_full_pool_never_times_out(vendor: Vendor) -> None:
    """One connection, two slow reads at once: the second waits for the connection longer than
    the request timeout (the first reply takes 1.2s, the timeout is 0.8s) and still succeeds."""
    with serve_in_thread(trickling_app(vendor, gap=0.2, chunks=6)) as url:
        b = vendor.cls(vendor.conn(url, timeout=0.8, max_connections=1))
        try:
            started = time.monotonic()
            results = await asyncio.gather(*(b.observe(vendor.res()) for _ in range(2)))
            assert [r.exists for r in results] == [False, False]
            assert time.monotonic() - started >= 2.3  # they really queued
        finally:
            await b.aclose()


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
async def test_observer_sees_every_exchange(vendor: Vendor, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, str, float]] = []
    fail = [False]

    def handler(request: httpx.Request) -> httpx.Response:
        if vendor.is_login(request):
            return login_reply()
        if fail[0]:
            raise httpx.ConnectError("refused")
        return answering(vendor, "observe", 429)(request)

    b = vendor.backend(handler)
    b.transport.observer = lambda *args: calls.append(args)  # type: ignore[attr-defined]
    try:
        with pytest.raises(Recoverable):
            await b.observe(vendor.res())
        fail[0] = True
        with pytest.raises(Recoverable):
            await b.observe(vendor.res())
        logins = [("zstack", "PUT", "200")] if vendor.name == "zstack" else []
        assert [c[:3] for c in calls] == [*logins, (vendor.name, "GET", "429"), (vendor.name, "GET", "ConnectError")]
        assert all(isinstance(c[3], float) and c[3] >= 0 for c in calls)
    finally:
        await b.aclose()

    # the module default serves every transport without its own; a failing observer breaks nothing
    def broken(*args: Any) -> None:
        raise RuntimeError("metrics down")

    monkeypatch.setattr(http, "default_observer", broken)
    fail[0] = False
    b = vendor.backend(answering(vendor, "observe", 200))
    try:
        assert (await b.observe(vendor.res())).exists
    finally:
        await b.aclose()


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
async def test_endpoint_that_is_not_http(vendor: Vendor) -> None:
    b = vendor.cls(vendor.conn("ftp://registry.test"))
    try:
        with pytest.raises(Terminal) as info:
            await b.check()
        assert info.value.reason == "RegistryMisconfigured" and "spec.endpoint" in str(info.value)
    finally:
        await b.aclose()


# ---------------------------------------------------------------- the pool on a real socket


def plain_conn(url: str, **kw: Any) -> RegistryConnection:
    return RegistryConnection(key="ModelRegistry/ns/r", name="r", kind="ModelRegistry", backend="nemo",
                              endpoint=url, **kw)


def recording_app(seen: list[web.Request]) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        body = await request.read()
        if request.path == "/redirect":
            raise web.HTTPFound("/target")
        if request.path == "/cookie":
            resp = web.json_response({})
            resp.set_cookie("session", "c00kie")
            return resp
        if request.path == "/gzip":
            import gzip
            return web.Response(body=gzip.compress(b'{"zipped": true}'),
                                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        return web.json_response({"path": request.path, "query": request.query_string, "body": body.decode(),
                                  "type": request.headers.get("Content-Type")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


async def test_pool_sends_bodies_and_headers_and_never_follows_redirects() -> None:
    seen: list[web.Request] = []
    with serve_in_thread(recording_app(seen)) as url:
        async def auth() -> dict[str, str]:
            return {"Authorization": "Bearer t0ken"}

        t = http.Transport(plain_conn(url + "/"), backend="nemo", vendor="NeMo", auth=auth)
        try:
            reply = await t.request("POST", "/v1/models", what="create", json={"name": "x"}, params={"a": "1"})
            assert reply.body == {"path": "/v1/models", "query": "a=1", "body": '{"name":"x"}',
                                  "type": "application/json"}
            assert seen[-1].headers["Authorization"] == "Bearer t0ken"
            assert seen[-1].headers["User-Agent"] == http.USER_AGENT and http.USER_AGENT.startswith("modelsync/")
            with pytest.raises(Terminal) as info:
                await t.request("GET", "/redirect", what="read")
            assert info.value.reason == "RegistryMisconfigured"
            assert [r.path for r in seen].count("/target") == 0
            await t.request("GET", "/cookie", what="read")
            await t.request("GET", "/next", what="read")
            assert "Cookie" not in seen[-1].headers  # no jar: a registry's cookie is not sent back
            assert (await t.request("GET", "/gzip", what="read")).body == {"zipped": True}
        finally:
            await t.aclose()


async def test_pool_ignores_proxy_settings_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[web.Request] = []
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with serve_in_thread(recording_app(seen)) as url:
        t = http.Transport(plain_conn(url), backend="nemo", vendor="NeMo")
        try:
            assert (await t.request("GET", "/direct", what="read")).body["path"] == "/direct"
        finally:
            await t.aclose()


async def test_pool_tls_verifies_against_the_registry_ca(tmp_path: Any) -> None:
    import ssl

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from modelsync.testing.controlplane import _cert, _pem_key

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("registry-ca", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("127.0.0.1", key, issuer=(ca, ca_key), server=True)
    (tmp_path / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tls.key").write_bytes(_pem_key(key))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    seen: list[web.Request] = []
    with serve_in_thread(recording_app(seen), ssl_context=server_ctx) as url:
        assert url.startswith("https://")
        for kw, ok in (({"ca_pem": ca_pem}, True), ({}, False), ({"insecure_skip_verify": True}, True)):
            t = http.Transport(plain_conn(url, **kw), backend="nemo", vendor="NeMo")
            try:
                if ok:
                    assert (await t.request("GET", "/tls", what="read")).body["path"] == "/tls"
                else:  # the system trust store does not know this CA
                    with pytest.raises(Recoverable) as info:
                        await t.request("GET", "/tls", what="read")
                    assert "ConnectError" in str(info.value)
            finally:
                await t.aclose()
