"""`status.history`: the audit trail a reviewer reads. One entry per distinct set of
objects a Sync applied (by digest), newest first, at most `LIMIT`: from which revision
(its author and the first line of its message), when it was first and last reconciled,
with what result and how long it took, how many times. Applying the same set again (a
new commit that renders the same objects, a retry, a drift correction) updates its
entry and moves it to the front; a periodic check that found nothing to do is not
recorded (it would cost a status write per interval).
"""

import hashlib
from typing import Any

LIMIT = 10


def digest(rendered: str) -> str:
    """The digest of a rendered set (its canonical JSON)."""
    return "sha256:" + hashlib.sha256(rendered.encode()).hexdigest()


def record(
    history: list[dict[str, Any]],
    *,
    set_digest: str,
    revision: str,
    author: str,
    message: str,
    status: str,
    seconds: float,
    now: str,
    changed: bool,
) -> list[dict[str, Any]]:
    """`history` with this reconcile recorded (the same list if there is nothing new)."""
    same = next((e for e in history if e.get("digest") == set_digest), None)
    latest = history[0] if history else None
    again = same is not None and same is latest and (same.get("revision"), same.get("lastReconciledStatus"))
    if not changed and again == (revision, status):
        return history
    entry = {
        "revision": revision,
        "digest": set_digest,
        "firstReconciled": (same or {}).get("firstReconciled", now),
        "lastReconciled": now,
        "lastReconciledStatus": status,
        "lastReconciledDuration": f"{seconds:.2f}s",
        "totalReconciliations": int((same or {}).get("totalReconciliations", 0)) + 1,
        "author": author,
        "message": message,
    }
    return [entry, *(e for e in history if e is not same)][:LIMIT]
