"""The live cache: what a re-list finds changed or gone is drift, as an event would be."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from pullsync import kube
from pullsync.kube import fingerprint, watchcache
from pullsync.runtime import bus

CONFIGMAPS = kube.Resource("", "v1", "ConfigMap", "configmaps", True)
SECRETS = kube.SECRETS


class Listing:
    """A stand-in for the API client: a LIST of `items`, then a watch that stays quiet."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.lists = 0
        self.selectors: list[str | None] = []

    async def list(self, resource: kube.Resource, namespace: str | None, *, selector: str | None) -> dict[str, Any]:
        self.lists += 1
        self.selectors.append(selector)
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


def secret(name: str, value: str, *, managed: bool) -> dict[str, Any]:
    labels = {"pullsync.dev/name": "s"} if managed else {}
    return {"metadata": {"name": name, "namespace": "n", "labels": labels}, "data": {"v": value}}


def test_managed_secrets_are_watched_apart_from_the_git_credentials_of_a_cluster_wide_operator() -> None:
    woken: list[tuple[str, str]] = []
    client = Listing([secret("git", "token", managed=False), secret("app", "2", managed=True)])
    cache = watchcache.LiveCache(client, lambda ns, name: woken.append((ns, name)))  # type: ignore[arg-type]
    applied = {"apiVersion": "v1", "kind": "Secret", **secret("app", "1", managed=True)}
    cache.note(SECRETS, applied, fingerprint.of(applied), ("n", "s"))

    async def credentials_first_then_managed() -> None:
        assert cache.secret("n", "git", scope=None) is watchcache.UNKNOWN  # a GitRepository asks: its watch starts
        await cache.wait_synced([SECRETS], timeout=5)  # a Sync's: the managed Secrets' own watch
        await cache.close()

    asyncio.run(credentials_first_then_managed())
    assert client.lists == 2
    assert sorted(client.selectors, key=str) == [None, "pullsync.dev/name"]
    assert cache.get(SECRETS, "n", "app")["data"] == {"v": "2"}  # the managed Secret is cached
    assert woken == [("n", "s")]  # and its change by hand is drift


class Streaming(Listing):
    """A LIST of `items`, then a watch that sends `events` and stays quiet."""

    def __init__(self, items: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        super().__init__(items)
        self.events = events

    @contextlib.asynccontextmanager
    async def stream(self, path: str, *, params: dict[str, str]) -> AsyncIterator[AsyncIterator[bytes]]:
        async def events() -> AsyncIterator[bytes]:
            for event in self.events:
                yield json.dumps(event).encode()
            await asyncio.Event().wait()

        yield events()


def test_a_changed_git_secret_asks_the_gitrepositories_of_its_namespace_to_poll_now() -> None:
    signals = bus.Bus()
    for key in (("GitRepository", "n", "app"), ("GitRepository", "other", "app"), ("Sync", "n", "app")):
        signals.waker(key)
    wrong = secret("git", "wrong", managed=False)
    client = Streaming([wrong], [{"type": "MODIFIED", "object": {**wrong, "data": {"v": "fixed"}}}])
    cache = watchcache.LiveCache(client, lambda ns, name: None, on_secret=signals.wake_sources)  # type: ignore[arg-type]

    async def read_then_close() -> None:
        cache.secret("n", "git", scope=None)
        await asyncio.wait_for(signals.waker(("GitRepository", "n", "app")).wait(), 5)
        await cache.close()

    asyncio.run(read_then_close())
    assert signals.take_request(("GitRepository", "n", "app"))  # polls now, not at its next retry
    assert not signals.take_request(("GitRepository", "other", "app"))
    assert not signals.take_request(("Sync", "n", "app"))


def test_a_namespace_that_appears_wakes_the_syncs_that_failed_for_lacking_it() -> None:
    signals = bus.Bus()
    syncs = {ns: ("Sync", "team", f"wants-{ns}") for ns in ("listed", "added", "absent")}
    for ns, key in syncs.items():
        signals.waker(key)
        signals.await_namespace(ns, key)
    added = {"type": "ADDED", "object": {"metadata": {"name": "added", "resourceVersion": "8"}}}
    client = Streaming([{"metadata": {"name": "listed"}}], [added])
    cache = watchcache.LiveCache(client, lambda ns, name: None, on_namespace=signals.namespace_added)  # type: ignore[arg-type]

    async def watch_then_close() -> None:
        cache.ensure(watchcache.NAMESPACES)
        await asyncio.wait_for(signals.waker(syncs["added"]).wait(), 5)
        await cache.close()

    asyncio.run(watch_then_close())
    assert signals.take_request(syncs["listed"])  # created while no watch followed: the list tells
    assert signals.take_request(syncs["added"])
    assert not signals.take_request(syncs["absent"])
    signals.namespace_added("added")  # woken once: a Sync that fails again waits again
    assert not signals.take_request(syncs["added"])
