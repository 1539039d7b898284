"""Kubernetes Events for pullsync's own objects: what changed, and new warnings.

A warning is posted when its message differs from the last one for that object, so a
failure that repeats every retry does not flood the namespace.
"""

from collections.abc import Mapping
from typing import Any

from pullsync import kube


class Recorder:
    """Posts events about one object."""

    def __init__(self, client: kube.Client) -> None:
        self.client = client
        self.last_warning: str | None = None

    async def normal(self, involved: Mapping[str, Any], reason: str, message: str) -> None:
        self.last_warning = None
        await self.client.post_event(involved=involved, type_="Normal", reason=reason, message=message)

    async def warning(self, involved: Mapping[str, Any], reason: str, message: str) -> None:
        if message != self.last_warning:
            self.last_warning = message
            await self.client.post_event(involved=involved, type_="Warning", reason=reason, message=message)

    def recovered(self) -> None:
        self.last_warning = None
