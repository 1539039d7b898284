"""The git server away for several GitRepository intervals: the GitRepository says why
(Ready=False, FetchFailed, the cause), the Sync keeps correcting drift at the last
applied revision meanwhile; an operator restarted then (a fresh cache) says the Sync's
source cannot be fetched and leaves the objects alone; once the server is back (same
port, same repositories) the GitRepository is Ready again and the commit pushed during
the outage applies."""

from pathlib import Path
from typing import Any

from support import wait
from support.cluster import Cluster, condition, gitrepo_path
from support.faults import LOCAL_GIT, Operators, configmap_data, expected_ids, git_configmap_data, revision
from support.git import HttpGitServer
from support.operator import OperatorProcess
from support.sync import Source, create_sync, get_sync, ids, wait_applied


def gitrepository(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return cluster.get(gitrepo_path(namespace, "app")) or {}


def applied(
    cluster: Cluster,
    namespace: str,
    source: Source,
    files: dict[str, str | None],
    identity: tuple[Path, str],
    operators: Operators,
) -> tuple[str, OperatorProcess]:
    """`files` pushed, a Sync of them, an operator for `namespace`: the commit once applied, and the operator."""
    first = source.push(files)
    create_sync(cluster, namespace)
    operator = operators.start(identity[0], "--namespace", namespace, *LOCAL_GIT)
    wait_applied(cluster, namespace, first, timeout=30)
    return first, operator


def test_git_server_down_for_several_intervals_then_back(
    cluster: Cluster, namespace: str, identity: tuple[Path, str], operators: Operators, tmp_path: Path
) -> None:
    root = tmp_path / "git"
    root.mkdir()
    server = HttpGitServer(root)
    try:
        source, files = Source(cluster, namespace, server, interval="2s"), revision(30)
        first, operator = applied(cluster, namespace, source, files, identity, operators)
        wait.until(lambda: condition(gitrepository(cluster, namespace))["status"] == "True", what="the source Ready")

        server.stop()  # the git server goes away
        failures_before = operator.output().count("failed to poll")

        def fetch_failed() -> dict[str, str]:
            ready = condition(gitrepository(cluster, namespace))
            assert ready.get("status") == "False", ready
            return ready

        ready = wait.until(fetch_failed, timeout=15, what="the GitRepository to say the fetch failed")
        assert ready["reason"] == "FetchFailed", ready
        assert source.url in ready["message"], ready["message"]
        assert "connection refused" in ready["message"].lower(), ready["message"]
        assert condition(gitrepository(cluster, namespace), "FetchFailed").get("status") == "True"
        assert (gitrepository(cluster, namespace)["status"]["artifact"]["commit"]) == first, "the last artifact went"

        # A commit lands while the server is away (pushed to its repository directly).
        second_files = revision(25, data="v2") | {f"config/cm-{i:03}.yaml": None for i in range(25, 30)}
        second = source.repo.commit(second_files, "while git is away")

        # Meanwhile the Sync corrects drift at the last applied revision.
        path = f"/api/v1/namespaces/{namespace}/configmaps/cm-003"
        cluster.api("PATCH", path, {"data": {"value": "by hand"}}, content_type="application/merge-patch+json")
        wait.until(
            lambda: (cluster.get(path) or {}).get("data") == {"value": "v1-3"}, timeout=15, what="drift corrected"
        )
        cluster.api("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/cm-004")
        wait.until(lambda: cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/cm-004"), timeout=15,
                   what="a deleted object restored")  # fmt: skip

        # Several intervals (2 s) of failed polls, the Sync Ready at its last revision throughout.
        wait.until(
            lambda: operator.output().count("failed to poll") >= failures_before + 3,
            timeout=20,
            what="three failed polls",
        )
        sync = get_sync(cluster, namespace)
        assert condition(sync)["status"] == "True", condition(sync)
        assert sync["status"]["lastAppliedRevision"].endswith(first)
        assert ids(sync) == expected_ids(namespace, files)
        assert condition(gitrepository(cluster, namespace))["reason"] == "FetchFailed"

        # The operator restarts while git is away: its fresh cache lacks the applied commit.
        operator.stop()
        operator = operators.start(identity[0], "--namespace", namespace, *LOCAL_GIT)

        def waiting_for_source() -> dict[str, Any]:
            ready = condition(get_sync(cluster, namespace))
            assert (ready.get("status"), ready.get("reason")) == ("False", "SourceNotReady"), ready
            return ready

        ready = wait.until(waiting_for_source, timeout=20, what="the Sync to say its source cannot be fetched")
        assert "connection refused" in ready["message"].lower(), ready["message"]
        assert configmap_data(cluster, namespace) == git_configmap_data(files)  # nothing pruned or changed

        server = HttpGitServer(root, port=server.port)  # back, on the same port, with the same repositories

        def ready_again() -> dict[str, Any]:
            repo = gitrepository(cluster, namespace)
            assert condition(repo).get("status") == "True", condition(repo)
            assert not condition(repo, "FetchFailed"), "FetchFailed left behind"
            assert repo["status"]["artifact"]["commit"] == second
            return repo

        wait.until(ready_again, timeout=15, what="the GitRepository Ready at the new commit")
        sync = wait_applied(cluster, namespace, second, timeout=20)
        assert ids(sync) == expected_ids(namespace, [p for p, v in second_files.items() if v is not None])
        assert configmap_data(cluster, namespace) == git_configmap_data(second_files)
        assert "Traceback" not in operator.output()
    finally:
        server.stop()


def test_a_sync_of_a_source_suspended_before_a_restart_says_why_it_waits(
    cluster: Cluster, namespace: str, identity: tuple[Path, str], operators: Operators, tmp_path: Path
) -> None:
    server = HttpGitServer(tmp_path / "git")
    try:
        source, files = Source(cluster, namespace, server, interval="2s"), revision(3)
        first, operator = applied(cluster, namespace, source, files, identity, operators)
        suspend = {"spec": {"suspend": True}}
        cluster.api("PATCH", gitrepo_path(namespace, "app"), suspend, content_type="application/merge-patch+json")
        wait.until(lambda: condition(gitrepository(cluster, namespace)).get("reason") == "Suspended", what="suspended")

        operator.stop()  # the new process's git cache is empty, and a suspended source fetches nothing
        operators.start(identity[0], "--namespace", namespace, *LOCAL_GIT)

        def waiting() -> dict[str, Any]:
            ready = condition(get_sync(cluster, namespace))
            assert (ready.get("status"), ready.get("reason")) == ("False", "SourceNotReady"), ready
            return ready

        message = wait.until(waiting, timeout=20, what="the Sync to say why it waits")["message"]
        assert "suspended, and not fetched since this operator started: resume it" in message, message
        assert configmap_data(cluster, namespace) == git_configmap_data(files)  # nothing pruned
        resume = {"spec": {"suspend": False}}
        cluster.api("PATCH", gitrepo_path(namespace, "app"), resume, content_type="application/merge-patch+json")
        wait_applied(cluster, namespace, first, timeout=30)
    finally:
        server.stop()
