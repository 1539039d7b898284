"""One task per GitRepository and per Sync, fed by their watch events.

Kopf delivers the events (its `on.event` handlers call `observe`); pullsync runs the
per-object loops itself. Kopf thus never writes to pullsync's objects (no finalizers, no
bookkeeping annotations), so operators with other scopes (`--namespace` patterns watch
cluster-wide) never fight over an object they do not handle. The object's latest body is
kept here for its loop to read; each event wakes the loop. A deleted object's task is
cancelled and its loop released. `ObjectLoop` is what the loops of both controllers
share.
"""

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pullsync import api
from pullsync.kube import events
from pullsync.runtime import bus
from pullsync.runtime.services import Services

Body = Mapping[str, Any]
Lookup = Callable[[str, str], Body | None]  # (namespace, name) -> the latest body seen, or None


class Loop(Protocol):
    key: bus.Key

    async def __call__(self) -> float:
        """Take one turn; return seconds until the next."""

    def release(self) -> None:
        """The object is gone: let go of what the loop holds."""


class ObjectLoop:
    """What the loops of both controllers share: the object's identity and latest body, the
    services, an event recorder, and the rule that a turn which did not finish (its status
    unwritten: the API server away, a bug) is taken again at the next wake, whatever the
    object's interval says."""

    kind = ""

    def __init__(self, services: Services, namespace: str, name: str, body: Callable[[], Body]) -> None:
        self.services = services
        self.namespace = namespace
        self.name = name
        self.body = body
        self.key: bus.Key = (self.kind, namespace, name)
        self.seen: tuple[Any, ...] | None = None  # what the last finished turn acted on
        self.next_due = 0.0
        self.events = events.Recorder(services.client)

    async def __call__(self) -> float:
        try:
            return await self.take_turn()
        except BaseException:
            self.seen = None
            raise

    async def take_turn(self) -> float:
        """One turn; seconds until the next."""
        raise NotImplementedError

    def not_due(self, body: Body) -> tuple[str | None, float | None]:
        """(the requestedAt annotation, seconds until the next turn is due), the seconds
        None when a turn is due now: the spec or the annotation changed, the interval
        passed, or something asked for a turn (`bus.wake(..., request=True)`)."""
        meta = body.get("metadata") or {}
        requested = (meta.get("annotations") or {}).get(api.ANNOTATION_REQUESTED_AT)
        seen = (meta.get("generation"), requested)
        now = time.monotonic()
        if seen == self.seen and now < self.next_due and not self.services.bus.take_request(self.key):
            return requested, self.next_due - now
        self.seen = seen
        return requested, None


def lean(body: Body) -> Body:
    """`body` as the loops keep it: without `metadata.managedFields`, which no loop reads
    (a Sync's status manager's entry mirrors its whole status: a thousand Syncs' entries
    are megabytes)."""
    meta = body.get("metadata") or {}
    if "managedFields" not in meta:
        return body
    return {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


CLOSE_TIMEOUT = 10.0  # seconds to wait for the loops to stop
Factory = Callable[[str, str, Callable[[], Body]], Loop]  # (namespace, name, latest body) -> loop


class Loops:
    """The loops of one kind, by (namespace, name)."""

    def __init__(self, signals: bus.Bus, make: Factory) -> None:
        self.signals = signals
        self.make = make
        self.bodies: dict[tuple[str, str], Body] = {}
        self.tasks: dict[tuple[str, str], tuple[Loop, asyncio.Task[None]]] = {}

    def observe(self, event: str | None, body: Body) -> None:
        """A watch event about one object: start, wake or stop its loop."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if event == "DELETED":
            self.bodies.pop(key, None)
            loop, task = self.tasks.pop(key, (None, None))
            if task is not None and loop is not None:
                task.cancel()
                loop.release()
            return
        self.bodies[key] = lean(body)
        if key in self.tasks:
            self.signals.wake(self.tasks[key][0].key)
            return
        loop = self.make(key[0], key[1], lambda: self.bodies[key])
        task = asyncio.create_task(self._run(key, loop), name=f"{loop.key[0]} {key[0]}/{key[1]}")
        self.tasks[key] = (loop, task)

    async def _run(self, key: tuple[str, str], loop: Loop) -> None:
        kind, namespace, name = loop.key
        me = asyncio.current_task()
        await bus.run_loop(
            loop,
            self.signals.waker(loop.key),
            name=f"{kind} {namespace}/{name}",
            alive=lambda: key in self.tasks and self.tasks[key][1] is me,
        )

    async def close(self) -> None:
        """Stop every loop (the operator stops, or lost its leadership): unregistered first,
        so a loop whose cancellation was swallowed ends at its next turn; waited for a while."""
        tasks = [task for _, task in self.tasks.values()]
        self.tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
