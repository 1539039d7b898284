"""Operator-wide settings, from the command line of `pullsync run`."""

import dataclasses
import fnmatch
from pathlib import Path

from pullsync.render.documents import Limits


@dataclasses.dataclass(frozen=True)
class Config:
    """What `pullsync run` was started with."""

    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    kubeconfig: str | None = None
    cache_dir: Path = Path("/tmp/pullsync-cache")  # noqa: S108 - overridden by --cache-dir
    webhook_addr: str = "0.0.0.0:9292"
    metrics_addr: str = "0.0.0.0:8080"
    health_addr: str = "0.0.0.0:8081"
    max_concurrency: int = 16
    api_qps: float = 1000.0
    api_burst: int = 2000
    allow_cross_namespace_refs: bool = False
    allow_insecure_http: bool = False
    allow_local_urls: bool = False
    allow_remote_bases: bool = False
    default_service_account: str | None = None
    limits: Limits = dataclasses.field(default_factory=Limits)
    max_fetch_bytes: int = 512 * 1024 * 1024
    leader_elect: bool = False
    leader_election_namespace: str = "default"
    leader_election_id: str = "pullsync"
    shard: str | None = None  # reconcile only objects labelled pullsync.dev/shard=<shard> (None: unlabelled)
    lease_duration: float = 15.0


def is_pattern(namespace: str) -> bool:
    return any(c in namespace for c in "*?[")


def kopf_scope(namespaces: tuple[str, ...]) -> tuple[bool, list[str]]:
    """(clusterwide, namespaces) for Kopf. Exact names are watched one by one; any glob
    pattern makes the watch cluster-wide, filtered by `in_scope` (Kopf's own pattern
    support misses namespaces created while it starts)."""
    if not namespaces or any(is_pattern(n) for n in namespaces):
        return True, []
    return False, list(namespaces)


def in_scope(namespace: str | None, namespaces: tuple[str, ...]) -> bool:
    """Whether objects in `namespace` are pullsync's to handle."""
    return not namespaces or any(fnmatch.fnmatchcase(namespace or "", n) for n in namespaces)


def split_addr(addr: str) -> tuple[str, int]:
    """`host:port` -> (host, port); raise ValueError naming the address otherwise."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"invalid address {addr!r}: use host:port, e.g. 127.0.0.1:9292")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104
