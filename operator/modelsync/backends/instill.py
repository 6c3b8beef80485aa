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
"""
from __future__ import annotations

import json
import logging
import re
import typing
from typing import Any, Mapping
from urllib.parse import quote

import httpx

from .. import api
from .base import (
    Backend,
    BackendError,
    CredentialsRejected,
    Entry,
    NameTaken,
    NotSettable,
    Observation,
    Recoverable,
    RegistryConnection,
    Resource,
    Terminal,
    Unsupported,
    deterministic_id,
)
from .http import ABSENT, Outcome, Reply, Transport, VendorError

log = logging.getLogger(__name__)

API_PREFIX = "/v1alpha"

#: the two generations of Instill's model API, as ``spec.instill.apiGeneration`` names them (both are
#: served under ``/v1alpha``: the path cannot tell them apart, the Model message's shape does)
LEGACY, AIP, AUTO = "Legacy", "AIP", "Auto"
#: keys only the AIP generation's Model message has; the gateway emits them in every model it returns
AIP_ONLY_KEYS = ("displayName", "slug", "aliases")
#: how messages name each generation
GENERATION_WORDS = {
    LEGACY: "Legacy (model-backend up to v0.38.x: the client chooses the model id)",
    AIP: "AIP (model-backend after its AIP resource names change: server ids mod-…, displayName, slug)",
}

MODEL_DEFINITION_PREFIX = "model-definitions/"

#: fields PATCH may change, in the order they are diffed
MUTABLE_FIELDS: tuple[str, ...] = (
    "description", "visibility", "hardware", "readme",
    "sourceUrl", "documentationUrl", "license", "profileImage",
)
#: AIP: the display name and slug are mutable too (``slug`` is ``spec.instill.id`` or the default id)
AIP_MUTABLE_FIELDS: tuple[str, ...] = ("displayName", "slug") + MUTABLE_FIELDS
#: fields fixed at create (``id`` is fixed by construction: it is the URL)
IMMUTABLE_FIELDS: tuple[str, ...] = ("modelDefinition", "configuration", "task", "region")
#: ``optional string`` fields: a read gives "" for an empty one; "" clears on PATCH
OPTIONAL_STRINGS = frozenset({"description", "readme", "sourceUrl", "documentationUrl", "license", "profileImage"})
#: what POST must carry besides ``id`` (REQUIRED in the API)
REQUIRED_ON_CREATE: tuple[str, ...] = ("modelDefinition", "configuration", "task", "visibility", "region", "hardware")
#: ``maxProperties`` of model-backend v0.38.5 ``config/model/model.json``: the create body's limit
MAX_CREATE_PROPERTIES = 12
#: optional fields a create leaves to the PATCH that follows it when the body would be too big, first first
DEFERRABLE: tuple[str, ...] = ("profileImage", "documentationUrl", "sourceUrl", "license", "description")
#: a read gives this instead of the stored image (``DBToPBModel``): never the value sent
UNREADABLE: frozenset[str] = frozenset({"profileImage"})
_MODEL_PROTO = "{proto}"
#: how ``not_settable`` names the Model message of each generation
MODEL_PROTO = {
    LEGACY: "the Instill v1alpha Model message (model.proto @ 80d2c12)",
    AIP: "the Instill Model message of the AIP generation (model.proto @ bf4f825)",
}
#: spec fields (common to every registry) that the Instill Model message has no field for
NOT_SETTABLE: dict[str, str] = {
    "spec.installPath": f"{_MODEL_PROTO} has no artifact path: a container model's image is pushed, not named",
    "spec.vendor": f"{_MODEL_PROTO} has no vendor field",
    "spec.version": f"{_MODEL_PROTO} has no version field (versions are output-only, made by pushing images)",
    "spec.parameters": f"{_MODEL_PROTO} has no parameters field",
    "spec.gpu.minMemory": f"{_MODEL_PROTO} has no GPU memory field (spec.instill.hardware chooses the hardware)",
    "spec.gpu.recommendedMemory": f"{_MODEL_PROTO} has no GPU memory field (spec.instill.hardware chooses the hardware)",
    "spec.gpu.recommendedCount": f"{_MODEL_PROTO} has no GPU count field (spec.instill.hardware chooses the hardware)",
    "spec.gpu.constraintDescription": f"{_MODEL_PROTO} has no GPU constraint field",
    "spec.gpu.accelerator": f"{_MODEL_PROTO} has no accelerator field (spec.instill.hardware chooses the hardware)",
    "spec.architecture": f"{_MODEL_PROTO} has no architecture field",
    "spec.frameworkVersion": f"{_MODEL_PROTO} has no framework field",
    "spec.task": f"{_MODEL_PROTO} takes its task as the enum spec.instill.task, not as free text",
    "spec.defaultServiceRef": "Instill has no model services: a model is served by itself (spec.instill.hardware)",
}
#: wire field → the spec path a user edits
SPEC_PATHS: dict[str, str] = {
    "id": "spec.instill.id",
    "description": "spec.description",
    "readme": "spec.readme",
    "license": "spec.license",
    "modelDefinition": "spec.instill.modelDefinition",
    "configuration": "spec.instill.configuration",
    "task": "spec.instill.task",
    "visibility": "spec.instill.visibility",
    "region": "spec.instill.region",
    "hardware": "spec.instill.hardware",
    "sourceUrl": "spec.instill.sourceUrl",
    "documentationUrl": "spec.instill.documentationUrl",
    "profileImage": "spec.instill.profileImage",
    "displayName": "spec.instill.displayName",
    "slug": "spec.instill.id",
}
#: large or echoed fields left out of the inventory (it may end up in status)
INVENTORY_OMIT = frozenset({"profileImage", "readme", "inputSchema", "outputSchema"})

# ---------------------------------------------------------------- ids

#: the id rule of the resource's schema: RFC-1034, lowercase, at most 32 (see api.INSTILL_ID_PATTERN)
STRICT_ID = re.compile(api.INSTILL_ID_PATTERN)
MAX_ID = 32
_ID_PREFIX = "ms-"
_HASH_LEN = 8


def _sanitize(name: str, limit: int) -> str:
    s = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    s = re.sub(r"-{2,}", "-", s).strip("-")
    return s[:limit].rstrip("-")


def default_model_id(res: Resource, conn: RegistryConnection) -> str:
    """``ms-<name>-<hash>``: stable for the resource incarnation and registry,
    valid under both id rules whatever the Kubernetes name looks like."""
    digest = deterministic_id(res.uid, conn.key).hex[:_HASH_LEN]
    room = MAX_ID - len(_ID_PREFIX) - 1 - _HASH_LEN
    short = _sanitize(res.name, room)
    model_id = f"{_ID_PREFIX}{short}-{digest}" if short else f"{_ID_PREFIX}{digest}"
    # The hash is hex, so the id ends in a letter or digit; belt and braces:
    model_id = model_id[:MAX_ID].rstrip("-")
    assert STRICT_ID.match(model_id), model_id
    return model_id


def model_id_for(res: Resource, conn: RegistryConnection) -> str:
    """The registry id of ``res``: the user's ``spec.instill.id`` (its rule is enforced by the
    schema, at admission and when the core parses the spec) or the default."""
    if res.adopted and res.external_id:
        return res.external_id
    section = res.spec.instill
    if section is not None and section.id is not None:
        return str(section.id)
    return default_model_id(res, conn)


# ---------------------------------------------------------------- ownership marker

_MARKER_RE = re.compile(r"<!--\s*managed-by:\s*modelsync\.io;\s*owner:\s*([0-9a-fA-F-]{36})\b[^>]*-->")


def owner_token(res: Resource, conn: RegistryConnection) -> str:
    return str(deterministic_id(res.uid, conn.key))


def marker_line(res: Resource, conn: RegistryConnection) -> str:
    return (
        f"<!-- managed-by: modelsync.io; owner: {owner_token(res, conn)}; "
        f"resource: Model {res.namespace}/{res.name} -->"
    )


def marker_owner(readme: Any) -> str | None:
    """The owner uuid of the modelsync marker in a readme, if there is one."""
    if not isinstance(readme, str):
        return None
    found = _MARKER_RE.findall(readme)
    return found[-1].lower() if found else None


def desired_readme(user_readme: str | None, res: Resource, conn: RegistryConnection) -> str:
    marker = marker_line(res, conn)
    text = (user_readme or "").rstrip()
    return f"{text}\n\n{marker}" if text else marker


# ---------------------------------------------------------------- mapping


def normalize_model_definition(value: str) -> str:
    """``container`` and ``model-definitions/container`` name the same definition;
    the API returns the resource name form, so that is what we send."""
    return value if value.startswith(MODEL_DEFINITION_PREFIX) else MODEL_DEFINITION_PREFIX + value


def desired_model(res: Resource, conn: RegistryConnection, generation: str | None = LEGACY) -> dict[str, Any]:
    """The wire fields (without ``id``) that the spec sets: the fields ModelSync manages.

    On the AIP generation (and when the generation is not known yet, ``None``) also
    ``displayName`` (``spec.instill.displayName``, else the resource's name) and ``slug``
    (:func:`model_id_for`; not for an entry adopted by ``externalId`` unless ``spec.instill.id``
    names one).

    Common fields: ``description``, ``readme`` (plus the ownership marker, so always) and
    ``license``; the ``instill`` section gives ``modelDefinition``, ``configuration`` (``{}``
    when left out: the only value the container definition allows), ``task``, ``visibility``,
    ``region``, ``hardware``, ``sourceUrl``, ``documentationUrl`` and ``profileImage``. A field the
    spec leaves out is not managed (the registry keeps its value); one set to ``""`` is managed
    as empty.
    """
    spec = res.spec
    inst = spec.instill
    body: dict[str, Any] = {}
    if generation != LEGACY:
        body["displayName"] = inst.displayName if inst is not None and inst.displayName is not None else res.name
        if not res.adopted or (inst is not None and inst.id is not None):
            body["slug"] = inst.id if inst is not None and inst.id is not None else default_model_id(res, conn)
    if spec.description is not None:
        body["description"] = spec.description
    if inst is not None:
        if inst.modelDefinition is not None:
            body["modelDefinition"] = normalize_model_definition(inst.modelDefinition)
        body["configuration"] = dict(inst.configuration) if inst.configuration is not None else {}
        if inst.task is not None:
            body["task"] = inst.task
        body["visibility"] = inst.visibility
        if inst.region is not None:
            body["region"] = inst.region
        if inst.hardware is not None:
            body["hardware"] = inst.hardware
    body["readme"] = desired_readme(spec.readme, res, conn)
    if inst is not None:
        for f in ("sourceUrl", "documentationUrl"):
            v = getattr(inst, f)
            if v is not None:
                body[f] = v
    if spec.license is not None:
        body["license"] = spec.license
    if inst is not None and inst.profileImage is not None:
        body["profileImage"] = inst.profileImage
    return body


def counted(body: Mapping[str, Any], generation: str) -> int:
    """How many properties of a create body the generation's JSON Schema counts: the fields its
    Model message has and its handler keeps (Legacy discards ``displayName`` and ``slug``, unknown
    to it; AIP clears ``id``, output-only there)."""
    ignored = AIP_ONLY_KEYS if generation == LEGACY else ("id",)
    return sum(1 for k in body if k not in ignored)


def create_body(model_id: str, desired: Mapping[str, Any],
                generation: str | None = LEGACY) -> tuple[dict[str, Any], dict[str, Any]]:
    """The POST body and what is left for the PATCH after it.

    Legacy: ``id`` and the desired fields. AIP: the desired fields (``displayName``, ``slug``…),
    no ``id`` (the server makes it). ``None`` (the generation is not known yet: the namespace has
    no model to read): both, so that either generation takes it as its own create (each ignores
    what its Model message does not have, see :func:`counted`).

    ``""`` is left out (a new model's optional strings read back as ``""`` anyway, and the
    schema's ``format: uri`` refuses an empty URI); then, while either generation would count more
    than :data:`MAX_CREATE_PROPERTIES` properties, the next of :data:`DEFERRABLE` moves to the PATCH.
    """
    fields = {k: v for k, v in desired.items() if not (k in OPTIONAL_STRINGS and v == "")}
    body = fields if generation == AIP else {"id": model_id, **fields}
    later: dict[str, Any] = {}
    for f in DEFERRABLE:
        if max(counted(body, g) for g in (LEGACY, AIP)) <= MAX_CREATE_PROPERTIES:
            break
        if f in body:
            later[f] = body.pop(f)
    return body, later


def not_settable(res: Resource, generation: str = LEGACY) -> tuple[NotSettable, ...]:
    """The spec fields that are set and that the generation's API cannot set (:data:`NOT_SETTABLE`;
    on Legacy also ``spec.instill.displayName``: its Model message has no display name)."""
    spec = res.spec
    out: list[NotSettable] = []
    proto = MODEL_PROTO[generation]
    for path, why in NOT_SETTABLE.items():
        node: Any = spec
        for part in path.split(".")[1:]:
            node = getattr(node, part, None) if node is not None else None
        if node is not None:
            out.append(NotSettable(path, why.format(proto=proto)))
    if generation == LEGACY and spec.instill is not None and spec.instill.displayName is not None:
        out.append(NotSettable("spec.instill.displayName",
                               f"{proto} has no display name (the AIP generation has one)"))
    return tuple(out)


def validate_desired(body: Mapping[str, Any], *, creating: bool) -> None:
    """What Instill requires to create a model and the schema leaves optional (the section
    also serves other registries), caught before sending: Terminal naming fields. Enums and
    types are the schema's (:class:`modelsync.api.InstillModelSection`)."""
    problems: list[str] = []
    fields: list[str] = []

    def bad(field: str, why: str) -> None:
        fields.append(SPEC_PATHS[field])
        problems.append(f"{SPEC_PATHS[field]}: {why}")

    if creating:
        for f in REQUIRED_ON_CREATE:
            if f not in body or body[f] in (None, ""):
                bad(f, "required by Instill to create a model")
    if problems:
        raise Terminal("; ".join(problems), fields=tuple(fields))


def _contains(observed: Any, desired: Any) -> bool:
    """Every key the spec sets has the same value in the registry (the server
    may add defaults to ``configuration``; those are not drift)."""
    if isinstance(desired, dict):
        return isinstance(observed, dict) and all(k in observed and _contains(observed[k], v) for k, v in desired.items())
    return bool(observed == desired)


def _norm(field: str, value: Any) -> Any:
    if field in OPTIONAL_STRINGS:
        s = "" if value is None else str(value)
        return s.rstrip() if field == "readme" else s
    if field == "modelDefinition" and isinstance(value, str):
        return normalize_model_definition(value)
    if field == "visibility" and value in (None, "", "VISIBILITY_UNSPECIFIED"):
        return "VISIBILITY_PRIVATE"  # UNSPECIFIED is documented as PRIVATE
    return value


def diff_model(desired: Mapping[str, Any], observed: Mapping[str, Any]) -> tuple[str, ...]:
    """Wire names of the fields whose registry value differs: mutable first, then immutable.

    Only the fields the spec sets are compared (an optional string reads back as "" when
    empty, so "" and absent in the registry are the same). ``profileImage`` never reads back
    as sent (:data:`UNREADABLE`): it is always listed, and the core keeps it from being sent
    twice for one spec value.
    """
    out: list[str] = []
    for f in AIP_MUTABLE_FIELDS + IMMUTABLE_FIELDS:
        if f not in desired:
            continue
        want, have = _norm(f, desired.get(f)), _norm(f, observed.get(f))
        same = _contains(have, want) if f == "configuration" else want == have
        if not same:
            out.append(f)
    return tuple(out)


def immutable_change_message(fields: typing.Iterable[str]) -> str:
    return "; ".join(
        f"{SPEC_PATHS[f]} cannot change after create; to change it, create a new Model (new name) and delete this one"
        for f in fields
    )


def inventory_of(model: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model.items() if k not in INVENTORY_OMIT}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def fields_from_details(details: Any) -> tuple[str, ...]:
    """Spec paths named by google.rpc.BadRequest field violations, if any."""
    out: list[str] = []
    if not isinstance(details, list):
        return ()
    for d in details:
        if not isinstance(d, dict):
            continue
        for v in d.get("fieldViolations") or d.get("field_violations") or []:
            if not isinstance(v, dict) or not isinstance(v.get("field"), str):
                continue
            wire = _camel(v["field"].removeprefix("model."))
            path = SPEC_PATHS.get(wire)
            if path and path not in out:
                out.append(path)
    return tuple(out)


_INSTANCE_RE = re.compile(r'"instanceLocation":\s*"/([A-Za-z_]+)')
_MISSING_RE = re.compile(r"missing propert(?:y|ies):?\s*([^\"\n]+)")


def fields_from_message(message: str) -> tuple[str, ...]:
    """Spec paths a JSON Schema refusal names: each ``instanceLocation`` of the validator's
    output the server puts in its message ("Model spec is invalid {…}"), and the properties a
    ``required`` violation says are missing."""
    out: list[str] = []
    names = _INSTANCE_RE.findall(message)
    for missing in _MISSING_RE.findall(message):
        names += re.findall(r"[A-Za-z_]+", missing)
    for name in names:
        path = SPEC_PATHS.get(_camel(name))
        if path and path not in out:
            out.append(path)
    return tuple(out)


def parse_error(status: int, body: Any, text: str) -> VendorError:
    """``{"code": <grpc code>, "message", "details"}``: the message (a JSON Schema refusal's
    validator output shortened to its errors), and the fields a google.rpc.BadRequest or the
    validator's output names (as spec paths)."""
    if not isinstance(body, dict):
        return VendorError()
    code = body.get("code")
    message = str(body.get("message") or body.get("error") or "")
    fields = fields_from_details(body.get("details")) or fields_from_message(message)
    return VendorError(code="" if code is None else str(code), message=_short_schema_message(message),
                       fields=fields)


def _short_schema_message(message: str) -> str:
    """"Model spec is invalid {…validator output…}" as "Model spec is invalid: /license: …; …"."""
    head, brace, rest = message.partition("{")
    if not brace:
        return message
    try:
        output = json.loads(brace + rest)
    except ValueError:
        return message
    errors = output.get("errors") if isinstance(output, dict) else None
    if not isinstance(errors, list) or not errors:
        return message
    parts = []
    for e in errors:
        if isinstance(e, dict):
            where = e.get("instanceLocation") or "(body)"
            parts.append(f"{where}: {e.get('error', '')}")
    return f"{head.strip()}: " + "; ".join(parts)


# ---------------------------------------------------------------- the backend


class InstillBackend(Backend):
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

    def _check_kind(self, res: Resource) -> None:
        if res.kind != "Model":
            raise Unsupported(
                f"Instill AI has no counterpart for {res.kind}: its model API manages Models only "
                f"(serving is part of the Model, set with spec.instill.hardware); "
                f"remove registry {self.conn.name} from this {res.kind}'s spec.registries"
            )

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
        token = ""
        while True:
            params = {"pageSize": str(self.list_page_size)}
            if token:
                params["pageToken"] = token
            reply = await self._send("GET", self._path(), what, params=params)
            body = reply.body if isinstance(reply.body, dict) else {}
            for model in body.get("models") or []:
                if isinstance(model, dict):
                    self._learn(model)
                    if model.get("slug") == slug or slug in (model.get("aliases") or []):
                        found.append(model)
            next_token = body.get("nextPageToken")
            if not next_token or not isinstance(next_token, str) or next_token == token:
                return sorted(found, key=lambda m: str(m.get("createTime") or ""))
            token = next_token

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

    # -- the interface

    async def observe(self, res: Resource) -> Observation:
        self._check_kind(res)
        generation = await self._detect()
        desired = desired_model(res, self.conn, generation)
        validate_desired(desired, creating=False)
        model: dict[str, Any] | None = None  # None too when the namespace has no model (generation None)
        if generation == LEGACY:
            model_id = model_id_for(res, self.conn)
            model = await self._get(model_id)
            if model is not None and not self._is_ours(res, model_id, model):
                raise self._not_ours(model_id)
        elif generation == AIP:
            model = await self._find_aip(res)
            model_id = str(model.get("id")) if model is not None else ""
        if model is None or generation is None:
            self._absent.add(self._key(res))
            return Observation(exists=False)
        desired = desired_model(res, self.conn, generation)
        return Observation(
            exists=True,
            external_id=model_id,
            diff=diff_model(desired, model),
            inventory=inventory_of(model),
            desired=desired,
            not_settable=not_settable(res, generation),
        )

    async def create(self, res: Resource) -> Mapping[str, Any]:
        self._check_kind(res)
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
            model = await self._get(slug)
            if model is None:
                raise Recoverable(f"{what}: the registry reported it exists, but it is gone; retrying")
            if not self._is_ours(res, slug, model):
                raise self._not_ours(slug)
            log.info("%s: already exists and is ours; adopting it", self._where(slug))
            return await self._adopt(res, model)
        raise self._create_refused(reply, what)

    async def _adopt(self, res: Resource, model: Mapping[str, Any]) -> Mapping[str, Any]:
        """A model of ours found at create time: brought in line with one update if it differs."""
        generation = self._generation or LEGACY
        desired = desired_model(res, self.conn, generation)
        obs = Observation(True, str(model.get("id")), diff_model(desired, model), inventory_of(model))
        if obs.diff:
            return await self.update(res, obs)
        return obs.inventory or {}

    async def update(self, res: Resource, obs: Observation) -> Mapping[str, Any]:
        """PATCH the differing mutable fields, then refuse immutable drift (see module doc)."""
        self._check_kind(res)
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
        if res.kind != "Model":
            return
        generation = await self._detect()
        if generation is None:
            return  # the namespace has no model at all
        if generation == AIP:
            try:
                model = await self._find_aip(res)
            except NameTaken:
                log.warning("the model with slug %s in Instill namespace %s is not managed by %s/%s; leaving it "
                            "in place", model_id_for(res, self.conn), self.namespace, res.namespace, res.name)
                return
            if model is None:
                return
            model_id = str(model.get("id"))
        else:
            model_id = model_id_for(res, self.conn)
            model = await self._get(model_id)
            if model is None:
                return
            if not self._is_ours(res, model_id, model):
                log.warning("%s is not managed by %s/%s; leaving it in place", self._where(model_id), res.namespace,
                            res.name)
                return
        what = f"deleting {self._where(model_id)}"
        await self._send("DELETE", self._path(model_id), what, accept=ABSENT)
        self._ids.pop(res.uid, None)

    # -- inventory (read-only, for ``modelsync inventory``)

    #: ``pageSize`` of each list request when listing
    list_page_size = 100
    _MARKER_RESOURCE_RE = re.compile(
        r"<!--\s*managed-by:\s*modelsync\.io;\s*owner:\s*[0-9a-fA-F-]{36};\s*resource:\s*\w+\s+([^\s>]+)\s*-->")

    async def list_entries(self) -> list[Entry]:
        """Every model of the namespace, page by page (``pageSize``/``pageToken``, full view
        for the readme), with the owner the readme's marker comment names. The name is the
        model's slug on the AIP generation, its id on Legacy."""
        what = f"listing the models of Instill namespace {self.namespace}"
        out: list[Entry] = []
        token = ""
        while True:
            params = {"pageSize": str(self.list_page_size), "view": "VIEW_FULL"}
            if token:
                params["pageToken"] = token
            reply = await self._send("GET", self._path(), what, params=params)
            body = reply.body if isinstance(reply.body, dict) else {}
            for model in body.get("models") or []:
                if not isinstance(model, dict):
                    continue
                readme = model.get("readme")
                owner_uuid = marker_owner(readme)
                found = self._MARKER_RESOURCE_RE.findall(readme) if owner_uuid else []
                out.append(Entry(kind="Model", external_id=str(model.get("id")),
                                 name=str(model.get("slug") or model.get("id")),
                                 owner=found[-1] if found else None, marker=owner_uuid))
            next_token = body.get("nextPageToken")
            if not next_token or not isinstance(next_token, str) or next_token == token:
                return out
            token = next_token
