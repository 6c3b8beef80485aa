"""The user-facing subcommands besides ``run``: ``validate`` (offline, with the models of
:mod:`modelsync.api`) and ``status`` (a tree per resource, read from the current kubeconfig).

Only the standard library, PyYAML, pydantic and :mod:`modelsync.api` are imported at module level: the
kubernetes client is imported by ``status`` when it runs.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, TextIO

import pydantic
import yaml

from . import api

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
    return out


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
                meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
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
