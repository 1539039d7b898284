"""Event and condition messages: whole items, then how many more."""

from pullsync.kube import events
from pullsync.sync import plan


def test_a_list_is_cut_between_items_and_says_how_many_more() -> None:
    lines = [f"ConfigMap/team-a/config-{i:03} configured" for i in range(100)]
    text = events.fit(lines)
    assert len(text) <= events.LIMIT
    kept = text.splitlines()[:-1]
    assert kept == lines[: len(kept)]
    assert text.splitlines()[-1] == f"... and {100 - len(kept)} more"
    one_more = "\n".join([*lines[: len(kept) + 1], f"... and {100 - len(kept) - 1} more"])
    assert len(one_more) > events.LIMIT  # as many whole lines as fit
    assert events.fit(lines[:3]) == "\n".join(lines[:3])


def test_one_item_too_long_is_cut_itself() -> None:
    text = events.fit(["x" * 5000, "short"], limit=100)
    assert len(text) == 100
    assert text.endswith("x…\n... and 1 more")


def refusal(status: int, message: str) -> tuple[plan.Item, plan.kube.ApiError]:
    """A ConfigMap and the API server's refusal of it."""
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}
    item = plan.Item(plan.Document("cm.yaml", 1, obj), None)  # type: ignore[arg-type]
    return item, plan.kube.ApiError(
        status, {"message": message}, verb="patch", path="/api/v1/namespaces/n/configmaps/c"
    )


def test_the_api_servers_dump_of_our_input_is_left_out_of_failures() -> None:
    item, error = refusal(
        400,
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: v1.ConfigMap.Data: ReadString: '
        'expects " or n, but found t, error found in #10 byte of ...|{"a":true}}|..., bigger context '
        '...|{"apiVersion":"v1","data":{"a":true},"kind":"ConfigMap"}|...',
    )
    _, message = plan.describe_failure(item, error)
    assert "bigger context" not in message
    assert "quote strings" in message


def test_a_terminating_namespace_is_not_access_denied() -> None:
    item, error = refusal(
        403, 'configmaps "c" is forbidden: unable to create new content in namespace n because it is being terminated'
    )
    assert plan.describe_failure(item, error) == (
        "ValidationFailed",
        "cm.yaml (document 1): ConfigMap/n/c: namespace n is being deleted and takes no new objects",
    )


def test_a_field_of_the_wrong_type_is_named_with_a_hint_and_without_gos_words() -> None:
    item, error = refusal(
        500,
        "failed to create typed patch object: .data.a: expected string, got *value.valueUnstructured",
    )
    reason, message = plan.describe_failure(item, error)
    assert reason == "ValidationFailed"
    assert message.startswith(
        "cm.yaml (document 1): ConfigMap/n/c: .data.a: expected string (a field has the wrong type"
    )


def test_a_field_that_the_last_applied_crd_version_lacks_gets_a_hint() -> None:
    item, error = refusal(
        422,
        "failed to prune fields: failed to convert merged object to last applied version: "
        ".spec.shape: field not declared in schema",
    )
    _, message = plan.describe_failure(item, error)
    assert message.endswith("declare the field in that version's schema too)")
