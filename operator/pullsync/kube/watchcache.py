"""A live cache of managed objects, fed by watches, so an in-sync cluster costs no requests.

One watch per kind in use, selecting objects that carry pullsync's owner label (for an
operator that watches listed namespaces, only those of the Syncs there); plus one on
Namespaces, whose existence every reconcile checks (`on_namespace` tells of each that
appears, for Syncs that failed for lacking it), and one on Secrets that keeps only
those GitRepositories read credentials from (cluster-wide, or one per namespace for an
operator that watches listed namespaces). Each watch lists, then watches
from the list's resourceVersion with bookmarks, resumes from the last resourceVersion it
saw, and lists again after a 410 Gone. Until a kind's first list completes, the cache
answers "unknown" and callers read from the API server.

Reconciles record the content they applied or verified (`note`, with the Sync's
namespace and name); a watch event with other content for such an object is drift, and
`on_drift` is called with that Sync's (namespace, name), whatever the object's labels
now say, since relabelling is drift too. Status updates are not content (see
`fingerprint`): a controller writing status is no drift, but `on_status` tells the Sync,
whose health may have changed.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from pullsync import api, kube
from pullsync.kube import fingerprint

log = logging.getLogger("pullsync.watchcache")

UNKNOWN: Any = object()  # the cache cannot say (the kind's watch has not listed yet)
NAMESPACES = kube.Resource("", "v1", "Namespace", "namespaces", False)
ObjectKey = tuple[str, str, str]  # (api_version/plural, namespace, name)


def owned_selector(namespaces: list[str]) -> str:
    """The label selector of the objects that the Syncs of `namespaces` own (all Syncs' when
    empty): an operator that watches listed namespaces caches none of another's objects."""
    if not namespaces:
        return api.LABEL_NAME
    return f"{api.LABEL_NAME},{api.LABEL_NAMESPACE} in ({','.join(sorted(namespaces))})"


def _rid(resource: kube.Resource, namespace: str | None = None) -> str:
    """A watch's name: the kind's path, and the namespace of a whole-namespace watch."""
    return f"{resource.api_version}/{resource.plural}" + (f" in {namespace}" if namespace else "")


CREDENTIALS = "credentials "


def _credentials_rid(scope: str | None) -> str:
    """The name of the watch of the Secrets GitRepositories read over `scope`: apart from the
    watch of managed Secrets (another selector, other objects kept) even cluster-wide."""
    return CREDENTIALS + _rid(kube.SECRETS, scope)


def _names(obj: dict[str, Any]) -> tuple[str | None, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace"), meta.get("name", "")


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` as the cache keeps it: of its `managedFields`, only pullsync's own entry (what
    `fingerprint` reads); the other managers' entries (a Deployment's status manager's is
    larger than its spec) serve pullsync nothing, and a cache of thousands of objects
    would hold them all."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and meta.get("managedFields"):
        meta["managedFields"] = [m for m in meta["managedFields"] if m.get("manager") == api.FIELD_MANAGER]
    return obj


def key_of(resource: kube.Resource, namespace: str | None, name: str) -> ObjectKey:
    return (f"{resource.api_version}/{resource.plural}", namespace or "", name)


class LiveCache:
    """Managed objects by resource, namespace and name."""

    def __init__(
        self,
        client: kube.Client,
        on_drift: Callable[[str, str], object],
        on_status: Callable[[str, str], object] = lambda namespace, name: None,
        on_secret: Callable[[str], object] = lambda namespace: None,
        on_namespace: Callable[[str], object] = lambda name: None,
        *,
        selector: str = api.LABEL_NAME,
    ) -> None:
        self.client = client
        self.selector = selector  # the managed objects' label selector (`owned_selector`)
        self.on_drift = on_drift
        self.on_status = on_status
        self.on_secret = on_secret  # a Secret that GitRepositories read changed, in this namespace
        self.on_namespace = on_namespace  # a Namespace exists (listed, or added since)
        self._objects: dict[str, dict[ObjectKey, dict[str, Any]]] = {}  # per resource
        self._synced: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._gone: set[str] = set()  # kinds whose watch ended because the server stopped serving them
        self._keep: dict[str, Callable[[dict[str, Any]], bool]] = {}  # watches that keep only some objects
        self._wanted: set[ObjectKey] = set()  # the Secrets GitRepositories read
        self._pending: set[tuple[str, ObjectKey]] = set()  # (watch, Secret) wanted since it listed: not known yet
        self._noted: dict[ObjectKey, tuple[str, str, str]] = {}  # (content fingerprint, sync namespace, sync name)

    def ensure(self, resource: kube.Resource) -> None:
        """Start watching pullsync's objects of `resource` (once; again if the kind has come
        back since its CRD was deleted)."""
        self._start(resource, None, None if resource == NAMESPACES else self.selector)

    def _start(self, resource: kube.Resource, namespace: str | None, selector: str | None, rid: str = "") -> None:
        rid = rid or _rid(resource, namespace)
        if rid not in self._tasks or rid in self._gone:
            self._gone.discard(rid)
            log.debug("watching %s", rid)
            watch = self._watch(resource, rid, selector, namespace)
            self._tasks[rid] = asyncio.create_task(watch, name=f"watch {rid}")

    async def wait_synced(self, resources: list[kube.Resource], *, timeout: float) -> None:
        """Watch `resources` and wait (at most `timeout`) until each has listed once."""
        for resource in resources:
            self.ensure(resource)
        deadline = asyncio.get_running_loop().time() + timeout
        for resource in resources:
            rid = _rid(resource)
            while rid not in self._synced and rid in self._tasks and not self._tasks[rid].done():
                if asyncio.get_running_loop().time() > deadline:
                    return  # callers fall back to GETs
                await asyncio.sleep(0.02)

    def get(self, resource: kube.Resource, namespace: str | None, name: str) -> Any:
        """The live object, None if it does not exist, or UNKNOWN."""
        rid = _rid(resource)
        if rid not in self._synced:
            return UNKNOWN
        return self._objects[rid].get(key_of(resource, namespace, name))

    def secret(self, namespace: str, name: str, *, scope: str | None) -> Any:
        """The Secret a GitRepository reads, from the watch of Secrets over `scope` (a
        namespace, or None for the cluster) that keeps only the Secrets asked for; None if
        it does not exist; UNKNOWN until that watch has listed, and for a Secret first asked
        for since (the caller reads it and hands it over with `known_secret`)."""
        key = key_of(kube.SECRETS, namespace, name)
        rid = _credentials_rid(scope)
        if key not in self._wanted:
            self._wanted.add(key)
            self._pending.add((rid, key))
        self._keep.setdefault(rid, lambda obj: key_of(kube.SECRETS, *_names(obj)) in self._wanted)
        self._start(kube.SECRETS, scope, None, rid)
        if rid not in self._synced or (rid, key) in self._pending:
            return UNKNOWN
        return self._objects[rid].get(key)

    def known_secret(self, namespace: str, name: str, secret: dict[str, Any] | None, *, scope: str | None) -> None:
        """What the caller read of a Secret `secret` said was UNKNOWN; the watch keeps it current."""
        key = key_of(kube.SECRETS, namespace, name)
        rid = _credentials_rid(scope)
        if rid in self._synced and (rid, key) in self._pending:
            self._pending.discard((rid, key))
            if secret is not None:
                self._objects[rid].setdefault(key, secret)

    def note(self, resource: kube.Resource, obj: dict[str, Any], content: str, sync: tuple[str, str]) -> None:
        """Remember the `content` fingerprint the Sync `sync` wrote or checked: its own events are not drift."""
        meta = obj.get("metadata", {})
        self._noted[key_of(resource, meta.get("namespace"), meta["name"])] = (content, *sync)

    def forget(self, resource: kube.Resource, namespace: str | None, name: str) -> None:
        """Stop expecting content (the object is being pruned)."""
        self._noted.pop(key_of(resource, namespace, name), None)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _watch(self, resource: kube.Resource, rid: str, selector: str | None, namespace: str | None) -> None:
        delay = 1.0
        while True:
            try:
                version = await self._list(resource, rid, selector, namespace)
                delay = 1.0
                while version:
                    version = await self._stream(resource, rid, selector, namespace, version)
            except asyncio.CancelledError:
                raise
            except kube.ApiError as e:
                if e.status in (403, 404):
                    log.info("not watching %s: %s (reads go to the API server)", rid, e.message)
                    self._synced.discard(rid)
                    if e.status == 404:
                        self._gone.add(rid)
                    return
                log.warning("watch of %s failed: %s; listing again in %.0fs", rid, e, delay)
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                log.warning("watch of %s broke: %s; listing again in %.0fs", rid, e, delay)
            except Exception:
                log.exception("watch of %s failed unexpectedly; listing again in %.0fs", rid, delay)
            self._synced.discard(rid)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _list(self, resource: kube.Resource, rid: str, selector: str | None, namespace: str | None) -> str:
        listing = await self.client.list(resource, namespace, selector=selector)
        log.debug("listed %s: %d objects", rid, len(listing.get("items", [])))
        keep = self._keep.get(rid)
        items = [slim(o) for o in listing.get("items", []) if keep is None or keep(o)]
        for item in items:  # a LIST names the kind on the list, not on its items (custom resources aside)
            item.setdefault("apiVersion", resource.api_version)
            item.setdefault("kind", resource.kind)
        self._objects[rid] = {key_of(resource, *_names(o)): o for o in items}
        self._pending = {p for p in self._pending if p[0] != rid}  # what it keeps is known now
        self._synced.add(rid)
        self._compare(rid)
        if resource == NAMESPACES:  # created while no watch followed them, maybe
            for key in self._objects[rid]:
                self.on_namespace(key[2])
        return str(listing.get("metadata", {}).get("resourceVersion", ""))

    def _compare(self, rid: str) -> None:
        """After a (re-)list: an object pullsync noted that changed or vanished while no
        watch was following it is drift, as an event would have said."""
        prefix = rid.split(" in ", 1)[0]
        for key, (content, namespace, name) in list(self._noted.items()):
            if key[0] != prefix:
                continue
            live = self._objects[rid].get(key)
            if live is None or fingerprint.of(live) != content:
                del self._noted[key]
                self.on_drift(namespace, name)

    async def _stream(
        self, resource: kube.Resource, rid: str, selector: str | None, namespace: str | None, version: str
    ) -> str:
        """Follow one watch request; return the resourceVersion to resume from, '' to re-list."""
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true", "timeoutSeconds": "300"}
        if selector:
            params["labelSelector"] = selector
        async with self.client.stream(resource.path(namespace), params=params) as lines:
            async for line in lines:
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    return "" if obj.get("code") == 410 else version
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if kind != "BOOKMARK":
                    self._apply(resource, rid, kind, obj)
        return version

    def _apply(self, resource: kube.Resource, rid: str, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata", {})
        log.debug("%s %s %s/%s at %s", kind, rid, meta.get("namespace"), meta.get("name"), meta.get("resourceVersion"))
        key = key_of(resource, meta.get("namespace"), meta.get("name", ""))
        keep = self._keep.get(rid)
        if keep is not None and not keep(obj):
            return
        if kind == "DELETED":
            self._objects[rid].pop(key, None)
        else:
            self._objects[rid][key] = slim(obj)
        if rid.startswith(CREDENTIALS):
            self.on_secret(meta.get("namespace") or "")
        if resource == NAMESPACES and kind == "ADDED":
            self.on_namespace(key[2])
        noted = self._noted.get(key)
        if noted is not None and (kind == "DELETED" or noted[0] != fingerprint.of(obj)):
            del self._noted[key]
            self.on_drift(noted[1], noted[2])
        elif noted is not None:  # the same content: a controller wrote status, the health may have changed
            self.on_status(noted[1], noted[2])
