"""The `pullsync` command line: `pullsync run` starts the operator; `pullsync build`
shows what a Sync of a directory would apply, through the operator's own render code;
`pullsync health` the health of objects in a file, through its own health rules."""

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from pullsync import __version__, api, kube
from pullsync.health import status as kstatus
from pullsync.render import build, documents, kubeyaml, trees
from pullsync.render.documents import Limits
from pullsync.runtime import config, leader
from pullsync.sync import inventory
from pullsync.web import endpoints

IDENTITY = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"  # this process, for Leases and Kopf
REMOTE_HELP = "let kustomizations use remote bases and resources (network access while rendering)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pullsync", description="A pull-based GitOps operator for Kubernetes.")
    p.add_argument("--version", action="version", version=f"pullsync {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator against the current kubeconfig or in-cluster config")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace, or namespaces matching a glob such as 'team-*' (repeatable)",
    )
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
    run.add_argument("--max-concurrency", type=int, default=16, help="concurrent API requests per Sync [16]")
    run.add_argument("--api-qps", type=float, default=1000.0, help="client-side API request rate [1000/s]")
    run.add_argument("--api-burst", type=int, default=2000, help="client-side API burst [2000]")
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
    tenancy.add_argument("--allow-remote-bases", action="store_true", help=REMOTE_HELP)
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
        "--render-timeout", type=float, default=defaults.render_seconds, help="seconds per kustomize or helm run"
    )
    limits.add_argument(
        "--render-memory", type=int, default=defaults.render_memory, help="bytes of memory per kustomize or helm run"
    )
    limits.add_argument(
        "--max-fetch-bytes", type=int, default=config.Config().max_fetch_bytes, help="bytes received per git fetch"
    )
    ha = run.add_argument_group("high availability")
    ha.add_argument(
        "--leader-elect", action="store_true", help="reconcile only while holding a Lease (for replicas > 1)"
    )
    ha.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease (default: $POD_NAMESPACE or default)",
    )
    ha.add_argument("--leader-election-id", help="name of the Lease [pullsync, or pullsync-SHARD with --shard]")
    ha.add_argument(
        "--shard",
        metavar="NAME",
        help="reconcile only GitRepositories and Syncs labelled pullsync.dev/shard=NAME "
        "(default: only those without that label)",
    )
    ha.add_argument("--lease-duration", type=float, default=15.0, help="seconds a leader may go without renewing [15]")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    build = sub.add_parser(
        "build",
        help="print the objects a Sync of a directory would apply (no cluster needed)",
        description="Print the objects a Sync whose spec.path is PATH would apply, rendered by the operator's "
        "own code: YAML read as kubectl reads it, the .sourceignore files of the repository and the Sync's "
        "path honoured, and pullsync's owner labels (pullsync.dev/name, pullsync.dev/namespace) added. "
        "A kustomization at PATH is built with kustomize and a Chart.yaml templated with helm, in the operator's "
        "sandbox. Namespaced objects that set no namespace get the Sync's targetNamespace only when applied. "
        "Errors are reported as the Sync reports them (file and document), with exit code 1.",
    )
    build.add_argument("path", metavar="PATH", type=Path, help="the directory (in a checkout, or anywhere)")
    build.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="yaml documents or a JSON List")
    build.add_argument("--sync", default="build", help="the Sync's name, for the owner labels [build]")
    build.add_argument("-n", "--namespace", default="default", help="the Sync's namespace, for the owner labels")
    build.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="PATTERN",
        help="also ignore files matching PATTERN, as the GitRepository's spec.ignore does (repeatable)",
    )
    build.add_argument(
        "--helm-values",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="for a chart: a values file in the same repository, as in spec.helm.valuesFiles (repeatable)",
    )
    build.add_argument("--allow-remote-bases", action="store_true", help=REMOTE_HELP)
    health = sub.add_parser(
        "health",
        help="the kstatus health of objects in a file (no cluster needed)",
        description="Print the health of each object in FILE (YAML documents, a JSON object or a List, as "
        "`kubectl get -o yaml|json` writes them), computed by the operator's own rules: Current, InProgress, "
        "Failed, Terminating, NotFound or Unknown, with why. Exit code 0 when every object is Current, 1 "
        "otherwise, 2 when FILE cannot be read.",
    )
    health.add_argument("-f", "--filename", required=True, type=Path, metavar="FILE", help="the objects ('-': stdin)")
    health.add_argument("-o", "--output", choices=("table", "json"), default="table", help="a table, or JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "build":
        return print_build(args)
    if args.command == "health":
        return print_health(args.filename, args.output)
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
        api_qps=args.api_qps,
        api_burst=args.api_burst,
        allow_cross_namespace_refs=args.allow_cross_namespace_refs,
        allow_insecure_http=args.allow_insecure_http,
        allow_local_urls=args.allow_local_urls,
        allow_remote_bases=args.allow_remote_bases,
        default_service_account=args.default_service_account,
        limits=Limits(
            file_bytes=args.max_file_bytes,
            total_bytes=args.max_total_bytes,
            objects=args.max_objects,
            aliases=args.max_yaml_aliases,
            depth=args.max_yaml_depth,
            nodes=args.max_yaml_nodes,
            render_seconds=args.render_timeout,
            render_memory=args.render_memory,
        ),
        max_fetch_bytes=args.max_fetch_bytes,
        leader_elect=args.leader_elect,
        leader_election_namespace=args.leader_election_namespace,
        leader_election_id=args.leader_election_id or ("pullsync-" + args.shard if args.shard else "pullsync"),
        shard=args.shard,
        lease_duration=args.lease_duration,
    )
    return run(cfg)


def print_build(args: argparse.Namespace) -> int:
    """Print what a Sync of `args.path` would apply; 1 with the Sync's message if it cannot."""
    directory = args.path.resolve()
    if not directory.is_dir():
        print(f"pullsync build: {args.path} is not a directory", file=sys.stderr)
        return 2
    root = next((d for d in (directory, *directory.parents) if (d / ".git").exists()), directory)
    values = tuple(os.path.relpath(f.resolve(), directory) for f in args.helm_values)
    try:
        docs = build.render(
            trees.DirTree(root),
            str(directory.relative_to(root)),
            sync_name=args.sync,
            sync_namespace=args.namespace,
            ignore_rules="\n".join(args.ignore) or None,
            helm_spec=api.HelmSpec(values_files=values) if values else None,
            allow_remote_bases=args.allow_remote_bases,
        )
    except (documents.RenderError, OSError) as e:
        print(f"pullsync build: {e}", file=sys.stderr)
        return 1
    objects = [d.obj for d in docs]
    if args.output == "json":
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2))
    else:
        sys.stdout.write(kubeyaml.dump(objects))
    return 0


def print_health(path: Path, output: str) -> int:
    """Print the health of every object in the file `path`."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        objects = [o for _, value in kubeyaml.documents(text) for o in _items(value)]
    except (OSError, kubeyaml.ReadError) as e:
        print(f"pullsync health: {path}: {e}", file=sys.stderr)
        return 2
    rows = []
    for obj in objects:
        health = kstatus.of(obj)
        rows.append({"id": inventory.Entry.of(obj).id, "status": health.status, "message": health.message})
    if output == "json":
        print(json.dumps(rows, indent=2))
    else:
        width = max([len(r["id"]) for r in rows] + [2])
        print(f"{'ID':<{width}}  {'STATUS':<11}  MESSAGE")
        for r in rows:
            print(f"{r['id']:<{width}}  {r['status']:<11}  {r['message']}")
    return 0 if all(r["status"] == kstatus.CURRENT for r in rows) else 1


def _items(value: Any) -> list[dict[str, Any]]:
    """The objects of one document: itself, or a List's items."""
    if isinstance(value, dict) and isinstance(value.get("items"), list) and str(value.get("kind", "")).endswith("List"):
        return [i for i in value["items"] if isinstance(i, dict)]
    return [value] if isinstance(value, dict) and value.get("kind") else []


def run(cfg: config.Config) -> int:
    """Run the operator until SIGTERM/SIGINT (0) or until it loses the leadership (1)."""
    return asyncio.run(_run(cfg))


async def _run(cfg: config.Config) -> int:
    import kopf

    from pullsync import handlers  # noqa: F401 - registers the handlers

    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("kopf").setLevel(logging.WARNING)  # Kopf's per-handler chatter
    ready = asyncio.Event()
    servers = endpoints.Servers()
    await servers.start((cfg.health_addr, endpoints.health_app(ready)), (cfg.metrics_addr, endpoints.metrics_app()))
    election: leader.Election | None = None
    keeper: asyncio.Task[None] | None = None
    try:
        if cfg.leader_elect:
            election = await _campaign(cfg)
            if election is None:
                return 0  # stopped while waiting
            keeper = asyncio.create_task(election.keep())
        clusterwide, namespaces = config.kopf_scope(cfg.namespaces)
        await kopf.operator(
            standalone=True,
            identity=IDENTITY,  # type: ignore[arg-type]  # a str; Kopf guesses from /etc/passwd, which lacks OpenShift UIDs
            clusterwide=clusterwide,
            namespaces=namespaces,
            memo=kopf.Memo(config=cfg, ready=ready, fence=election.leading if election else None),
            stop_flag=election.lost if election else None,
        )
        return 1 if election and election.lost.is_set() else 0
    finally:
        if election is not None:
            if keeper is not None:
                keeper.cancel()
            await election.release()
            await election.client.close()
        await servers.stop()


async def _campaign(cfg: config.Config) -> leader.Election | None:
    """Wait for the Lease (or a stop signal, then None)."""
    client = await kube.Client.connect(cfg.kubeconfig)
    election = leader.Election(
        client,
        namespace=cfg.leader_election_namespace,
        name=cfg.leader_election_id,
        identity=IDENTITY,
        duration=cfg.lease_duration,
        renew=cfg.lease_duration / 3,
        retry=max(0.5, cfg.lease_duration / 7),
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    acquired = asyncio.create_task(election.acquire())
    stopped = asyncio.create_task(stopping.wait())
    await asyncio.wait({acquired, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)  # from here on Kopf handles them
    stopped.cancel()
    if not acquired.done():
        acquired.cancel()
        await client.close()
        return None
    acquired.result()
    return election
