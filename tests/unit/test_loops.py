"""Per-object loops: one task per object, woken by its events, stopped when it is gone,
and surviving a step that raises; the bus keeping why a source without an artifact failed,
and telling listeners when their source is gone."""

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from pullsync.runtime import bus, loops


class Counting:
    """A loop that counts its turns; the first `failures` turns raise."""

    def __init__(self, namespace: str, name: str, body: Callable[[], Mapping[str, Any]], failures: int = 0) -> None:
        self.key: bus.Key = ("Thing", namespace, name)
        self.body = body
        self.turns: list[str] = []
        self.failures = failures
        self.released = False

    async def __call__(self) -> float:
        self.turns.append(self.body()["spec"])
        if len(self.turns) <= self.failures:
            raise RuntimeError("a bug")
        return 3600.0

    def release(self) -> None:
        self.released = True


def factory(made: list[Counting], failures: int = 0) -> loops.Factory:
    def make(namespace: str, name: str, body: Callable[[], Mapping[str, Any]]) -> Counting:
        made.append(Counting(namespace, name, body, failures))
        return made[-1]

    return make


def thing(name: str, spec: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name}, "spec": spec}


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_events_start_wake_and_stop_one_loop_per_object() -> None:
    made: list[Counting] = []
    registry = loops.Loops(bus.Bus(), factory(made))
    registry.observe(None, thing("a", "v1"))
    await settle()
    registry.observe("MODIFIED", thing("a", "v2"))
    await settle()
    assert [loop.turns for loop in made] == [["v1", "v2"]]
    registry.observe("DELETED", thing("a", "v2"))
    await settle()
    assert made[0].released
    assert registry.tasks == {}
    await registry.close()


async def test_a_step_that_raises_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    made: list[Counting] = []
    registry = loops.Loops(bus.Bus(), factory(made, failures=1))
    registry.observe(None, thing("a", "v1"))
    await settle()
    assert "Thing ns/a failed unexpectedly (a bug)" in caplog.text
    registry.signals.wake(made[0].key)  # a new event comes before the backoff ends
    await settle()
    assert made[0].turns == ["v1", "v1"]
    await registry.close()


async def test_a_loop_no_longer_registered_stops_by_itself() -> None:
    wake = asyncio.Event()
    turns = []

    async def step() -> float:
        turns.append(1)
        return 0.0

    await asyncio.wait_for(bus.run_loop(step, wake, name="x", alive=lambda: len(turns) < 3), 5)
    assert len(turns) == 3


def test_a_source_without_artifact_keeps_why_its_fetch_failed_and_asks_its_listeners_once() -> None:
    signals = bus.Bus()
    source: bus.Key = ("GitRepository", "ns", "repo")
    sync: bus.Key = ("Sync", "ns", "app")
    wake = signals.waker(sync)
    signals.listen(sync, source)

    signals.fetch_failed(source, "failed to poll: authentication")
    assert signals.failure(source) == "failed to poll: authentication"
    assert wake.is_set()
    assert signals.take_request(sync)

    wake.clear()
    signals.fetch_failed(source, "failed to poll: timeout")
    assert signals.failure(source) == "failed to poll: timeout"
    assert not wake.is_set()  # later ones wait for the Sync's retry

    artifact = bus.Artifact("u", "/r", "main@sha1:abc", "main@abc", "abc", "m")
    signals.publish(source, artifact)
    assert signals.failure(source) is None
    assert wake.is_set()
    signals.fetch_failed(source, "failed to poll: timeout")
    assert signals.failure(source) is None  # an artifact to apply: no reason to wait


async def test_the_bodies_kept_leave_out_managed_fields() -> None:
    registry = loops.Loops(bus.Bus(), factory([]))
    body = thing("a", "v1")
    body["metadata"]["managedFields"] = [{"manager": "pullsync", "fieldsV1": {"f:status": {}}}]
    registry.observe("ADDED", body)
    kept = registry.bodies[("ns", "a")]
    assert kept["metadata"] == {"namespace": "ns", "name": "a"}
    assert kept["spec"] == "v1"
    await registry.close()


def test_a_source_that_is_gone_asks_its_listeners_to_act_now() -> None:
    signals = bus.Bus()
    source, sync = ("GitRepository", "team", "app"), ("Sync", "team", "app")
    signals.waker(source)
    signals.waker(sync)
    signals.listen(sync, source)
    signals.forget(source)  # deleted: its Sync says so at once, not at its next interval
    assert signals.take_request(sync)
