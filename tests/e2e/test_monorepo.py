"""A monorepo: many Syncs over one GitRepository, one path each. A commit is fetched once
for all of them, and a commit that changes one app's path renders and writes that app
only (the others see a commit that changes nothing they read)."""

from pullsync.runtime import metrics
from support import manifests as m
from support.cluster import AuditLog, Cluster
from support.git import HttpGitServer
from support.operator import Operator
from support.sync import Source, create_sync, wait_applied, wait_others_finalized

APPS = 12


def test_a_commit_to_one_app_of_a_monorepo_is_one_fetch_one_render_and_writes_that_app_only(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    wait_others_finalized(cluster, namespace)  # renders are counted for the whole operator
    source = Source(cluster, namespace, git_http)
    first = source.push({f"apps/app-{i}/cm.yaml": m.configmap(f"app-{i}", "v1") for i in range(APPS)})
    for i in range(APPS):
        create_sync(cluster, namespace, f"app-{i}", path=f"./apps/app-{i}")
    for i in range(APPS):
        wait_applied(cluster, namespace, first, name=f"app-{i}")

    fetches, renders = git_http.fetches(source.name), metrics.RENDERS._value.get()
    audit = AuditLog(cluster.kubeconfig.parent / "audit.log")
    audit.mark()
    second = source.push({"apps/app-3/cm.yaml": m.configmap("app-3", "v2")})
    for i in range(APPS):
        wait_applied(cluster, namespace, second, name=f"app-{i}")
    assert git_http.fetches(source.name) - fetches == fetches  # as many requests as the first fetch: one fetch
    assert metrics.RENDERS._value.get() - renders == 1
    requests = [e for e in audit.complete(cluster) if f"/namespaces/{namespace}/" in e["requestURI"]]
    managed = [w for w in AuditLog.writes(requests) if "/pullsync.dev/" not in w and "/events" not in w]
    assert managed == [f"patch /api/v1/namespaces/{namespace}/configmaps/app-3?fieldManager=pullsync&force=true"]
    # Each Sync says which commit it is at; only app-3, whose files changed, says Progressing before its write.
    statuses = [w.split("/syncs/")[1] for w in AuditLog.writes(requests) if "/syncs/" in w and w.endswith("/status")]
    assert sorted(statuses) == sorted([f"app-{i}/status" for i in range(APPS)] + ["app-3/status"])
