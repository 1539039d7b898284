"""How a reconcile that ends early is recorded: every object whose write began is in the
inventory (unless the server refused it), what was done is named in apply order, and only
failures caused by the API server's state are retried soon."""

import asyncio
from typing import Any

import pytest

from pullsync import kube
from pullsync.render.documents import Document
from pullsync.sync import apply, inventory, plan, reconcile

CONFIGMAPS = kube.Resource("", "v1", "ConfigMap", "configmaps", True)
NAMESPACES = kube.Resource("", "v1", "Namespace", "namespaces", False)


def planned(kind: str, name: str, path: str, *, live: bool = False) -> plan.Planned:
    meta = {"name": name} if kind == "Namespace" else {"name": name, "namespace": "team"}
    obj = {"apiVersion": "v1", "kind": kind, "metadata": meta}
    resource = NAMESPACES if kind == "Namespace" else CONFIGMAPS
    return plan.Planned(plan.Item(Document(path, 1, obj), resource), obj if live else None, result=obj)


def test_a_turn_that_ends_early_keeps_every_write_begun_in_the_inventory() -> None:
    old = [inventory.Entry("team_old__ConfigMap", "v1")]
    turn = reconcile.Turn("main@sha1:abc", old)
    done, in_flight = planned("Namespace", "team", "ns.yaml"), planned("ConfigMap", "c", "cm.yaml")
    turn.writes.begun += [done, in_flight]
    turn.writes.done.append(done)

    result = turn.failed("ApplyFailed", "timed out after 2s during apply (spec.timeout)")

    assert result.entries is not None
    assert {e.id for e in result.entries} == {"team_old__ConfigMap", "_team__Namespace", "team_c__ConfigMap"}
    assert result.outcome.message.endswith("(applied before the failure: Namespace/team)")
    assert result.plan == {"objects": 0, "changed": 1, "operations": 0, "created": 1, "pruned": 0}


def test_a_turn_that_wrote_nothing_keeps_the_old_inventory() -> None:
    result = reconcile.Turn("main@sha1:abc", []).failed("ValidationFailed", "cm.yaml (document 1): refused")
    assert result.entries is None
    assert result.outcome.message == "cm.yaml (document 1): refused"


def test_writes_are_named_in_apply_order_not_in_order_of_completion() -> None:
    writes = apply.Writes()
    writes.done += [planned("ConfigMap", "b", "b.yaml"), planned("ConfigMap", "a", "a.yaml")]
    writes.done.append(planned("Namespace", "team", "z.yaml"))
    assert [p.item.entry.describe() for p in writes.applied()] == [
        "Namespace/team",
        "ConfigMap/team/a",
        "ConfigMap/team/b",
    ]


@pytest.mark.parametrize(
    ("status", "transient"),
    [(0, True), (429, True), (500, True), (503, True), (400, False), (403, False), (404, False), (422, False)],
)
def test_only_the_api_servers_state_is_a_transient_failure(status: int, transient: bool) -> None:
    error = kube.ApiError(status, {"message": "x"}, verb="patch", path="/x")
    assert kube.transient(error) is transient


def test_a_500_refusing_an_apply_body_of_the_wrong_type_is_no_transient_failure() -> None:
    message = "failed to create typed patch object: .spec.replicas: expected numeric (int or float), got *value.x"
    assert not kube.transient(kube.ApiError(500, {"message": message}, verb="patch", path="/x"))


def test_the_healthy_condition_read_back_from_status_names_objects_as_people_do() -> None:
    health = {"status": "InProgress", "unhealthy": [
        {"id": "team_web_apps_Deployment", "status": "InProgress", "message": "0 of 2 replicas available"}
    ]}  # fmt: skip
    ((kind, truth, reason, message),) = reconcile.healthy_condition(health, None)
    assert (kind, truth, reason) == ("Healthy", "Unknown", "InProgress")
    assert message == "Deployment/team/web: 0 of 2 replicas available"


@pytest.mark.parametrize(
    ("status", "message", "remembered"),
    [
        (422, "invalid", False),
        (500, f"{kube.UNTYPED_APPLY}: .data: expected map", False),  # 1.20's refusal of a wrong type
        (500, "etcd timed out", True),
        (0, "cannot reach the API server", True),
    ],
)
def test_a_write_the_server_refused_is_not_remembered_but_one_that_may_have_happened_is(
    status: int, message: str, remembered: bool
) -> None:
    class Answering:
        async def apply(self, resource: kube.Resource, obj: dict[str, Any]) -> dict[str, Any]:
            raise kube.ApiError(status, {"message": message}, verb="patch", path="/x")

    writes, write = apply.Writes(), planned("ConfigMap", "c", "cm.yaml")
    with pytest.raises(kube.ApiError):
        asyncio.run(apply._apply_one(Answering(), write, writes))  # type: ignore[arg-type]
    assert (write in writes.begun) is remembered


def test_a_write_ahead_that_could_not_be_saved_is_written_again_before_any_object() -> None:
    loop = reconcile.SyncLoop.__new__(reconcile.SyncLoop)  # only the bookkeeping of record_ahead
    new = planned("ConfigMap", "c", "cm.yaml")
    loop.written = {}
    loop.unsaved = {"inventory": inventory.dump([new.item.entry])}  # the last write-ahead failed
    sent: list[reconcile.Result] = []

    async def finish(body: Any, result: reconcile.Result, **_: Any) -> None:
        sent.append(result)

    loop.finish = finish  # type: ignore[method-assign]
    turn = reconcile.Turn("main@sha1:abc", [new.item.entry])  # the status as this loop knows it
    asyncio.run(loop.record_ahead(turn, {"status": {}}, [new.item], [new]))
    [ahead] = sent
    assert ahead.entries == [new.item.entry]  # written again, once
