"""The operator killed in the middle of applying a large revision: alone (SIGKILL, then a
restart) and as the leader of two replicas (the other takes over). Afterwards the Sync
has converged, its inventory is complete, nothing git still has was pruned, nothing is
orphaned, and at no moment did two replicas write."""

import datetime
import signal
from pathlib import Path

from support import wait
from support.cluster import AuditLog, Cluster, token_kubeconfig
from support.faults import LOCAL_GIT, expected_ids, labelled, revision
from support.git import HttpGitServer
from support.operator import OperatorProcess
from support.sync import Source, create_sync, ids, wait_applied

SLOW = ("--api-qps", "100")  # a thousand requests take ten seconds: time to be killed mid-apply


def kill_mid_apply(cluster: Cluster, namespace: str, operator: OperatorProcess, total: int) -> int:
    """SIGKILL `operator` once some, but not all, objects are written; how many were."""
    written = wait.until(
        lambda: 20 <= len(labelled(cluster, namespace)) < total - 50 and len(labelled(cluster, namespace)),
        timeout=60,
        interval=0.02,
        what="the apply to be under way",
    )
    operator.stop(signal.SIGKILL)
    return int(written)


def test_sigkill_mid_apply_then_restart_converges_with_a_complete_inventory(
    cluster: Cluster, app: str, git_http: HttpGitServer, identity: tuple[Path, str]
) -> None:
    files = revision(440, services=30, deployments=30)
    source = Source(cluster, app, git_http)
    first = source.push(files)
    create_sync(cluster, app)
    operator = OperatorProcess(identity[0], "--namespace", app, *SLOW, *LOCAL_GIT)
    try:
        written = kill_mid_apply(cluster, app, operator, 500)
        assert written < 500
        operator = OperatorProcess(identity[0], "--namespace", app, *LOCAL_GIT)
        sync = wait_applied(cluster, app, first, timeout=90)
        assert ids(sync) == expected_ids(app, files)
        assert labelled(cluster, app) == expected_ids(app, files), "an object is orphaned, or missing"

        removed = dict.fromkeys(list(files)[:40])
        second = source.push(removed)
        sync = wait_applied(cluster, app, second, timeout=60)
        rest = {k: v for k, v in files.items() if k not in removed}
        assert ids(sync) == expected_ids(app, rest)
        assert labelled(cluster, app) == expected_ids(app, rest), "prune removed more, or less, than git did"
    finally:
        operator.stop()


def leading(replicas: list[OperatorProcess]) -> int:
    """1 + the index of the one ready replica (the leader), or 0 while there is none."""
    ready = [r.probe("/readyz") == 200 for r in replicas]
    return ready.index(True) + 1 if ready.count(True) == 1 else 0


def writes_with_time(audit: AuditLog) -> list[tuple[datetime.datetime, str]]:
    """The identity's writes to anything but its Lease, with the time the API server got them."""
    found = []
    for event in audit.requests(None):
        if event["verb"] in ("create", "update", "patch", "delete") and "dryRun" not in event["requestURI"]:
            if "/leases/" in event["requestURI"]:
                continue
            stamp = datetime.datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
            found.append((stamp, f"{event['verb']} {event['requestURI']}"))
    return sorted(found)


def test_the_leader_killed_mid_apply_is_replaced_and_two_replicas_never_write_at_once(
    cluster: Cluster, app: str, git_http: HttpGitServer, tmp_path: Path
) -> None:
    users = []
    for replica in ("a", "b"):  # one identity each, to tell their requests apart in the audit log
        cluster.kubectl("create", "serviceaccount", f"replica-{replica}", "-n", app)
        cluster.kubectl("create", "clusterrolebinding", f"{app}-{replica}", "--clusterrole=cluster-admin",
                        f"--serviceaccount={app}:replica-{replica}")  # fmt: skip
        users.append(f"system:serviceaccount:{app}:replica-{replica}")
    log = cluster.kubeconfig.parent / "audit.log"
    audits = [AuditLog(log, user=user) for user in users]
    for audit in audits:
        audit.mark()
    files = revision(300)
    source = Source(cluster, app, git_http)
    first = source.push(files)
    elected = ("--namespace", app, "--leader-elect", "--leader-election-namespace", app, "--lease-duration", "4")
    replicas = [
        OperatorProcess(token_kubeconfig(cluster, app, f"replica-{r}", tmp_path), *elected, *SLOW, *LOCAL_GIT)
        for r in ("a", "b")
    ]
    try:
        leader = wait.until(lambda: leading(replicas), what="one leader") - 1
        create_sync(cluster, app)
        kill_mid_apply(cluster, app, replicas[leader], 300)

        sync = wait_applied(cluster, app, first, timeout=90)
        assert ids(sync) == expected_ids(app, files)
        assert labelled(cluster, app) == expected_ids(app, files)
        assert "became the leader" in replicas[1 - leader].output()

        killed, taker = writes_with_time(audits[leader]), writes_with_time(audits[1 - leader])
        assert killed, "the killed leader wrote nothing: it was not killed mid-apply"
        assert taker, "the other replica wrote nothing"
        assert killed[-1][0] < taker[0][0], f"both wrote at once: {killed[-1]} after {taker[0]}"
    finally:
        for r in replicas:
            r.stop()
        for r in ("a", "b"):
            cluster.kubectl("delete", "clusterrolebinding", f"{app}-{r}", check=False)
