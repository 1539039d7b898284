"""`pullsync run`: the operator itself, against the current kubeconfig or the pod's
ServiceAccount, until SIGTERM/SIGINT or (with leader election) until it loses the Lease.

The only module of the command line that imports Kopf (and the handlers), and only when
the operator starts: the other commands never load it.
"""

import argparse
import asyncio
import asyncio.sslproto
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from pullsync import kube
from pullsync.cli import local
from pullsync.kube import kubeconfig
from pullsync.render.documents import Limits
from pullsync.runtime import config, leader
from pullsync.web import endpoints, webhook

IDENTITY = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"  # this process, for Leases and Kopf
# asyncio gives each TLS connection a read buffer of this size, allocated and zeroed when
# it opens (256 KiB by default). The request pool and a watch per kind hold ~80 of them:
# 20 MB of a fleet's peak RSS at the default. A TLS record is 16 KiB at most.
TLS_READ_BUFFER = 32 * 1024
# Kopf stopped on an error: start it again after 2, 4, 8... seconds, at most this; a run
# that lasted RESTART_RESET seconds counts as a success (the next failure waits 2 s again).
RESTART_MAX_DELAY = 30.0
RESTART_RESET = 60.0
log = logging.getLogger("pullsync")


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """`pullsync run` and its flags."""
    run = sub.add_parser(
        "run",
        help="run the operator against the current kubeconfig or in-cluster config",
        description="Run the operator: reconcile the GitRepositories, Syncs and Previews of the watched namespaces "
        "(of this shard) until SIGTERM or SIGINT, serving webhooks, /metrics, /healthz and /readyz.",
        epilog="exit codes:\n  0  stopped (SIGTERM, SIGINT)\n  1  lost its leader Lease (--leader-elect)\n"
        "  2  a bad flag, an address it cannot listen on, no usable kubeconfig (said before anything starts), "
        "or a Lease it may not use (forbidden, no such namespace)",
    )
    run.set_defaults(handler=main)
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
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else the pod's ServiceAccount)",
    )
    run.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("PULLSYNC_CACHE_DIR") or Path.home() / ".cache" / "pullsync" / "git"),
        help="where bare git repositories are cached (default: $PULLSYNC_CACHE_DIR, else ~/.cache/pullsync/git)",
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
    tenancy.add_argument("--allow-remote-bases", action="store_true", help=local.REMOTE_HELP)
    defaults = config.Config().limits
    limits = run.add_argument_group("limits (per Sync; exceeding one fails only that Sync)")
    for flag, kind, default, what in (
        ("--max-file-bytes", int, defaults.file_bytes, "bytes per manifest file"),
        ("--max-total-bytes", int, defaults.total_bytes, "bytes of manifests"),
        ("--max-objects", int, defaults.objects, "objects"),
        ("--max-yaml-aliases", int, defaults.aliases, "YAML aliases per file"),
        ("--max-yaml-depth", int, defaults.depth, "YAML nesting depth"),
        ("--max-yaml-nodes", int, defaults.nodes, "YAML nodes per document after alias expansion"),
        ("--render-timeout", float, defaults.render_seconds, "seconds per kustomize or helm run"),
        ("--render-memory", int, defaults.render_memory, "bytes of memory per kustomize or helm run"),
        ("--max-fetch-bytes", int, config.Config().max_fetch_bytes, "bytes received per git fetch"),
    ):
        limits.add_argument(flag, type=kind, default=default, help=f"{what} [%(default)s]")
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
        help="reconcile only GitRepositories, Syncs and Previews labelled pullsync.dev/shard=NAME "
        "(default: only those without that label)",
    )
    ha.add_argument("--lease-duration", type=float, default=15.0, help="seconds a leader may go without renewing [15]")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def main(args: argparse.Namespace) -> int:
    """`pullsync run`: the flags to a Config, then the operator."""
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    problem = next(filter(None, map(_unusable, (args.webhook_addr, args.metrics_addr, args.health_addr))), None)
    try:
        kubeconfig.load(args.kubeconfig)  # reads files only: an exec plugin runs at the first request
    except kubeconfig.ConfigError as e:
        problem = problem or str(e)
    if problem:
        print(f"pullsync run: {problem}", file=sys.stderr)
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


def _unusable(addr: str) -> str | None:
    """Why the operator could not listen on `addr` (host:port), or None: checked before
    anything starts, so that a port in use is an error that says so, not a restart loop."""
    try:
        host, port = config.split_addr(addr)
    except ValueError as e:
        return str(e)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
            probe.bind((host, port))
    except OSError as e:
        return f"cannot listen on {addr}: {e.strerror or e}"
    return None


def run(cfg: config.Config) -> int:
    """Run the operator until SIGTERM/SIGINT (0) or until it loses the leadership (1)."""
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER
    return asyncio.run(_run(cfg))


async def _run(cfg: config.Config) -> int:
    import kopf

    from pullsync import handlers  # noqa: F401 - registers the handlers

    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("kopf").setLevel(logging.WARNING)  # Kopf's per-handler chatter
    ready = asyncio.Event()
    client = await kube.Client.connect(cfg.kubeconfig)  # never fenced: the Lease, and webhooks relayed to the leader
    receiver = webhook.Receiver(client, cfg)
    servers = endpoints.Servers()
    await servers.start(
        (cfg.health_addr, endpoints.health_app(ready)),
        (cfg.metrics_addr, endpoints.metrics_app()),
        (cfg.webhook_addr, receiver.app()),
    )
    election: leader.Election | None = None
    keeper: asyncio.Task[None] | None = None
    try:
        if cfg.leader_elect:
            try:
                election = await _campaign(cfg, client, ready)
            except kube.ApiError as e:
                lease = f"{cfg.leader_election_namespace}/{cfg.leader_election_id}"
                log.error("cannot campaign for the Lease %s: %s", lease, e)
                return 2
            if election is None:
                return 0  # stopped while waiting
            keeper = asyncio.create_task(election.keep())
        clusterwide, namespaces = config.kopf_scope(cfg.namespaces)
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await kopf.operator(
                    standalone=True,
                    identity=IDENTITY,  # type: ignore[arg-type]  # a str; Kopf guesses from /etc/passwd, which lacks OpenShift UIDs
                    clusterwide=clusterwide,
                    namespaces=namespaces,
                    memo=kopf.Memo(
                        config=cfg, ready=ready, receiver=receiver, fence=election.leading if election else None
                    ),
                    stop_flag=election.lost if election else None,
                )
                return 1 if election and election.lost.is_set() else 0
            except Exception as e:  # Kopf stops on any watch error: say a 404 from an API server still starting
                if election is not None and election.lost.is_set():
                    return 1
                failures = 1 if time.monotonic() - started > RESTART_RESET else failures + 1
                delay = min(RESTART_MAX_DELAY, 2.0**failures)
                # Kopf has logged the traceback of what stopped it: the error is enough here.
                log.error("Kopf stopped on an error (cleaned up); starting it again in %.0fs: %s", delay, e)
                ready.clear()
                if await _signalled(timeout=delay):
                    return 0
    finally:
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keeper  # a renewal in flight lands before the release reads the Lease
        if election is not None:
            await election.release()
        await servers.stop()
        await client.close()


async def _signalled(waiting: "asyncio.Task[Any] | None" = None, *, timeout: float | None = None) -> bool:
    """Wait for `waiting` (or `timeout`) unless SIGINT or SIGTERM comes first; whether one
    came. Kopf handles the signals while it runs; this, before it starts and between runs."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    stopped = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait(
            {stopped} | ({waiting} if waiting else set()), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stopped.cancel()
    return stopping.is_set()


async def _campaign(cfg: config.Config, client: kube.Client, ready: asyncio.Event) -> leader.Election | None:
    """Wait for the Lease (or a stop signal, then None). While another holds it, this replica
    is Ready: its webhook receiver relays calls to the leader. Once it leads, it is Ready
    again when Kopf has started."""
    election = leader.Election(
        client,
        namespace=cfg.leader_election_namespace,
        name=cfg.leader_election_id,
        identity=IDENTITY,
        duration=cfg.lease_duration,
        renew=cfg.lease_duration / 3,
        retry=max(0.5, cfg.lease_duration / 7),
    )
    stop = asyncio.Event()
    acquired = asyncio.create_task(election.acquire(ready.set, stop))
    stopped = await _signalled(acquired)
    ready.clear()
    if stopped:  # the attempt in flight ends first (5 s at most); a Lease it won is given up
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(acquired, leader.RELEASE_SECONDS)
        await election.release()
        return None
    acquired.result()
    return election
