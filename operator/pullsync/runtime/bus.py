"""In-process signals between the operator's parts.

GitRepository pollers publish `Artifact`s (revision events); each Sync subscribes to
its source and is woken when a new revision lands. Per-object loops are also woken by
watch events (spec or annotation changes) and by the webhook receiver. Everything is
keyed by (kind, namespace, name) and lives in one event loop: no locks needed.
"""

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from pullsync import kube

Key = tuple[str, str, str]  # (kind, namespace, name)
log = logging.getLogger("pullsync.bus")


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A fetched revision: where its commit is cached and what it is called."""

    url: str
    repository: str  # the bare repository that holds the commit (a path in the git cache)
    revision: str  # <ref>@sha1:<sha>
    short_revision: str  # <ref>@<12 hex>, for printer columns
    commit: str
    message: str
    ignore: str | None = None  # the GitRepository's spec.ignore: files the Syncs do not read


class Bus:
    """Wakers per object, the latest artifact per source, and who listens to which source."""

    def __init__(self) -> None:
        self._wakers: dict[Key, asyncio.Event] = {}
        self._requested: set[Key] = set()
        self._artifacts: dict[Key, Artifact] = {}
        self._failures: dict[Key, str] = {}  # sources without an artifact: why their last fetch failed
        self._listeners: dict[Key, set[Key]] = {}
        self._ready: dict[Key, bool] = {}  # Syncs: Ready at their current revision, as their last turn said
        self._dependencies: dict[Key, tuple[Key, ...]] = {}  # Sync -> the Syncs it depends on
        self._awaiting: dict[str, set[Key]] = {}  # a missing Namespace -> the Syncs that failed for lacking it

    def waker(self, key: Key) -> asyncio.Event:
        """The event that wakes the loop of `key` (created on first use)."""
        return self._wakers.setdefault(key, asyncio.Event())

    def wake(self, key: Key, *, request: bool = False) -> bool:
        """Wake the loop of `key`; with `request`, ask it to act now. False if no loop runs."""
        event = self._wakers.get(key)
        if event is None:
            return False
        if request:
            self._requested.add(key)
        event.set()
        return True

    def take_request(self, key: Key) -> bool:
        """True once after `wake(key, request=True)`."""
        if key in self._requested:
            self._requested.discard(key)
            return True
        return False

    def forget(self, key: Key) -> None:
        """Drop everything about `key` (its object was deleted or its loop stopped); the
        listeners of a source are asked to act now (a Sync says its source is gone)."""
        self._wake_listeners(key, request=True)
        self._wakers.pop(key, None)
        self._requested.discard(key)
        self._artifacts.pop(key, None)
        self._failures.pop(key, None)
        for listeners in self._listeners.values():
            listeners.discard(key)
        self._ready.pop(key, None)
        self._dependencies.pop(key, None)
        for namespace, waiting in list(self._awaiting.items()):
            waiting.discard(key)
            if not waiting:
                del self._awaiting[namespace]

    def publish(self, source: Key, artifact: Artifact) -> None:
        """Record the latest artifact of `source` and wake every listener."""
        self._artifacts[source] = artifact
        self._failures.pop(source, None)
        self._wake_listeners(source)

    def fetch_failed(self, source: Key, message: str) -> None:
        """A fetch of `source` failed: while it has no artifact, record why; the first time,
        ask every listener to act now (a Sync waiting for a first artifact says why)."""
        if source in self._artifacts:
            return
        first = source not in self._failures
        self._failures[source] = message
        if first:
            self._wake_listeners(source, request=True)

    def artifact(self, source: Key) -> Artifact | None:
        return self._artifacts.get(source)

    def commits(self, url: str) -> set[str]:
        """The commits that the published artifacts of `url` name: the git cache keeps them
        (called from its threads: the values are copied first)."""
        return {a.commit for a in list(self._artifacts.values()) if a.url == url}

    def failure(self, source: Key) -> str | None:
        """Why `source` has no artifact: its last fetch's failure; None while it fetches."""
        return self._failures.get(source)

    def listen(self, listener: Key, source: Key) -> None:
        """Make `listener` hear `source` (and only it)."""
        for listeners in self._listeners.values():
            listeners.discard(listener)
        self._listeners.setdefault(source, set()).add(listener)

    def depend(self, dependant: Key, dependencies: tuple[Key, ...]) -> None:
        """Record what `dependant` depends on; a change wakes those that depend on it (a
        cycle is then seen from every side)."""
        if self._dependencies.get(dependant, ()) != dependencies:
            self._dependencies[dependant] = dependencies
            self._wake_dependants(dependant)

    def dependencies(self, key: Key) -> tuple[Key, ...]:
        return self._dependencies.get(key, ())

    def announce(self, key: Key, ready: bool) -> None:
        """`key` is (or is no longer) Ready at its current revision: wake its dependants."""
        if self._ready.get(key) != ready:
            self._ready[key] = ready
            self._wake_dependants(key)

    def ready(self, key: Key) -> bool | None:
        """Whether `key` is Ready at its current revision; None if no loop has said."""
        return self._ready.get(key)

    def wake_sources(self, namespace: str) -> None:
        """Ask every GitRepository loop of `namespace` to poll now: a Secret that one of them
        reads changed (a fixed password is tried at once, not at the next retry)."""
        for key in [k for k in self._wakers if k[0] == "GitRepository" and k[1] == namespace]:
            self.wake(key, request=True)

    def await_namespace(self, namespace: str, key: Key) -> None:
        """`key` failed because `namespace` does not exist: wake it when the Namespace appears."""
        self._awaiting.setdefault(namespace, set()).add(key)

    def namespace_added(self, namespace: str) -> None:
        """The Namespace `namespace` exists now: ask the Syncs that waited for it to act now,
        not at their next retry."""
        for key in self._awaiting.pop(namespace, ()):
            self.wake(key, request=True)

    def _wake_listeners(self, source: Key, *, request: bool = False) -> None:
        for listener in self._listeners.get(source, ()):
            self.wake(listener, request=request)

    def _wake_dependants(self, key: Key) -> None:
        for dependant, dependencies in list(self._dependencies.items()):
            if key in dependencies:
                self.wake(dependant)


Step = Callable[[], Awaitable[float]]  # one turn of a loop; returns seconds until the next


async def run_loop(step: Step, wake: asyncio.Event, *, name: str, alive: Callable[[], bool]) -> None:
    """Run `step` while `alive()`: after each call wait for the delay it returns, or for
    `wake`. A step that raises is tried again, backing off: an API error is logged as a
    warning, anything else with its traceback (a bug).
    (`alive` ends a loop whose cancellation Python 3.11's wait_for may have swallowed.)"""
    failures = 0
    while alive():
        wake.clear()
        try:
            delay = await step()
            failures = 0
        except kube.ApiError as e:  # the API server is away or refuses: no bug, back off
            failures += 1
            delay = min(60.0, 2.0**failures)
            log.warning("%s: %s; trying again in %.0fs", name, e, delay)
        except Exception:
            failures += 1
            delay = min(60.0, 2.0**failures)
            log.exception("%s failed unexpectedly (a bug); trying again in %.0fs", name, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), delay)
