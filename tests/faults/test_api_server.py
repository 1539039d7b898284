"""The API server away: stopped for 20 s and started again on the same etcd, its etcd
frozen for 10 s (both on a control plane of the test's own), or answering 429 and 500 for
a while (through a proxy). The same operator process recovers on its own: its watches
resume (drift made afterwards is corrected), the revision in flight converges with a
whole status, nothing is half-recorded, no write is lost, and the next commit applies."""

import time
from collections import Counter
from pathlib import Path
from typing import Any

from support import wait
from support.cluster import Cluster, condition, sync_path
from support.faults import (
    LOCAL_GIT,
    FlakyProxy,
    Operators,
    Private,
    Versions,
    configmap_data,
    expected_ids,
    git_configmap_data,
    hold,
    kubeconfig_token,
    labelled,
    pullsync_tracebacks,
    revision,
)
from support.git import HttpGitServer
from support.sync import Source, create_sync, ids, wait_applied


def assert_whole(cluster: Cluster, namespace: str, sync: dict[str, Any], files: dict[str, str]) -> None:
    """Ready at one revision, nothing Reconciling, inventory = git = the labelled objects,
    every ConfigMap with git's content."""
    status = sync["status"]
    assert condition(sync)["status"] == "True", condition(sync)
    assert not condition(sync, "Reconciling"), "a Reconciling condition was left behind"
    assert status["lastAppliedRevision"] == status["lastAttemptedRevision"]
    assert status["observedGeneration"] == sync["metadata"]["generation"]
    assert ids(sync) == expected_ids(namespace, files), "the inventory is not the revision"
    assert set(labelled(cluster, namespace)) == expected_ids(namespace, files), "orphans, or objects missing"
    assert configmap_data(cluster, namespace) == git_configmap_data(files), "a ConfigMap differs from git"


def assert_consistent(versions: list[dict[str, Any]]) -> None:
    """Each status the Sync went through was whole: Ready present, Reconciling exactly
    while Ready is Unknown, an applied revision only with Ready True at that revision."""
    for sync in versions:
        status = sync.get("status") or {}
        if not status.get("conditions"):
            continue
        ready = condition(sync)
        assert ready, f"a status without Ready: {status}"
        assert bool(condition(sync, "Reconciling")) == (ready["status"] == "Unknown"), status["conditions"]
        if ready["status"] == "True":
            assert status.get("lastAppliedRevision") == status.get("lastAttemptedRevision"), status


def drift_is_corrected(cluster: Cluster, namespace: str, name: str = "cm-000") -> None:
    """Edit a managed ConfigMap by hand: with a 1 h interval only a watch can bring it back."""
    path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
    want = (cluster.get(path) or {})["data"]
    cluster.api("PATCH", path, {"data": {"value": "by hand"}}, content_type="application/merge-patch+json")
    wait.until(lambda: (cluster.get(path) or {})["data"] == want, timeout=30, what="the drift to be corrected")


def test_the_api_server_stopped_for_20s_mid_reconcile_and_the_same_process_recovers(
    private: Private, operators: Operators, git_http: HttpGitServer
) -> None:
    cluster, namespace = private.cluster, private.namespace
    source = Source(cluster, namespace, git_http)
    first = source.push(revision(20, services=5, deployments=5))
    create_sync(cluster, namespace)
    slow = ("--api-qps", "100", "--api-burst", "5")  # the revision below takes seconds: the outage hits it
    operator = operators.start(private.kubeconfig, "--namespace", namespace, *slow, *LOCAL_GIT)
    wait_applied(cluster, namespace, first, timeout=30)
    versions = Versions(cluster, sync_path(namespace), "app")

    files = revision(160, services=5, deployments=5, data="v2")
    second = source.push(files)
    wait.until(lambda: 60 <= len(labelled(cluster, namespace)) <= 140, interval=0.02, what="the apply under way")
    began = private.plane.stop_apiserver()
    alive = "the operator exited while the API server was away"
    hold(began + 20 - time.monotonic(), lambda: operator.process.poll() is None, alive)
    private.plane.start_apiserver()

    sync = wait_applied(cluster, namespace, second, timeout=45)
    assert_whole(cluster, namespace, sync, files)
    drift_is_corrected(cluster, namespace)  # the watches resumed
    third_files = revision(150, services=5, deployments=5, data="v3")
    third = source.push(third_files | {f"config/cm-{i:03}.yaml": None for i in range(150, 160)})
    sync = wait_applied(cluster, namespace, third, timeout=30)
    assert_whole(cluster, namespace, sync, third_files)
    assert_consistent(versions.stop())
    assert operator.process.poll() is None, "the operator process exited"
    log = operator.output()
    assert "cannot reach the API server" in log
    assert pullsync_tracebacks(log) == []


def test_etcd_frozen_for_10s_mid_reconcile_leaves_nothing_half_recorded(
    private: Private, operators: Operators, git_http: HttpGitServer
) -> None:
    cluster, namespace = private.cluster, private.namespace
    source = Source(cluster, namespace, git_http)
    first = source.push(revision(40, services=5, deployments=5))
    # Reconciles time out after 6 s (spec.timeout) and are retried 2 s after a failure.
    create_sync(cluster, namespace, timeout="6s", retryInterval="2s")
    operator = operators.start(private.kubeconfig, "--namespace", namespace, "--api-qps", "200", "--api-burst", "5",
                               *LOCAL_GIT)  # fmt: skip
    wait_applied(cluster, namespace, first, timeout=30)
    versions = Versions(cluster, sync_path(namespace), "app")

    files = revision(290, services=5, deployments=5, data="v2")
    second = source.push(files)
    wait.until(lambda: 80 <= len(labelled(cluster, namespace)) <= 250, interval=0.02, what="the apply under way")
    private.plane.freeze_etcd()
    frozen = time.monotonic()
    try:
        hold(10, lambda: operator.process.poll() is None, "the operator exited while etcd was frozen")
    finally:
        private.plane.thaw_etcd()

    sync = wait_applied(cluster, namespace, second, timeout=40)
    assert_whole(cluster, namespace, sync, files)
    drift_is_corrected(cluster, namespace)
    seen = versions.stop()
    assert_consistent(seen)
    timed_out = [s for s in seen if "timed out" in condition(s).get("message", "")]
    assert timed_out, "no reconcile timed out while etcd was frozen"
    assert condition(timed_out[0])["status"] == "False"
    assert operator.process.poll() is None
    assert pullsync_tracebacks(operator.output()) == []
    assert time.monotonic() - frozen < 50


def test_429_and_500_for_a_while_the_operator_backs_off_and_loses_no_write(
    cluster: Cluster,
    namespace: str,
    git_http: HttpGitServer,
    identity: tuple[Path, str],
    operators: Operators,
    tmp_path: Path,
) -> None:
    proxy = FlakyProxy(cluster, tmp_path)
    try:
        kubeconfig = proxy.kubeconfig(kubeconfig_token(identity[0]), tmp_path / "proxied.kubeconfig")
        source = Source(cluster, namespace, git_http)
        first = source.push(revision(80, services=10, deployments=10))
        create_sync(cluster, namespace)
        operator = operators.start(kubeconfig, "--namespace", namespace, *LOCAL_GIT)
        wait_applied(cluster, namespace, first, timeout=30)
        assert proxy.requests, "the operator does not go through the proxy"
        versions = Versions(cluster, sync_path(namespace), "app")

        # Everything refused for 10 s (429 with Retry-After: 1, and 500, in turn) while a
        # new commit waits to be applied.
        window = 10.0
        start = time.monotonic()
        proxy.fail(window)
        files = revision(80, services=10, deployments=10, data="v2")
        second = source.push(files)
        wait.until(lambda: not proxy.failing(), timeout=window + 5, what="the end of the failing window")
        during = proxy.between(start, start + window)
        refused = [r for r in during if r.refused]
        assert refused, "nothing was refused: the operator did not try"
        # Backing off, not a hot loop: no request sent again and again (a loop without a
        # pause sends the same one hundreds of times in 10 s), a request refused with 429
        # not sent again before its Retry-After, and at most a few passes over the
        # revision's objects in all (an attempt may try each object once: a 500 can be
        # about one object only).
        sends = Counter((r.method, r.target) for r in during if not r.watch and r.method != "POST")
        (method, target), times = max(sends.items(), key=lambda kv: kv[1], default=(("", ""), 0))
        assert times <= 15, f"{method} {target} sent {times} times in {window:g}s: a hot loop, not a back-off"
        objects = len(files)
        assert len(during) <= 4 * objects + 40, f"{len(during)} requests in {window:g}s for {objects} objects"
        for r in (r for r in refused if r.status == 429 and not r.watch and r.method != "POST"):
            again = [x.at for x in during if x.at > r.at and (x.method, x.target) == (r.method, r.target)]
            assert not again or again[0] - r.at >= 0.95, f"{r.method} {r.target} sent again before its Retry-After"

        sync = wait_applied(cluster, namespace, second, timeout=30)
        assert_whole(cluster, namespace, sync, files)

        # A third of the requests refused for 8 s while the next commit applies.
        start = time.monotonic()
        proxy.fail(8, fraction=0.33)
        files = revision(80, services=10, deployments=10, data="v3")
        third = source.push(files)
        sync = wait_applied(cluster, namespace, third, timeout=40)
        assert_whole(cluster, namespace, sync, files)
        assert [r for r in proxy.between(start, start + 8) if r.refused], "no request was refused"
        assert_consistent(versions.stop())
        assert pullsync_tracebacks(operator.output()) == []
    finally:
        proxy.stop()
