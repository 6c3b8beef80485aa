"""The user-facing subcommands besides ``run``: ``validate`` (offline, with the models of
:mod:`modelsync.api`), ``status`` (a tree per resource, read from the current kubeconfig) and
``inventory`` (a registry's entries and the resource managing each).

Only the standard library, PyYAML, pydantic and :mod:`modelsync.api` are imported at module level: the
kubernetes client (and, for ``inventory``, the backends) are imported by the command that runs.
"""
from __future__ import annotations

import argparse
import functools
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping, TextIO

import pydantic
import yaml

from . import api, cel

#: kind -> (plural, namespaced, short name)
KINDS: dict[str, tuple[str, bool, str]] = {
    "Model": ("models", True, "mdl"),
    "ModelService": ("modelservices", True, "msvc"),
    "ModelRegistry": ("modelregistries", True, "mreg"),
    "ClusterModelRegistry": ("clustermodelregistries", False, "cmreg"),
}


# ====================================================================== validate


def add_validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filename", dest="files", action="extend", nargs="+", required=True, metavar="FILE",
                   help="manifest file (multi-document YAML or JSON), directory of them, or - for stdin; repeatable")


def _read(name: str, stdin: TextIO) -> Iterator[tuple[str, str]]:
    """(label, text) for a file, ``-``, or each *.yaml/*.yml/*.json in a directory (like kubectl -f)."""
    if name == "-":
        yield "<stdin>", stdin.read()
        return
    path = Path(name)
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.suffix in (".yaml", ".yml", ".json") and child.is_file():
                yield str(child), child.read_text()
        return
    yield name, path.read_text()


def _objects(docs: Iterable[Any]) -> Iterator[Any]:
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            yield from _objects(doc["items"])
        else:
            yield doc


def _problems(kind: str, obj: Mapping[str, Any]) -> list[str]:
    """``field: message`` for each problem the api models find in one ModelSync object."""
    out = []
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        out.append("metadata.name: required")
    version = str(obj.get("apiVersion", "")).partition("/")[2]
    if version != api.VERSION:
        out.append(f"apiVersion: {obj.get('apiVersion')!r} is not served; use {api.API_VERSION}")
    spec = obj.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        return out + [f"spec: must be an object, not {type(spec).__name__}"]
    try:
        api.parse_spec(kind, spec)
    except pydantic.ValidationError as exc:
        # describe_validation_error joins one "spec.field: message" clause per error with "; "
        out += re.split(r"; (?=spec[.\[:])", api.describe_validation_error(exc))
    # the CRD's CEL rules, as the apiserver names what they refuse: the field, then the message
    schema = _spec_schema(kind)
    for v in cel.check(schema, cel.with_defaults(schema, spec), "spec"):
        line = f"{v.field}: {v.message}"
        # the api models check some rules too: one line per problem, in the apiserver's words
        out = [p for p in out if not (p.startswith(f"{v.field}: ") and p.endswith(v.message))]
        out.append(line)
    return out


@functools.lru_cache(maxsize=None)
def _spec_schema(kind: str) -> dict[str, Any]:
    """The spec's schema as in the CRD, with its x-kubernetes-validations."""
    from .crdgen import schema_of

    return schema_of(api.SPEC_MODELS[kind])


def validate(files: list[str], *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr,
             stdin: TextIO = sys.stdin) -> int:
    """Print ``FILE: Kind/name: field: message`` per problem; 1 if there is any."""
    problems = checked = 0

    def problem(line: str) -> None:
        nonlocal problems
        problems += 1
        print(line, file=stdout)

    for name in files:
        try:
            sources = list(_read(name, stdin))
        except OSError as exc:
            problem(f"{name}: cannot read: {exc.strerror or exc}")
            continue
        for label, text in sources:
            try:
                objects = list(_objects(yaml.safe_load_all(text)))
            except yaml.YAMLError as exc:
                problem(f"{label}: not valid YAML: {' '.join(str(exc).split())}")
                continue
            for obj in objects:
                if not isinstance(obj, dict):
                    problem(f"{label}: not a Kubernetes object: {type(obj).__name__}")
                    continue
                kind = obj.get("kind")
                given = obj.get("metadata")
                meta: dict[str, Any] = given if isinstance(given, dict) else {}
                ref = f"{kind}/{meta.get('name') or meta.get('generateName') or '<no name>'}"
                group = str(obj.get("apiVersion", "")).partition("/")[0]
                if kind not in KINDS or group != api.GROUP:
                    print(f"{label}: {obj.get('apiVersion')} {ref}: skipped, not a ModelSync kind", file=stderr)
                    continue
                checked += 1
                for p in _problems(kind, obj):
                    problem(f"{label}: {ref}: {p}")
    print(f"{checked} ModelSync resource{'s' * (checked != 1)} checked, "
          f"{problems} problem{'s' * (problems != 1)}", file=stderr)
    return 1 if problems else 0


# ====================================================================== status


def add_status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", metavar="KIND[/NAME]",
                   help="e.g. model/llama, models, mdl/llama, clustermodelregistry/shared; default: every ModelSync kind")
    p.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")


def resolve_kind(word: str) -> str:
    """``models``, ``model``, ``mdl``, ``Model.modelsync.io`` … → ``Model``."""
    w = word.lower().removesuffix("." + api.GROUP)
    for kind, (plural, _, short) in KINDS.items():
        if w in (kind.lower(), plural, short):
            return kind
    raise ValueError(f"unknown kind {word!r}; one of: {', '.join(KINDS)} (or their plurals and short names)")


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def tree(obj: Mapping[str, Any]) -> list[str]:
    """The lines describing one resource: its conditions, then each status.registries[] entry."""
    kind, meta = obj.get("kind", "?"), obj.get("metadata") or {}
    status = obj.get("status") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    head = f"{kind} {where}{meta.get('name')}  generation {meta.get('generation', '-')}"
    observed = status.get("observedGeneration")
    if observed is not None:
        head += f", observed {observed}" + ("" if observed == meta.get("generation") else " (status is stale)")
    lines = [head]
    conditions = status.get("conditions") or []
    registries = status.get("registries")
    sections: list[tuple[str, list[list[str]]]] = []
    if conditions:
        width = max(len(c.get("type", "")) for c in conditions)
        sections.append(("Conditions", [[
            f"{c.get('type', '?'):<{width}}  {c.get('status', '?'):<7} {_cell(c.get('reason'))}"
            + (f": {_one_line(c['message'])}" if c.get("message") else "")
            + ("" if c.get("observedGeneration") in (None, meta.get("generation"))
               else f"  (generation {c['observedGeneration']})")]
            for c in conditions]))
    else:
        sections.append(("Conditions", [["none yet (is the operator running?)"]]))
    if registries is not None or kind in ("Model", "ModelService"):
        entries = []
        for r in registries or []:
            entry = [f"{r.get('kind', 'ModelRegistry')}/{r.get('name')}  backend={_cell(r.get('backend'))}  "
                     f"externalId={_cell(r.get('externalId'))}  synced={r.get('synced', False)}  "
                     f"reason={_cell(r.get('reason'))}  lastSyncTime={_cell(r.get('lastSyncTime'))}"]
            if r.get("message"):
                entry.append(_one_line(r["message"]))
            entries.append(entry)
        sections.append(("Registries", entries or [["none yet"]]))
    for i, (title, items) in enumerate(sections):
        last_section = i == len(sections) - 1
        lines.append(("└── " if last_section else "├── ") + title)
        pad = "    " if last_section else "│   "
        for j, item in enumerate(items):
            last_item = j == len(items) - 1
            lines.append(pad + ("└── " if last_item else "├── ") + item[0])
            for extra in item[1:]:
                lines.append(pad + ("    " if last_item else "│   ") + "    " + extra)
    return lines


def _client(kubeconfig: str | None, context: str | None) -> tuple[Any, str]:
    """An API client for the kubeconfig (in-cluster config when there is none) and its namespace."""
    import kubernetes

    try:
        contexts, active = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
        if context:
            active = next((c for c in contexts if c["name"] == context), None)
            if active is None:
                raise ValueError(f"no context {context!r} in the kubeconfig")
        namespace = (active.get("context") or {}).get("namespace") or "default"
        return kubernetes.config.new_client_from_config(config_file=kubeconfig, context=context), namespace
    except kubernetes.config.ConfigException:
        if kubeconfig:
            raise
        kubernetes.config.load_incluster_config()
        ns_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        return kubernetes.client.ApiClient(), ns_file.read_text().strip() if ns_file.exists() else "default"


def status(args: argparse.Namespace, *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    import kubernetes
    from kubernetes.client.rest import ApiException

    kind = name = None
    if args.target:
        word, _, name = args.target.partition("/")
        try:
            kind = resolve_kind(word)
        except ValueError as exc:
            print(f"error: {exc}", file=stderr)
            return 2
    try:
        client, default_ns = _client(args.kubeconfig, args.context)
    except Exception as exc:  # no kubeconfig, no such context, unreadable file
        print(f"error: no Kubernetes configuration: {exc}", file=stderr)
        return 2
    namespace = None if args.all_namespaces else (args.namespace or default_ns)
    custom = kubernetes.client.CustomObjectsApi(client)
    objects: list[Mapping[str, Any]] = []
    try:
        for k in [kind] if kind else list(KINDS):
            plural, namespaced, _ = KINDS[k]
            if name:
                if namespaced and namespace is None:
                    print("error: a namespaced resource by name needs -n NAMESPACE, not -A", file=stderr)
                    return 2
                objects.append(custom.get_namespaced_custom_object(api.GROUP, api.VERSION, namespace, plural, name)
                               if namespaced else custom.get_cluster_custom_object(api.GROUP, api.VERSION, plural, name))
            elif namespaced and namespace is not None:
                objects += custom.list_namespaced_custom_object(api.GROUP, api.VERSION, namespace, plural)["items"]
            else:
                objects += custom.list_cluster_custom_object(api.GROUP, api.VERSION, plural)["items"]
    except ApiException as exc:
        what = f"{kind} {name}" if name else "ModelSync resources"
        reason = "not found" if exc.status == 404 else f"{exc.status} {exc.reason}"
        print(f"error: {what}: {reason}", file=stderr)
        return 1
    finally:
        client.close()
    if not objects:
        print(f"No ModelSync resources found{'' if namespace is None else f' in namespace {namespace}'}.", file=stderr)
        return 0
    blocks = ["\n".join(tree(o)) for o in objects]
    print("\n\n".join(blocks), file=stdout)
    return 0


# ====================================================================== inventory


def add_inventory_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("registry", metavar="REGISTRY",
                   help="name of the ModelRegistry (in the namespace) or, with --cluster, of the ClusterModelRegistry")
    p.add_argument("-n", "--namespace", help="namespace of the ModelRegistry (default: the kubeconfig context's)")
    p.add_argument("--cluster", action="store_true", help="REGISTRY is a ClusterModelRegistry")
    p.add_argument("-o", "--output", choices=("wide", "json"), default=None,
                   help="wide: also the marker found and notes; json: one object with every entry")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")


def _records(objects: Iterable[Mapping[str, Any]], reg_kind: str, reg_name: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, externalId) → the resource recording it in status.registries[] for this registry."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for obj in objects:
        meta = obj.get("metadata") or {}
        for r in (obj.get("status") or {}).get("registries") or []:
            if r.get("externalId") and r.get("name") == reg_name and r.get("kind", "ModelRegistry") == reg_kind:
                out[(str(obj.get("kind")), str(r["externalId"]))] = {
                    "resource": f"{meta.get('namespace')}/{meta.get('name')}", "adopted": bool(r.get("adopted")),
                    "via": f"{reg_kind}/{reg_name}"}
    return out


def classify_entries(entries: Iterable[Any], objects: Iterable[Mapping[str, Any]], *, reg_kind: str, reg_name: str,
                     lookup: Any = None) -> list[dict[str, Any]]:
    """Each registry entry with its state: ``managed`` (a resource's status.registries[] records its
    id, adopted ones included), ``orphaned`` (its owner marker names a resource that is gone, or that
    records another entry) or ``unmanaged`` (no marker, recorded by no resource).

    ``objects`` are the Models and ModelServices that may use the registry; ``lookup(kind, ns, name)``
    returns a resource outside them, or None when it does not exist (the marker may name any namespace).
    """
    objects = list(objects)
    records = _records(objects, reg_kind, reg_name)
    by_name: dict[tuple[str, str], Mapping[str, Any] | None] = {
        (str(o.get("kind")), f"{(o.get('metadata') or {}).get('namespace')}/{(o.get('metadata') or {}).get('name')}"): o
        for o in objects}
    rows = []
    for e in entries:
        row: dict[str, Any] = {"id": e.external_id, "name": e.name, "kind": e.kind, "owner": e.owner,
                               "marker": e.marker, "resource": None, "adopted": False, "gone": False, "note": None}
        recorded = records.get((e.kind, e.external_id))
        if recorded:
            row.update(state="managed", resource=recorded["resource"], adopted=recorded["adopted"])
            if recorded["adopted"]:
                row["note"] = "adopted (spec.registries[].externalId)"
            if e.owner and e.owner != recorded["resource"]:
                row["note"] = "; ".join(filter(None, [row["note"], f"its marker names {e.owner}"]))
        elif e.owner:
            key = (e.kind, e.owner)
            if key not in by_name:
                ns, _, name = e.owner.partition("/")
                by_name[key] = lookup(e.kind, ns, name) if lookup and ns and name else None
            obj = by_name[key]
            via = None
            if obj is not None:  # a resource on another registry of the same server records it
                for r in (obj.get("status") or {}).get("registries") or []:
                    if r.get("externalId") == e.external_id:
                        via = f"{r.get('kind', 'ModelRegistry')}/{r.get('name')}"
            if via:
                row.update(state="managed", resource=e.owner, note=f"recorded through {via}")
            elif obj is None:
                row.update(state="orphaned", resource=e.owner, gone=True, note=f"{e.owner} is gone")
            else:
                row.update(state="orphaned", resource=e.owner,
                           note=f"{e.owner} exists but does not record this entry (recreated, or not synced yet)")
        elif e.marker:
            row.update(state="orphaned", note=f"marker {e.marker} names no resource")
        else:
            row.update(state="unmanaged")
        rows.append(row)
    rows.sort(key=lambda r: (r["kind"], r["name"], r["id"]))
    return rows


def _resource_cell(row: Mapping[str, Any]) -> str:
    if row["resource"] is None:
        return "-"
    if row["state"] == "orphaned":
        return f"{row['resource']} ({'gone' if row['gone'] else 'does not record it'})"
    return str(row["resource"])


def inventory_table(rows: list[dict[str, Any]], *, wide: bool = False) -> list[str]:
    header = ["ID", "NAME", "KIND", "STATE", "RESOURCE"] + (["MARKER", "NOTE"] if wide else [])
    table = [header] + [
        [r["id"], _cell(r["name"]), r["kind"], r["state"], _resource_cell(r)]
        + ([_cell(r["marker"]), _cell(r["note"])] if wide else [])
        for r in rows]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    return ["   ".join(f"{c:<{w}}" for c, w in zip(line, widths)).rstrip() for line in table]


async def _list_registry(client: Any, ref: api.RegistryRef, namespace: str) -> tuple[Any, list[Any]]:
    from .backends import make_backend
    from .kube import KubeReader
    from .connections import BackendPool

    conn, _ = await BackendPool(KubeReader(client)).connection(ref, namespace)
    backend = make_backend(conn)
    try:
        return conn, await backend.list_entries()
    finally:
        await backend.aclose()


def inventory(args: argparse.Namespace, *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> int:
    """List a registry's entries and the resource managing each (from the owner markers the
    backends write and the resources' status.registries[])."""
    import asyncio
    import json

    import kubernetes
    from kubernetes.client.rest import ApiException

    from .backends.base import BackendError
    from .redact import scrub

    try:
        client, default_ns = _client(args.kubeconfig, args.context)
    except Exception as exc:  # no kubeconfig, no such context, unreadable file
        print(f"error: no Kubernetes configuration: {exc}", file=stderr)
        return 2
    kind: Literal["ModelRegistry", "ClusterModelRegistry"] = "ClusterModelRegistry" if args.cluster else "ModelRegistry"
    namespace = args.namespace or default_ns
    where = args.registry if args.cluster else f"{namespace}/{args.registry}"
    custom = kubernetes.client.CustomObjectsApi(client)
    try:
        try:
            ref = api.RegistryRef(name=args.registry, kind=kind)
        except pydantic.ValidationError:
            print(f"error: {args.registry!r} is not a valid registry name", file=stderr)
            return 2
        try:
            conn, entries = asyncio.run(_list_registry(client, ref, namespace))
        except BackendError as exc:
            print(f"error: {kind} {where}: {scrub(exc.message)}", file=stderr)
            return 1
        except ApiException as exc:
            print(f"error: reading {kind} {where}: {exc.status} {exc.reason}", file=stderr)
            return 1

        def lookup(k: str, ns: str, name: str) -> Mapping[str, Any] | None:
            try:
                obj: Mapping[str, Any] = custom.get_namespaced_custom_object(
                    api.GROUP, api.VERSION, ns, KINDS[k][0], name)
                return obj
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        objects: list[Mapping[str, Any]] = []
        try:
            for k in ("Model", "ModelService"):
                plural = KINDS[k][0]
                if args.cluster:
                    items = custom.list_cluster_custom_object(api.GROUP, api.VERSION, plural)["items"]
                else:
                    items = custom.list_namespaced_custom_object(api.GROUP, api.VERSION, namespace, plural)["items"]
                objects += [{**o, "kind": k} for o in items]
            rows = classify_entries(entries, objects, reg_kind=kind, reg_name=args.registry, lookup=lookup)
        except ApiException as exc:
            print(f"error: reading Models and ModelServices: {exc.status} {exc.reason}", file=stderr)
            return 1
    finally:
        client.close()
    if args.output == "json":
        doc = {"registry": {"kind": kind, "name": args.registry, "namespace": None if args.cluster else namespace,
                            "backend": conn.backend},
               "entries": [{"id": r["id"], "name": r["name"], "kind": r["kind"], "state": r["state"],
                            "resource": r["resource"], "owner": r["owner"], "marker": r["marker"],
                            "adopted": r["adopted"], "gone": r["gone"], "note": r["note"]} for r in rows]}
        print(json.dumps(doc, indent=2), file=stdout)
    elif rows:
        print("\n".join(inventory_table(rows, wide=args.output == "wide")), file=stdout)
    counts = {s: sum(r["state"] == s for r in rows) for s in ("managed", "orphaned", "unmanaged")}
    print(f"{kind} {where} ({conn.backend}): {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}: "
          + ", ".join(f"{n} {s}" for s, n in counts.items()), file=stderr)
    return 0
