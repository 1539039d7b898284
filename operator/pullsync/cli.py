"""The `pullsync` command line: `pullsync run` starts the operator."""

import argparse
import logging
import os
import sys
from pathlib import Path

from pullsync import __version__, config
from pullsync.render import Limits


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pullsync", description="A pull-based GitOps operator for Kubernetes.")
    p.add_argument("--version", action="version", version=f"pullsync {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster config")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch all namespaces (the default)")
    run.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG"), help="kubeconfig file (default: $KUBECONFIG)"
    )
    run.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("PULLSYNC_CACHE_DIR") or Path.home() / ".cache" / "pullsync" / "git"),
        help="where bare git repositories are cached (default: ~/.cache/pullsync/git)",
    )
    run.add_argument("--webhook-addr", default="0.0.0.0:9292", help="webhook receiver address [0.0.0.0:9292]")
    run.add_argument("--metrics-addr", default="0.0.0.0:8080", help="Prometheus /metrics address [0.0.0.0:8080]")
    run.add_argument("--health-addr", default="0.0.0.0:8081", help="/healthz and /readyz address [0.0.0.0:8081]")
    run.add_argument("--max-concurrency", type=int, default=16, help="concurrent API writes per Sync [16]")
    tenancy = run.add_argument_group("tenancy and URL policy")
    tenancy.add_argument(
        "--default-service-account",
        metavar="NAME",
        help="impersonate this ServiceAccount (in the Sync's namespace) for Syncs that name none",
    )
    tenancy.add_argument(
        "--allow-cross-namespace-refs", action="store_true", help="let a Sync use a GitRepository of another namespace"
    )
    tenancy.add_argument("--allow-insecure-http", action="store_true", help="allow http:// git URLs")
    tenancy.add_argument(
        "--allow-local-urls", action="store_true", help="allow git hosts on loopback or the cluster's API address"
    )
    defaults = config.Config().limits
    limits = run.add_argument_group("limits (per Sync; exceeding one fails only that Sync)")
    limits.add_argument("--max-file-bytes", type=int, default=defaults.file_bytes, help="bytes per manifest file")
    limits.add_argument("--max-total-bytes", type=int, default=defaults.total_bytes, help="bytes of manifests")
    limits.add_argument("--max-objects", type=int, default=defaults.objects, help="objects")
    limits.add_argument("--max-yaml-aliases", type=int, default=defaults.aliases, help="YAML aliases per file")
    limits.add_argument("--max-yaml-depth", type=int, default=defaults.depth, help="YAML nesting depth")
    limits.add_argument(
        "--max-yaml-nodes", type=int, default=defaults.nodes, help="YAML nodes per document after alias expansion"
    )
    limits.add_argument(
        "--max-fetch-bytes", type=int, default=config.Config().max_fetch_bytes, help="bytes received per git fetch"
    )
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for addr in (args.webhook_addr, args.metrics_addr, args.health_addr):
        try:
            config.split_addr(addr)
        except ValueError as e:
            print(f"pullsync: {e}", file=sys.stderr)
            return 2
    cfg = config.Config(
        namespaces=tuple(args.namespace),
        kubeconfig=args.kubeconfig,
        cache_dir=args.cache_dir,
        webhook_addr=args.webhook_addr,
        metrics_addr=args.metrics_addr,
        health_addr=args.health_addr,
        max_concurrency=args.max_concurrency,
        allow_cross_namespace_refs=args.allow_cross_namespace_refs,
        allow_insecure_http=args.allow_insecure_http,
        allow_local_urls=args.allow_local_urls,
        default_service_account=args.default_service_account,
        limits=Limits(
            file_bytes=args.max_file_bytes,
            total_bytes=args.max_total_bytes,
            objects=args.max_objects,
            aliases=args.max_yaml_aliases,
            depth=args.max_yaml_depth,
            nodes=args.max_yaml_nodes,
        ),
        max_fetch_bytes=args.max_fetch_bytes,
    )
    return run(cfg)


def run(cfg: config.Config) -> int:
    """Run the Kopf operator until SIGTERM/SIGINT; 0 on a clean stop."""
    import kopf

    from pullsync import handlers  # noqa: F401 - registers the handlers

    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("kopf").setLevel(logging.WARNING)  # Kopf's per-handler chatter
    kopf.run(
        standalone=True,
        clusterwide=not cfg.namespaces,
        namespaces=list(cfg.namespaces),
        memo=kopf.Memo(config=cfg),
    )
    return 0
