"""Instill AI (Instill Core / Instill Cloud) backend: ``Model`` ↔ Instill model.

Wire contract (model-backend behind the api-gateway, grpc-gateway JSON with
camelCase field names):

* ``POST   /v1alpha/namespaces/{ns}/models``            body: the Model → 201 ``{"model": {...}}``
* ``GET    /v1alpha/namespaces/{ns}/models/{id}?view=VIEW_FULL`` → ``{"model": {...}}``
  (without ``VIEW_FULL`` the server leaves ``configuration`` out, so every
  read here asks for the full view);
* ``PATCH  /v1alpha/namespaces/{ns}/models/{id}``       body: the Model. No
  ``update_mask`` query parameter: for REST the gateway derives the mask from
  the fields present in the body ("only the supplied model fields will be taken
  into account"), so the body carries exactly the fields to change;
* ``DELETE /v1alpha/namespaces/{ns}/models/{id}`` → 204.

Errors are ``{"code": <grpc code>, "message": "...", "details": [...]}``, classified by the
shared status table (:mod:`modelsync.backends.http`); a 404 means "absent" for a read, a
delete and an update's target. A namespace that does not exist is *not* a 404 on the real
server (model-backend v0.38.5 ``GetRscNamespace`` returns a plain error: HTTP 500
``{"code": 2, "message": "namespace error"}``), so on any HTTP 500 the backend asks
``POST /v1beta/check-namespace`` ``{"id": <namespace>}`` (mgmt-backend's public API, behind
the same gateway): ``NAMESPACE_USER`` / ``NAMESPACE_ORGANIZATION`` means the namespace is there
and the 500 is the registry's (``RegistryUnavailable``), anything else ``RegistryMisconfigured``.
A create refused by the published JSON Schema (``config/model/model.json``) is a 400 whose
message carries the validator's output; its ``instanceLocation`` names the field.
``Authorization: Bearer <api token>`` from the registry Secret's ``token`` key.

**What is sent** (the v1alpha ``Model`` message, model.proto @ 80d2c12, and what model-backend
v0.38.5 does with it): only the fields the spec sets; a field absent from the spec is left as
the registry has it. The create body holds at most 12 properties (the schema's
``maxProperties``, counted on what protojson marshals: the 7 required fields, the readme with
its marker, and up to 4 more); the optional fields beyond that (``profileImage`` first) are sent
by a PATCH right after the POST. ``""`` is never sent on create (a URI field would fail
``format: uri``; an empty field reads back as ``""`` anyway) and clears the field on PATCH.
``configuration`` is ``{}`` when the spec leaves it out: the container definition's
``configurationSchema`` allows no keys and the server stores ``{}`` whatever it is given.
``profileImage`` reads back as a generated URL (``<host>/v1alpha/<owner>/models/<id>/image``),
never as what was sent, so it is compared by the core's record of what was sent
(``status.registries[].unobservedFields``) and sent once per spec value. Spec fields the Model
message has no field for (:data:`NOT_SETTABLE`) are never sent and are reported in
``Observation.not_settable``.

**Model id.** ``spec.instill.id`` when set, else :func:`default_model_id`:
``ms-<sanitized name>-<8 hex of deterministic_id(uid, registry key)>``. Either
way the id must be valid under RFC-1034 (what the API documents: letters,
digits, hyphen, first a letter, last a letter or digit, ≤63) *and* under what
deployed backends enforce (lowercase, ≤32); a user id that breaks either is a
:class:`Terminal` naming ``spec.instill.id``.

**Ownership marker.** ``tags`` looks like the natural place, but in the Model
message of this API generation it is OUTPUT_ONLY (the server fills it; POST and
PATCH ignore it), and ``description`` is user-visible one-liner text. The
marker therefore lives in ``readme`` — a persisted, optional, mutable markdown
field accepted by both POST and PATCH — as a trailing HTML comment, invisible
when the README is rendered::

    <!-- managed-by: modelsync.io; owner: <uuid5(uid, registry key)>; resource: Model ns/name -->

The uuid is the full :func:`~modelsync.backends.base.deterministic_id` of the
resource uid and registry key, so it identifies exactly one resource incarnation
on one registry. A model is *ours* when its readme carries our owner uuid, or
when the resource's recorded ``external_id`` is this model id (we created it on
an earlier sync; the next update restores a marker someone edited away).

**Immutable fields.** ``id``, ``modelDefinition``, ``configuration``, ``task``
and ``region`` cannot change after create (the server rejects a PATCH naming
them). The rule here:

* ``observe`` lists every differing field in ``diff`` — mutable and immutable —
  so a drift never hides behind ``up_to_date``;
* ``update`` PATCHes the differing *mutable* fields (never an immutable one),
  and then, if any immutable field differs, raises :class:`Terminal` naming
  each (``spec.instill.task cannot change after create; ...``). Mutable changes
  thus still land, and the error repeats on every sync until the spec goes back
  or the Model is recreated under a new name. The CRD's CEL rules block such
  edits at admission; this is the second line of defence (e.g. for a model
  changed behind our back).

The shared flows (the kind check, observe, update, delete, the read-back after a 409, listing) are
the template's (:mod:`modelsync.backends.template`); ``create`` adds Instill's own first steps (the
generation is found, and on AIP, which never answers 409, the model is looked up by slug before a
create) and then runs the template's.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Mapping
from urllib.parse import quote

import httpx

from ...backends.base import (
    BackendError,
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
from ...backends.http import ABSENT, Outcome, Reply, Transport
from ...backends.template import Exists, Record, TemplateBackend, paged
from .mapping import (
    AIP, AIP_MUTABLE_FIELDS, AIP_ONLY_KEYS, API_PREFIX, GENERATION_WORDS, IMMUTABLE_FIELDS, LEGACY,
    MUTABLE_FIELDS, SPEC_PATHS, create_body, desired_model, diff_model, immutable_change_message, inventory_of,
    marker_owner, model_id_for, not_settable, owner_token, parse_error, validate_desired,
)

log = logging.getLogger(__name__)


class InstillBackend(TemplateBackend):
    name = "instill"
    kinds = frozenset({"Model"})

    def __init__(self, conn: RegistryConnection, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(conn)
        self.transport = Transport(
            conn, backend=self.name, vendor="Instill", auth=self._auth, parse_error=parse_error,
            credentials_hint=self._credentials_hint, transport=transport,
            headers={"Accept": "application/json"},
        )
        #: the generation the server speaks: the pin, or what a model it returned showed (cached
        #: for the life of this instance, i.e. of the registry object's generation and Secret)
        self._generation: str | None = self.pinned
        #: AIP: resources whose observe() just found no model, so their create() need not look again
        self._absent: set[tuple[str, str]] = set()
        #: AIP: the server id each resource's model was last seen with (slug look-ups are lists)
        self._ids: dict[str, str] = {}

    # -- plumbing

    @property
    def namespace(self) -> str:
        ns = self.conn.settings.get("namespace")
        if not ns:
            raise Terminal(
                f"registry {self.conn.name} has no spec.instill.namespace: the Instill namespace models are created in",
                reason="RegistryMisconfigured",
            )
        return str(ns)

    @property
    def pinned(self) -> str | None:
        """``spec.instill.apiGeneration`` when it names a generation (not ``Auto``)."""
        value = self.conn.settings.get("apiGeneration")
        return value if value in (LEGACY, AIP) else None

    @property
    def generation(self) -> str | None:
        """The generation pinned or found so far; None while the server has shown no model."""
        return self._generation

    def _scrub(self, text: object) -> str:
        return self.transport.scrub(text)

    async def _auth(self) -> dict[str, str]:
        token = self.conn.credentials.get("token")
        if not token:
            raise CredentialsRejected(
                f"the credentials Secret of registry {self.conn.name} has no \"token\" key (the Instill API token)"
            )
        return {"Authorization": f"Bearer {token}"}

    def _credentials_hint(self) -> str:
        return (f"the registry {self.conn.name} rejected the API token in Secret key \"token\"; "
                f"check the token and its access to namespace {self.conn.settings.get('namespace')}")

    async def aclose(self) -> None:
        await self.transport.aclose()

    # -- the generation

    def _wrong_pin(self, pinned: str, evidence: str) -> Terminal:
        other = AIP if pinned == LEGACY else LEGACY
        return Terminal(self._scrub(
            f"registry {self.conn.name} is pinned to spec.instill.apiGeneration: {pinned}, but the Instill server "
            f"speaks {GENERATION_WORDS[other]}: {evidence}; set spec.instill.apiGeneration to {other}, "
            f"or to Auto to let ModelSync find it from the server"), reason="RegistryMisconfigured")

    def _learn(self, model: Mapping[str, Any]) -> str:
        """The generation a model the server returned shows (the AIP Model message always carries
        ``displayName``, ``slug`` and ``aliases``; the Legacy one never does), cached. A pin the model
        contradicts is RegistryMisconfigured."""
        seen = AIP if any(k in model for k in AIP_ONLY_KEYS) else LEGACY
        evidence = (f"its models carry {', '.join(k for k in AIP_ONLY_KEYS if k in model)} (model {model.get('id')})"
                    if seen == AIP else f"its models have no displayName or slug (model {model.get('id')})")
        return self._seen(seen, evidence)

    def _seen(self, seen: str, evidence: str) -> str:
        """Record that the server speaks ``seen`` (``evidence`` says how that showed)."""
        pinned = self.pinned
        if pinned is not None and seen != pinned:
            raise self._wrong_pin(pinned, evidence)
        if self._generation != seen:
            log.info("Instill registry %s speaks the %s model API generation", self.conn.name, seen)
            self._generation = seen
        return seen

    async def _detect(self) -> str | None:
        """The generation: pinned, cached, or read off the first model of the namespace
        (``GET …/models?pageSize=1``). None when the namespace has no model yet: the first create
        then sends a body both generations take, and its reply tells."""
        if self._generation is not None:
            return self._generation
        reply = await self._send("GET", self._path(), f"listing the models of Instill namespace {self.namespace}",
                                 params={"pageSize": "1"})
        models = reply.body.get("models") if isinstance(reply.body, dict) else None
        if isinstance(models, list) and models and isinstance(models[0], dict):
            return self._learn(models[0])
        return None

    def _create_refused(self, reply: Reply, what: str) -> BackendError:
        """A refused create, told apart from a pin to the wrong generation: a Legacy body (no
        ``display_name``) refused by an AIP server, or an AIP body (no ``id``) by a Legacy one."""
        message = reply.error.message if reply.error else ""
        pinned = self.pinned
        if reply.status == 400 and pinned == LEGACY and "display_name" in message:
            return self._wrong_pin(pinned, f"it refused a create without display_name ({message[:160]})")
        if reply.status == 400 and pinned == AIP and ("`id`" in message or "'id'" in message):
            return self._wrong_pin(pinned, f"it refused a create without id ({message[:160]})")
        return self.transport.error(reply, what)

    # -- requests

    async def check(self) -> str:
        reply = await self._send("GET", self._path(), "list models", params={"pageSize": "1"})
        models = reply.body.get("models") if isinstance(reply.body, dict) else None
        if isinstance(models, list) and models and isinstance(models[0], dict):
            generation = self._learn(models[0])
            how = "pinned" if self.pinned else "found from its models"
            return f"token accepted; namespace {self.namespace} reachable; model API generation {generation} ({how})"
        if self.pinned:
            return (f"token accepted; namespace {self.namespace} reachable; model API generation {self.pinned} "
                    "(pinned; the namespace has no model to confirm it yet)")
        return (f"token accepted; namespace {self.namespace} reachable; model API generation not known yet "
                "(the namespace has no model to read; the first create tells)")

    #: the namespace types of ``POST /v1beta/check-namespace`` that hold models
    NAMESPACE_TYPES = frozenset({"NAMESPACE_USER", "NAMESPACE_ORGANIZATION"})

    async def _namespace_type(self) -> str | None:
        """What ``POST /v1beta/check-namespace`` says uses the namespace id, or None when it
        cannot tell (the call failed, or the reply has no type)."""
        try:
            reply = await self.transport.request(
                "POST", "/v1beta/check-namespace", what=f"checking Instill namespace {self.namespace}",
                json={"id": self.namespace}, accept=frozenset(Outcome))
        except Recoverable:
            return None
        kind = reply.body.get("type") if reply.ok and isinstance(reply.body, dict) else None
        return kind if isinstance(kind, str) else None

    async def _server_error(self, reply: Reply, what: str) -> Terminal | None:
        """On an HTTP 500: RegistryMisconfigured when the namespace does not exist (that is how
        model-backend answers for one, see the module doc), else None (the 500 stands)."""
        if reply.status != 500:
            return None
        kind = await self._namespace_type()
        if kind is None or kind in self.NAMESPACE_TYPES:
            return None
        detail = (reply.error.message[:200] if reply.error else "") or "Internal Server Error"
        return Terminal(self._scrub(
            f"{what}: HTTP 500: {detail}; the Instill namespace {self.namespace!r} does not exist "
            f"(check-namespace: {kind}): fix spec.instill.namespace of registry {self.conn.name}"),
            reason="RegistryMisconfigured")

    def _path(self, model_id: str | None = None) -> str:
        base = f"{API_PREFIX}/namespaces/{quote(self.namespace, safe='')}/models"
        return base if model_id is None else f"{base}/{quote(model_id, safe='')}"

    def _where(self, model_id: str) -> str:
        return f"Instill model {self.namespace}/{model_id}"

    async def _send(self, method: str, path: str, what: str, *, json: Any = None,
                    params: Mapping[str, str] | None = None, accept: frozenset[Outcome] = frozenset()) -> Reply:
        """One model API call; an HTTP 500 is checked against the namespace first."""
        reply = await self.transport.request(method, path, what=what, json=json, params=params,
                                             accept=accept | {Outcome.UNAVAILABLE})
        if reply.outcome is Outcome.UNAVAILABLE and Outcome.UNAVAILABLE not in accept:
            raise await self._server_error(reply, what) or self.transport.error(reply, what)
        return reply

    def _reply_model(self, reply: Reply) -> dict[str, Any] | None:
        """The model a reply carries (its generation learned), or None."""
        model = reply.body.get("model") if isinstance(reply.body, dict) else None
        if not isinstance(model, dict):
            return None
        self._learn(model)
        return model

    def _model_from(self, reply: Reply, what: str) -> dict[str, Any]:
        model = self._reply_model(reply)
        if model is None:
            raise Recoverable(self._scrub(f"{what}: HTTP {reply.status} without a model in the reply"))
        return model

    def unsupported(self, kind: str, remedy: str | None = None) -> Unsupported:
        remedy = remedy or f"remove registry {self.conn.name} from this {kind}'s spec.registries"
        return Unsupported(f"Instill AI has no counterpart for {kind}: its model API manages Models only "
                           f"(serving is part of the Model, set with spec.instill.hardware); {remedy}")

    def _is_ours(self, res: Resource, model_id: str, model: Mapping[str, Any]) -> bool:
        if marker_owner(model.get("readme")) == owner_token(res, self.conn):
            return True
        return res.external_id is not None and res.external_id == model_id

    async def _get(self, model_id: str) -> dict[str, Any] | None:
        what = f"reading {self._where(model_id)}"
        reply = await self._send("GET", self._path(model_id), what, params={"view": "VIEW_FULL"}, accept=ABSENT)
        if not reply.ok:
            return None
        return self._model_from(reply, what)

    def _not_ours(self, model_id: str) -> NameTaken:
        return NameTaken(
            f"{self._where(model_id)} exists and is not managed by this resource; set spec.instill.id to another id, "
            f"or spec.registries[].externalId: {model_id} to adopt it",
            fields=("spec.instill.id",),
        )

    # -- AIP identity: the server's id, found again by the deterministic slug and the marker

    def _key(self, res: Resource) -> tuple[str, str]:
        return (res.uid, model_id_for(res, self.conn))

    async def _by_slug(self, slug: str) -> list[dict[str, Any]]:
        """Every model of the namespace whose slug (or an earlier slug, ``aliases``) is ``slug``,
        oldest first. The API looks models up by id only and its list filter has no slug, so this
        pages through the namespace (``pageSize`` 100)."""
        what = f"looking up slug {slug} in Instill namespace {self.namespace}"
        found: list[dict[str, Any]] = []
        for model in await self._models(what, {}):
            self._learn(model)
            if model.get("slug") == slug or slug in (model.get("aliases") or []):
                found.append(model)
        return sorted(found, key=lambda m: str(m.get("createTime") or ""))

    async def _models(self, what: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every model of the namespace, page by page (``pageSize``/``pageToken``)."""

        async def page(token: str) -> tuple[list[dict[str, Any]], str | None]:
            query = {"pageSize": str(self.list_page_size), **params}
            if token:
                query["pageToken"] = token
            reply = await self._send("GET", self._path(), what, params=query)
            body = reply.body if isinstance(reply.body, dict) else {}
            next_token = body.get("nextPageToken")
            return ([m for m in body.get("models") or [] if isinstance(m, dict)],
                    next_token if isinstance(next_token, str) and next_token else None)

        return await paged(page, "")

    async def _find_aip(self, res: Resource) -> dict[str, Any] | None:
        """The resource's model on an AIP server, read in full, or None.

        By id first: the one status recorded (``externalId``, or the adopted one) or this instance
        last saw; then by slug (:func:`model_id_for`: ``spec.instill.id``, the default id, or an
        adopted ``externalId`` that is a slug). A model found by slug is ours when it carries our
        marker (or is adopted); one that does not is NameTaken."""
        slug = model_id_for(res, self.conn)
        for known in dict.fromkeys(i for i in (res.external_id, self._ids.get(res.uid)) if i):
            model = await self._get(known)
            if model is not None and (res.adopted or self._is_ours(res, str(model.get("id")), model)):
                self._ids[res.uid] = str(model.get("id"))
                return model
        matches = await self._by_slug(slug)
        if not res.adopted:
            ours = [m for m in matches if marker_owner(m.get("readme")) == owner_token(res, self.conn)]
            if not ours and matches:
                raise NameTaken(
                    f"{self._where(str(matches[0].get('id')))} has the slug {slug} and is not managed by this "
                    f"resource; set spec.instill.id to another slug, or spec.registries[].externalId: "
                    f"{matches[0].get('id')} to adopt it", fields=("spec.instill.id",))
            if len(ours) > 1:
                log.warning("%s: %d models carry this resource's marker (%s); managing the oldest", self._where(slug),
                            len(ours), ", ".join(str(m.get("id")) for m in ours))
            matches = ours
        if not matches:
            return None
        model_id = str(matches[0].get("id"))
        model = await self._get(model_id)
        if model is not None:
            self._ids[res.uid] = model_id
        return model

    # -- the template's hooks

    def where(self, res: Resource, record: Record | None = None) -> str:
        model_id = str(record.get("id")) if record is not None and record.get("id") else model_id_for(res, self.conn)
        return self._where(model_id)

    async def read(self, res: Resource) -> Record | None:
        """The resource's model, read in full: by id on Legacy, by id or slug and marker on AIP
        (NameTaken there for a slug that is someone else's); None as well when the namespace has
        no model at all (its generation is not known yet)."""
        generation = await self._detect()
        if generation == LEGACY:
            return await self._get(model_id_for(res, self.conn))
        if generation == AIP:
            return await self._find_aip(res)
        return None

    def owned(self, record: Record, res: Resource) -> bool:
        model_id = str(record.get("id")) if self._generation == AIP else model_id_for(res, self.conn)
        return self._is_ours(res, model_id, record)

    def not_ours(self, res: Resource, record: Record) -> NameTaken:
        return self._not_ours(model_id_for(res, self.conn))

    def absent(self, res: Resource) -> Observation:
        self._absent.add(self._key(res))
        return Observation(exists=False)

    async def observed(self, res: Resource, record: Record) -> Observation:
        generation = self._generation or LEGACY
        desired = desired_model(res, self.conn, generation)
        validate_desired(desired, creating=False)
        model_id = str(record.get("id")) if generation == AIP else model_id_for(res, self.conn)
        return Observation(
            exists=True,
            external_id=model_id,
            diff=diff_model(desired, record),
            inventory=inventory_of(record),
            desired=desired,
            not_settable=not_settable(res, generation),
        )

    def inventory(self, record: Record) -> Mapping[str, Any]:
        return inventory_of(record)

    async def adopted(self, res: Resource, record: Record) -> Mapping[str, Any]:
        return await self._adopt(res, record)

    async def remove(self, res: Resource, record: Record | None) -> None:
        model_id = str((record or {}).get("id") or "") if self._generation == AIP else model_id_for(res, self.conn)
        await self._send("DELETE", self._path(model_id), f"deleting {self._where(model_id)}", accept=ABSENT)
        self._ids.pop(res.uid, None)

    # -- the interface

    async def create(self, res: Resource) -> Mapping[str, Any]:
        self.require(res.kind)
        validate_desired(desired_model(res, self.conn, None), creating=True)  # before any request
        generation = await self._detect()
        looked = self._key(res) in self._absent
        self._absent.discard(self._key(res))
        if generation == AIP and not looked:
            # no read said the model is absent: one made by an earlier try (its reply, or the
            # status write, lost) is found by its slug and marker, never made twice
            model = await self._find_aip(res)
            if model is not None:
                log.info("%s: already exists and is ours; adopting it", self._where(str(model.get("id"))))
                return await self._adopt(res, model)
        return await super().create(res)

    async def post(self, res: Resource) -> Record | Exists:
        """The POST (and a PATCH of what did not fit in it); :class:`Exists` on Legacy's 409."""
        generation = self._generation
        slug = model_id_for(res, self.conn)
        desired = desired_model(res, self.conn, generation)
        validate_desired(desired, creating=True)
        what = f"creating {self._where(slug)}"
        body, later = create_body(slug, desired, generation)
        accept = {Outcome.CONFLICT} | ({Outcome.INVALID} if self.pinned else set())
        reply = await self._send("POST", self._path(), what, json=body, accept=frozenset(accept))
        if reply.ok:
            model = self._reply_model(reply)
            if model is None and self._generation == LEGACY:
                raise Recoverable(self._scrub(f"{what}: HTTP {reply.status} without a model in the reply"))
            if model is None:
                # model-backend main answers its create without the model (it re-reads it by the id
                # the request had, which is output-only and so cleared; v0.38.5 always returns it):
                # find it by its slug
                self._seen(AIP, "it answered a create without the model, as only the AIP generation does")
                model = await self._find_aip(res)
                if model is None:
                    raise Recoverable(f"{what}: the registry accepted it but shows no model with slug {slug} yet; "
                                      "looking again")
            model_id = str(model.get("id"))
            self._ids[res.uid] = model_id
            inventory = inventory_of(model)
            if later:
                # the schema's maxProperties: what did not fit in the POST goes in a PATCH now
                what = f"setting {', '.join(later)} of new {self._where(model_id)}"
                patched = await self._send("PATCH", self._path(model_id), what, json=later, accept=ABSENT)
                if not patched.ok:
                    raise Recoverable(f"{what}: the model is gone; it will be created again")
                inventory = inventory_of(self._model_from(patched, what))
            return inventory
        if reply.outcome is Outcome.CONFLICT:
            # only Legacy answers 409 (the id is the client's); AIP's ids are its own
            self._seen(LEGACY, f"it answered a create with 409 for the id {slug}")
            return Exists(what)  # read back by id: ours is adopted, another's is NameTaken
        raise self._create_refused(reply, what)

    async def _adopt(self, res: Resource, model: Mapping[str, Any]) -> Mapping[str, Any]:
        """A model of ours found at create time: brought in line with one update if it differs."""
        generation = self._generation or LEGACY
        desired = desired_model(res, self.conn, generation)
        obs = Observation(True, str(model.get("id")), diff_model(desired, model), inventory_of(model))
        if obs.diff:
            return await self.update(res, obs)
        return obs.inventory or {}

    async def patch(self, res: Resource, obs: Observation) -> Mapping[str, Any]:
        """PATCH the differing mutable fields, then refuse immutable drift (see module doc)."""
        generation = self._generation or LEGACY
        model_id = obs.external_id if generation == AIP and obs.external_id else model_id_for(res, self.conn)
        desired = desired_model(res, self.conn, generation)
        validate_desired(desired, creating=False)
        allowed = AIP_MUTABLE_FIELDS if generation == AIP else MUTABLE_FIELDS
        mutable = [f for f in obs.diff if f in allowed]
        immutable = [f for f in obs.diff if f in IMMUTABLE_FIELDS]
        inventory: Mapping[str, Any] = obs.inventory or {}
        if mutable:
            body = {f: desired.get(f, "") for f in mutable}
            what = f"updating {', '.join(mutable)} of {self._where(model_id)}"
            reply = await self._send("PATCH", self._path(model_id), what, json=body, accept=ABSENT)
            if not reply.ok:
                raise Recoverable(f"{what}: the model is gone; it will be created again")
            inventory = inventory_of(self._model_from(reply, what))
        if immutable:
            raise Terminal(immutable_change_message(immutable), fields=tuple(SPEC_PATHS[f] for f in immutable))
        return inventory

    async def delete(self, res: Resource) -> None:
        """Delete our model; "not found" is success. A model at the id that is
        not ours is left alone (logged): deleting it would destroy someone
        else's work, and blocking the Kubernetes deletion would not help."""
        try:
            await super().delete(res)
        except NameTaken:  # AIP: the slug is another's (found by its look-up, before anything is deleted)
            log.warning("the model with slug %s in Instill namespace %s is not managed by %s/%s; leaving it "
                        "in place", model_id_for(res, self.conn), self.namespace, res.namespace, res.name)

    # -- inventory (read-only, for ``modelsync inventory``)

    #: ``pageSize`` of each list request when listing
    list_page_size = 100
    _MARKER_RESOURCE_RE = re.compile(
        r"<!--\s*managed-by:\s*modelsync\.io;\s*owner:\s*[0-9a-fA-F-]{36};\s*resource:\s*\w+\s+([^\s>]+)\s*-->")

    async def listed(self) -> list[Record]:
        """Every model of the namespace (full view, for the readme)."""
        return list(await self._models(f"listing the models of Instill namespace {self.namespace}",
                                       {"view": "VIEW_FULL"}))

    def entry(self, record: Record) -> Entry:
        """The owner the readme's marker comment names. The name is the model's slug on the AIP
        generation, its id on Legacy."""
        readme = record.get("readme")
        owner_uuid = marker_owner(readme)
        found = self._MARKER_RESOURCE_RE.findall(readme) if owner_uuid and isinstance(readme, str) else []
        return Entry(kind="Model", external_id=str(record.get("id")), name=str(record.get("slug") or record.get("id")),
                     owner=found[-1] if found else None, marker=owner_uuid)
