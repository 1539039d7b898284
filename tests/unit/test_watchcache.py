"""The live cache: what a re-list finds changed or gone is drift, as an event would be."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pullsync import kube
from pullsync.kube import fingerprint, watchcache

CONFIGMAPS = kube.Resource("", "v1", "ConfigMap", "configmaps", True)


class Listing:
    """A stand-in for the API client: a LIST of `items`, then a watch that stays quiet."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.lists = 0

    async def list(self, resource: kube.Resource, namespace: str | None, *, selector: str | None) -> dict[str, Any]:
        self.lists += 1
        return {"metadata": {"resourceVersion": "7"}, "items": self.items}

    @contextlib.asynccontextmanager
    async def stream(self, path: str, *, params: dict[str, str]) -> AsyncIterator[AsyncIterator[bytes]]:
        async def quiet() -> AsyncIterator[bytes]:
            await asyncio.Event().wait()  # until the cache is closed
            yield b""

        yield quiet()


def cm(name: str, value: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "n", "labels": {"pullsync.dev/name": "s"}}, "data": {"v": value}}


def test_a_relist_wakes_the_syncs_whose_objects_changed_or_vanished() -> None:
    woken: list[tuple[str, str]] = []
    client = Listing([cm("same", "1"), cm("changed", "2")])
    cache = watchcache.LiveCache(client, lambda ns, name: woken.append((ns, name)))  # type: ignore[arg-type]
    for name, sync in (("same", "a"), ("changed", "b"), ("gone", "c")):
        obj = {"apiVersion": "v1", "kind": "ConfigMap", **cm(name, "1")}
        cache.note(CONFIGMAPS, obj, fingerprint.of(obj), ("n", sync))

    async def watch_then_close() -> None:
        await cache.wait_synced([CONFIGMAPS], timeout=5)  # starts the watch: it lists first
        await cache.close()

    asyncio.run(watch_then_close())
    assert client.lists == 1
    assert sorted(woken) == [("n", "b"), ("n", "c")]
    assert cache.get(CONFIGMAPS, "n", "same")["kind"] == "ConfigMap"  # listed items get their kind
