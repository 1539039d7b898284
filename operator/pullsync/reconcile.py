"""Sync reconciliation (placeholder until the Sync pipeline lands): marks Ready=Unknown."""

from collections.abc import Callable, Mapping
from typing import Any

from pullsync import api, conditions, kube
from pullsync.services import Services

KIND = "Sync"


class SyncLoop:
    """The loop of one Sync; call it to take one turn."""

    def __init__(self, services: Services, namespace: str, name: str, body: Callable[[], Mapping[str, Any]]) -> None:
        self.services = services
        self.namespace = namespace
        self.name = name
        self.body = body
        self.key = (KIND, namespace, name)

    async def __call__(self) -> float:
        body = self.body()
        generation = body.get("metadata", {}).get("generation")
        status = body.get("status") or {}
        if status.get("observedGeneration") != generation:
            outcome = conditions.Outcome.progressing("reconciliation is not implemented yet")
            patch = {
                "status": {
                    "observedGeneration": generation,
                    "conditions": conditions.build(outcome, generation=generation, previous=status.get("conditions")),
                }
            }
            await self.services.client.merge_patch(kube.SYNCS, self.namespace, self.name, patch, subresource="status")
        return 3600.0


__all__ = ["KIND", "SyncLoop", "api"]
