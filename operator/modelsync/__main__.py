"""``modelsync``: run the operator (default), check manifests, show status, or run a registry simulator.

    modelsync [run] [--namespace NS ...] [--selector L] [--leader-election [--node-name N]] [--metrics-addr :9090]
              [--liveness URL] [--log-format plain|json] [--verbose]
                                                         the operator, on the current kubeconfig
    modelsync validate -f FILE [-f FILE ...]             offline check of ModelSync manifests (- for stdin)
    modelsync status [-n NS | -A] [KIND[/NAME]]          conditions and registries of each resource, as a tree
    modelsync inventory REGISTRY [-n NS | --cluster]     a registry's entries: managed, unmanaged or orphaned
    modelsync simulate VENDOR --port N                   a local registry simulator (modelsync[testing])
    modelsync crds [DIR]                                 write the CRD manifests
    modelsync --version

Subcommands import what they need when they run: ``--help``, ``validate`` and ``status``
load neither kopf nor the simulators nor :mod:`modelsync.testing`.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from . import version
from .vendors import VENDORS  # the simulators `modelsync simulate` knows: one per vendor


#: plain log lines: UTC time (ISO 8601, milliseconds), level, logger, message
PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class PlainFormatter(logging.Formatter):
    converter = time.gmtime  # type: ignore[assignment]  # typeshed: (float | None) -> struct_time; gmtime takes that
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)


def configure_logging(log_format: str, *, verbose: bool = False, debug: bool = False) -> None:
    """kopf's logging set-up (levels, its handler on the root logger), then this format: ``json``
    is kopf's JSON (with ``timestamp`` and ``severity``), ``plain`` is :data:`PLAIN_FORMAT`."""
    import kopf

    if log_format == "json":
        kopf.configure(verbose=verbose, debug=debug, log_format=kopf.LogFormat.JSON)
        return
    kopf.configure(verbose=verbose, debug=debug, log_format=kopf.LogFormat.PLAIN)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(PlainFormatter())


def _run(args: argparse.Namespace) -> int:
    import asyncio

    import kopf

    from . import handlers  # noqa: F401  (registers the handlers)

    if args.metrics_addr:
        from .metrics import parse_addr

        try:
            parse_addr(args.metrics_addr)
        except ValueError as exc:
            print(f"modelsync: --metrics-addr: {exc}", file=sys.stderr)
            return 2
    configure_logging(args.log_format, verbose=args.verbose, debug=args.debug)
    stop_flag = asyncio.Event()  # set when leadership is lost: the process stops, and restarts as a standby
    memo = kopf.Memo(options=args, stop_flag=stop_flag)
    kopf.run(
        clusterwide=not args.namespace, namespaces=args.namespace or (), standalone=True,
        liveness_endpoint=args.liveness, memo=memo, stop_flag=stop_flag,
    )
    if memo.get("leadership_lost"):
        print(f"modelsync: stopped: {memo.leadership_lost}", file=sys.stderr)
        return 1
    return 0


def _simulate(args: argparse.Namespace) -> int:
    try:
        from .simulators import simulator_module
        from .simulators.server import serve_forever

        mod = simulator_module(args.vendor)
    except ImportError as exc:
        print(f"modelsync simulate needs the simulators' dependencies ({exc.name or exc}): "
              "pip install 'modelsync[testing]'", file=sys.stderr)
        return 2
    vp = argparse.ArgumentParser(prog=f"modelsync simulate {args.vendor}", description=f"the {args.vendor} simulator")
    mod.add_arguments(vp)
    sim_args = vp.parse_args(args.args)
    app = mod.app_from_args(sim_args)
    url = f"http://{sim_args.host}:{sim_args.port}"
    print(mod.banner(app, url), flush=True)
    serve_forever(app, sim_args.host, sim_args.port)
    return 0


def _crds(args: argparse.Namespace) -> int:
    from . import crdgen

    return crdgen.main([args.dir])


def _validate(args: argparse.Namespace) -> int:
    from . import cli

    return cli.validate(args.files)


def _status(args: argparse.Namespace) -> int:
    from . import cli

    return cli.status(args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modelsync", description="Keep Model and ModelService resources in sync with AI model registries.")
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = p.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the operator (the default)")
    for target in (p, run):
        target.add_argument("-n", "--namespace", action="append", default=[], help="watch only this namespace (repeatable); default: all")
        target.add_argument("-v", "--verbose", action="store_true", help="log more")
        target.add_argument("--debug", action="store_true", help="log everything")
        target.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
        target.add_argument("-l", "--selector", default=None,
                            help="only Models, ModelServices and registries with these labels (a label selector, "
                            "e.g. shard=a): one shard of several; give each shard its own --lease-name")
        target.add_argument("--leader-election", action=argparse.BooleanOptionalAction, default=False,
                            help="run as one of several replicas: only the holder of the Lease reconciles, the "
                            "others watch and wait (default: off; deploy/ turns it on)")
        target.add_argument("--lease-name", default="modelsync", help="the Lease's name (default: modelsync)")
        target.add_argument("--node-name", default=os.environ.get("NODE_NAME") or None,
                            help="the Node this replica runs on (default: $NODE_NAME, which deploy/ sets from "
                            "spec.nodeName): with --leader-election the leader hands the Lease over while that "
                            "Node is unschedulable (cordoned, drained), and no replica takes it there; unset: "
                            "no Node is read")
        target.add_argument("--lease-namespace", default=None,
                            help="the Lease's namespace (default: $POD_NAMESPACE, else the pod's own namespace, "
                            "else the current kubeconfig context's, else default)")
        target.add_argument("--default-deletion-policy", choices=("Delete", "Orphan"),
                            default=os.environ.get("MODELSYNC_DEFAULT_DELETION_POLICY", "Delete"),
                            help="what deleting a resource does to its registry entries when its spec.deletionPolicy "
                                 "is unset (default: Delete)")
        target.add_argument("--metrics-addr", default=":9090",
                            help="serve /metrics, /readyz and /leader on HOST:PORT (default :9090, every "
                            "interface; empty: none)")
        target.add_argument("--log-format", choices=("plain", "json"), default="plain",
                            help="plain: timestamped lines (default); json: one JSON object per line")
    from . import cli

    validate = sub.add_parser("validate", help="check ModelSync manifests offline, naming each bad field",
                              description="Check ModelRegistry, ClusterModelRegistry, Model and ModelService "
                              "manifests against the resources' schema without a cluster. Prints "
                              "FILE: Kind/name: field: message per problem and exits 1 if there is any; "
                              "other kinds are skipped. Cross-field rules (CEL) are checked by the "
                              "apiserver only: kubectl apply --dry-run=server.")
    cli.add_validate_arguments(validate)
    status = sub.add_parser("status", help="show resources' conditions and registry entries as a tree",
                            description="For each ModelSync resource: its conditions, then each "
                            "status.registries[] entry. Reads from the current kubeconfig.")
    cli.add_status_arguments(status)
    inventory = sub.add_parser("inventory", help="list a registry's entries and the resource managing each",
                               description="List the models (and model services, where the registry has them) a registry holds, "
                               "with the Model or ModelService managing each, or unmanaged, or orphaned "
                               "(its owner marker names a resource that is gone). Reads from the current kubeconfig.")
    cli.add_inventory_arguments(inventory)
    inventory.set_defaults(handler=cli.inventory)
    sim = sub.add_parser("simulate", help="run a registry simulator (needs modelsync[testing])",
                         description="modelsync simulate VENDOR --help lists the vendor's options.")
    sim.add_argument("vendor", choices=VENDORS)
    sim.add_argument("args", nargs=argparse.REMAINDER, help="the simulator's options (--port, --latency, ...)")
    crds = sub.add_parser("crds", help="write the CRD manifests")
    crds.add_argument("dir", nargs="?", default="crds")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "crds":
        return _crds(args)
    if args.command == "validate":
        return _validate(args)
    if args.command == "status":
        return _status(args)
    if args.command == "inventory":
        return int(args.handler(args))
    return _run(args)


if __name__ == "__main__":
    raise SystemExit(main())
