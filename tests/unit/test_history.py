"""status.history: one entry per distinct applied set, newest first, bounded; a re-apply
updates its entry, a no-op check records nothing."""

from typing import Any

from pullsync.sync import history


def apply(entries: list[dict[str, Any]], rendered: str, revision: str, **kw: Any) -> list[dict[str, Any]]:
    args: dict[str, Any] = {
        "author": "Jane <jane@example.com>",
        "message": f"commit {revision}",
        "status": "Succeeded",
        "seconds": 0.5,
        "now": f"2026-11-28T10:00:{len(entries):02d}Z",
        "changed": True,
    }
    return history.record(entries, set_digest=history.digest(rendered), revision=revision, **{**args, **kw})


def test_three_commits_and_a_re_apply() -> None:
    h = apply([], "set-a", "main@sha1:1")
    h = apply(h, "set-b", "main@sha1:2")
    h = apply(h, "set-c", "main@sha1:3", status="HealthCheckFailed")
    assert [e["revision"] for e in h] == ["main@sha1:3", "main@sha1:2", "main@sha1:1"]
    assert h[0]["lastReconciledStatus"] == "HealthCheckFailed"
    assert h[0]["digest"].startswith("sha256:")
    assert h[0]["author"] == "Jane <jane@example.com>"
    assert h[0]["message"] == "commit main@sha1:3"

    again = apply(h, "set-a", "main@sha1:4")  # a revert to the first set: its entry moves up
    assert [e["revision"] for e in again] == ["main@sha1:4", "main@sha1:3", "main@sha1:2"]
    assert again[0]["totalReconciliations"] == 2
    assert again[0]["firstReconciled"] == h[2]["firstReconciled"]
    assert again[0]["lastReconciled"] != again[0]["firstReconciled"]


def test_a_check_that_found_nothing_to_do_records_nothing() -> None:
    h = apply([], "set-a", "main@sha1:1")
    assert apply(h, "set-a", "main@sha1:1", changed=False) is h
    corrected = apply(h, "set-a", "main@sha1:1", changed=True)  # drift corrected: a re-apply
    assert corrected[0]["totalReconciliations"] == 2
    failed = apply(h, "set-a", "main@sha1:1", changed=False, status="ApplyFailed")
    assert failed[0]["lastReconciledStatus"] == "ApplyFailed"


def test_at_most_ten_entries() -> None:
    h: list[dict[str, Any]] = []
    for i in range(15):
        h = apply(h, f"set-{i}", f"main@sha1:{i}")
    assert len(h) == history.LIMIT
    assert h[0]["revision"] == "main@sha1:14"
    assert h[-1]["revision"] == "main@sha1:5"
