"""The `pullsync` command line: `pullsync run` starts the operator."""

import argparse
import logging
import os
import sys
from pathlib import Path

from pullsync import __version__, config


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
