"""Plan helpers: normalisation, Secret redaction and who owns an object (no cluster)."""

import asyncio
from typing import Any

import pytest

from pullsync import kube
from pullsync.kube import fingerprint
from pullsync.render.documents import Document
from pullsync.sync import plan


def test_server_owned_fields_are_ignored() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "resourceVersion": "7", "uid": "u", "managedFields": [], "labels": {"x": "y"}},
        "data": {"k": "v"},
        "status": {"anything": 1},
    }
    assert fingerprint.normalise(live) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "labels": {"x": "y"}},
        "data": {"k": "v"},
    }


def test_secret_values_are_redacted_from_server_messages_of_any_shape() -> None:
    secret = {"kind": "Secret", "data": {"a": "c2VjcmV0"}, "stringData": {"b": ["hunter2-x"], "c": {"d": "pw-123"}}}
    message = (
        'failed: .stringData.b: expected string, got ["hunter2-x"]; decode c2VjcmV0 failed; pw-123; '
        'Invalid value: "whatever"; context ...|{"a":"c2VjcmV0"}|...'
    )
    redacted = plan.redact_secret(message, secret)
    for value in ("hunter2-x", "c2VjcmV0", "pw-123", "whatever"):
        assert value not in redacted


def test_a_status_update_does_not_change_the_fingerprint_but_a_spec_change_does() -> None:
    obj = {"metadata": {"name": "a", "resourceVersion": "1"}, "spec": {"replicas": 2}, "status": {"ready": 0}}
    status_only = {"metadata": {"name": "a", "resourceVersion": "2"}, "spec": {"replicas": 2}, "status": {"ready": 2}}
    scaled = {"metadata": {"name": "a", "resourceVersion": "3"}, "spec": {"replicas": 5}, "status": {"ready": 2}}
    assert fingerprint.of(obj) == fingerprint.of(status_only)
    assert fingerprint.of(obj) != fingerprint.of(scaled)


def test_kinds_are_written_in_order_and_pruned_in_reverse() -> None:
    kinds = ["ValidatingWebhookConfiguration", "Deployment", "Widget", "ConfigMap", "Namespace", "RoleBinding", "Role"]
    applied = plan.waves(kinds, key=plan.rank)
    assert applied == [
        ["Namespace"],
        ["Role"],
        ["ConfigMap"],
        ["RoleBinding"],
        ["Deployment"],
        ["Widget"],
        ["ValidatingWebhookConfiguration"],
    ]
    pruned = [k for wave in plan.waves(kinds, key=lambda k: -plan.rank(k)) for k in wave]
    assert pruned == list(reversed([k for wave in applied for k in wave]))


class Syncs:
    """The operator's reads of Syncs: `inventories` by (namespace, name); missing: deleted."""

    def __init__(self, inventories: dict[tuple[str, str], list[str]]) -> None:
        self.inventories = inventories

    async def get(self, resource: kube.Resource, namespace: str, name: str) -> dict[str, Any] | None:
        ids = self.inventories.get((namespace, name))
        return None if ids is None else {"status": {"inventory": {"entries": [{"id": i, "v": "v1"} for i in ids]}}}


def claimed(api_version: str, owner: str = "a") -> plan.Planned:
    """Sync b's Ingress `web`, live with the owner labels of Sync `owner`."""
    obj = {"apiVersion": api_version, "kind": "Ingress", "metadata": {"name": "web", "namespace": "team"}}
    labels = {"pullsync.dev/name": owner, "pullsync.dev/namespace": "team"}
    live = {**obj, "metadata": {**obj["metadata"], "labels": labels}}
    return plan.Planned(plan.Item(Document("ing.yaml", 1, obj), None), live, result=obj)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("inventories", "refused"),
    [
        ({("team", "a"): ["team_web_networking.k8s.io_Ingress"]}, True),  # a lists it
        ({("team", "a"): ["team_web_extensions_Ingress"]}, True),  # a lists it under the other group
        ({("team", "a"): ["team_other__ConfigMap"]}, False),  # left behind by a (prune: false)
        ({}, False),  # a was deleted (prune: false)
    ],
)
def test_an_object_is_claimed_by_the_sync_that_lists_it_and_free_once_none_does(
    inventories: dict[tuple[str, str], list[str]], refused: bool
) -> None:
    check = plan.check_claims([claimed("networking.k8s.io/v1")], owner=("team", "b"), operator=Syncs(inventories))  # type: ignore[arg-type]
    if refused:
        with pytest.raises(plan.PlanError, match="managed by Sync team/a"):
            asyncio.run(check)
    else:
        asyncio.run(check)
