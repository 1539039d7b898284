"""The shared services of one operator process, created at startup, closed at cleanup."""

import asyncio
import dataclasses
import os
from collections.abc import Callable
from urllib.parse import urlsplit

from pullsync import kube
from pullsync.kube import watchcache
from pullsync.runtime import bus, config
from pullsync.runtime.config import Config
from pullsync.source import git, urlpolicy

SyncKey = bus.Key  # (the field `bus` hides the module inside the class)
# Sync pipelines (render, plan, apply, prune) in flight at once, whatever the number of
# Syncs: a thousand Syncs created together otherwise all hold their documents, plans and
# responses at the same time (the peak RSS of a fleet), and slow each other down on an
# API server that is busy anyway. Each pipeline sends up to --max-concurrency requests.
PIPELINES = 8


@dataclasses.dataclass
class Services:
    """Everything the per-object loops share."""

    config: Config
    client: kube.Client
    cache: git.Cache
    bus: bus.Bus
    url_policy: urlpolicy.UrlPolicy
    live: watchcache.LiveCache
    status_changed: set[SyncKey] = dataclasses.field(default_factory=set)  # Syncs whose objects' status moved
    pipelines: asyncio.Semaphore = dataclasses.field(default_factory=lambda: asyncio.Semaphore(PIPELINES))

    def take_status_change(self, key: SyncKey) -> bool:
        """True once after a controller wrote status of an object the Sync `key` applied."""
        if key in self.status_changed:
            self.status_changed.discard(key)
            return True
        return False

    @classmethod
    async def start(cls, cfg: Config, *, fence: Callable[[], bool] | None = None) -> "Services":
        """Connect and start the shared parts; `fence` (leader election) gates every write."""
        client = await kube.Client.connect(cfg.kubeconfig, qps=cfg.api_qps, burst=cfg.api_burst)
        client.fence = fence
        api_hosts = {urlsplit(client.server).hostname, os.environ.get("KUBERNETES_SERVICE_HOST")}
        policy = urlpolicy.UrlPolicy(
            allow_insecure_http=cfg.allow_insecure_http,
            allow_local_urls=cfg.allow_local_urls,
            api_hosts=frozenset(h for h in api_hosts if h) | {"kubernetes.default.svc", "kubernetes.default"},
        )
        signals = bus.Bus()
        cache = git.Cache(cfg.cache_dir, max_fetch_bytes=cfg.max_fetch_bytes, in_use=signals.commits)
        status_changed: set[bus.Key] = set()
        wake = lambda ns, name: signals.wake(("Sync", ns, name), request=True)  # noqa: E731

        def on_status(namespace: str, name: str) -> None:
            """Only the health may have changed: the Sync checks it from the cache, or takes a
            whole turn when it cannot (see `SyncLoop.take_turn`)."""
            status_changed.add(("Sync", namespace, name))
            signals.wake(("Sync", namespace, name))

        _, namespaces = config.kopf_scope(cfg.namespaces)
        selector = watchcache.owned_selector(namespaces)
        live = watchcache.LiveCache(
            client,
            on_drift=wake,
            on_status=on_status,
            on_secret=signals.wake_sources,
            on_namespace=signals.namespace_added,
            selector=selector,
        )
        live.ensure(watchcache.NAMESPACES)
        return cls(
            config=cfg,
            client=client,
            cache=cache,
            bus=signals,
            url_policy=policy,
            live=live,
            status_changed=status_changed,
        )

    async def close(self) -> None:
        await self.live.close()
        await self.client.close()
