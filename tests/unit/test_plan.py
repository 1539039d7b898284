"""Plan helpers: normalisation and Secret redaction (no cluster)."""

from pullsync import plan


def test_server_owned_fields_are_ignored() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "resourceVersion": "7", "uid": "u", "managedFields": [], "labels": {"x": "y"}},
        "data": {"k": "v"},
        "status": {"anything": 1},
    }
    assert plan.normalise(live) == {
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
