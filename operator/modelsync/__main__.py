"""``modelsync``: run the operator (default) or a registry simulator.

    modelsync [run] [--namespace NS ...] [--verbose]   the operator, on the current kubeconfig
    modelsync simulate zstack|nemo|instill --port N    a local registry simulator
    modelsync crds [DIR]                               write the CRD manifests
"""
from __future__ import annotations

import argparse
import sys


def _run(args: argparse.Namespace) -> int:
    import kopf

    from . import handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=args.verbose, debug=args.debug, log_format=kopf.LogFormat.PLAIN)
    kopf.run(
        clusterwide=not args.namespace, namespaces=args.namespace or (), standalone=True,
        liveness_endpoint=args.liveness,
    )
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .simulators import simulator_module
    from .simulators.server import serve_forever

    mod = simulator_module(args.vendor)
    app = mod.app_from_args(args)
    url = f"http://{args.host}:{args.port}"
    print(mod.banner(app, url), flush=True)
    serve_forever(app, args.host, args.port)
    return 0


def _crds(args: argparse.Namespace) -> int:
    from . import crdgen

    return crdgen.main([args.dir])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modelsync", description="Keep Model and ModelService resources in sync with AI model registries.")
    sub = p.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the operator (the default)")
    for target in (p, run):
        target.add_argument("-n", "--namespace", action="append", default=[], help="watch only this namespace (repeatable); default: all")
        target.add_argument("-v", "--verbose", action="store_true", help="log more")
        target.add_argument("--debug", action="store_true", help="log everything")
        target.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    sim = sub.add_parser("simulate", help="run a registry simulator")
    vendors = sim.add_subparsers(dest="vendor", required=True)
    from .simulators import SIMULATORS, simulator_module

    for name in SIMULATORS:
        try:
            mod = simulator_module(name)
        except ImportError:
            continue
        vp = vendors.add_parser(name, help=f"the {name} simulator")
        mod.add_arguments(vp)
    crds = sub.add_parser("crds", help="write the CRD manifests")
    crds.add_argument("dir", nargs="?", default="crds")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "crds":
        return _crds(args)
    return _run(args)


if __name__ == "__main__":
    raise SystemExit(main())
