"""kstatus conditions."""

from pullsync import api
from pullsync.api import conditions


def test_ready_is_always_present_and_reconciling_only_while_progressing() -> None:
    done = conditions.build(conditions.Outcome.success("ok"), generation=2, previous=None)
    assert [c["type"] for c in done] == [api.READY]
    busy = conditions.build(conditions.Outcome.progressing("working"), generation=2, previous=None)
    assert [c["type"] for c in busy] == [api.READY, api.RECONCILING]
    stuck = conditions.build(
        conditions.Outcome.failure(api.ACCESS_DENIED, "no", stalled=True), generation=2, previous=None
    )
    assert [(c["type"], c["status"]) for c in stuck] == [(api.READY, "False"), (api.STALLED, "True")]


def test_transition_time_changes_only_with_status() -> None:
    old = [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "a", "lastTransitionTime": "T0"}]
    same = conditions.build(conditions.Outcome.success("b"), generation=1, previous=old)
    assert same[0]["lastTransitionTime"] == "T0"
    flipped = conditions.build(conditions.Outcome.failure(api.APPLY_FAILED, "c"), generation=1, previous=old)
    assert flipped[0]["lastTransitionTime"] != "T0"
