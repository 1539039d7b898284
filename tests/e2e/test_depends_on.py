"""dependsOn on the real control plane: an app waits for its infrastructure, is woken the
moment that is Ready (no interval wait), and a cycle is reported from both sides."""

from typing import Any

from support import manifests as m
from support import wait
from support.cluster import Cluster, condition
from support.git import HttpGitServer
from support.operator import Operator
from support.sync import Source, create_sync, get_sync, wait_applied


def ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return condition(get_sync(cluster, namespace, name))


def test_an_app_waits_for_its_infrastructure_then_applies_at_once(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    group = f"{namespace}.example.com"
    source = Source(cluster, namespace, git_http)
    commit = source.push(
        {
            "infra/crd.yaml": m.crd(group),
            "infra/ns.yaml": m.namespace(f"{namespace}-apps"),
            "app/widget.yaml": m.custom(group, "w").replace(
                "metadata:\n", f"metadata:\n  namespace: {namespace}-apps\n"
            ),
        }
    )
    slow = {"interval": "1h", "retryInterval": "1h"}  # so that only a wake can apply it in time
    create_sync(cluster, namespace, "app", path="./app", dependsOn=[{"name": "infra"}], **slow)

    def waiting() -> dict[str, Any]:
        cond = ready(cluster, namespace, "app")
        assert cond.get("reason") == "DependencyNotReady", cond
        return cond

    cond = wait.until(waiting, timeout=20, what="the app to wait")
    assert cond["status"] == "False"
    assert f"waiting for Sync {namespace}/infra" in cond["message"]
    assert cluster.get(f"/apis/{group}/v1/namespaces/{namespace}-apps/widgets/w") is None

    create_sync(cluster, namespace, "infra", path="./infra", **slow)
    wait_applied(cluster, namespace, commit, name="infra")
    wait_applied(cluster, namespace, commit, name="app", timeout=15)
    assert cluster.get(f"/apis/{group}/v1/namespaces/{namespace}-apps/widgets/w") is not None
    cluster.api("DELETE", f"/apis/pullsync.dev/v1alpha1/namespaces/{namespace}/syncs/app")
    wait.until(lambda: cluster.get(f"/apis/pullsync.dev/v1alpha1/namespaces/{namespace}/syncs/app") is None)
    cluster.api("DELETE", f"/apis/pullsync.dev/v1alpha1/namespaces/{namespace}/syncs/infra")  # the CRD goes last


def test_a_dependency_cycle_is_reported_from_both_sides(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    source.push({"a/cm.yaml": m.configmap("a"), "b/cm.yaml": m.configmap("b")})
    create_sync(cluster, namespace, "a", path="./a", dependsOn=[{"name": "b"}])
    create_sync(cluster, namespace, "b", path="./b", dependsOn=[{"name": "a"}])
    for name, other in (("a", "b"), ("b", "a")):

        def cycle(name: str = name, other: str = other) -> dict[str, Any]:
            cond = ready(cluster, namespace, name)
            assert "a cycle" in cond.get("message", ""), cond
            return cond

        cond = wait.until(cycle, timeout=20, what=f"{name} to report the cycle")
        assert cond["reason"] == "DependencyNotReady"
        assert f"{namespace}/{name} -> {namespace}/{other} -> {namespace}/{name}" in cond["message"]
    assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/a") is None


def test_a_dependency_in_another_namespace_follows_the_source_rule(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    source.push({"a/cm.yaml": m.configmap("a")})
    create_sync(cluster, namespace, "a", path="./a", dependsOn=[{"name": "infra", "namespace": "elsewhere"}])

    def refused() -> dict[str, Any]:
        cond = ready(cluster, namespace, "a")
        assert cond.get("reason") == "AccessDenied", cond
        return cond

    cond = wait.until(refused, timeout=20, what="the cross-namespace dependency refused")
    assert "spec.dependsOn: Sync elsewhere/infra is in another namespace" in cond["message"]
    assert "--allow-cross-namespace-refs" in cond["message"]
