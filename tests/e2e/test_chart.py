"""The chart against the real API server: helm install/upgrade/uninstall, the operator run
with the chart ServiceAccount's own token (so its RBAC is proven, not assumed), namespaced
mode, and leader election between two operator processes."""

import hashlib
import hmac
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import manifests as m
from support import wait
from support.cluster import AuditLog, Cluster, condition, sync_path, token_kubeconfig
from support.git import HttpGitServer
from support.helm import CHART, helm
from support.operator import OperatorProcess, leader_of, post_webhook
from support.sync import Source, create_gitrepo, create_sync, grant_configmaps, wait_applied

LOCAL_GIT = ("--allow-insecure-http", "--allow-local-urls")  # the test git server is HTTP on loopback


def install(cluster: Cluster, release: str, *sets: str) -> str:
    namespace = f"chart-{release}"
    args = [a for s in sets for a in ("--set", s)]
    helm("install", release, str(CHART), "-n", namespace, "--create-namespace", *args, env=cluster.env())
    return namespace


@pytest.fixture
def apps(cluster: Cluster) -> Iterator[list[str]]:
    """Application namespaces outside the session operator's `test-*` scope."""
    made: list[str] = []

    def make() -> str:
        name = f"chart-app-{secrets.token_hex(3)}"
        cluster.kubectl("create", "namespace", name)
        made.append(name)
        return name

    yield made.__class__((make(), make()))
    for name in made:
        cluster.delete_namespace(name)


def test_helm_install_creates_crds_and_rbac_and_the_chart_identity_runs_a_sync(
    cluster: Cluster, git_http: HttpGitServer, apps: list[str], tmp_path: Path
) -> None:
    release = f"r{secrets.token_hex(3)}"
    namespace = install(cluster, release)
    try:
        for crd in ("gitrepositories.pullsync.dev", "syncs.pullsync.dev", "previews.pullsync.dev"):
            assert cluster.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}") is not None
        assert cluster.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{release}-pullsync") is not None
        kubeconfig = token_kubeconfig(cluster, namespace, f"{release}-pullsync", tmp_path)
        app = apps[0]
        role = f"{app}-viewer"
        source = Source(cluster, app, git_http)
        commit = source.push(
            {"cm.yaml": m.configmap("cm"), "web.yaml": m.deployment("web"), "role.yaml": m.clusterrole(role)}
        )
        create_sync(cluster, app)
        process = OperatorProcess(kubeconfig, "--namespace", app, *LOCAL_GIT)
        try:
            process.wait_ready()
            wait_applied(cluster, app, commit)
        finally:
            assert process.stop() == 0
        assert cluster.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}") is not None
        assert "Forbidden" not in process.output()
    finally:
        helm("uninstall", release, "-n", namespace, env=cluster.env())
        cluster.api("DELETE", f"/api/v1/namespaces/{namespace}")


def test_namespaced_mode_touches_only_its_namespaces(
    cluster: Cluster, git_http: HttpGitServer, apps: list[str], tmp_path: Path
) -> None:
    mine, other = apps
    release = f"n{secrets.token_hex(3)}"
    namespace = install(cluster, release, f"watchNamespaces={{{mine}}}")
    try:
        kubeconfig = token_kubeconfig(cluster, namespace, f"{release}-pullsync", tmp_path)
        sources = {ns: Source(cluster, ns, git_http) for ns in (mine, other)}
        files = {"base/cm.yaml": m.configmap("cm"), "tenant/cm.yaml": m.configmap("tenant-cm")}
        commits = {ns: s.push(files) for ns, s in sources.items()}
        for ns in (mine, other):
            create_sync(cluster, ns, path="base")
        grant_configmaps(cluster, mine)  # a Sync acting as a ServiceAccount, with the chart's rights to impersonate
        create_sync(cluster, mine, "as-deployer", path="tenant", serviceAccountName="deployer")
        process = OperatorProcess(kubeconfig, "--namespace", mine, *LOCAL_GIT)
        try:
            process.wait_ready()
            wait_applied(cluster, mine, commits[mine])
            wait_applied(cluster, mine, commits[mine], "as-deployer")
        finally:
            assert process.stop() == 0
        assert not (cluster.get(sync_path(other, "app")) or {}).get("status")
        assert cluster.get(f"/api/v1/namespaces/{other}/configmaps/cm") is None
        denied = cluster.kubectl("--kubeconfig", str(kubeconfig), "get", "secrets", "-n", other, check=False)
        assert denied.returncode != 0
        assert "forbidden" in denied.stderr.lower()
        allowed = cluster.kubectl("--kubeconfig", str(kubeconfig), "get", "secrets", "-n", mine, check=False)
        assert allowed.returncode == 0, allowed.stderr
    finally:
        helm("uninstall", release, "-n", namespace, env=cluster.env())
        cluster.api("DELETE", f"/api/v1/namespaces/{namespace}")


def lease_holder(cluster: Cluster, namespace: str) -> str:
    lease = cluster.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/pullsync") or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def elected(app: str) -> tuple[str, ...]:
    """`pullsync run` flags for a replica of a leader-elected pair with a 3 s Lease in `app`."""
    return (
        "--namespace",
        app,
        "--leader-elect",
        "--leader-election-namespace",
        app,
        "--lease-duration",
        "3",
        *LOCAL_GIT,
    )


def test_two_replicas_one_reconciles_and_the_other_takes_over(
    cluster: Cluster, git_http: HttpGitServer, apps: list[str], operator_kubeconfig: Path
) -> None:
    app = apps[0]
    source = Source(cluster, app, git_http)
    first = source.push({"cm.yaml": m.configmap("cm", "v1")})
    cluster.secret(app, "hook", {"token": "hook-token"})
    spec = {"url": source.url, "interval": "1h", "secretRef": {"name": "git"}, "webhookSecretRef": {"name": "hook"}}
    create_gitrepo(cluster, app, spec)
    create_sync(cluster, app)
    args = elected(app)
    replicas = [OperatorProcess(operator_kubeconfig, *args) for _ in range(2)]
    try:
        wait.until(lambda: lease_holder(cluster, app), what="a leader")
        wait_applied(cluster, app, first)
        index = leader_of(replicas)
        leader, standby = replicas[index], replicas[1 - index]
        assert "waiting to become the leader" in standby.output()
        assert "Applied revision" not in standby.output()
        # A webhook call that the Service sends to the standby is relayed: the leader polls.
        hooked = source.repo.commit({"cm.yaml": m.configmap("cm", "hooked")}, "pushed")
        body = b'{"ref": "refs/heads/main"}'
        signed = {"X-Hub-Signature-256": "sha256=" + hmac.new(b"hook-token", body, hashlib.sha256).hexdigest()}
        assert post_webhook(standby.webhook_port, f"/hooks/{app}/app", body, signed) == 202
        wait_applied(cluster, app, hooked, timeout=10)  # the interval is 1h
        assert f"webhook {app}/app: accepted, the leader polls now" in standby.output()
        leader.stop(signal.SIGKILL)  # a crash: the Lease is not released
        killed = time.monotonic()
        second = source.push({"cm.yaml": m.configmap("cm", "v2")})
        wait_applied(cluster, app, second, timeout=15)
        failover = time.monotonic() - killed
        assert failover < 3 + 3 + 2, f"failover took {failover:.1f}s"
        assert "became the leader" in standby.output()
        assert condition(cluster.get(sync_path(app, "app")))["status"] == "True"
    finally:
        for replica in replicas:
            replica.stop()


def test_helm_upgrade_changes_the_deployment_and_uninstall_keeps_the_crds(cluster: Cluster) -> None:
    release = f"u{secrets.token_hex(3)}"
    namespace = install(cluster, release)
    deployment = f"/apis/apps/v1/namespaces/{namespace}/deployments/{release}-pullsync"
    assert (cluster.get(deployment) or {})["spec"]["replicas"] == 1
    helm(
        "upgrade",
        release,
        str(CHART),
        "-n",
        namespace,
        "--set",
        "replicas=2",
        "--set",
        "operator.verbose=true",
        env=cluster.env(),
    )
    upgraded = cluster.get(deployment) or {}
    assert upgraded["spec"]["replicas"] == 2
    assert "--verbose" in upgraded["spec"]["template"]["spec"]["containers"][0]["args"]
    helm("uninstall", release, "-n", namespace, env=cluster.env())
    assert cluster.get(deployment) is None
    assert cluster.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{release}-pullsync") is None
    assert cluster.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/syncs.pullsync.dev") is not None
    cluster.api("DELETE", f"/api/v1/namespaces/{namespace}")


def test_a_frozen_leader_is_replaced_and_writes_nothing_when_it_resumes(
    cluster: Cluster, git_http: HttpGitServer, apps: list[str], tmp_path: Path
) -> None:
    app = apps[0]
    identities = []
    for replica in ("a", "b"):  # one identity each, to tell their requests apart in the audit log
        cluster.kubectl("create", "serviceaccount", f"replica-{replica}", "-n", app)
        binding = f"{app}-replica-{replica}"
        cluster.kubectl(
            "create",
            "clusterrolebinding",
            binding,
            "--clusterrole=cluster-admin",
            f"--serviceaccount={app}:replica-{replica}",
        )
        identities.append(
            (
                token_kubeconfig(cluster, app, f"replica-{replica}", tmp_path),
                f"system:serviceaccount:{app}:replica-{replica}",
            )
        )
    source = Source(cluster, app, git_http, interval="1s")
    first = source.push({"cm.yaml": m.configmap("cm", "v1")})
    create_sync(cluster, app, interval="1s")
    args = elected(app)
    replicas = [OperatorProcess(kubeconfig, *args) for kubeconfig, _ in identities]
    try:
        wait.until(lambda: lease_holder(cluster, app), what="a leader")
        wait_applied(cluster, app, first)
        index = leader_of(replicas)
        leader, user = replicas[index], identities[index][1]
        frozen_holder = lease_holder(cluster, app)
        leader.process.send_signal(signal.SIGSTOP)
        wait.until(lambda: lease_holder(cluster, app) not in ("", frozen_holder), timeout=15, what="a new leader")
        second = source.push({"cm.yaml": m.configmap("cm", "v2")})
        wait_applied(cluster, app, second, timeout=15)
        audit = AuditLog(cluster.kubeconfig.parent / "audit.log", user=user)
        audit.mark()
        leader.process.send_signal(signal.SIGCONT)  # it wakes with timers due and a new commit to apply
        assert leader.process.wait(timeout=20) == 1  # it steps down: the process exits to start again
        assert AuditLog.writes(audit.requests(None)) == []
        assert "lost the leadership" in leader.output()
    finally:
        for replica in replicas:
            replica.process.send_signal(signal.SIGCONT)
            replica.stop()
        for replica in ("a", "b"):
            cluster.kubectl("delete", "clusterrolebinding", f"{app}-replica-{replica}", check=False)
