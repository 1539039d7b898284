"""The shared services of one operator process, created at startup, closed at cleanup."""

import dataclasses
import os
from collections.abc import Callable
from urllib.parse import urlsplit

from pullsync import kube
from pullsync.kube import watchcache
from pullsync.runtime import bus
from pullsync.runtime.config import Config
from pullsync.source import git, urlpolicy


@dataclasses.dataclass
class Services:
    """Everything the per-object loops share."""

    config: Config
    client: kube.Client
    cache: git.Cache
    bus: bus.Bus
    url_policy: urlpolicy.UrlPolicy
    live: watchcache.LiveCache

    @classmethod
    async def start(cls, cfg: Config, *, fence: Callable[[], bool] | None = None) -> "Services":
        """Connect and start the shared parts; `fence` (leader election) gates every write."""
        client = await kube.Client.connect(cfg.kubeconfig, qps=cfg.api_qps, burst=cfg.api_burst)
        client.fence = fence
        cache = git.Cache(cfg.cache_dir, max_fetch_bytes=cfg.max_fetch_bytes)
        api_hosts = {urlsplit(client.server).hostname, os.environ.get("KUBERNETES_SERVICE_HOST")}
        policy = urlpolicy.UrlPolicy(
            allow_insecure_http=cfg.allow_insecure_http,
            allow_local_urls=cfg.allow_local_urls,
            api_hosts=frozenset(h for h in api_hosts if h) | {"kubernetes.default.svc", "kubernetes.default"},
        )
        signals = bus.Bus()
        wake = lambda ns, name: signals.wake(("Sync", ns, name), request=True)  # noqa: E731
        live = watchcache.LiveCache(client, on_drift=wake, on_status=wake)  # a health change, too: a cheap turn
        live.ensure(watchcache.NAMESPACES)
        return cls(config=cfg, client=client, cache=cache, bus=signals, url_policy=policy, live=live)

    async def close(self) -> None:
        await self.live.close()
        await self.client.close()
