"""Reading an object given as plain JSON data, as the API serves it.

A field that is missing, or of the wrong type, reads as the default (as kstatus reads
it). Only `status` and `status.conditions` are checked: a shape no controller writes
raises `Unreadable`, which makes the health Unknown.
"""

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any


class Unreadable(Exception):
    """The object's status has a shape no controller writes."""


@dataclasses.dataclass(frozen=True)
class Condition:
    """One entry of status.conditions."""

    type: str
    status: str  # "True", "False" or "Unknown"
    reason: str
    message: str

    def says(self, headline: str = "") -> str:
        """`headline: reason: message`, leaving out the empty parts."""
        return ": ".join(part for part in (headline, self.reason, self.message) if part) or self.type


class Fields:
    """Typed reads of one object; `now` is the time the object is judged at."""

    def __init__(self, obj: Mapping[str, Any], now: datetime.datetime) -> None:
        self.obj = obj
        self.now = now
        api_version = self.text("apiVersion")
        self.group = api_version.rpartition("/")[0]  # "" for the core group ("v1")
        self.kind = self.text("kind")
        status = obj.get("status")
        if status is not None and not isinstance(status, Mapping):
            raise Unreadable(f"status is a {type(status).__name__}, not an object")
        self._conditions = _conditions(status or {})

    def get(self, path: str) -> Any:
        """The value at a dotted path ("spec.replicas"), or None."""
        value: Any = self.obj
        for key in path.split("."):
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
        return value

    def integer(self, path: str, default: int | None = None) -> int | None:
        value = self.get(path)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    def count(self, path: str, default: int = 0) -> int:
        """An integer field that has a default (replica counts and the like)."""
        value = self.integer(path)
        return default if value is None else value

    def text(self, path: str, default: str = "") -> str:
        value = self.get(path)
        return value if isinstance(value, str) else default

    def flag(self, path: str, default: bool = False) -> bool:
        value = self.get(path)
        return value if isinstance(value, bool) else default

    def entries(self, path: str) -> list[Mapping[str, Any]]:
        """The objects of a list field (other items, or another type, read as nothing)."""
        value = self.get(path)
        return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []

    def conditions(self) -> tuple[Condition, ...]:
        return self._conditions

    def condition(self, type_: str) -> Condition | None:
        """The first condition of that type."""
        return next((c for c in self._conditions if c.type == type_), None)

    def created(self) -> datetime.datetime | None:
        stamp = self.text("metadata.creationTimestamp")
        try:
            parsed = datetime.datetime.fromisoformat(stamp)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _conditions(status: Mapping[str, Any]) -> tuple[Condition, ...]:
    raw = status.get("conditions")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise Unreadable("status.conditions is not a list")
    found = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise Unreadable(f"status.conditions[{i}] is not an object")
        fields = [item.get(name) for name in ("type", "status", "reason", "message")]
        if not all(f is None or isinstance(f, str) for f in fields):
            raise Unreadable(f"status.conditions[{i}] has a field that is not a string")
        found.append(Condition(*(f or "" for f in fields)))
    return tuple(found)
