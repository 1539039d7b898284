"""Nothing written is forgotten: however a reconcile ends (a bug, its timeout), its status
is written, without a Reconciling condition left behind, and every object it wrote is in
`status.inventory`, so a later prune finds it. The operator runs in this process, so the
failures are injected by replacing one engine function for a while."""

import asyncio
from typing import Any

import pytest

from pullsync.sync import apply
from support import manifests as m
from support import wait
from support.cluster import Cluster, condition
from support.git import HttpGitServer
from support.operator import Operator
from support.sync import Source, create_sync, get_sync, ids, wait_applied


def first_commit(source: Source, extra: str) -> str:
    """A Namespace (stage 1, written first) and a ConfigMap in it (written after)."""
    return source.push({"ns.yaml": m.namespace(extra), "cm.yaml": m.configmap("settings", namespace=extra)})


def failed_turn(cluster: Cluster, namespace: str, reason: str) -> dict[str, Any]:
    def check() -> dict[str, Any]:
        sync = get_sync(cluster, namespace)
        assert condition(sync).get("reason") == reason, condition(sync)
        return sync

    return wait.until(check, timeout=30, what=f"Ready=False {reason}")


def assert_remembers_the_namespace(sync: dict[str, Any], extra: str) -> None:
    assert condition(sync)["status"] == "False"
    assert not condition(sync, "Reconciling"), "a Reconciling condition was left behind"
    assert f"_{extra}__Namespace" in ids(sync), "the Namespace written before the failure is not in the inventory"


def prune_finds_it(cluster: Cluster, source: Source, namespace: str, extra: str) -> None:
    """A commit without the Namespace: prune deletes it, which it can only do if the
    inventory kept it."""
    commit = source.push({"ns.yaml": None, "cm.yaml": m.configmap("settings")})
    wait_applied(cluster, namespace, commit)
    wait.until(
        lambda: (
            (cluster.get(f"/api/v1/namespaces/{extra}") or {"status": {"phase": "Terminating"}})["status"]["phase"]
            == "Terminating"
        ),
        what=f"namespace {extra} pruned",
    )


def test_a_bug_after_stage_one_is_reported_as_such_and_what_was_written_stays_in_the_inventory(
    cluster: Cluster,
    operator: Operator,
    namespace: str,
    git_http: HttpGitServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("secret-looking text")

    monkeypatch.setattr(apply, "wait_established", broken)
    extra = f"{namespace}-x"
    source = Source(cluster, namespace, git_http)
    first_commit(source, extra)
    create_sync(cluster, namespace, retryInterval="1s")

    sync = failed_turn(cluster, namespace, "InternalError")
    assert_remembers_the_namespace(sync, extra)
    message = condition(sync)["message"]
    assert "internal error during apply: KeyError" in message, message
    assert "secret-looking" not in message, "an exception's text may quote anything: only its type goes to status"
    assert "Traceback" in operator.log_text()
    assert "KeyError: 'secret-looking text'" in operator.log_text()

    monkeypatch.undo()  # the bug is fixed: the next retry converges
    wait.until(lambda: condition(get_sync(cluster, namespace)).get("status") == "True", what="Ready after the fix")
    prune_finds_it(cluster, source, namespace, extra)


def test_a_timeout_after_stage_one_keeps_what_was_written_in_the_inventory(
    cluster: Cluster,
    operator: Operator,
    namespace: str,
    git_http: HttpGitServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def stuck(*args: object, **kwargs: object) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(apply, "wait_established", stuck)
    extra = f"{namespace}-x"
    source = Source(cluster, namespace, git_http)
    first_commit(source, extra)
    create_sync(cluster, namespace, timeout="2s", retryInterval="1s")

    sync = failed_turn(cluster, namespace, "ApplyFailed")
    assert_remembers_the_namespace(sync, extra)
    assert "timed out after 2s during apply" in condition(sync)["message"]
    assert "Namespace/" + extra in condition(sync)["message"], "the message says what was written before"

    monkeypatch.undo()
    wait.until(lambda: condition(get_sync(cluster, namespace)).get("status") == "True", what="Ready after the fix")
    prune_finds_it(cluster, source, namespace, extra)
