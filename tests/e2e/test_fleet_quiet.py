"""A fleet settles quietly: what the controllers write after pullsync's apply (the token
controller's `secrets` of a ServiceAccount, the Deployment controller's revision
annotation, status of everything) is no drift, so it costs no dry-run and no write of a
managed object, and the first health a Sync learns is no HealthChanged news. Regressions
of the fleet bench (issue 16: 1000 Syncs of Flux's shape, where each of these cost a
request per Sync after all were Ready). Requests are counted in the audit log."""

from typing import Any

from support import manifests as m
from support import wait
from support.cluster import AuditLog, Cluster
from support.git import HttpGitServer
from support.operator import Operator
from support.sync import Source, create_sync, wait_applied

INTERVAL = 1  # seconds between the Sync's drift checks

INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
spec:
  rules:
  - host: app.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: app, port: {number: 80}}}
"""


def flux_shape() -> dict[str, str]:
    """One app of Flux's benchmark: a Deployment scaled to 0, a ServiceAccount, a ClusterIP
    Service, an Ingress."""
    return {
        "deploy.yaml": m.deployment("app", app="app", replicas=0),
        "sa.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app\n",
        "svc.yaml": m.service("app").replace("{app: web}", "{app: app}"),
        "ingress.yaml": INGRESS,
    }


def get(cluster: Cluster, path: str) -> dict[str, Any]:
    return cluster.get(path) or {}


def test_controllers_writing_fields_pullsync_does_not_set_cost_no_dry_run_and_no_write(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    audit = AuditLog(cluster.kubeconfig.parent / "audit.log")
    source = Source(cluster, namespace, git_http)
    commit = source.push(flux_shape())
    audit.mark()
    create_sync(cluster, namespace, interval=f"{INTERVAL}s")
    wait_applied(cluster, namespace, commit)  # from here on, only the controllers change these objects
    account = f"/api/v1/namespaces/{namespace}/serviceaccounts/app"
    deployment = f"/apis/apps/v1/namespaces/{namespace}/deployments/app"
    wait.until(lambda: get(cluster, account).get("secrets"), what="the token controller's secrets")
    wait.until(
        lambda: "deployment.kubernetes.io/revision" in (get(cluster, deployment)["metadata"].get("annotations") or {}),
        what="the Deployment controller's revision annotation",
    )
    # Three more drift checks after both controllers wrote, seen in the operator's (debug) log.
    line = f"Sync {namespace}/app: Applied revision"
    before = operator.log_text().count(line)
    wait.until(lambda: operator.log_text().count(line) >= before + 3, timeout=20, what="three drift checks")
    ours = [e for e in audit.complete(cluster) if f"/namespaces/{namespace}/" in e["requestURI"]]
    dry_runs = sorted(e["objectRef"]["resource"] for e in ours if "dryRun" in e["requestURI"])
    assert dry_runs == ["deployments", "ingresses", "serviceaccounts", "services"]  # the validation, once
    writes = sorted(
        e["objectRef"]["resource"]
        for e in ours
        if e["verb"] in ("create", "update", "patch", "delete")
        and "dryRun" not in e["requestURI"]
        and e["objectRef"].get("apiGroup") != "pullsync.dev"
        and e["objectRef"]["resource"] != "events"
    )
    assert writes == ["deployments", "ingresses", "serviceaccounts", "services"]  # the apply, once


def test_the_first_health_a_sync_learns_posts_no_health_changed_event(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    commit = source.push({"cm.yaml": m.configmap("cm")})
    create_sync(cluster, namespace, interval=f"{INTERVAL}s")
    sync = wait_applied(cluster, namespace, commit)
    assert sync["status"]["health"]["status"] == "Current"
    line = f"Sync {namespace}/app: Applied revision"
    before = operator.log_text().count(line)
    wait.until(lambda: operator.log_text().count(line) >= before + 2, timeout=20, what="two drift checks")

    def reasons() -> list[str]:
        events = cluster.events(namespace)
        found = [e["reason"] for e in events if e["involvedObject"]["kind"] == "Sync"]
        assert "ReconciliationSucceeded" in found, found  # the apply's own event is there
        return found

    assert "HealthChanged" not in wait.until(reasons, what="the apply's event")
