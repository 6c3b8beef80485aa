"""Generate ``crds/*.yaml`` from the pydantic models in :mod:`modelsync.api`.

Pydantic's JSON Schema is turned into a Kubernetes *structural* schema:
``$ref`` inlined, ``Optional`` unwrapped, free-form maps marked
``x-kubernetes-preserve-unknown-fields``, quantities as
``x-kubernetes-int-or-string`` checked by CEL's ``isQuantity``, and the
models' CEL rules carried over. ``python -m modelsync.crdgen crds/`` rewrites
the files; ``tests/unit/test_crds.py`` fails when they are stale.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from . import api, fields

_QUANTITY_RULE = {"rule": "isQuantity(string(self))", "message": "must be a Kubernetes quantity such as 16Gi or 8000Mi"}


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = copy.deepcopy(node)
    description = node.pop("description", None)
    default = node.pop("default", None)
    node.pop("title", None)
    if "$ref" in node:
        ref = defs[node.pop("$ref").split("/")[-1]]
        node = {**copy.deepcopy(ref), **node}
        description = description or node.pop("description", None)
        node.pop("description", None)
        node.pop("title", None)
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        types = sorted(o.get("type", "") for o in options)
        if types == ["integer", "string"]:
            node = {"x-kubernetes-int-or-string": True, "x-kubernetes-validations": [_QUANTITY_RULE]}
        elif len(options) == 1:
            inner = _structural(options[0], defs)
            description = description or inner.pop("description", None)
            inner.pop("description", None)
            node = {**inner, **node}
        else:
            raise ValueError(f"cannot express anyOf {options} structurally")
    out: dict[str, Any] = {}
    if description:
        out["description"] = " ".join(description.split())
    t = node.get("type")
    if "enum" in node or "const" in node:
        out["type"] = "string"
        out["enum"] = node.get("enum") or [node["const"]]
    elif t == "object":
        out["type"] = "object"
        props = node.get("properties")
        if props:
            out["properties"] = {k: _structural(v, defs) for k, v in props.items()}
            if node.get("required"):
                out["required"] = list(node["required"])
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif t == "array":
        out["type"] = "array"
        out["items"] = _structural(node["items"], defs)
    elif t:
        out["type"] = t
    for key in ("pattern", "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
                "minimum", "maximum", "format"):
        if key in node:
            out[key] = node[key]
    if t == "integer" and out.get("maximum") == fields.INT64_MAX:
        # the apiserver holds maximum as a float64, and 2^63-1 rounds up to 2^63, which it then
        # reads back as -2^63: every value would be refused. It refuses integers beyond int64
        # anyway (they do not decode as integers), so int64 says it.
        del out["maximum"]
        out["format"] = "int64"
    elif t == "integer" and out.get("maximum") == fields.INT32_MAX:
        out["format"] = "int32"
    for key in ("x-kubernetes-int-or-string", "x-kubernetes-validations"):
        if key in node:
            out[key] = node[key]
    if default is not None:
        out["default"] = default
    return out


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(mode="validation")
    return _structural(raw, raw.get("$defs", {}))


KINDS: list[dict[str, Any]] = [
    {"kind": "ModelRegistry", "plural": "modelregistries", "scope": "Namespaced", "short": ["mreg"],
     "spec": api.LocalRegistrySpec, "status": api.RegistryObjectStatus,
     "doc": f"A model registry ({api.join_words([v.title for v in api.VENDORS])}) that Models and ModelServices in this namespace publish to.",
     "columns": [("Backend", ".spec.backend"), ("Endpoint", ".spec.endpoint")]},
    {"kind": "ClusterModelRegistry", "plural": "clustermodelregistries", "scope": "Cluster", "short": ["cmreg"],
     "spec": api.ClusterRegistrySpec, "status": api.RegistryObjectStatus,
     "doc": "A model registry that Models and ModelServices in every namespace may publish to.",
     "columns": [("Backend", ".spec.backend"), ("Endpoint", ".spec.endpoint")]},
    {"kind": "Model", "plural": "models", "scope": "Namespaced", "short": ["mdl"],
     "spec": api.ModelSpec, "status": api.ResourceStatus,
     "doc": "An AI model kept in sync with one or more model registries.",
     "columns": "synced"},
    {"kind": "ModelService", "plural": "modelservices", "scope": "Namespaced", "short": ["msvc"],
     "spec": api.ModelServiceSpec, "status": api.ResourceStatus,
     "doc": "An inference service definition (how to run a model) kept in sync with model registries.",
     "columns": "synced"},
]

_SYNCED_COLUMNS = [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Synced", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Synced")].status'},
    {"name": "Registries", "type": "string", "jsonPath": ".spec.registries[*].name"},
    {"name": "External-ID", "type": "string", "jsonPath": ".status.registries[*].externalId"},
    {"name": "Reason", "type": "string", "priority": 1, "jsonPath": '.status.conditions[?(@.type=="Synced")].reason'},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def crd(entry: dict[str, Any]) -> dict[str, Any]:
    kind, plural = entry["kind"], entry["plural"]
    root: dict[str, Any] = {
        "type": "object",
        "description": entry["doc"],
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object: modelsync.io/v1alpha1."},
            "kind": {"type": "string", "description": f"Kind of this object: {kind}."},
            "metadata": {"type": "object"},
            "spec": schema_of(entry["spec"]),
            "status": schema_of(entry["status"]),
        },
    }
    status_kopf = root["properties"]["status"].get("properties", {}).get("kopf")
    if status_kopf is not None:
        status_kopf["x-kubernetes-preserve-unknown-fields"] = True
    if kind in api.ROOT_RULES:
        root.update(api.ROOT_RULES[kind])
    if entry["columns"] == "synced":
        columns = _SYNCED_COLUMNS
    else:
        columns = [{"name": n, "type": "string", "jsonPath": p} for n, p in entry["columns"]]
        columns.append({"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'})
        columns.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{api.GROUP}"},
        "spec": {
            "group": api.GROUP,
            "scope": entry["scope"],
            "names": {
                "kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower(),
                "shortNames": entry["short"], "categories": ["modelsync"],
            },
            "versions": [{
                "name": api.VERSION, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": root},
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
            }],
        },
    }


def render() -> dict[str, str]:
    """File name → YAML text for every CRD."""
    header = "# Generated by `python -m modelsync.crdgen crds/` from operator/modelsync/api.py. Do not edit.\n"
    return {
        f"{api.GROUP}_{e['plural']}.yaml": header + yaml.safe_dump(crd(e), sort_keys=False, width=120)
        for e in KINDS
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "crds")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (out / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
