"""Instill AI: the pure spec → wire mapping (model bodies, ids, the owner marker, diffs, not-settable
fields, errors); no I/O.

What each API takes and why is in :mod:`modelsync.vendors.instill.client` and ``docs/instill.md``.
"""
from __future__ import annotations

import json
import re
import typing
from typing import Any, Mapping

from ...backends.base import (
    NotSettable,
    RegistryConnection,
    Resource,
    Terminal,
    deterministic_id,
)
from ...backends.http import VendorError
from ...backends.template import holds
from .schema import INSTILL_ID_PATTERN

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

#: the id rule of the resource's schema: RFC-1034, lowercase, at most 32 (see schema.INSTILL_ID_PATTERN)
STRICT_ID = re.compile(INSTILL_ID_PATTERN)
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
    types are the schema's (:class:`modelsync.vendors.instill.schema.InstillModelSection`)."""
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
        # the server may add defaults to ``configuration``: every key the spec sets must hold its value
        same = (holds(want, have, lists=False, empty_is_empty=False, strict_bools=False) if f == "configuration"
                else want == have)
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
