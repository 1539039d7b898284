"""The shared services of one operator process, created at startup, closed at cleanup."""

import dataclasses

from pullsync import bus, kube, source
from pullsync.config import Config


@dataclasses.dataclass
class Services:
    """Everything the per-object loops share."""

    config: Config
    client: kube.Client
    cache: source.Cache
    bus: bus.Bus

    @classmethod
    async def start(cls, cfg: Config) -> "Services":
        client = await kube.Client.connect(cfg.kubeconfig)
        return cls(config=cfg, client=client, cache=source.Cache(cfg.cache_dir), bus=bus.Bus())

    async def close(self) -> None:
        await self.client.close()
