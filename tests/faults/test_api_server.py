"""The API server away: stopped for 20 s (same etcd), its etcd paused for 10 s, or
answering 429 and 500 for a while. The same operator process recovers on its own: its
watches resume (drift made afterwards is corrected at once), the revision in flight
converges with a whole status, and the next commit applies. No write is lost."""

import signal
import time
from pathlib import Path
from typing import Any

from support import wait
from support.cluster import Cluster, condition
from support.faults import LOCAL_GIT, FlakyProxy, PrivateCluster, expected_ids, labelled, revision, token_of
from support.git import HttpGitServer
from support.operator import OperatorProcess
from support.sync import Source, create_sync, get_sync, ids, wait_applied

SLOW = ("--api-qps", "50")  # the reconcile of a revision lasts a few seconds: the fault hits it


def start_reconcile(cluster: Cluster, namespace: str, source: Source, files: dict[str, str]) -> str:
    """Push `files` and return once the Sync is reconciling that commit."""
    commit = source.push(files)
    wait.until(
        lambda: get_sync(cluster, namespace).get("status", {}).get("lastAttemptedRevision", "").endswith(commit),
        what="the reconcile of the new commit to start",
    )
    return commit


def assert_whole(cluster: Cluster, namespace: str, sync: dict[str, Any], files: dict[str, str]) -> None:
    """Ready, no Reconciling left behind, inventory = objects present = git."""
    assert condition(sync)["status"] == "True"
    assert not condition(sync, "Reconciling"), "a Reconciling condition was left behind"
    assert ids(sync) == expected_ids(namespace, files)
    assert labelled(cluster, namespace) == expected_ids(namespace, files)


def drift_is_corrected(cluster: Cluster, namespace: str) -> None:
    """Edit a managed ConfigMap by hand: with a 1 h interval only the watch can bring it back."""
    path = f"/api/v1/namespaces/{namespace}/configmaps/cm-000"
    want = (cluster.get(path) or {})["data"]
    cluster.api("PATCH", path, {"data": {"value": "by hand"}}, content_type="application/merge-patch+json")
    wait.until(lambda: (cluster.get(path) or {})["data"] == want, timeout=30, what="the drift to be corrected")


def test_the_api_server_stopped_for_20s_mid_reconcile_and_the_operator_recovers_without_a_restart(
    private: tuple[PrivateCluster, str, Path], git_http: HttpGitServer
) -> None:
    plane, namespace, kubeconfig = private
    cluster = plane.cluster
    source = Source(cluster, namespace, git_http)
    first = source.push(revision(100))
    create_sync(cluster, namespace)
    operator = OperatorProcess(kubeconfig, "--namespace", namespace, *SLOW, *LOCAL_GIT)
    try:
        wait_applied(cluster, namespace, first, timeout=60)
        files = revision(100, data="v2")
        second = start_reconcile(cluster, namespace, source, files)
        plane.stop_apiserver()
        time.sleep(20)  # the fault itself: 20 s without an API server
        plane.start_apiserver()

        sync = wait_applied(cluster, namespace, second, timeout=90)
        assert_whole(cluster, namespace, sync, files)
        drift_is_corrected(cluster, namespace)
        third = source.push(revision(90, data="v3") | {f"config/cm-{i:03}.yaml": None for i in range(90, 100)})
        sync = wait_applied(cluster, namespace, third, timeout=30)
        assert len(ids(sync)) == 90
        assert operator.process.poll() is None, "the operator exited"
        assert "Traceback" not in operator.output()
        assert "cannot reach the API server" in operator.output()
    finally:
        operator.stop()


def test_etcd_paused_for_10s_mid_reconcile_leaves_nothing_half_recorded(
    private: tuple[PrivateCluster, str, Path], git_http: HttpGitServer
) -> None:
    plane, namespace, kubeconfig = private
    cluster = plane.cluster
    source = Source(cluster, namespace, git_http)
    first = source.push(revision(100))
    create_sync(cluster, namespace)
    operator = OperatorProcess(kubeconfig, "--namespace", namespace, *SLOW, *LOCAL_GIT)
    try:
        wait_applied(cluster, namespace, first, timeout=60)
        files = revision(120, data="v2")
        second = start_reconcile(cluster, namespace, source, files)
        plane.signal_etcd(signal.SIGSTOP)
        time.sleep(10)  # the fault itself: etcd frozen for 10 s
        plane.signal_etcd(signal.SIGCONT)

        sync = wait_applied(cluster, namespace, second, timeout=90)
        assert_whole(cluster, namespace, sync, files)
        drift_is_corrected(cluster, namespace)
        assert operator.process.poll() is None, "the operator exited"
        assert "Traceback" not in operator.output()
    finally:
        operator.stop()


def test_429_and_500_for_a_while_back_off_and_lose_no_write(
    cluster: Cluster, app: str, git_http: HttpGitServer, identity: tuple[Path, str], tmp_path: Path
) -> None:
    proxy = FlakyProxy(cluster)
    source = Source(cluster, app, git_http)
    first = source.push(revision(50))
    create_sync(cluster, app)
    operator = OperatorProcess(proxy.kubeconfig(token_of(identity[0]), tmp_path), "--namespace", app, *LOCAL_GIT)
    try:
        wait_applied(cluster, app, first, timeout=60)
        files = revision(50, data="v2")
        proxy.fail(8)
        second = source.push(files)
        wait.until(lambda: proxy.refused, what="the proxy to refuse a request")
        wait.until(lambda: time.monotonic() > proxy.failing_until, timeout=10, what="the end of the failing window")
        refused = list(proxy.refused)
        assert len(refused) < 100, f"{len(refused)} requests refused in 8 s, no backoff: {refused}"

        sync = wait_applied(cluster, app, second, timeout=60)
        assert_whole(cluster, app, sync, files)
        for i in range(50):  # every write made it, with git's content
            live = cluster.get(f"/api/v1/namespaces/{app}/configmaps/cm-{i:03}") or {}
            assert live["data"] == {"value": f"v2-{i}"}
        assert "Traceback" not in operator.output()
    finally:
        operator.stop()
        proxy.stop()
