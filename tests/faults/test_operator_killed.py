"""The operator killed in the middle of applying a large revision: alone (SIGKILL, then a
restart), and as the leader of two replicas (the other takes over). Afterwards the Sync
has converged, its inventory is complete, nothing git still has was pruned (or deleted
and created again), nothing is orphaned, and at no moment did two replicas write."""

import contextlib
import datetime
import signal
from pathlib import Path
from typing import Any

from support import wait
from support.cluster import ApiError, AuditLog, Cluster, condition
from support.faults import (
    LOCAL_GIT,
    RELEASE_NAMESPACE,
    Operators,
    chart_account,
    expected_ids,
    labelled,
    revision,
)
from support.git import HttpGitServer
from support.operator import OperatorProcess, leader_of
from support.sync import Source, create_sync, ids, wait_applied

# A client-side rate that makes applying 500 objects take seconds (a dry-run and an apply
# each): long enough to be killed in the middle, by a poll of what exists.
SLOW = ("--api-qps", "100", "--api-burst", "5")
RESOURCES = {"configmaps": "_ConfigMap", "services": "_Service", "deployments": "apps_Deployment"}


def audit_log(cluster: Cluster, user: str) -> AuditLog:
    audit = AuditLog(cluster.kubeconfig.parent / "audit.log", user=user)
    audit.mark()
    return audit


def kill_mid_apply(cluster: Cluster, namespace: str, operator: OperatorProcess, total: int) -> dict[str, str]:
    """SIGKILL `operator` once between a tenth and nine tenths of the `total` objects exist;
    the objects there are once it is dead (id -> uid)."""
    wait.until(
        lambda: total // 10 <= len(labelled(cluster, namespace)) <= total * 9 // 10,
        timeout=60,
        interval=0.02,
        what="the apply to be under way",
    )
    operator.stop(signal.SIGKILL)
    written = labelled(cluster, namespace)
    assert 0 < len(written) < total, f"{len(written)} of {total} objects: the kill did not land mid-apply"
    return written


def assert_converged(cluster: Cluster, namespace: str, sync: dict[str, Any], expected: set[str]) -> dict[str, str]:
    """Ready, nothing Reconciling, inventory = git = the labelled objects (no orphan)."""
    assert condition(sync)["status"] == "True", condition(sync)
    assert not condition(sync, "Reconciling"), "a Reconciling condition was left behind"
    assert ids(sync) == expected, f"inventory: {len(ids(sync))} entries, git: {len(expected)} objects"
    live = labelled(cluster, namespace)
    assert set(live) - expected == set(), "orphans: labelled for the Sync, not in git or the inventory"
    assert expected - set(live) == set(), "objects of git are missing"
    return live


def deleted(audit: AuditLog, namespace: str) -> set[str]:
    """The inventory ids of the objects the audited identity deleted in `namespace`."""
    found = set()
    for event in audit.requests(namespace):
        if event["verb"] == "delete" and "dryRun" not in event["requestURI"]:
            ref = event["objectRef"]
            found.add(f"{namespace}_{ref['name']}_{RESOURCES[ref['resource']]}")
    return found


def test_sigkill_mid_apply_then_a_restart_converges_with_a_complete_inventory_and_prunes_exactly(
    cluster: Cluster, namespace: str, git_http: HttpGitServer, identity: tuple[Path, str], operators: Operators
) -> None:
    kubeconfig, user = identity
    files = revision(440, services=30, deployments=30)
    expected = expected_ids(namespace, files)
    assert len(expected) == 500
    source = Source(cluster, namespace, git_http)
    first = source.push(files)
    create_sync(cluster, namespace)
    killed = operators.start(kubeconfig, "--namespace", namespace, *SLOW, *LOCAL_GIT)
    before = kill_mid_apply(cluster, namespace, killed, len(expected))

    audit = audit_log(cluster, user)
    operators.start(kubeconfig, "--namespace", namespace, *LOCAL_GIT)
    sync = wait_applied(cluster, namespace, first, timeout=60)
    live = assert_converged(cluster, namespace, sync, expected)
    assert {i: live[i] for i in before} == before, "an object written before the kill was deleted and recreated"
    assert deleted(audit, namespace) == set(), "the restarted operator deleted objects git has"

    # A commit that removes some objects of each kind: prune deletes exactly those.
    gone = [p for p in files if Path(p).stem.endswith(("-000", "-001", "-002", "-007"))]
    second = source.push(dict.fromkeys(gone))
    sync = wait_applied(cluster, namespace, second, timeout=30)
    kept = expected - expected_ids(namespace, gone)
    after = assert_converged(cluster, namespace, sync, kept)
    assert after == {i: live[i] for i in kept}, "prune touched objects git still has"

    def pruned_exactly() -> bool:  # (the audit log may lag the last requests a little)
        extra = deleted(audit, namespace) ^ expected_ids(namespace, gone)
        assert not extra, f"deleted, not removed from git (or removed, not deleted): {sorted(extra)}"
        return True

    wait.until(pruned_exactly, timeout=10)
    assert "Traceback" not in "".join(p.output() for p in operators.processes)


def writes(audit: AuditLog) -> list[dict[str, Any]]:
    """Every write (create, update, patch, delete; no dry-run) of the audited identity that
    may have changed something, anywhere (its Lease and events included). A 4xx refusal
    wrote nothing (the Lease POST that lost the race when both replicas started: 409); a
    5xx may have (a request in flight when its client was killed is logged as 500, and
    its object exists)."""
    return [
        e
        for e in audit.requests(None)
        if e["verb"] in ("create", "update", "patch", "delete")
        and "dryRun" not in e["requestURI"]
        and not 400 <= e.get("responseStatus", {}).get("code", 0) < 500
    ]


def stamp(event: dict[str, Any], field: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(event[field].replace("Z", "+00:00"))


def test_the_leader_killed_mid_apply_is_replaced_and_two_replicas_never_write_at_once(
    cluster: Cluster, namespace: str, git_http: HttpGitServer, identity: tuple[Path, str], operators: Operators,
    tmp_path: Path,
) -> None:  # fmt: skip
    # Two identities with the chart's rights, so that the audit log tells the replicas apart.
    accounts = [chart_account(cluster, f"faults-replica-{r}", tmp_path) for r in ("a", "b")]
    lease = f"pullsync-{namespace}"
    audits = [audit_log(cluster, user) for _, user in accounts]
    files = revision(270, services=15, deployments=15)
    expected = expected_ids(namespace, files)
    source = Source(cluster, namespace, git_http)
    first = source.push(files)
    elected = ("--namespace", namespace, "--leader-elect", "--leader-election-namespace", RELEASE_NAMESPACE,
               "--leader-election-id", lease, "--lease-duration", "4")  # fmt: skip
    replicas = [operators.start(kubeconfig, *elected, *SLOW, *LOCAL_GIT) for kubeconfig, _ in accounts]
    try:
        leader = leader_of(replicas)
        create_sync(cluster, namespace)
        kill_mid_apply(cluster, namespace, replicas[leader], len(expected))
        killed_at = datetime.datetime.now(datetime.UTC)

        sync = wait_applied(cluster, namespace, first, timeout=60)
        assert_converged(cluster, namespace, sync, expected)
        taker = replicas[1 - leader]
        assert "became the leader" in taker.output()
        first_writes, second_writes = writes(audits[leader]), writes(audits[1 - leader])
        assert first_writes, "the killed leader wrote nothing"
        assert second_writes, "the other replica wrote nothing"
        last = max(first_writes, key=lambda e: stamp(e, "stageTimestamp"))
        earliest = min(second_writes, key=lambda e: stamp(e, "requestReceivedTimestamp"))
        assert stamp(last, "stageTimestamp") < stamp(earliest, "requestReceivedTimestamp"), (
            f"both replicas wrote at once: {last['verb']} {last['requestURI']} by the first ended at "
            f"{last['stageTimestamp']}, {earliest['verb']} {earliest['requestURI']} by the second began at "
            f"{earliest['requestReceivedTimestamp']}"
        )
        takeover = (stamp(earliest, "requestReceivedTimestamp") - killed_at).total_seconds()
        assert takeover < 4 + 6, f"the other replica took over {takeover:.1f}s after the kill (Lease: 4s)"

        def applied() -> set[str]:
            """The objects either replica wrote (the audit log may lag the last ones a little)."""
            return {
                f"{namespace}_{e['objectRef']['name']}_{RESOURCES[e['objectRef']['resource']]}"
                for e in writes(audits[0]) + writes(audits[1])
                if e["verb"] == "patch" and e.get("objectRef", {}).get("resource") in RESOURCES
            }

        def all_applied() -> bool:
            assert applied() == expected, f"applied by neither replica: {sorted(expected - applied())}"
            return True

        wait.until(all_applied, timeout=10)
    finally:
        with contextlib.suppress(ApiError):
            cluster.api("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{RELEASE_NAMESPACE}/leases/{lease}")


def test_sigkill_mid_apply_then_a_commit_dropping_objects_already_written_leaves_no_orphan(
    cluster: Cluster, namespace: str, git_http: HttpGitServer, identity: tuple[Path, str], operators: Operators
) -> None:
    """The killed turn wrote objects that no inventory lists yet; a commit that drops some
    of them lands before the operator is back. They carry the Sync's labels: pruned (docs/
    failures.md: "nothing is orphaned"), not left behind for good."""
    kubeconfig, _ = identity
    files = revision(300)
    source = Source(cluster, namespace, git_http)
    source.push(files)
    create_sync(cluster, namespace)
    killed = operators.start(kubeconfig, "--namespace", namespace, *SLOW, *LOCAL_GIT)
    before = kill_mid_apply(cluster, namespace, killed, 300)
    written = sorted(i.split("_")[1] for i in before)
    dropped = {f"config/{name}.yaml" for name in written[:5]} | {"config/cm-299.yaml"}  # and one not written
    second = source.push(dict.fromkeys(dropped))
    operators.start(kubeconfig, "--namespace", namespace, *LOCAL_GIT)
    sync = wait_applied(cluster, namespace, second, timeout=60)
    assert_converged(cluster, namespace, sync, expected_ids(namespace, set(files) - dropped))
