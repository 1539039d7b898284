"""Inventory: which objects a Sync applied, as ids `<namespace>_<name>_<group>_<kind>`.

Namespaces, groups and kinds never contain `_`; names may (RBAC objects such as
`RoleBinding ci_deployer`), so an id is split at its first `_` and its last two.

The inventory lives in `Sync.status.inventory` (no store of pullsync's own); the
difference between the last inventory and the new desired set is what gets pruned.
"""

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True, order=True)
class Entry:
    """One managed object: its id and the API version it was applied with."""

    id: str
    v: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> "Entry":
        api_version = obj["apiVersion"]
        group = api_version.rpartition("/")[0]
        meta = obj["metadata"]
        return cls(f"{meta.get('namespace') or ''}_{meta['name']}_{group}_{obj['kind']}", api_version)

    @property
    def namespace(self) -> str:
        return self.id.split("_", 1)[0]

    @property
    def name(self) -> str:
        return self.id.split("_", 1)[1].rsplit("_", 2)[0]

    @property
    def group(self) -> str:
        return self.id.rsplit("_", 2)[1]

    @property
    def kind(self) -> str:
        return self.id.rsplit("_", 1)[1]

    def describe(self) -> str:
        """`Kind/namespace/name` or `Kind/name`, for events and messages."""
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


def load(status: Mapping[str, Any] | None) -> list[Entry]:
    entries = ((status or {}).get("inventory") or {}).get("entries") or []
    return [Entry(e["id"], e["v"]) for e in entries if e.get("id") and e.get("v")]


def dump(entries: Iterable[Entry]) -> dict[str, Any]:
    """One entry per object: where an id comes twice (its apiVersion changed), the last wins."""
    ordered = sorted({e.id: e for e in entries}.values())
    return {"count": len(ordered), "entries": [{"id": e.id, "v": e.v} for e in ordered]}


def stale(old: Iterable[Entry], new: Iterable[Entry]) -> list[Entry]:
    """Entries of `old` whose object is not in `new` (ids compared, versions ignored)."""
    keep = {e.id for e in new}
    return sorted(e for e in set(old) if e.id not in keep)
