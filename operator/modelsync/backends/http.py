"""The one HTTP transport every registry backend talks through (libcloud's Connection pattern).

A backend builds one :class:`Transport` and supplies only what is vendor-specific:

* ``auth`` — an async hook returning the headers built from the credentials (a bearer
  token, a login session). Every value is checked before anything is sent: a value with a
  character that cannot travel in an HTTP header (outside visible ASCII, space and tab; a
  ``\\r`` or ``\\n`` included) raises :class:`~.base.CredentialsInvalid`, naming the header and
  never the value;
* ``parse_error`` — the vendor's error envelope as a :class:`VendorError` (code, message, the
  fields it names);
* ``refine`` — optional: a vendor code that means more than its status (a registry that answers
  503 for every API error names the kind of error in a code: invalid, not found). It returns an
  :class:`Outcome` of the table below or ``None`` for "the status decides"; it is the only way
  a backend changes the table;
* ``reauth`` — optional: called once per request with a failed reply; returning True replays
  the request once (a backend logs in again when its session expired);
* ``accepted`` — optional: turns a ``202`` into the final response (e.g. by polling an async job);
* ``secrets`` — optional: values to scrub besides the credentials (a session id).

The transport owns everything else: the connection pool (:class:`AiohttpTransport`: TLS from
:func:`~.base.tls_verify`, no proxy from the environment, redirects not followed, no cookies kept,
connection limits of ``conn.max_connections``, connect and read timeouts of ``conn.timeout`` and
*no* timeout for waiting on a free connection, so a request queued behind busy ones never fails
for the wait), transport errors, ``Retry-After``, scrubbing and the per-request observer.

Requests and replies are :mod:`httpx` objects (``httpx.Request`` / ``httpx.Response``), sent
through any ``httpx.AsyncBaseTransport``: tests pass ``httpx.MockTransport`` and drive this very
code. On the wire they travel through aiohttp (which kopf already brings) rather than
``httpx.AsyncClient``: on this project's 2-core bench machine a GET through ``httpx.AsyncClient``
costs about 1.0 ms of CPU, the same GET as an ``httpx.Request`` through :class:`AiohttpTransport`
about 0.2 ms (``bench/http_client.py``). One GET per resync is most of what an idle operator
does, so that was most of its CPU.

Status table — the single place a status is classified (``refine`` may only pick another row):

======================================  ====================  ==========================================
status                                  :class:`Outcome`      raised unless the caller accepts it
======================================  ====================  ==========================================
2xx                                     ``OK``                nothing: the reply is returned
3xx (redirects are not followed)        ``MISCONFIGURED``     Terminal, reason RegistryMisconfigured
400, 413, 414, 415, 422, other 4xx      ``INVALID``           Terminal (InvalidSpec), with the fields
401, 403                                ``CREDENTIALS``       CredentialsRejected
404                                     ``NOT_FOUND``         per call: "absent" where the caller accepts
                                                              it (GET, DELETE, an update's target),
                                                              else Terminal RegistryMisconfigured (a
                                                              path the API must have is missing)
405                                     ``MISCONFIGURED``     Terminal RegistryMisconfigured: the
                                                              endpoint is not the API it claims to be
409                                     ``CONFLICT``          callers adopt or raise NameTaken; else
                                                              Terminal (InvalidSpec)
408, 425, 429, 5xx, anything else       ``UNAVAILABLE``       Recoverable, ``retry_after`` from the
                                                              reply's Retry-After (seconds or a date)
transport error or timeout              —                     Recoverable (the exception's type name,
                                                              never its text)
``spec.endpoint`` not an http(s) URL    —                     Terminal RegistryMisconfigured
======================================  ====================  ==========================================

Every message passes :func:`modelsync.redact.scrub` with the credential values (also without
surrounding whitespace and split at control characters) and the vendor's extra secrets. An
exception from the HTTP stack is reported by its type name only: its text can carry a header
(h11's ``Illegal header value b'Bearer …'``) or a URL with userinfo.

Metrics: ``Transport.observer`` (or, for every transport, the module's :data:`default_observer`)
is called after each HTTP exchange with ``(backend, method, status, seconds)``, where ``status``
is the status code as text ("200") or the exception's type name ("ConnectError").
"""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import json as jsonlib
import logging
import re
import ssl
import time
from typing import Any, Awaitable, Callable, Collection, Iterable, Mapping
from urllib.parse import urlsplit

import aiohttp
import httpx

from .. import version
from ..conditions import Reason
from ..redact import scrub
from .base import (
    BackendError, CredentialsInvalid, CredentialsRejected, Recoverable, RegistryConnection, Terminal,
    retry_after_seconds, tls_verify,
)

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """What a reply means, whatever the vendor: the rows of the status table."""

    OK = "ok"
    NOT_FOUND = "not found"
    CONFLICT = "conflict"
    INVALID = "invalid"
    CREDENTIALS = "credentials rejected"
    MISCONFIGURED = "registry misconfigured"
    UNAVAILABLE = "unavailable"


#: for ``accept=``: the caller gives 404 a meaning ("absent")
ABSENT = frozenset({Outcome.NOT_FOUND})
#: for ``accept=``: every reply comes back, nothing is raised for a status
ANY = frozenset(Outcome)


def classify(status: int) -> Outcome:
    """The status table (see the module doc)."""
    if 200 <= status < 300:
        return Outcome.OK
    if 300 <= status < 400 or status == 405:
        return Outcome.MISCONFIGURED
    if status in (401, 403):
        return Outcome.CREDENTIALS
    if status == 404:
        return Outcome.NOT_FOUND
    if status == 409:
        return Outcome.CONFLICT
    if status in (408, 425, 429):
        return Outcome.UNAVAILABLE
    if 400 <= status < 500:
        return Outcome.INVALID
    return Outcome.UNAVAILABLE


@dataclasses.dataclass(frozen=True)
class VendorError:
    """A vendor's error envelope: ``code`` for :func:`refine`-style hooks, ``message`` to show
    (the vendor decides whether it carries the code), ``fields`` it names."""

    code: str = ""
    message: str = ""
    fields: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Reply:
    """A classified reply. ``body`` is the parsed JSON (None when empty or not JSON)."""

    method: str
    path: str
    status: int
    outcome: Outcome
    headers: httpx.Headers
    body: Any
    text: str
    error: VendorError | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


Headers = Mapping[str, str]
AuthHook = Callable[[], Awaitable[Headers]]
ErrorParser = Callable[[int, Any, str], VendorError]
Refine = Callable[[int, VendorError], "Outcome | None"]
Reauth = Callable[[Reply, Headers], Awaitable[bool]]
Fetch = Callable[[str], Awaitable[httpx.Response]]
AcceptedHook = Callable[[httpx.Response, Fetch], Awaitable[httpx.Response]]
Observer = Callable[[str, str, str, float], None]

#: called for every transport whose own ``observer`` is None (e.g. set once to Prometheus)
default_observer: Observer | None = None

_HEADER_SAFE = re.compile(r"[\t\x20-\x7e]*")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def header_safe(value: str) -> bool:
    """Whether ``value`` can be sent as an HTTP header value as is."""
    return _HEADER_SAFE.fullmatch(value) is not None


def secret_variants(values: Iterable[str]) -> list[str]:
    """Each secret, stripped, and its printable runs: what an echo of it may look like."""
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value:
            continue
        out += [value, value.strip(), *_UNPRINTABLE.split(value)]
    return out


def default_parse_error(status: int, body: Any, text: str) -> VendorError:
    """A ``{"message"}`` / ``{"error"}`` / ``{"detail"}`` body, or the text."""
    if isinstance(body, Mapping):
        for key in ("message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return VendorError(message=value[:500])
    return VendorError()


def text_detail(text: str, limit: int = 200) -> str:
    """A short plain-text body as one line; nothing for HTML or long pages."""
    text = " ".join(text.split())
    if not text or text.startswith("<") or len(text) > limit:
        return ""
    return text


#: sent with every request (some gateways refuse requests without one)
USER_AGENT = f"modelsync/{version()}"
#: request headers aiohttp computes itself from the body and URL
_COMPUTED = frozenset({"host", "content-length", "transfer-encoding"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport whose requests travel through one :class:`aiohttp.ClientSession`.

    What :class:`Transport` needs of a connection pool, and nothing more: at most ``limit``
    connections, a wait for a free one that never times out (``connect=None``; aiohttp's
    ``connect`` would count that wait), ``timeout`` seconds to connect and between reads,
    redirects returned rather than followed, no cookie jar, no proxy from the environment,
    bodies left encoded for httpx to decode. aiohttp's exceptions become httpx's, by type
    only: their text can carry a URL or a header.
    """

    def __init__(self, *, limit: int, timeout: float, verify: bool | ssl.SSLContext = True) -> None:
        self._limit = max(1, int(limit))
        self._timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=timeout, sock_read=timeout)
        self._verify = verify
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def is_closed(self) -> bool:
        return self._closed

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise httpx.TransportError("the transport is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, ssl=self._verify),
                timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                trust_env=False, skip_auto_headers=("User-Agent",))
            # aiohttp sends an idempotent request (GET, PUT, DELETE) again, unasked, when a kept-alive
            # connection drops before the reply. A PUT whose reply was lost may have been applied:
            # that is for the next reconcile to observe, not for the pool to send twice. (No public
            # switch exists; tests/unit/test_transport.py's lost-response cases fail if this stops working.)
            self._session._retry_connection = False
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol("the URL is not http(s)")
        session = self._open()
        headers = [(k, v) for k, v in request.headers.multi_items() if k not in _COMPUTED]
        body = request.content or None
        try:
            async with session.request(request.method, str(request.url), headers=headers, data=body,
                                       allow_redirects=False) as r:
                content = await r.read()
                return httpx.Response(r.status, headers=r.raw_headers, content=content, request=request)
        except aiohttp.ConnectionTimeoutError:
            raise httpx.ConnectTimeout("ConnectTimeout") from None
        except asyncio.TimeoutError:  # aiohttp's read timeouts are TimeoutErrors too
            raise httpx.ReadTimeout("ReadTimeout") from None
        except aiohttp.ClientConnectorError:
            raise httpx.ConnectError("ConnectError") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError):
            raise httpx.RemoteProtocolError("RemoteProtocolError") from None
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError):
            raise httpx.InvalidURL("InvalidURL") from None
        except aiohttp.ClientOSError:
            raise httpx.ReadError("ReadError") from None
        except aiohttp.ClientError:
            raise httpx.TransportError("TransportError") from None
        except ValueError:  # aiohttp refuses a header value (a control character): its text quotes it
            raise httpx.LocalProtocolError("LocalProtocolError") from None

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class Transport:
    """One registry connection's HTTP client (see the module doc)."""

    def __init__(
        self,
        conn: RegistryConnection,
        *,
        backend: str,
        vendor: str,
        auth: AuthHook | None = None,
        parse_error: ErrorParser = default_parse_error,
        refine: Refine | None = None,
        reauth: Reauth | None = None,
        accepted: AcceptedHook | None = None,
        secrets: Callable[[], Iterable[str]] | None = None,
        credentials_hint: Callable[[], str] | None = None,
        headers: Headers | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.conn = conn
        self.backend = backend
        self.vendor = vendor
        self.observer: Observer | None = None
        self._auth = auth
        self._parse_error = parse_error
        self._refine = refine
        self._reauth = reauth
        self._accepted = accepted
        self._secrets = secrets
        self._credentials_hint = credentials_hint
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._given = transport
        self._client: httpx.AsyncBaseTransport | None = None
        #: set by :meth:`aclose`: no connection pool is opened again (the core dropped this backend;
        #: one opened now, by a reconcile still holding it, would never be closed)
        self._closed = False
        self._base = conn.endpoint.rstrip("/")

    # ------------------------------------------------------------ the client

    @property
    def client(self) -> httpx.AsyncBaseTransport | None:
        """The open connection pool, if a request has made one."""
        return self._client

    def _http(self) -> httpx.AsyncBaseTransport:
        if self._client is None:
            self._client = self._given or AiohttpTransport(
                limit=self.conn.max_connections, timeout=self.conn.timeout, verify=tls_verify(self.conn))
        return self._client

    async def aclose(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # ------------------------------------------------------------ scrubbing

    def scrub(self, text: object) -> str:
        """``text`` without any credential value or vendor secret."""
        extra = list(self._secrets()) if self._secrets is not None else []
        return scrub(text, secret_variants([*self.conn.credentials.values(), *extra]))

    @property
    def endpoint(self) -> str:
        return scrub(self.conn.endpoint)

    # ------------------------------------------------------------ requests

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
        accept: Collection[Outcome] = (),
    ) -> Reply:
        """Send one API call; return its reply if it is OK or its outcome is in ``accept``,
        else raise the table's error. ``what`` starts every message ("Registry get model x")."""
        for attempt in (0, 1):
            headers = await self._auth_headers() if auth else {}
            response = await self._send(method, path, what, json=json, params=params, headers=headers)
            if response.status_code == 202 and self._accepted is not None:
                response = await self._accepted(
                    response, lambda p: self._send("GET", p, what, headers=headers))
            reply = self._reply(method, path, response)
            if (not reply.ok and auth and attempt == 0 and self._reauth is not None
                    and await self._reauth(reply, headers)):
                continue
            if reply.ok or reply.outcome in accept:
                return reply
            raise self.error(reply, what)
        raise AssertionError("unreachable")

    async def _auth_headers(self) -> dict[str, str]:
        if self._auth is None:
            return {}
        headers = dict(await self._auth())
        for name, value in headers.items():
            if not header_safe(value):
                raise CredentialsInvalid(
                    f"the credentials Secret of registry {self.conn.name} gives the {name} header a character "
                    "that cannot be sent (a control character, a line break or non-ASCII text); fix the Secret")
        return headers

    async def _send(self, method: str, path: str, what: str, *, json: Any = None,
                    params: Mapping[str, Any] | None = None, headers: Headers | None = None) -> httpx.Response:
        """One HTTP exchange; every failure below HTTP becomes a BackendError."""
        if self._closed:
            raise Recoverable(self.scrub(
                f"{what}: the connection to registry {self.conn.name} was closed (its registry object or Secret "
                "changed); retried with the new one"))
        started = time.monotonic()
        status = "error"
        try:
            request = httpx.Request(method, self._base + path, json=json, params=params,
                                    headers={**self._headers, **(headers or {})})
            response = await self._http().handle_async_request(request)
            await response.aread()
            status = str(response.status_code)
            return response
        except httpx.TimeoutException as exc:
            status = type(exc).__name__
            raise Recoverable(self.scrub(
                f"{what}: request timed out after {self.conn.timeout:g}s ({status})")) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            status = type(exc).__name__
            raise Terminal(self.scrub(f"{what}: spec.endpoint {self.endpoint} is not a usable http(s) URL "
                                      f"({status})"), reason=Reason.REGISTRY_MISCONFIGURED) from None
        except httpx.RemoteProtocolError as exc:
            status = type(exc).__name__
            raise Recoverable(self.scrub(
                f"{what}: the connection broke before the reply ({status}); the request may have been "
                "processed")) from None
        except httpx.HTTPError as exc:
            status = type(exc).__name__
            raise Recoverable(self.scrub(f"{what}: connection failed ({status})")) from None
        finally:
            self._observe(method, status, time.monotonic() - started)

    def _observe(self, method: str, status: str, seconds: float) -> None:
        observer = self.observer or default_observer
        if observer is None:
            return
        try:
            observer(self.backend, method, status, seconds)
        except Exception:  # a metrics bug must never fail a request
            log.exception("request observer failed")

    def _reply(self, method: str, path: str, response: httpx.Response) -> Reply:
        status = response.status_code
        # JSON is UTF-8 (RFC 8259); httpx's .text would parse the Content-Type for a charset first
        text = response.content.decode("utf-8", errors="replace")
        try:
            body = jsonlib.loads(text) if text.strip() else None
        except ValueError:
            body = None
        outcome = classify(status)
        error = None
        if outcome is not Outcome.OK:
            error = self._parse_error(status, body, text)
            if self._refine is not None:
                outcome = self._refine(status, error) or outcome
        return Reply(method, path, status, outcome, response.headers, body, text, error)

    # ------------------------------------------------------------ errors

    def error(self, reply: Reply, what: str) -> BackendError:
        """The table's error for a reply (returned, for the caller to raise)."""
        err = reply.error or VendorError()
        detail = err.message or text_detail(reply.text) or httpx.codes.get_reason_phrase(reply.status)
        message = f"{what}: HTTP {reply.status}" + (f": {detail}" if detail else "")
        outcome = reply.outcome
        if outcome is Outcome.UNAVAILABLE:
            return Recoverable(self.scrub(message),
                               retry_after=retry_after_seconds(reply.headers.get("Retry-After")))
        if outcome is Outcome.CREDENTIALS:
            hint = self._credentials_hint() if self._credentials_hint is not None else ""
            return CredentialsRejected(self.scrub(f"{message}; {hint}" if hint else message))
        if outcome in (Outcome.MISCONFIGURED, Outcome.NOT_FOUND):
            return Terminal(self.scrub(f"{message}; {self._misconfigured(reply)}"), reason=Reason.REGISTRY_MISCONFIGURED)
        return Terminal(self.scrub(message), fields=err.fields)

    def _misconfigured(self, reply: Reply) -> str:
        if 300 <= reply.status < 400:
            location = reply.headers.get("Location", "")
            parts = urlsplit(location)
            where = f" to {parts.scheme}://{parts.hostname}" if parts.scheme and parts.hostname else ""
            return (f"the registry redirects{where}: set spec.endpoint ({self.endpoint}) to the address "
                    "that answers directly")
        if reply.status == 405:
            return (f"the registry does not allow {reply.method} {reply.path}: is spec.endpoint "
                    f"({self.endpoint}) the {self.vendor} API address?")
        return f"is spec.endpoint ({self.endpoint}) the {self.vendor} API address?"
