"""Leader election: a clean stop releases the Lease, and an API server gone by then is no crash."""

import asyncio
from typing import Any

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
