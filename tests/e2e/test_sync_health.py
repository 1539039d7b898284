"""Health on the real control plane with the fake kubelet (tests/support/kubelet.py): a
rollout that becomes Current, a bad image that fails the wait with the Pod's reason and a
good commit that recovers, a Job that fails, a custom resource whose Ready condition its
controller flips (the Sync sees it from the watch, at once), and the Health column."""

from typing import Any

from pullsync.runtime import metrics
from support import manifests as m
from support import wait
from support.cluster import Cluster, condition
from support.git import HttpGitServer
from support.kubelet import FakeKubelet
from support.operator import Operator
from support.sync import Source, create_sync, get_sync, wait_applied, wait_failed


def health(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return get_sync(cluster, namespace).get("status", {}).get("health") or {}


def healthy(sync: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in sync.get("status", {}).get("conditions", []) if c["type"] == "Healthy"), {})


def test_with_wait_a_rollout_makes_the_sync_ready_once_available(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, kubelet: FakeKubelet
) -> None:
    kubelet.serve(namespace)
    source = Source(cluster, namespace, git_http)
    commit = source.push({"web.yaml": m.deployment("web"), "svc.yaml": m.service("web")})
    create_sync(cluster, namespace, wait=True, timeout="60s")
    sync = wait_applied(cluster, namespace, commit)
    assert sync["status"]["health"] == {"status": "Current", "unhealthy": []}
    assert healthy(sync)["status"] == "True"
    deployment = cluster.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web") or {}
    assert deployment["status"]["availableReplicas"] == 2  # Ready waited for the rollout
    columns = cluster.kubectl("get", "sync", "app", "-n", namespace).stdout
    assert "HEALTH" in columns.splitlines()[0]
    assert "Current" in columns.splitlines()[1]
    assert metrics.SYNC_HEALTH.labels(namespace, "app", "Current")._value.get() == 1
    assert metrics.SYNC_HEALTH.labels(namespace, "app", "InProgress")._value.get() == 0
    events = cluster.get(f"/api/v1/namespaces/{namespace}/events?fieldSelector=involvedObject.name%3Dapp") or {}
    assert any(e["reason"] == "HealthChanged" and "-> Current" in e["message"] for e in events["items"])


def test_a_new_revision_while_waiting_is_applied_at_once(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, kubelet: FakeKubelet
) -> None:
    kubelet.serve(namespace)
    source = Source(cluster, namespace, git_http)
    bad = source.push({"web.yaml": m.deployment("web", image="example.com/never-ready:1")})
    create_sync(cluster, namespace, wait=True, timeout="10m")

    def waiting() -> dict[str, Any]:
        ready = condition(get_sync(cluster, namespace))
        assert (ready.get("status"), ready.get("reason")) == ("Unknown", "Progressing"), ready
        assert f"Deployment/{namespace}/web" in ready["message"]
        return ready

    wait.until(waiting, timeout=20, what="the Sync to wait for the Deployment")
    assert get_sync(cluster, namespace)["status"]["lastAppliedRevision"].endswith(bad)
    good = source.push({"web.yaml": m.deployment("web")})
    wait_applied(cluster, namespace, good, timeout=30)  # not 10 minutes: the wait was given up


def test_a_bad_image_fails_the_wait_naming_the_pod_and_a_good_commit_recovers(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, kubelet: FakeKubelet
) -> None:
    kubelet.serve(namespace)
    source = Source(cluster, namespace, git_http)
    bad = source.push({"web.yaml": m.deployment("web", image="registry.example.com/no-such-image:1")})
    create_sync(cluster, namespace, wait=True, timeout="4s")
    sync = wait_failed(cluster, namespace, bad, timeout=30)
    ready = condition(sync)
    assert ready["reason"] == "HealthCheckFailed"
    assert "not healthy 4s after revision" in ready["message"]
    assert f"Deployment/{namespace}/web" in ready["message"]
    assert "ImagePullBackOff" in ready["message"]  # from the Pod, not the Deployment
    assert sync["status"]["lastAppliedRevision"].endswith(bad)  # applied, not healthy
    assert health(cluster, namespace)["status"] in ("InProgress", "Failed")

    good = source.push({"web.yaml": m.deployment("web")})
    sync = wait_applied(cluster, namespace, good, timeout=30)
    assert sync["status"]["health"]["status"] == "Current"
    history = sync["status"]["history"]
    assert [e["lastReconciledStatus"] for e in history[:2]] == ["Succeeded", "HealthCheckFailed"]


def test_a_failed_job_is_failed_health(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, kubelet: FakeKubelet
) -> None:
    kubelet.serve(namespace)
    job = """apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      containers: [{name: migrate, image: example.com/migrate-fail:1}]
"""
    source = Source(cluster, namespace, git_http)
    commit = source.push({"job.yaml": job})
    create_sync(cluster, namespace)  # no wait: Ready once applied, health reported beside it
    wait_applied(cluster, namespace, commit)

    def failed() -> dict[str, Any]:
        sync = get_sync(cluster, namespace)
        assert sync["status"]["health"]["status"] == "Failed", sync["status"].get("health")
        return sync

    sync = wait.until(failed, timeout=30, what="the Job's failure in health")
    assert condition(sync)["status"] == "True"
    assert healthy(sync)["status"] == "False"
    (unhealthy,) = sync["status"]["health"]["unhealthy"]
    assert unhealthy["id"] == f"{namespace}_migrate_batch_Job"
    assert "BackoffLimitExceeded" in unhealthy["message"]


def test_a_custom_resource_is_healthy_when_its_controller_says_ready(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    group = f"{namespace}.example.com"
    status_subresource = "    storage: true\n    subresources: {status: {}}\n"
    crd = m.crd(group, open_schema=True).replace("    storage: true\n", status_subresource)
    source = Source(cluster, namespace, git_http)
    commit = source.push({"crd.yaml": crd, "widget.yaml": m.custom(group, "w")})
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, commit)
    widget = f"/apis/{group}/v1/namespaces/{namespace}/widgets/w"
    assert health(cluster, namespace)["status"] == "Current"  # no status yet: Current, as kstatus says

    def set_ready(status: str) -> None:  # what the widget's controller would do
        body = {"status": {"conditions": [{"type": "Ready", "status": status, "reason": "Test", "message": "m"}]}}
        cluster.api("PATCH", widget + "/status", body, content_type="application/merge-patch+json")

    set_ready("False")
    wait.until(lambda: health(cluster, namespace).get("status") == "InProgress", timeout=15, what="InProgress")
    assert healthy(get_sync(cluster, namespace))["status"] == "Unknown"
    set_ready("True")
    wait.until(lambda: health(cluster, namespace).get("status") == "Current", timeout=15, what="Current again")


def test_health_checks_name_objects_the_sync_does_not_apply(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, kubelet: FakeKubelet
) -> None:
    kubelet.serve(namespace)
    db = f"/apis/apps/v1/namespaces/{namespace}/deployments/db"
    cluster.kubectl("create", "deployment", "db", "-n", namespace, "--image=example.com/never-ready:1")
    source = Source(cluster, namespace, git_http)
    commit = source.push({"cm.yaml": m.configmap("settings")})
    checks = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "db"}]
    create_sync(cluster, namespace, wait=True, timeout="5m", healthChecks=checks)

    def waiting() -> dict[str, Any]:
        ready = condition(get_sync(cluster, namespace))
        assert ready.get("reason") == "Progressing", ready
        assert f"Deployment/{namespace}/db" in ready["message"]
        return ready

    wait.until(waiting, timeout=20, what="the Sync to wait for db")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "never-ready", "image": "example.com/db:1"}]}}}}
    cluster.api("PATCH", db, patch, content_type="application/strategic-merge-patch+json")
    sync = wait_applied(cluster, namespace, commit, timeout=30)
    assert sync["status"]["health"]["status"] == "Current"


def test_a_health_check_of_an_object_not_there_yet_is_in_progress_until_it_comes(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    commit = source.push({"cm.yaml": m.configmap("settings")})
    checks = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "made-by-hand"}]
    create_sync(cluster, namespace, wait=True, timeout="5m", healthChecks=checks)

    def waiting() -> dict[str, Any]:
        reported = health(cluster, namespace)
        assert reported.get("status") == "InProgress", reported  # the API's four statuses, not kstatus's NotFound
        assert reported["unhealthy"] == [
            {"id": f"{namespace}_made-by-hand__ConfigMap", "status": "InProgress", "message": "not found"}
        ]
        return reported

    wait.until(waiting, timeout=20, what="the Sync to wait for made-by-hand")
    cluster.kubectl("create", "configmap", "made-by-hand", "-n", namespace)
    sync = wait_applied(cluster, namespace, commit, timeout=30)
    assert sync["status"]["health"] == {"status": "Current", "unhealthy": []}
