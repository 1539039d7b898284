"""kstatus conditions, as Flux writes them.

`Ready` is always present; `Reconciling` and `Stalled` appear only while True. A
condition keeps its `lastTransitionTime` unless its status changes.
"""

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from pullsync import api
from pullsync.api import clock


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The result of one reconcile, as conditions will show it."""

    ready: str  # "True", "False" or "Unknown"
    reason: str
    message: str
    stalled: bool = False  # no retry will help until the spec changes
    extra: tuple[tuple[str, str, str, str], ...] = ()  # (type, status, reason, message)

    @classmethod
    def success(cls, message: str) -> "Outcome":
        return cls("True", api.SUCCEEDED, message)

    @classmethod
    def failure(cls, reason: str, message: str, *, stalled: bool = False) -> "Outcome":
        return cls("False", reason, message, stalled=stalled)

    @classmethod
    def progressing(cls, message: str) -> "Outcome":
        return cls("Unknown", api.PROGRESSING, message)

    @classmethod
    def unexpected(cls, error: BaseException, during: str) -> "Outcome":
        """A failure pullsync did not foresee: a bug, said as such (not as a git or API
        failure). Only the exception's type goes to status; its text may quote anything."""
        message = (
            f"internal error during {during}: {type(error).__name__} "
            "(a bug in pullsync; the operator log has the traceback; retrying)"
        )
        return cls("False", api.INTERNAL_ERROR, message)


def build(
    outcome: Outcome, *, generation: int | None, previous: Iterable[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """The full conditions list for `outcome`, keeping transition times of unchanged ones."""
    wanted: list[tuple[str, str, str, str]] = [(api.READY, outcome.ready, outcome.reason, outcome.message)]
    if outcome.ready == "Unknown":
        wanted.append((api.RECONCILING, "True", outcome.reason, outcome.message))
    if outcome.stalled:
        wanted.append((api.STALLED, "True", outcome.reason, outcome.message))
    wanted.extend(outcome.extra)
    before = {c.get("type"): c for c in previous or ()}
    stamp = clock.now()
    result = []
    for ctype, status, reason, message in wanted:
        old = before.get(ctype)
        changed = old is None or old.get("status") != status
        condition: dict[str, Any] = {
            "type": ctype,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": stamp if changed or old is None else old.get("lastTransitionTime", stamp),
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        result.append(condition)
    return result


def ready_message(conditions: Iterable[Mapping[str, Any]] | None) -> tuple[str | None, str]:
    """The Ready condition's status and message, or (None, "") when there is none."""
    for c in conditions or ():
        if c.get("type") == api.READY:
            return c.get("status"), str(c.get("message", ""))
    return None, ""
