"""Plan helpers: normalisation and Secret redaction (no cluster)."""

from pullsync.kube import fingerprint
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
