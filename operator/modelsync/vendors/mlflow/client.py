"""MLflow Model Registry backend: ``Model`` ↔ an MLflow registered model, its versions and an alias.

Wire contract (MLflow's REST API 2.0, as the MLflow 3.17 tracking server serves it; JSON bodies, a
GET's arguments in the query string, a DELETE's in a JSON body):

* ``GET    /api/2.0/mlflow/registered-models/get?name=``            → ``{"registered_model": {...}}``
* ``POST   /api/2.0/mlflow/registered-models/create``  ``{name, description, tags: [{key, value}]}``
* ``PATCH  /api/2.0/mlflow/registered-models/update``  ``{name, description}``
* ``POST   /api/2.0/mlflow/registered-models/set-tag`` ``{name, key, value}``
* ``POST   /api/2.0/mlflow/registered-models/alias``   ``{name, alias, version}``
* ``DELETE /api/2.0/mlflow/registered-models/delete``  ``{name}`` (its versions and aliases go with it)
* ``GET    /api/2.0/mlflow/registered-models/search?max_results=&page_token=`` (``modelsync inventory``)
* ``GET    /api/2.0/mlflow/model-versions/search?filter=name = '…'&max_results=&page_token=``
* ``POST   /api/2.0/mlflow/model-versions/create``     ``{name, source, tags}``

Errors are ``{"error_code", "message"}``: ``RESOURCE_ALREADY_EXISTS`` (HTTP 400) is a conflict (an
existing registered model: adopted when its ``modelsync.io/uid`` tag is this resource's, else
``NameTaken``), ``RESOURCE_DOES_NOT_EXIST`` (404) is "absent", ``INVALID_PARAMETER_VALUE`` (400) is
``InvalidSpec`` naming the field the request carried, ``PERMISSION_DENIED`` / ``UNAUTHENTICATED``
(403 / 401) are ``CredentialsRejected``; ``REQUEST_LIMIT_EXCEEDED`` (429), ``TEMPORARILY_UNAVAILABLE``
and 5xx back off (the shared status table, :mod:`modelsync.backends.http`). A 404 without the
envelope (an HTML page) means the endpoint is not MLflow's, and MLflow's "Invalid Host header"
403 means the server refuses the endpoint's host name: both ``RegistryMisconfigured``.

Auth from the registry's Secret: ``token`` → ``Authorization: Bearer``; ``username`` and
``password`` → HTTP Basic (MLflow's ``--app-name basic-auth``); none → no header (a plain
``mlflow server``).

Crash safety: MLflow numbers versions itself, so a version create whose reply was lost cannot be
told by its id. Every version ModelSync makes carries the resource's uid and generation
(:func:`~.mapping.version_tags`), and before making one the client searches the registered model's
versions for one whose source is ``spec.installPath``; the version holding the spec is that one,
never a second (see :mod:`.mapping`).

The flows (observe, create → on ``RESOURCE_ALREADY_EXISTS`` read back, check the owner, adopt or
``NameTaken``, delete, listing) are the template's (:mod:`modelsync.backends.template`); here are
MLflow's hooks, and its versions.
"""
from __future__ import annotations

import base64
import logging
from typing import Any, Mapping

import httpx

from ...backends.base import (
    CredentialsRejected,
    Entry,
    NameTaken,
    Observation,
    Recoverable,
    RegistryConnection,
    Resource,
    Terminal,
    Unsupported,
)
from ...backends.http import ABSENT, Outcome, Reply, Transport, VendorError
from ...backends.template import Exists, Record, TemplateBackend, paged
from . import mapping

log = logging.getLogger(__name__)

API = "/api/2.0/mlflow"
#: versions asked for per search page (MLflow's own default is 10000 for versions; pages keep replies small)
PAGE = 200
#: pages read at most when listing a registered model's versions
MAX_PAGES = 50


def parse_error(status: int, body: Any, text: str) -> VendorError:
    """MLflow's envelope ``{"error_code", "message"}``; the security middleware's plain-text refusal of
    a Host header as code ``INVALID_HOST``."""
    if isinstance(body, dict) and (body.get("error_code") or body.get("message")):
        message = str(body.get("message") or "")[:500]
        code = str(body.get("error_code") or "")
        fields = mapping.fields_from_message(message) if code == "INVALID_PARAMETER_VALUE" else ()
        return VendorError(code=code, message=f"{code}: {message}" if code else message, fields=fields)
    if "Invalid Host header" in text:
        return VendorError(code="INVALID_HOST", message=" ".join(text.split())[:200])
    return VendorError()


def refine(status: int, err: VendorError) -> Outcome | None:
    """What an MLflow error code means beyond its status."""
    code = err.code
    if code == "RESOURCE_ALREADY_EXISTS":
        return Outcome.CONFLICT
    if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        return Outcome.CREDENTIALS
    if code in ("REQUEST_LIMIT_EXCEEDED", "TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR"):
        return Outcome.UNAVAILABLE
    if code == "INVALID_HOST":
        return Outcome.MISCONFIGURED
    if status == 404 and code != "RESOURCE_DOES_NOT_EXIST":
        return Outcome.MISCONFIGURED  # not MLflow's "not found": not MLflow's API at all
    return None


class MlflowBackend(TemplateBackend):
    name = "mlflow"
    kinds = frozenset({"Model"})

    def __init__(self, conn: RegistryConnection, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(conn)
        self.transport = Transport(
            conn, backend=self.name, vendor="MLflow", auth=self._auth, parse_error=parse_error, refine=refine,
            credentials_hint=self._credentials_hint, transport=transport, headers={"Accept": "application/json"},
        )

    # -- plumbing

    async def _auth(self) -> dict[str, str]:
        creds = self.conn.credentials
        token = creds.get("token")
        if token:
            return {"Authorization": f"Bearer {token}"}
        user, password = creds.get("username"), creds.get("password")
        if user is None and password is None:
            return {}
        if not user or password is None:
            raise CredentialsRejected(
                f"the credentials Secret of registry {self.conn.name} needs both \"username\" and \"password\" "
                "(HTTP Basic), or \"token\" (a bearer token)")
        raw = f"{user}:{password}".encode("utf-8")
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}

    def _credentials_hint(self) -> str:
        creds = self.conn.credentials
        if creds.get("token"):
            return f"the registry {self.conn.name} rejected the token in Secret key \"token\""
        if creds.get("username"):
            return (f"the registry {self.conn.name} rejected the user in Secret keys \"username\"/\"password\", "
                    "or that user lacks the permission on this registered model")
        return (f"the registry {self.conn.name} wants credentials: give its Secret \"username\" and "
                "\"password\" (HTTP Basic) or \"token\"")

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _where(self, name: str) -> str:
        return f"MLflow registered model {name!r}"

    async def _call(self, method: str, path: str, what: str, *, json: Any = None,
                    params: Mapping[str, Any] | None = None, accept: frozenset[Outcome] = frozenset(),
                    fields: tuple[str, ...] = ()) -> Reply:
        """One API call; a refusal of the content names ``fields`` (the spec fields the request carried)."""
        try:
            return await self.transport.request(method, API + path, what=what, json=json, params=params,
                                                accept=accept)
        except Terminal as exc:
            if exc.reason == "InvalidSpec" and fields and not exc.fields:
                raise Terminal(exc.message, fields=fields) from None
            raise

    def unsupported(self, kind: str, remedy: str | None = None) -> Unsupported:
        remedy = remedy or "remove this registry from the resource's spec.registries"
        return Unsupported(f"MLflow's Model Registry has no counterpart for {kind}: it holds models and their "
                           f"versions, not how they are served; {remedy}")

    # -- reads

    async def _get_model(self, name: str) -> dict[str, Any] | None:
        what = f"reading {self._where(name)}"
        reply = await self._call("GET", "/registered-models/get", what, params={"name": name}, accept=ABSENT)
        if not reply.ok:
            return None
        model = reply.body.get("registered_model") if isinstance(reply.body, dict) else None
        if not isinstance(model, dict):
            raise Recoverable(f"{what}: HTTP {reply.status} without a registered_model in the reply")
        return model

    async def _versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of the registered model (search with its filter, page by page)."""
        what = f"searching the versions of {self._where(name)}"

        async def page(token: str) -> tuple[list[dict[str, Any]], str | None]:
            params = {"filter": mapping.versions_filter(name), "max_results": str(PAGE)}
            if token:
                params["page_token"] = token
            reply = await self._call("GET", "/model-versions/search", what, params=params)
            body = reply.body if isinstance(reply.body, dict) else {}
            return ([v for v in body.get("model_versions") or [] if isinstance(v, dict)],
                    body.get("next_page_token") or None)

        return await paged(page, "", max_pages=MAX_PAGES)

    async def _inventory(self, name: str, model: Mapping[str, Any], want: Mapping[str, Any]) -> dict[str, Any]:
        """The inventory: the registered model and its versions."""
        return mapping.inventory(model, await self._versions(name), want.get("source"))

    async def _read(self, name: str, want: Mapping[str, Any]) -> dict[str, Any] | None:
        """The inventory (registered model and versions), or None when there is no such model."""
        model = await self._get_model(name)
        if model is None:
            return None
        return await self._inventory(name, model, want)

    def _observation(self, res: Resource, name: str, want: Mapping[str, Any],
                     inv: Mapping[str, Any]) -> Observation:
        return Observation(exists=True, external_id=name, diff=mapping.diff(want, inv), inventory=inv,
                           desired=dict(want), not_settable=mapping.not_settable(res))

    # -- the template's hooks

    def where(self, res: Resource, record: Record | None = None) -> str:
        return self._where(mapping.registered_model_name(res, self.conn))

    def validate(self, res: Resource) -> None:
        mapping.validate(mapping.desired(res))

    async def read(self, res: Resource) -> Record | None:
        """The registered model as MLflow returns it (its versions are read by :meth:`observed`)."""
        return await self._get_model(mapping.registered_model_name(res, self.conn))

    def owned(self, record: Record, res: Resource) -> bool:
        return mapping.is_ours(res, mapping.registered_model_name(res, self.conn), mapping.tags_of(record))

    def not_ours(self, res: Resource, record: Record) -> NameTaken:
        name = mapping.registered_model_name(res, self.conn)
        return NameTaken(
            f"{self._where(name)} exists and is not managed by this resource (its modelsync.io/uid tag is "
            f"another's, or absent); set spec.mlflow.name to another name, or spec.registries[].externalId: "
            f"{name} to adopt it", fields=("spec.mlflow.name",))

    async def observed(self, res: Resource, record: Record) -> Observation:
        name = mapping.registered_model_name(res, self.conn)
        want = mapping.desired(res)
        return self._observation(res, name, want, await self._inventory(name, record, want))

    def observation(self, res: Resource, inventory: Mapping[str, Any]) -> Observation | None:
        """create and update return the inventory they read back last: no read needed."""
        if not inventory or "name" not in inventory:
            return None
        return self._observation(res, str(inventory["name"]), mapping.desired(res), inventory)

    async def post(self, res: Resource) -> Record | Exists:
        name = mapping.registered_model_name(res, self.conn)
        want = mapping.desired(res)
        what = f"creating {self._where(name)}"
        fields = tuple(mapping.spec_path(f) for f in want if f not in ("source", "alias")) or ("spec.mlflow.name",)
        reply = await self._call("POST", "/registered-models/create", what,
                                 json=mapping.create_model_body(name, want, res),
                                 accept=frozenset({Outcome.CONFLICT}), fields=fields)
        if reply.outcome is Outcome.CONFLICT:
            return Exists(what)  # adopted when its uid tag is ours, else NameTaken
        # a new registered model has no versions: its first one is made without looking (a lost reply
        # on that create is found by the next try, which observes first and looks before making one)
        version = None
        if "source" in want:
            version = await self._new_version(res, name, want["source"])
        if "alias" in want and version is not None:
            await self._set_alias(name, want["alias"], version)
        inv = await self._read(name, want)
        if inv is None:
            raise Recoverable(f"{what}: created, but MLflow does not show it yet; will look again")
        return inv

    async def adopted(self, res: Resource, record: Record) -> Mapping[str, Any]:
        """An existing registered model of ours: brought in line with the spec right away."""
        obs = await self.observed(res, record)
        inv = obs.inventory or {}
        return await self._converge(res, str(inv.get("name") or obs.external_id), mapping.desired(res), obs) \
            if obs.diff else inv

    async def patch(self, res: Resource, obs: Observation) -> Mapping[str, Any]:
        name = mapping.registered_model_name(res, self.conn)
        return await self._converge(res, name, mapping.desired(res), obs)

    async def _converge(self, res: Resource, name: str, want: Mapping[str, Any],
                        obs: Observation) -> Mapping[str, Any]:
        """Send what ``obs.diff`` names (and restore a missing ownership marker), then read back."""
        inv = obs.inventory or {}
        tags = inv.get("tags") or {}
        where = self._where(name)
        if "description" in obs.diff:
            await self._write("PATCH", "/registered-models/update", f"updating the description of {where}",
                              {"name": name, "description": want["description"]}, ("spec.description",))
        pending = {f[len("tags."):]: want[f] for f in obs.diff if f.startswith("tags.") and f in want}
        if not res.adopted:  # ours by the marker: keep it there
            pending.update({k: v for k, v in mapping.marker_tags(res).items() if tags.get(k) != v})
        for key, value in pending.items():
            await self._write("POST", "/registered-models/set-tag", f"setting tag {key} of {where}",
                              {"name": name, "key": key, "value": value}, (mapping.spec_path(f"tags.{key}"),))
        version = inv.get("version")
        if "source" in obs.diff or ("alias" in obs.diff and version is None):
            version = await self._ensure_version(res, name, want["source"])
        if "alias" in obs.diff and version is not None:
            await self._set_alias(name, want["alias"], version)
        after = await self._read(name, want)
        if after is None:
            raise Recoverable(f"{where} is gone after the update; it will be created again")
        return after

    async def _write(self, method: str, path: str, what: str, body: Mapping[str, Any],
                     fields: tuple[str, ...]) -> Reply:
        reply = await self._call(method, path, what, json=dict(body), accept=ABSENT, fields=fields)
        if not reply.ok:
            raise Recoverable(f"{what}: the registered model is gone; it will be created again")
        return reply

    async def _ensure_version(self, res: Resource, name: str, source: str) -> str:
        """The version holding ``source``: looked for first (a create whose reply was lost made it), and
        made only when there is none."""
        found = mapping.holding(await self._versions(name), source)
        if found is not None:
            log.info("%s: version %s already holds %s; not making another", self._where(name),
                     found.get("version"), source)
            return str(found.get("version"))
        return await self._new_version(res, name, source)

    async def _new_version(self, res: Resource, name: str, source: str) -> str:
        what = f"creating a version of {self._where(name)} from spec.installPath"
        reply = await self._write("POST", "/model-versions/create", what,
                                  mapping.create_version_body(name, source, res), ("spec.installPath",))
        version = reply.body.get("model_version") if isinstance(reply.body, dict) else None
        if not isinstance(version, dict) or not version.get("version"):
            raise Recoverable(f"{what}: HTTP {reply.status} without a model_version in the reply")
        return str(version["version"])

    async def _set_alias(self, name: str, alias: str, version: str) -> None:
        await self._write("POST", "/registered-models/alias",
                          f"pointing alias {alias} of {self._where(name)} at version {version}",
                          {"name": name, "alias": alias, "version": version}, ("spec.mlflow.alias",))

    async def remove(self, res: Resource, record: Record | None) -> None:
        """Its versions and aliases go with it."""
        name = mapping.registered_model_name(res, self.conn)
        await self._call("DELETE", "/registered-models/delete", f"deleting {self._where(name)}",
                         json={"name": name}, accept=ABSENT)

    # -- the rest of the interface

    async def check(self) -> str:
        await self._call("GET", "/registered-models/search", "listing registered models",
                         params={"max_results": "1"})
        how = "credentials accepted" if self.conn.credentials else "no credentials needed"
        return f"MLflow Model Registry reachable; {how}"

    # -- inventory (read-only, for ``modelsync inventory``)

    async def listed(self) -> list[Record]:
        """Every registered model, page by page."""

        async def page(token: str) -> tuple[list[Record], str | None]:
            params = {"max_results": str(PAGE)}
            if token:
                params["page_token"] = token
            reply = await self._call("GET", "/registered-models/search", "listing registered models",
                                     params=params)
            body = reply.body if isinstance(reply.body, dict) else {}
            return ([m for m in body.get("registered_models") or [] if isinstance(m, dict)],
                    body.get("next_page_token") or None)

        return await paged(page, "", max_pages=10_000)

    def entry(self, record: Record) -> Entry | None:
        """The owner its ``modelsync.io/owner`` tag names."""
        if not record.get("name"):
            return None
        tags = mapping.tags_of(record)
        return Entry(kind="Model", external_id=str(record["name"]), name=str(record["name"]),
                     owner=tags.get(mapping.OWNER_TAG), marker=tags.get(mapping.UID_TAG))
