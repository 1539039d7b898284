"""Leader election: a clean stop releases the Lease, and an API server gone by then is no crash."""

import asyncio
from typing import Any

import pytest

from pullsync import kube
from pullsync.runtime import leader


class Gone:
    """A client whose API server stopped answering."""

    async def get(self, resource: kube.Resource, namespace: str | None, name: str) -> Any:
        raise kube.Unreachable(ConnectionRefusedError("refused"), verb="get", path=resource.path(namespace, name))


def test_releasing_the_lease_when_the_api_server_is_gone_only_warns(caplog: Any) -> None:
    election = leader.Election(Gone(), namespace="ops", name="pullsync", identity="me")  # type: ignore[arg-type]
    asyncio.run(election.release())
    assert "cannot reach the API server: refused; a standby takes it when it expires" in caplog.text


@pytest.mark.parametrize("wins", [False, True])
def test_a_stop_ends_the_campaign_after_the_attempt_in_flight(wins: bool) -> None:
    election = leader.Election(Gone(), namespace="ops", name="pullsync", identity="me", retry=30)  # type: ignore[arg-type]
    stop, stood_by = asyncio.Event(), []

    async def attempt() -> bool:
        stop.set()  # SIGTERM arrives while this attempt is in flight
        return wins

    election._try = attempt  # type: ignore[method-assign]
    assert asyncio.run(election.acquire(lambda: stood_by.append(True), stop)) is wins  # at once, not after 30 s
    assert stood_by == []  # stopping: never Ready as a standby


def test_a_campaign_rides_out_an_api_server_that_is_away(caplog: Any) -> None:
    election = leader.Election(Gone(), namespace="ops", name="pullsync", identity="me", retry=0.01)  # type: ignore[arg-type]
    answers: list[bool | None] = [None, False, True]  # no answer, held by another, won

    async def attempt() -> bool:
        answer = answers.pop(0)
        if answer is None:
            raise kube.Unreachable(ConnectionRefusedError("refused"), verb="get", path="/lease")
        return answer

    election._try = attempt  # type: ignore[method-assign]
    stood_by: list[bool] = []
    assert asyncio.run(election.acquire(lambda: stood_by.append(True), asyncio.Event()))
    assert "campaigning for the Lease ops/pullsync failed: get /lease: cannot reach the API server" in caplog.text
    assert stood_by == [True]


def test_a_lease_it_may_not_use_ends_the_campaign() -> None:
    election = leader.Election(Gone(), namespace="ops", name="pullsync", identity="me", retry=0.01)  # type: ignore[arg-type]

    async def forbidden() -> bool:
        raise kube.ApiError(403, {"message": "leases is forbidden"}, verb="get", path="/lease")

    election._try = forbidden  # type: ignore[method-assign]
    with pytest.raises(kube.ApiError, match="forbidden"):
        asyncio.run(election.acquire(lambda: None, asyncio.Event()))
