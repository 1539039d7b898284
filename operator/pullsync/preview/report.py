"""What a plan says, as a Preview publishes it and `pullsync diff` prints it.

A `Report` is the plan of one revision of a Sync against the live cluster: the objects
it would create, change (an RFC 6902 patch from live to the server's dry-run result) and
prune, how many it would leave unchanged, and the errors that would stop it (file and
document, as a Sync says them). It is plain data: Secret values are already hidden in it
(`hide_secret_values`), so whatever prints or posts it cannot leak them.
"""

import dataclasses
from typing import Any

CREATE = "create"
CHANGE = "change"
RECREATE = "recreate"  # an immutable field changed and force is on: deleted, then created
PRUNE = "prune"
HIDDEN = "(hidden)"  # what a Secret value is shown as


@dataclasses.dataclass(frozen=True)
class Change:
    """One object the revision would create, change, recreate or prune."""

    action: str  # CREATE | CHANGE | RECREATE | PRUNE
    id: str  # inventory id: <namespace>_<name>_<group>_<kind>
    kind: str
    namespace: str  # "" for cluster-scoped objects
    name: str
    where: str  # the file and document it comes from ("" for prunes)
    patch: list[dict[str, Any]]  # RFC 6902 from live to desired ([] for prunes; for creates, an "add" per field)

    @property
    def describe(self) -> str:
        """`Kind/namespace/name` or `Kind/name`."""
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    def as_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "object": self.describe}


@dataclasses.dataclass(frozen=True)
class Report:
    """The plan of one revision of a Sync."""

    sync_namespace: str
    sync_name: str
    revision: str  # e.g. refs/pull/12/head@sha1:<40 hex>, or a directory for `pullsync diff`
    changes: list[Change]
    unchanged: int
    errors: list[str]  # each names the file and document; empty when the plan is complete

    def count(self, *actions: str) -> int:
        return sum(1 for c in self.changes if c.action in actions)

    @property
    def created(self) -> int:
        return self.count(CREATE)

    @property
    def changed(self) -> int:
        return self.count(CHANGE, RECREATE)

    @property
    def pruned(self) -> int:
        return self.count(PRUNE)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """One line: `+1 ~2 -1` (created, changed, pruned), or why there is no plan."""
        if self.errors:
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            return f"failed: {self.errors[0]}{more}"
        if not self.changes:
            return f"no changes ({self.unchanged} objects unchanged)"
        return f"+{self.created} ~{self.changed} -{self.pruned}"

    def as_json(self) -> dict[str, Any]:
        return {
            "sync": {"namespace": self.sync_namespace, "name": self.sync_name},
            "revision": self.revision,
            "result": "Planned" if self.ok else "Failed",
            "summary": self.summary(),
            "created": self.created,
            "changed": self.changed,
            "pruned": self.pruned,
            "unchanged": self.unchanged,
            "changes": [c.as_json() for c in self.changes],
            "errors": list(self.errors),
        }


def hide_secret_values(kind: str, patch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`patch` with every value under a Secret's data and stringData replaced by HIDDEN:
    a reader learns which keys change, never what they hold."""
    if kind != "Secret":
        return patch
    hidden = []
    for original in patch:
        op = dict(original)
        path = str(op.get("path", ""))
        if "value" in op:
            if path in ("", "/"):
                op["value"] = _hide_data(op["value"])
            elif path in ("/data", "/stringData"):
                op["value"] = dict.fromkeys(op["value"], HIDDEN) if isinstance(op["value"], dict) else HIDDEN
            elif path.startswith(("/data/", "/stringData/")):
                op["value"] = HIDDEN
        hidden.append(op)
    return hidden


def _hide_data(obj: Any) -> Any:
    if not isinstance(obj, dict):
        return obj
    return {
        k: (dict.fromkeys(v, HIDDEN) if k in ("data", "stringData") and isinstance(v, dict) else v)
        for k, v in obj.items()
    }
