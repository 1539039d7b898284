"""Kubernetes Events for pullsync's own objects: what changed, and new warnings.

A warning is posted when its message differs from the last one for that object, so a
failure that repeats every retry does not flood the namespace.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from pullsync import kube

LIMIT = 1024  # characters of an Event message the API server keeps


def fit(parts: Sequence[str], *, limit: int = LIMIT, separator: str = "\n") -> str:
    """`parts` joined, as many whole ones as fit in `limit` characters, then "and N more"."""
    text = separator.join(parts)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for index, part in enumerate(parts):
        tail = f"{separator}... and {len(parts) - index} more"
        if len(separator.join([*kept, part])) + len(tail) > limit:
            if not kept:  # the first part alone is too long: cut it
                rest = f"{separator}... and {len(parts) - 1} more" if len(parts) > 1 else ""
                return part[: limit - len(rest) - 1] + "…" + rest
            return separator.join(kept) + tail
        kept.append(part)
    return separator.join(kept)


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
