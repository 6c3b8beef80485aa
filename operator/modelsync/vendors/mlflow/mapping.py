"""Spec → MLflow, and MLflow → observation: pure functions, no I/O (the client does the requests).

What a ``Model`` is in MLflow's Model Registry (REST API 2.0, as MLflow 3.17 serves it):

* a **registered model** named ``spec.mlflow.name`` or :func:`registered_model_name`, with
  ``description`` = ``spec.description`` and tags: the user's ``spec.mlflow.tags``, and one
  ``modelsync.io/<field>`` tag for each common field MLflow has no field for (:data:`SPEC_TAGS`);
* a **model version** whose ``source`` is ``spec.installPath`` (the artifact URI). Versions are
  immutable: a new ``installPath`` makes a new version; the version that holds the spec is the newest
  whose source is ``installPath`` (so a version is never made twice for one artifact URI, whoever made
  it, and a create whose reply was lost is found by the next look);
* an optional **alias** (``spec.mlflow.alias``) on that version, moved when the version changes.

Observed fields (``Observation.diff`` / ``desired`` names): ``description``, ``tags.<key>``,
``source`` (no version holds ``installPath``) and ``alias`` (the alias is missing or points at
another version). Fields the spec leaves out are not managed; a tag removed from the spec is left.

The ownership marker is two registered model tags written on create: ``modelsync.io/owner``
(``namespace/name``) and ``modelsync.io/uid`` (the resource's uid). Each version ModelSync makes
carries ``modelsync.io/uid``, ``modelsync.io/generation`` (the spec generation that made it) and
``modelsync.io/owner``. They are not compared (an entry adopted with ``externalId`` or only observed
would always differ); an update restores them when they are missing.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from ... import api
from ...backends.base import NotSettable, RegistryConnection, Resource, Terminal, deterministic_id
from .schema import MAX_NAME, MAX_TAG_VALUE

TAG_PREFIX = "modelsync.io/"
OWNER_TAG = "modelsync.io/owner"
UID_TAG = "modelsync.io/uid"
GENERATION_TAG = "modelsync.io/generation"
MARKER_TAGS = (OWNER_TAG, UID_TAG)

#: common spec fields MLflow has no field for, each as a registered model tag (MLflow's way for metadata)
SPEC_TAGS: dict[str, str] = {
    "spec.vendor": "modelsync.io/vendor",
    "spec.version": "modelsync.io/version",
    "spec.parameters": "modelsync.io/parameters",
    "spec.gpu.minMemory": "modelsync.io/gpu.minMemory",
    "spec.gpu.recommendedMemory": "modelsync.io/gpu.recommendedMemory",
    "spec.gpu.recommendedCount": "modelsync.io/gpu.recommendedCount",
    "spec.gpu.constraintDescription": "modelsync.io/gpu.constraintDescription",
    "spec.gpu.accelerator": "modelsync.io/gpu.accelerator",
    "spec.architecture": "modelsync.io/architecture",
    "spec.frameworkVersion": "modelsync.io/frameworkVersion",
    "spec.task": "modelsync.io/task",
    "spec.license": "modelsync.io/license",
}
#: GPU memory travels as exact bytes (as to every registry)
BYTES = frozenset({"spec.gpu.minMemory", "spec.gpu.recommendedMemory"})
_API = "MLflow's Model Registry API (registered models and model versions)"
#: spec fields MLflow cannot hold at all (listed in status.registries[].notSettable, never sent)
NOT_SETTABLE: dict[str, str] = {
    "spec.readme": f"{_API} has one text per registered model, its description (spec.description), and no readme",
    "spec.defaultServiceRef": "MLflow's Model Registry has no model services",
}
#: registered_model_versions.source is a VARCHAR(500)
MAX_SOURCE = 500
#: versions shown in the inventory (the newest; the one holding the spec always)
INVENTORY_VERSIONS = 20


# ---------------------------------------------------------------- names and markers


def registered_model_name(res: Resource, conn: RegistryConnection) -> str:
    """``spec.mlflow.name``, else ``<namePrefix><namespace>-<name>-<hash8>`` (``hash8``: the first 8 hex of
    :func:`~modelsync.backends.base.deterministic_id` of the uid and registry key, so a name is stable
    across retries and unique per incarnation and registry); an adopted entry's own name."""
    if res.adopted and res.external_id:
        return res.external_id
    section = getattr(res.spec, "mlflow", None)
    if section is not None and section.name:
        return str(section.name)
    prefix = str(conn.settings.get("namePrefix") or "")
    digest = deterministic_id(res.uid, conn.key).hex[:8]
    stem = f"{res.namespace}-{res.name}"[: MAX_NAME - len(prefix) - 1 - len(digest)]
    return f"{prefix}{stem}-{digest}"


def marker_tags(res: Resource) -> dict[str, str]:
    return {OWNER_TAG: f"{res.namespace}/{res.name}", UID_TAG: res.uid}


def version_tags(res: Resource) -> dict[str, str]:
    """The tags of a version ModelSync makes: which resource, and which generation of its spec."""
    return {**marker_tags(res), GENERATION_TAG: str(res.generation)}


def is_ours(res: Resource, name: str, tags: Mapping[str, str]) -> bool:
    """The registered model carries this resource's uid, or the status recorded it as this resource's
    (created on an earlier sync, or adopted with spec.registries[].externalId)."""
    return tags.get(UID_TAG) == res.uid or (res.external_id is not None and res.external_id == name)


# ---------------------------------------------------------------- spec → wire


def _lookup(spec: Any, path: str) -> Any:
    node: Any = spec
    for part in path.split(".")[1:]:
        node = getattr(node, part, None) if node is not None else None
    return node


def tag_value(path: str, value: Any) -> str:
    """A spec value as a tag value: quantities as exact bytes, GPU counts as ``1,2``, text as is."""
    if path in BYTES:
        return str(api.quantity_int(value, field=path, unit_name="bytes"))
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def desired_tags(res: Resource) -> dict[str, str]:
    """Every registered model tag the spec sets: ``modelsync.io/<field>`` ones, then the user's."""
    out: dict[str, str] = {}
    for path, key in SPEC_TAGS.items():
        value = _lookup(res.spec, path)
        if value is not None:
            out[key] = tag_value(path, value)
    section = getattr(res.spec, "mlflow", None)
    for tag in (section.tags or []) if section is not None else []:
        out[tag.key] = tag.value
    return out


def desired(res: Resource) -> dict[str, Any]:
    """The managed wire state: ``description``, ``tags.<key>``, ``source``, ``alias`` (those the spec sets)."""
    spec = res.spec
    out: dict[str, Any] = {}
    if spec.description is not None:
        out["description"] = spec.description
    for key, value in desired_tags(res).items():
        out[f"tags.{key}"] = value
    if spec.installPath is not None:
        out["source"] = spec.installPath
    section = getattr(spec, "mlflow", None)
    if section is not None and section.alias is not None:
        out["alias"] = section.alias
    return out


#: diff field → the spec path a user edits
def spec_path(field: str) -> str:
    if field == "description":
        return "spec.description"
    if field == "source":
        return "spec.installPath"
    if field == "alias":
        return "spec.mlflow.alias"
    if field.startswith("tags."):
        key = field[len("tags."):]
        for path, tag in SPEC_TAGS.items():
            if tag == key:
                return path
        return "spec.mlflow.tags"
    return field


def validate(want: Mapping[str, Any]) -> None:
    """What MLflow's store would refuse, caught before sending: Terminal naming each field."""
    problems: list[str] = []
    fields: list[str] = []
    for field, value in want.items():
        if field.startswith("tags.") and isinstance(value, str) and len(value) > MAX_TAG_VALUE:
            path = spec_path(field)
            fields.append(path)
            problems.append(f"{path}: {len(value)} characters; an MLflow registered model tag "
                            f"({field[len('tags.'):]}) holds at most {MAX_TAG_VALUE}")
    source = want.get("source")
    if isinstance(source, str):
        if len(source) > MAX_SOURCE:
            fields.append("spec.installPath")
            problems.append(f"spec.installPath: {len(source)} characters; an MLflow model version source holds "
                            f"at most {MAX_SOURCE}")
        elif not source.strip():
            fields.append("spec.installPath")
            problems.append("spec.installPath: empty; an MLflow model version needs a source (an artifact URI)")
    if "alias" in want and "source" not in want:
        fields.append("spec.mlflow.alias")
        problems.append("spec.mlflow.alias: points at the version holding spec.installPath, which is not set")
    if problems:
        raise Terminal("; ".join(problems), fields=tuple(fields))


def not_settable(res: Resource) -> tuple[NotSettable, ...]:
    """The spec fields that are set and that MLflow cannot hold (:data:`NOT_SETTABLE`)."""
    return tuple(NotSettable(path, why) for path, why in NOT_SETTABLE.items() if _lookup(res.spec, path) is not None)


def wire_tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """Tags in MLflow's shape: ``[{"key", "value"}]``."""
    return [{"key": k, "value": v} for k, v in tags.items()]


def create_model_body(name: str, want: Mapping[str, Any], res: Resource) -> dict[str, Any]:
    """``POST registered-models/create``: name, the marker and spec tags, the description."""
    tags = {**marker_tags(res), **{k[len("tags."):]: v for k, v in want.items() if k.startswith("tags.")}}
    body: dict[str, Any] = {"name": name, "tags": wire_tags(tags)}
    if "description" in want:
        body["description"] = want["description"]
    return body


def create_version_body(name: str, source: str, res: Resource) -> dict[str, Any]:
    """``POST model-versions/create``: the artifact URI and the version's marker."""
    return {"name": name, "source": source, "tags": wire_tags(version_tags(res))}


def quote(value: str) -> str:
    """A string literal for an MLflow search filter."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def versions_filter(name: str) -> str:
    return f"name = {quote(name)}"


# ---------------------------------------------------------------- wire → observation


def tags_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """``[{"key", "value"}]`` (a value may be absent: ``""``) as a dict."""
    out: dict[str, str] = {}
    for tag in obj.get("tags") or []:
        if isinstance(tag, Mapping) and isinstance(tag.get("key"), str):
            out[tag["key"]] = str(tag.get("value") or "")
    return out


def aliases_of(obj: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in obj.get("aliases") or []:
        if isinstance(a, Mapping) and isinstance(a.get("alias"), str):
            out[a["alias"]] = str(a.get("version"))
    return out


def _number(version: Mapping[str, Any]) -> int:
    try:
        return int(version.get("version") or 0)
    except (TypeError, ValueError):
        return 0


def holding(versions: Iterable[Mapping[str, Any]], source: str | None) -> Mapping[str, Any] | None:
    """The version that holds ``source``: the newest whose source it is."""
    if source is None:
        return None
    matching = [v for v in versions if v.get("source") == source]
    return max(matching, key=_number) if matching else None


def inventory(model: Mapping[str, Any], versions: Iterable[Mapping[str, Any]],
              source: str | None) -> dict[str, Any]:
    """The registered model and its versions as status shows them (and as :func:`diff` reads them):
    tags and aliases as maps, the newest versions (and always the one holding ``source``)."""
    ordered = sorted(versions, key=_number, reverse=True)
    held = holding(ordered, source)
    shown = ordered[:INVENTORY_VERSIONS]
    if held is not None and held not in shown:
        shown.append(held)
    out: dict[str, Any] = {
        "name": model.get("name"),
        "description": model.get("description") or "",
        "tags": tags_of(model),
        "aliases": aliases_of(model),
        "creationTimestamp": model.get("creation_timestamp"),
        "lastUpdatedTimestamp": model.get("last_updated_timestamp"),
        "versionCount": len(ordered),
        "versions": [_version(v) for v in shown],
    }
    if held is not None:
        out["version"] = str(held.get("version"))
    return {k: v for k, v in out.items() if v is not None}


def _version(v: Mapping[str, Any]) -> dict[str, Any]:
    out = {"version": str(v.get("version")), "source": v.get("source"), "status": v.get("status"),
           "creationTimestamp": v.get("creation_timestamp"), "tags": tags_of(v)}
    if v.get("run_id"):
        out["runId"] = v["run_id"]
    return {k: val for k, val in out.items() if val is not None}


def diff(want: Mapping[str, Any], inv: Mapping[str, Any]) -> tuple[str, ...]:
    """The managed fields whose registry value differs, in :func:`desired`'s order."""
    tags = inv.get("tags") or {}
    held = inv.get("version")
    out: list[str] = []
    for field, value in want.items():
        if field == "description":
            same = (inv.get("description") or "") == value
        elif field.startswith("tags."):
            same = tags.get(field[len("tags."):]) == value
        elif field == "source":
            same = held is not None
        elif field == "alias":
            same = held is not None and (inv.get("aliases") or {}).get(value) == held
        else:
            same = True
        if not same:
            out.append(field)
    return tuple(out)


_FIELD_WORDS = (
    (re.compile(r"\bsource\b", re.I), "spec.installPath"),
    (re.compile(r"\balias\b", re.I), "spec.mlflow.alias"),
    (re.compile(r"\bmodel name\b|\bname\b", re.I), "spec.mlflow.name"),
    (re.compile(r"\bdescription\b", re.I), "spec.description"),
)


def fields_from_message(message: str) -> tuple[str, ...]:
    """Spec paths an INVALID_PARAMETER_VALUE message names (MLflow names the parameter in words)."""
    return tuple(path for pattern, path in _FIELD_WORDS if pattern.search(message))[:1]
