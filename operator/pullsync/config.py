"""Operator-wide settings, from the command line of `pullsync run`."""

import dataclasses
from pathlib import Path

from pullsync.render import Limits


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
    allow_cross_namespace_refs: bool = False
    allow_insecure_http: bool = False
    allow_local_urls: bool = False
    default_service_account: str | None = None
    limits: Limits = dataclasses.field(default_factory=Limits)
    max_fetch_bytes: int = 512 * 1024 * 1024
    leader_elect: bool = False
    leader_election_namespace: str = "default"
    leader_election_id: str = "pullsync"
    lease_duration: float = 15.0


def split_addr(addr: str) -> tuple[str, int]:
    """`host:port` -> (host, port); raise ValueError naming the address otherwise."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"invalid address {addr!r}: use host:port, e.g. 127.0.0.1:9292")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104
