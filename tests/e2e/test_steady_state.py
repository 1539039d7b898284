"""Steady state means zero requests: a realistic app, synced by `pullsync run` with its
own identity, costs no API request at all per quiet interval, before and after an
operator restart (every request of that identity is counted in the audit log, cluster
-scoped ones too); the restart itself writes nothing. Meanwhile another operator, whose
`--namespace test-*` pattern makes it watch cluster-wide, never writes to these objects."""

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import manifests as m
from support import wait
from support.cluster import AuditLog, Cluster, token_kubeconfig
from support.git import HttpGitServer
from support.operator import Operator, OperatorProcess
from support.sync import Source, create_sync, wait_applied

INTERVAL = 2  # seconds between drift checks of the Sync


@pytest.fixture
def home(cluster: Cluster) -> Iterator[str]:
    """A namespace outside the session operator's `test-*` scope, with an admin identity."""
    name = f"steady-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("create", "serviceaccount", "operator", "-n", name)
    cluster.kubectl(
        "create", "clusterrolebinding", name, "--clusterrole=cluster-admin", f"--serviceaccount={name}:operator"
    )
    yield name
    cluster.kubectl("delete", "clusterrolebinding", name)
    cluster.kubectl("delete", "namespace", f"{name}-app", "--wait=false", check=False)
    cluster.delete_namespace(name)


def quiet_intervals(operator: OperatorProcess, audit: AuditLog, home: str, count: int = 2) -> list[str]:
    """The requests the operator makes while the Sync checks drift `count` more times."""
    line = f"Sync {home}/app: Applied revision"
    wait.until(lambda: line in operator.output(), what="a reconcile")
    audit.mark()
    before = operator.output().count(line)
    wait.until(lambda: operator.output().count(line) >= before + count, timeout=count * INTERVAL + 10, what="checks")
    return [f"{e['verb']} {e['requestURI']}" for e in audit.requests(None)]


def test_a_realistic_app_costs_no_request_per_interval_across_a_restart(
    cluster: Cluster, operator: Operator, git_http: HttpGitServer, home: str, tmp_path: Path
) -> None:
    other = AuditLog(cluster.kubeconfig.parent / "audit.log")  # the `operator` fixture's identity
    other.mark()
    kubeconfig = token_kubeconfig(cluster, home, "operator", tmp_path)
    audit = AuditLog(cluster.kubeconfig.parent / "audit.log", user=f"system:serviceaccount:{home}:operator")
    source = Source(cluster, home, git_http)
    commit = source.push(m.realistic_app(f"{home}-app", f"{home}.example.com"))
    create_sync(cluster, home, interval=f"{INTERVAL}s")
    args = ("-n", home, "-v", "--allow-insecure-http", "--allow-local-urls")
    process = OperatorProcess(kubeconfig, *args)
    try:
        process.wait_ready()
        wait_applied(cluster, home, commit)
        wait.until(lambda: cluster.get(f"/apis/apps/v1/namespaces/{home}-app/replicasets"), what="ReplicaSet")
        quiet_intervals(process, audit, home)  # controllers settle (revision annotations, token Secrets)
        requests = quiet_intervals(process, audit, home)
        assert requests == [], "\n".join(requests)
    finally:
        assert process.stop() == 0
    audit.mark()
    restarted = OperatorProcess(kubeconfig, *args)
    try:
        restarted.wait_ready()
        wait.until(lambda: f"Sync {home}/app: Applied revision" in restarted.output(), what="a reconcile")
        assert AuditLog.writes(audit.requests(None)) == []  # a restart checks, and writes nothing
        requests = quiet_intervals(restarted, audit, home)
        assert requests == [], "\n".join(requests)
    finally:
        assert restarted.stop() == 0
    assert AuditLog.writes(other.requests(home)) == []
