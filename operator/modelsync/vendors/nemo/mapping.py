"""NeMo Entity Store: the pure spec → wire mapping (entity bodies, diffs, not-settable fields, errors); no I/O.

What each API takes and why is in :mod:`modelsync.vendors.nemo.client` and ``docs/nemo.md``.
"""
from __future__ import annotations

import re
import urllib.parse
from typing import Any, Mapping

from ...backends.base import (
    NotSettable,
    RegistryConnection,
    Resource,
    Terminal,
    Unsupported,
    deterministic_id,
)
from ...backends.http import Outcome, VendorError
from ...backends.template import holds, without_nulls

API_PREFIX = "/apis/models/v2/workspaces"
WORKSPACES_PATH = "/apis/entities/v2/workspaces"
OWNER_KEY = "modelsync.io/owner"
RESOURCE_KEY = "modelsync.io/resource"

#: Entity fields this backend manages, in wire order (``name`` is the key, not a managed field).
MANAGED_FIELDS: tuple[str, ...] = (
    "description", "spec", "finetuning_type", "fileset", "base_model", "api_endpoint",
    "backend_format", "prompt", "custom_fields", "ownership", "model_providers", "trust_remote_code",
)

NAME_RE = re.compile(r"^[\w\-.]+$")
DESCRIPTION_MAX = 1000

#: ``spec`` members the server stores but every read returns as null
#: (``model_entity_service._model_to_model_entity``): sent, never compared
SPEC_READ_NULLED: tuple[str, ...] = ("minimum_gpus_all_weights", "minimum_gpus_lora")
#: entity fields that hold an object the PATCH endpoint replaces whole
OBJECT_FIELDS: tuple[str, ...] = ("spec", "api_endpoint", "prompt", "ownership", "custom_fields")
#: words of a 403's detail that make it a refusal of the content (models.py, permissions.py)
CONTENT_403 = {"trust_remote_code": "spec.nemo.trust_remote_code", "fileset": "spec.nemo.fileset",
               "tool_call_plugin": "spec.nemo.spec"}

_SOURCE = "nemo-platform services/core/models/src/nmp/core/models/schemas.py"

#: Common Model fields without a NeMo counterpart, kept as custom_fields metadata.
_COMMON_TO_CUSTOM: tuple[tuple[str, str], ...] = (
    ("vendor", "modelsync.io/vendor"),
    ("version", "modelsync.io/version"),
    ("parameters", "modelsync.io/parameters"),
    ("architecture", "modelsync.io/architecture"),
    ("frameworkVersion", "modelsync.io/framework-version"),
    ("task", "modelsync.io/task"),
    ("license", "modelsync.io/license"),
    ("installPath", "modelsync.io/install-path"),
)


# ---------------------------------------------------------------- pure mapping


def owner_marker(res: Resource, conn: RegistryConnection) -> str:
    return str(deterministic_id(res.uid, conn.key))


def entity_name(res: Resource, conn: RegistryConnection) -> str:
    """The entity name: ``spec.nemo.name`` if set, else a deterministic one.

    The deterministic name is ``<namespace>-<name>-<hash8>``: lowercase
    ``[a-z0-9.-]``, 2–63 characters, starting with a letter, without
    consecutive hyphens and not ending with one (so it also satisfies the
    stricter naming rule of newer platform releases). ``hash8`` is the first 8
    hex digits of ``deterministic_id(uid, registry key)``, which keeps names
    unique per object incarnation and per registry and stable across retries.
    """
    if res.adopted and res.external_id:
        return res.external_id
    nemo = getattr(res.spec, "nemo", None)
    user = getattr(nemo, "name", None) if nemo is not None else None
    if user:
        if len(user) > 255 or not NAME_RE.match(user):
            raise Terminal(
                f"spec.nemo.name: {user[:80]!r} is not a valid NeMo entity name "
                "(letters, digits, '_', '-', '.'; at most 255 characters)",
                fields=("spec.nemo.name",),
            )
        return str(user)
    digest = deterministic_id(res.uid, conn.key).hex[:8]
    base = f"{res.namespace}-{res.name}".lower()
    base = re.sub(r"[^a-z0-9.-]+", "-", base)
    base = re.sub(r"-{2,}", "-", base).strip("-.")
    if not base or not base[0].isalpha():
        base = f"m-{base}" if base else "m"
    base = base[: 63 - 1 - len(digest)].rstrip("-.")
    return f"{base}-{digest}"


def _valid_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    p = urllib.parse.urlsplit(value)
    return bool(p.scheme) and bool(p.netloc)


def _validate(body: Mapping[str, Any]) -> None:
    """What NeMo rejects that the resource's schema does not already refuse, as one Terminal
    naming the CR fields. Enums, the fileset form, the ``api_endpoint`` and ``prompt`` keys and
    the whole ``spec`` set are guaranteed by :mod:`modelsync.api` (at admission and when the
    core parses the spec); the common description allows more than NeMo's 1000 characters, and
    the schema cannot tell an absolute URL."""
    problems: list[tuple[str, str]] = []
    desc = body.get("description")
    if desc is not None and len(desc) > DESCRIPTION_MAX:
        problems.append(("spec.description", f"at most {DESCRIPTION_MAX} characters for NeMo (got {len(desc)})"))
    ep = body.get("api_endpoint")
    if isinstance(ep, Mapping) and "url" in ep and not _valid_url(ep["url"]):
        problems.append(("spec.nemo.api_endpoint.url", "must be an absolute URL"))
    if problems:
        raise Terminal("; ".join(f"{f}: {m}" for f, m in problems), fields=tuple(f for f, _ in problems))


def desired_entity(res: Resource, conn: RegistryConnection) -> dict[str, Any]:
    """The create body for ``res``: ``name`` plus every managed field the resource sets.

    Mapping:

    * ``spec.description`` → ``description``;
    * ``spec.nemo.{fileset, base_model, finetuning_type, api_endpoint,
      backend_format, prompt, ownership, model_providers, trust_remote_code,
      spec}`` → the same wire fields (``spec.head_type`` is not sent: the server's
      ModelSpec has no such member, see :func:`not_settable`);
    * ``spec.nemo.custom_fields`` → ``custom_fields``, merged with
      ``modelsync.io/*`` keys for the common fields that have no NeMo field
      (vendor, version, parameters, architecture, frameworkVersion, task,
      license, installPath, gpu), ``modelsync.io/resource`` (``ns/name``) and
      the ownership marker :data:`OWNER_KEY`; the ``modelsync.io/*`` keys win.

    A field set to an empty value (``""``, ``{}``, ``[]``) is sent as it is: the PATCH
    endpoint applies it. A field left out of the resource (None) is not sent.
    Raises :class:`Terminal` for what the registry would reject.
    """
    if res.kind != "Model":
        raise Unsupported(f"NeMo has no counterpart for {res.kind}; only Model is synced to NeMo")
    spec = res.spec
    nemo = without_nulls(getattr(spec, "nemo", None)) or {}
    body: dict[str, Any] = {"name": entity_name(res, conn)}
    description = getattr(spec, "description", None)
    if description is not None:
        body["description"] = description
    for field in ("spec", "finetuning_type", "fileset", "base_model", "api_endpoint", "backend_format",
                  "prompt", "ownership", "model_providers", "trust_remote_code"):
        value = nemo.get(field)
        if value is not None:
            body[field] = value
    if isinstance(body.get("spec"), Mapping):
        body["spec"] = {k: v for k, v in body["spec"].items() if k != "head_type"}

    custom: dict[str, Any] = dict(nemo.get("custom_fields") or {})
    for attr, key in _COMMON_TO_CUSTOM:
        value = getattr(spec, attr, None)
        if value is not None:
            custom[key] = value
    gpu = without_nulls(getattr(spec, "gpu", None))
    if gpu:
        custom["modelsync.io/gpu"] = gpu
    custom[RESOURCE_KEY] = f"{res.namespace}/{res.name}"
    custom[OWNER_KEY] = owner_marker(res, conn)
    body["custom_fields"] = custom

    _validate(body)
    return body


def exact_fields(res: Resource) -> frozenset[str]:
    """Fields compared exactly rather than on the keys set: ``custom_fields`` when the resource
    sets it to ``{}`` (the map then holds only ModelSync's own keys)."""
    nemo = getattr(res.spec, "nemo", None)
    return frozenset({"custom_fields"}) if getattr(nemo, "custom_fields", None) == {} else frozenset()


def not_settable(res: Resource) -> tuple[NotSettable, ...]:
    """Spec fields the resource sets that the NeMo API has no way to set."""
    spec = res.spec
    out: list[NotSettable] = []
    if getattr(spec, "readme", None) is not None:
        out.append(NotSettable("spec.readme", f"NeMo model entities have no readme field ({_SOURCE}: "
                                              "CreateModelEntityRequest, UpdateModelEntityRequest)"))
    if getattr(spec, "defaultServiceRef", None) is not None:
        out.append(NotSettable("spec.defaultServiceRef", "NeMo has no model services: a model entity cannot "
                                                         f"name a default service ({_SOURCE})"))
    nemo_spec = without_nulls(getattr(getattr(spec, "nemo", None), "spec", None))
    if isinstance(nemo_spec, Mapping) and nemo_spec.get("head_type") is not None:
        out.append(NotSettable("spec.nemo.spec.head_type", "the NeMo server's ModelSpec has no head_type: it "
                                                           f"ignores the member ({_SOURCE}: ModelSpec)"))
    return tuple(out)


def _norm_url(value: Any) -> Any:
    """pydantic ``AnyUrl`` as the registry stores it: lowercase scheme/host, ``/`` for an empty path."""
    if not isinstance(value, str):
        return value
    p = urllib.parse.urlsplit(value)
    return urllib.parse.urlunsplit((p.scheme.lower(), p.netloc.lower(), p.path or "/", p.query, p.fragment))


def diff_entity(desired: Mapping[str, Any], entity: Mapping[str, Any],
                exact: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Managed wire fields whose registry value does not hold the desired one.

    Only fields we set are compared; within objects (``custom_fields``,
    ``ownership``, ``spec``, ``api_endpoint``, ``prompt``) only the keys we set,
    so keys the platform or other clients add (e.g. what the model-spec job
    fills in) are not differences. Fields in ``exact`` must hold no other keys.
    ``spec.minimum_gpus_*`` are never compared (every read returns null);
    ``base_model: ""`` is stored as null.
    """
    out = []
    for field in MANAGED_FIELDS:
        if field not in desired:
            continue
        want, have = desired[field], entity.get(field)
        if field == "api_endpoint" and isinstance(want, Mapping):
            want = {**want, **({"url": _norm_url(want["url"])} if "url" in want else {})}
            if isinstance(have, Mapping) and "url" in have:
                have = {**have, "url": _norm_url(have["url"])}
        if field == "spec" and isinstance(want, Mapping):
            want = {k: v for k, v in want.items() if k not in SPEC_READ_NULLED}
        if field == "base_model" and want == "":
            want = None
        if field in exact and isinstance(want, Mapping) and isinstance(have, Mapping) and set(have) - set(want):
            out.append(field)
        elif not holds(want, have):
            out.append(field)
    return tuple(out)


def inventory_of(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The entity as status inventory; ``api_endpoint.api_key`` is masked."""
    inv = dict(entity)
    ep = inv.get("api_endpoint")
    if isinstance(ep, Mapping) and ep.get("api_key"):
        inv["api_endpoint"] = {**ep, "api_key": "***"}
    return inv


# ---------------------------------------------------------------- errors


def _detail(body: Any, text: str) -> tuple[str, tuple[str, ...]]:
    """The error's text and, for FastAPI validation errors, the fields it names."""
    if body is None:
        return text[:300], ()
    detail = body.get("detail", body) if isinstance(body, Mapping) else body
    if isinstance(detail, list):
        parts, fields = [], []
        for item in detail:
            if not isinstance(item, Mapping):
                parts.append(str(item)[:200])
                continue
            loc = [str(p) for p in item.get("loc") or []]
            where = ".".join(loc) or "body"
            parts.append(f"{where}: {item.get('msg', '')}")  # never the echoed "input"
            fields.append(".".join(loc[1:] if loc[:1] == ["body"] else loc) or "body")
        return "; ".join(parts), tuple(fields)
    if isinstance(detail, str):
        return detail[:500], ()
    return str(detail)[:300], ()


def parse_error(status: int, body: Any, text: str) -> VendorError:
    """FastAPI's ``{"detail": ...}`` as the message and the fields a 422 names (or the spec
    field a fileset or permission refusal is about)."""
    message, fields = _detail(body, text)
    if not fields and status in (400, 403):
        fields = tuple(f for word, f in CONTENT_403.items() if word in message.lower())
    return VendorError(message=message, fields=fields)


def refine(status: int, error: VendorError) -> Outcome | None:
    """A 403 about ``trust_remote_code``, a fileset or ``tool_call_plugin`` refuses the content
    (api/v2/models.py answers PermissionError with 403): InvalidSpec, not CredentialsRejected."""
    if status == 403 and any(word in error.message.lower() for word in CONTENT_403):
        return Outcome.INVALID
    return None
