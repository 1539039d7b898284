"""Ordering: what a commit needs first is written first. Roles go with ClusterRoles in
stage 1 and a binding of a role of the same commit is planned after it (a tenant without
`bind` converges); a CRD change and a custom resource using its new field apply in one
commit; a CRD deleted by hand comes back with its objects at once; prune goes in
reverse (custom resources before their CRD)."""

import pytest

from support import manifests as m
from support import wait
from support.cluster import Cluster, condition
from support.git import HttpGitServer
from support.operator import Operator
from support.sync import Source, create_sync, get_sync, ids, wait_applied, wait_failed

TENANT = """apiVersion: v1
kind: ServiceAccount
metadata: {{name: tenant, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: tenant, namespace: {ns}}}
rules:
- {{apiGroups: [""], resources: [configmaps], verbs: [get, list, watch, create, update, patch, delete]}}
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: tenant, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: tenant}}
subjects: [{{kind: ServiceAccount, name: tenant, namespace: {ns}}}]
"""

READER = """apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ci_reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ci_reader}
subjects: [{kind: ServiceAccount, name: default}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: ci_reader}
rules:
- {apiGroups: [""], resources: [configmaps], verbs: [get, list]}
"""


def test_a_tenant_without_bind_applies_a_role_and_its_binding_in_one_commit(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    cluster.kubectl("apply", "-f", "-", input=TENANT.format(ns=namespace))
    source = Source(cluster, namespace, git_http)
    commit = source.push({"a-binding.yaml": READER, "z-config.yaml": m.configmap("settings")})
    create_sync(cluster, namespace, serviceAccountName="tenant")
    sync = wait_applied(cluster, namespace, commit)
    assert ids(sync) == {
        f"{namespace}_ci_reader_rbac.authorization.k8s.io_Role",
        f"{namespace}_ci_reader_rbac.authorization.k8s.io_RoleBinding",
        f"{namespace}_settings__ConfigMap",
    }


def widget_crd(group: str, *fields: str) -> str:
    return m.crd(group).replace(
        "              size: {type: integer}",
        "              size: {type: integer}" + "".join(f"\n              {f}: {{type: string}}" for f in fields),
    )


def test_a_crd_change_and_an_object_using_it_apply_in_one_commit(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    group = f"{namespace}.example.com"
    source = Source(cluster, namespace, git_http)
    first = source.push({"crd.yaml": widget_crd(group), "widget.yaml": m.custom(group, "gizmo")})
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, first)
    colored = m.custom(group, "gizmo") + "  color: red\n"
    second = source.push({"crd.yaml": widget_crd(group, "color"), "widget.yaml": colored})
    wait_applied(cluster, namespace, second)
    live = cluster.get(f"/apis/{group}/v1/namespaces/{namespace}/widgets/gizmo") or {}
    assert live["spec"] == {"size": 3, "color": "red"}


def test_a_crd_deleted_by_hand_comes_back_with_its_objects_at_once(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    group = f"{namespace}.example.com"
    source = Source(cluster, namespace, git_http)
    commit = source.push({"crd.yaml": m.crd(group), "widget.yaml": m.custom(group, "gizmo")})
    create_sync(cluster, namespace, interval="1h", timeout="60s")
    wait_applied(cluster, namespace, commit)
    cluster.kubectl("delete", "crd", f"widgets.{group}")

    def back() -> dict[str, object]:
        widget = cluster.get(f"/apis/{group}/v1/namespaces/{namespace}/widgets/gizmo")
        assert widget is not None
        return widget

    wait.until(back, timeout=20, what="the CRD and its object re-created")

    def reported() -> bool:  # by the reconcile that re-created them, as the first one did
        events = [e["message"] for e in cluster.events(namespace) if e["reason"] == "ReconciliationSucceeded"]
        assert sum(f"Widget/{namespace}/gizmo created" in e for e in events) == 2, events
        return True

    wait.until(reported, timeout=10, what="the re-creation reported")
    assert condition(get_sync(cluster, namespace))["status"] == "True"
    path = f"/apis/{group}/v1/namespaces/{namespace}/widgets/gizmo"  # its watch is back: drift is seen at once
    cluster.api("PATCH", path, {"spec": {"size": 99}}, content_type="application/merge-patch+json")
    wait.until(lambda: (cluster.get(path) or {}).get("spec", {}).get("size") == 3, timeout=10, what="drift reverted")


def test_rbac_objects_named_with_underscores_are_pruned(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    first = source.push({"rbac.yaml": READER, "cm.yaml": m.configmap("keep")})
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, first)
    second = source.push({"rbac.yaml": None})
    sync = wait_applied(cluster, namespace, second)
    assert sync["status"]["plan"]["pruned"] == 2
    assert cluster.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/ci_reader") is None
    assert cluster.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/ci_reader") is None


def test_custom_resources_are_pruned_before_their_crd_and_counted(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    group = f"{namespace}.example.com"
    source = Source(cluster, namespace, git_http)
    widgets = "---\n".join(m.custom(group, f"w{i}") for i in range(3))
    first = source.push({"crd.yaml": m.crd(group), "widgets.yaml": widgets, "cm.yaml": m.configmap("keep")})
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, first)
    second = source.push({"crd.yaml": None, "widgets.yaml": None})
    sync = wait_applied(cluster, namespace, second)
    assert sync["status"]["plan"]["pruned"] == 4
    assert ids(get_sync(cluster, namespace)) == {f"{namespace}_keep__ConfigMap"}


@pytest.mark.parametrize(
    ("case", "field", "value"),
    [
        ("an invalid value (422)", "replicas: 2", "replicas: -3"),
        ("a wrong type (500 on 1.20)", "replicas: 2", "replicas: [2]"),
    ],
)
def test_an_invalid_object_bound_for_a_new_namespace_fails_before_anything_is_written(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, case: str, field: str, value: str
) -> None:
    app = f"{namespace}-app"
    invalid = m.deployment("web").replace("metadata:\n  name: web\n", f"metadata:\n  name: web\n  namespace: {app}\n")
    invalid = invalid.replace(field, value)
    source = Source(cluster, namespace, git_http)
    commit = source.push({"ns.yaml": m.namespace(app), "web.yaml": invalid, "cm.yaml": m.configmap("c", namespace=app)})
    create_sync(cluster, namespace)
    sync = wait_failed(cluster, namespace, commit)
    ready = condition(sync)
    assert ready["reason"] == "ValidationFailed"
    assert f"web.yaml (document 1): Deployment/{app}/web" in ready["message"]
    assert cluster.get(f"/api/v1/namespaces/{app}") is None  # stage 1 never ran
    assert "inventory" not in sync["status"]  # nothing was written: nothing to remember
