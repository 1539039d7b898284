"""Sync end to end: real git over smart HTTP, the real API server, the operator in this
process. Every case runs in its own namespace and asserts cluster state."""

import pytest

from support import manifests as m
from support import wait
from support.cluster import AuditLog, Cluster, condition, gitrepo_path, sync_path
from support.git import HttpGitServer
from support.operator import Operator
from support.sync import (
    Source,
    create_gitrepo,
    create_sync,
    get_sync,
    ids,
    request,
    wait_applied,
    wait_failed,
    wait_others_finalized,
)


def test_a_repository_with_every_kind_of_object_is_applied_and_reported(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    app_ns, group, role = f"{namespace}-app", f"{namespace}.example.com", f"{namespace}-reader"
    source = Source(cluster, namespace, git_http)
    commit = source.push(
        {
            "deploy/00-namespace.yaml": m.namespace(app_ns),
            "deploy/app/config.yaml": m.configmap("config", namespace=app_ns),
            "deploy/app/web.yaml": m.deployment("web") + "---\n" + m.service("web"),
            "deploy/crd/crd.yaml": m.crd(group),
            "deploy/crd/widget.yml": m.custom(group, "gizmo"),
            "deploy/rbac.json": '{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",'
            f' "metadata": {{"name": "{role}"}}, "rules": []}}',
            "README.md": "not a manifest",
        }
    )
    create_sync(cluster, namespace, path="./deploy")
    sync = wait_applied(cluster, namespace, commit)
    assert sync["status"]["lastAppliedRevision"] == f"main@sha1:{commit}"
    assert ids(sync) == {
        f"_{app_ns}__Namespace",
        f"{app_ns}_config__ConfigMap",
        f"{namespace}_web_apps_Deployment",
        f"{namespace}_web__Service",
        f"_widgets.{group}_apiextensions.k8s.io_CustomResourceDefinition",
        f"{namespace}_gizmo_{group}_Widget",
        f"_{role}_rbac.authorization.k8s.io_ClusterRole",
    }
    assert sync["status"]["inventory"]["count"] == 7
    plan = dict(sync["status"]["plan"])
    assert plan.pop("operations") >= 7  # at least one JSON-patch operation per created object
    assert plan == {"objects": 7, "changed": 7, "created": 7, "pruned": 0}
    cm = cluster.get(f"/api/v1/namespaces/{app_ns}/configmaps/config")
    assert cm is not None
    assert cm["metadata"]["labels"] == {"pullsync.dev/name": "app", "pullsync.dev/namespace": namespace}
    assert cluster.get(f"/apis/{group}/v1/namespaces/{namespace}/widgets/gizmo") is not None
    assert cluster.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}") is not None
    row = cluster.kubectl("get", "sync", "app", "-n", namespace).stdout.splitlines()[1].split()
    assert row[1:4] == ["True", f"main@sha1:{commit}", "7"]
    assert condition(sync)["message"] == f"Applied revision: main@sha1:{commit}"


ROUTE_CRD = m.crd("route.openshift.io", "Route", "routes", open_schema=True)  # a minimal OpenShift Route API


def test_an_openshift_route_syncs_like_any_other_kind(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    cluster.kubectl("apply", "-f", "-", input=ROUTE_CRD)
    cluster.kubectl("wait", "--for=condition=Established", "crd/routes.route.openshift.io")
    route = "apiVersion: route.openshift.io/v1\nkind: Route\nmetadata: {name: web}\nspec: {to: {name: web}}\n"
    source = Source(cluster, namespace, git_http)
    commit = source.push({"route.yaml": route, "svc.yaml": m.service("web")})
    create_sync(cluster, namespace)
    sync = wait_applied(cluster, namespace, commit)
    assert f"{namespace}_web_route.openshift.io_Route" in ids(sync)
    live = cluster.get(f"/apis/route.openshift.io/v1/namespaces/{namespace}/routes/web")
    assert live is not None
    assert live["spec"]["to"]["name"] == "web"


def test_a_new_image_is_applied_within_one_interval_as_a_one_object_patch(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http, interval="2s")
    files = {"web.yaml": m.deployment("web"), "cm.yaml": m.configmap("config"), "svc.yaml": m.service("web")}
    first = source.push(files)
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, first)
    second = source.repo.commit({"web.yaml": m.deployment("web", image="nginx:1.28")}, "bump")  # no requestedAt
    sync = wait_applied(cluster, namespace, second, timeout=2 + 5)
    assert sync["status"]["plan"]["changed"] == 1
    assert sync["status"]["plan"]["created"] == 0
    deploy = cluster.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
    assert deploy is not None
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    events = [e for e in cluster.events(namespace) if e["reason"] == "ReconciliationSucceeded"]
    assert any(f"Deployment/{namespace}/web configured" in e["message"] for e in events)


@pytest.mark.parametrize(
    ("case", "prune", "annotation", "kept"),
    [
        ("a removed ConfigMap is pruned when prune is true", True, "", False),
        ("a removed ConfigMap is kept when prune is false", False, "", True),
        ("an annotated ConfigMap is kept", True, "{pullsync.dev/prune: disabled}", True),
    ],
)
def test_pruning_follows_the_sync_and_the_object(
    cluster: Cluster,
    operator: Operator,
    namespace: str,
    git_http: HttpGitServer,
    case: str,
    prune: bool,
    annotation: str,
    kept: bool,
) -> None:
    source = Source(cluster, namespace, git_http)
    first = source.push({"keep.yaml": m.configmap("keep"), "old.yaml": m.configmap("old", annotations=annotation)})
    create_sync(cluster, namespace, prune=prune)
    wait_applied(cluster, namespace, first)
    second = source.push({"old.yaml": None}, "drop old")
    sync = wait_applied(cluster, namespace, second)
    assert (cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/old") is not None) is kept, case
    assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/keep") is not None
    assert ids(sync) == {f"{namespace}_keep__ConfigMap"}
    assert sync["status"]["plan"]["pruned"] == (0 if kept else 1)


@pytest.mark.parametrize(
    ("case", "spec", "deadline"),
    [
        ("with the live cache, at once", {"interval": "1h"}, 5),
        (
            "as a ServiceAccount (no cache), at the next interval",
            {"interval": "2s", "serviceAccountName": "deployer"},
            2 + 5,
        ),
    ],
)
def test_drift_is_reverted_and_foreign_fields_are_left_alone(
    cluster: Cluster,
    operator: Operator,
    namespace: str,
    git_http: HttpGitServer,
    case: str,
    spec: dict[str, str],
    deadline: float,
) -> None:
    if "serviceAccountName" in spec:
        cluster.kubectl("create", "serviceaccount", "deployer", "-n", namespace)
        cluster.kubectl(
            "create",
            "rolebinding",
            "deployer",
            "--clusterrole=admin",
            f"--serviceaccount={namespace}:deployer",
            "-n",
            namespace,
        )
    source = Source(cluster, namespace, git_http)
    commit = source.push({"web.yaml": m.deployment("web", replicas=2), "cm.yaml": m.configmap("config")})
    create_sync(cluster, namespace, **spec)
    wait_applied(cluster, namespace, commit)
    cluster.kubectl("scale", "deployment/web", "-n", namespace, "--replicas=5")
    cluster.kubectl("label", "configmap/config", "-n", namespace, "pullsync.dev/name=someone-else", "--overwrite")
    cluster.kubectl("annotate", "configmap/config", "-n", namespace, "team=payments")  # a field pullsync never set

    def reverted() -> bool:
        deploy = cluster.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web") or {}
        cm = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/config") or {}
        assert deploy["spec"]["replicas"] == 2, deploy["spec"]["replicas"]
        assert cm["metadata"]["labels"]["pullsync.dev/name"] == "app", cm["metadata"]["labels"]
        return True

    wait.until(reverted, timeout=deadline, what="drift reverted")
    cm = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/config")
    assert cm is not None
    assert cm["metadata"]["annotations"]["team"] == "payments"


BROKEN = [
    ("bad YAML", "data: [unclosed\n", "invalid YAML"),
    (
        "an unknown kind",
        "apiVersion: v1\nkind: Gadget\nmetadata: {name: g}\n",
        "unknown kind: Gadget in v1 (z/broken.yaml (document 2))",
    ),
    ("a missing name", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "ConfigMap has no metadata.name"),
    (
        "an invalid field rejected by the dry-run",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\n"
        "spec:\n  replicas: -3\n  selector: {matchLabels: {a: b}}\n"
        "  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: x}]}\n",
        "spec.replicas",
    ),
]


@pytest.mark.parametrize(("case", "document", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_one_broken_document_among_ten_applies_nothing_and_names_the_file(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, case: str, document: str, words: str
) -> None:
    source = Source(cluster, namespace, git_http)
    good = {f"cm-{i}.yaml": m.configmap(f"cm-{i}", "v1") for i in range(9)}
    first = source.push(good)
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, first)
    changed = {f"cm-{i}.yaml": m.configmap(f"cm-{i}", "v2") for i in range(9)}
    # the broken object is the second document of its file
    bad = source.push({**changed, "z/broken.yaml": m.configmap("fine-neighbour") + "---\n" + document}, "broken")
    sync = wait_failed(cluster, namespace, bad)
    ready = condition(sync)
    assert ready["reason"] in ("BuildFailed", "ValidationFailed"), ready
    assert "z/broken.yaml (document 2)" in ready["message"], ready["message"]
    assert words in ready["message"], ready["message"]
    assert sync["status"]["lastAppliedRevision"].endswith(first)
    for i in range(9):
        cm = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/cm-{i}")
        assert cm is not None
        assert cm["data"]["value"] == "v1"
    assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/fine-neighbour") is None
    fixed = source.push({"z/broken.yaml": m.configmap("fine-neighbour")}, "fixed")
    wait_applied(cluster, namespace, fixed)
    cm = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/cm-0")
    assert cm is not None
    assert cm["data"]["value"] == "v2"


@pytest.mark.parametrize(
    ("case", "removal", "words"),
    [
        ("the path holds no manifests any more", {"deploy/README.md": "docs only"}, "refusing to apply an empty set"),
        ("the path is gone from the repository", {"other.txt": "x"}, "path 'deploy' not found in the repository"),
    ],
)
def test_an_empty_path_never_prunes_everything(
    cluster: Cluster,
    operator: Operator,
    namespace: str,
    git_http: HttpGitServer,
    case: str,
    removal: dict[str, str],
    words: str,
) -> None:
    source = Source(cluster, namespace, git_http)
    first = source.push({"deploy/a.yaml": m.configmap("a"), "deploy/b.yaml": m.configmap("b")})
    create_sync(cluster, namespace, path="deploy")
    wait_applied(cluster, namespace, first)
    empty = source.push({"deploy/a.yaml": None, "deploy/b.yaml": None, **removal}, "remove everything")
    sync = wait_failed(cluster, namespace, empty)
    assert condition(sync)["reason"] == "BuildFailed"
    assert words in condition(sync)["message"]
    assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/a") is not None
    assert len(ids(sync)) == 2


IP = iter(range(20, 250, 2))  # cluster IPs unique within this run (10.0.0.0/16)
IMMUTABLE = [
    ("a Service clusterIP", "svc.yaml", "10.0.0.{a}", "10.0.0.{b}", "spec.clusterIP"),
    (
        "a Deployment selector",
        "web.yaml",
        m.deployment("web", app="web"),
        m.deployment("web", app="web2"),
        "spec.selector",
    ),
]


@pytest.mark.parametrize(("case", "file", "before", "after", "field"), IMMUTABLE, ids=[c[0] for c in IMMUTABLE])
@pytest.mark.parametrize("force", [False, True], ids=["without force", "with force"])
def test_an_immutable_field_change_needs_force(
    cluster: Cluster,
    operator: Operator,
    namespace: str,
    git_http: HttpGitServer,
    case: str,
    file: str,
    before: str,
    after: str,
    field: str,
    force: bool,
) -> None:
    if file == "svc.yaml":
        a = next(IP)
        before, after = m.service("web", before.format(a=a)), m.service("web", after.format(b=a + 1))
    source = Source(cluster, namespace, git_http)
    first = source.push({file: before, "cm.yaml": m.configmap("cm", "v1")})
    create_sync(cluster, namespace, force=force)
    wait_applied(cluster, namespace, first)
    kind_path = "api/v1" if file == "svc.yaml" else "apis/apps/v1"
    plural = "services" if file == "svc.yaml" else "deployments"
    old = cluster.get(f"/{kind_path}/namespaces/{namespace}/{plural}/web")
    assert old is not None
    second = source.push({file: after, "cm.yaml": m.configmap("cm", "v2")}, "immutable change")
    if force:
        wait_applied(cluster, namespace, second)
        new = cluster.get(f"/{kind_path}/namespaces/{namespace}/{plural}/web")
        assert new is not None
        assert new["metadata"]["uid"] != old["metadata"]["uid"]
    else:
        sync = wait_failed(cluster, namespace, second)
        ready = condition(sync)
        assert ready["reason"] == "ApplyFailed"
        assert f"{namespace}/web" in ready["message"]
        assert field in ready["message"]
        cm = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/cm")
        assert cm is not None
        assert cm["data"]["value"] == "v1"  # nothing of the commit was applied


def test_two_syncs_of_one_repository_do_not_prune_each_other(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    first = source.push({"a/cm.yaml": m.configmap("from-a"), "b/cm.yaml": m.configmap("from-b")})
    create_sync(cluster, namespace, "sync-a", path="a")
    create_sync(cluster, namespace, "sync-b", path="b")
    wait_applied(cluster, namespace, first, "sync-a")
    wait_applied(cluster, namespace, first, "sync-b")
    second = source.push({"a/cm.yaml": m.configmap("from-a", "v2"), "a/extra.yaml": m.configmap("extra")})
    wait_applied(cluster, namespace, second, "sync-a")
    wait_applied(cluster, namespace, second, "sync-b")
    for name in ("from-a", "from-b", "extra"):
        assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}") is not None, name
    cm = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/from-b")
    assert cm is not None
    assert cm["metadata"]["labels"]["pullsync.dev/name"] == "sync-b"


def test_an_object_annotated_reconcile_disabled_in_the_cluster_is_left_alone(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    first = source.push({"cm.yaml": m.configmap("cm", "v1")})
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, first)
    cluster.kubectl("annotate", "configmap/cm", "-n", namespace, "pullsync.dev/reconcile=disabled")
    second = source.push({"cm.yaml": m.configmap("cm", "v2")})
    sync = wait_applied(cluster, namespace, second)
    assert sync["status"]["plan"]["changed"] == 0
    cm = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/cm")
    assert cm is not None
    assert cm["data"]["value"] == "v1"


def test_a_pre_existing_object_annotated_reconcile_disabled_is_untouched_and_not_created(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    cluster.kubectl("create", "configmap", "cm", "-n", namespace, "--from-literal=value=by-hand")
    cluster.kubectl("annotate", "configmap/cm", "-n", namespace, "pullsync.dev/reconcile=disabled")
    audit = AuditLog(cluster.kubeconfig.parent / "audit.log")
    audit.mark()
    source = Source(cluster, namespace, git_http)
    commit = source.push({"cm.yaml": m.configmap("cm", "from-git"), "other.yaml": m.configmap("other")})
    create_sync(cluster, namespace)
    sync = wait_applied(cluster, namespace, commit)
    assert sync["status"]["plan"]["created"] == 1  # `other` only
    cm = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/cm") or {}
    assert cm["data"] == {"value": "by-hand"}
    assert "labels" not in cm["metadata"]
    requests = [e for e in audit.complete(cluster) if f"/namespaces/{namespace}/" in e["requestURI"]]
    assert [w for w in AuditLog.writes(requests) if w.partition("?")[0].endswith("/configmaps/cm")] == []


@pytest.mark.parametrize("prune", [True, False])
def test_deleting_a_sync_prunes_its_objects_only_when_prune_is_true(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, prune: bool
) -> None:
    source = Source(cluster, namespace, git_http)
    first = source.push({"cm.yaml": m.configmap("cm")})
    create_sync(cluster, namespace, prune=prune)
    wait_applied(cluster, namespace, first)
    cluster.api("DELETE", sync_path(namespace, "app"))
    wait.until(lambda: cluster.get(sync_path(namespace, "app")) is None, timeout=20, what="the Sync to go")
    assert (cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/cm") is None) is prune


def test_suspend_stops_reconciling(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    first = source.push({"cm.yaml": m.configmap("cm")})
    create_sync(cluster, namespace, suspend=True)
    ready = wait.until(lambda: condition(get_sync(cluster, namespace)), what="a Ready condition")
    assert (ready["status"], ready["reason"]) == ("False", "Suspended")
    assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/cm") is None
    create_sync(cluster, namespace, suspend=False)
    wait_applied(cluster, namespace, first)


def test_a_missing_source_is_reported_and_retried(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    create_sync(cluster, namespace, retryInterval="1s")
    ready = wait.until(lambda: condition(get_sync(cluster, namespace)), what="a Ready condition")
    assert (ready["status"], ready["reason"]) == ("False", "SourceNotReady")
    assert f"GitRepository {namespace}/app not found" in ready["message"]
    warned = wait.until(lambda: [e for e in cluster.events(namespace) if e["reason"] == "SourceNotReady"], what="news")
    assert f"GitRepository {namespace}/app not found" in warned[0]["message"]  # still missing at the retry
    commit = Source(cluster, namespace, git_http).push({"cm.yaml": m.configmap("cm")})
    wait_applied(cluster, namespace, commit)


def test_a_sync_says_at_once_why_the_first_fetch_of_its_source_failed(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    create_sync(cluster, namespace, retryInterval="1h")
    missing = wait.until(lambda: condition(get_sync(cluster, namespace)), what="a Ready condition")
    assert f"GitRepository {namespace}/app not found" in missing["message"]
    create_gitrepo(cluster, namespace, {"url": "http://127.0.0.1:9/nothing.git", "interval": "1h"})
    # The GitRepository's failure wakes the Sync: it does not wait for its retry, an hour away.
    failed = wait.until(
        lambda: "failed to poll http://127.0.0.1:9/nothing.git" in condition(get_sync(cluster, namespace))["message"],
        what="the fetch failure on the Sync",
    )
    assert failed
    ready = condition(get_sync(cluster, namespace))
    assert (ready["status"], ready["reason"]) == ("False", "SourceNotReady")
    assert [e for e in cluster.events(namespace) if e["reason"] == "SourceNotReady"]


def test_a_sync_says_at_once_that_its_source_was_deleted(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    commit = Source(cluster, namespace, git_http).push({"cm.yaml": m.configmap("cm")})
    create_sync(cluster, namespace)  # interval: an hour
    wait_applied(cluster, namespace, commit)
    cluster.api("DELETE", gitrepo_path(namespace, "app"))
    ready = wait.until(
        lambda: (c := condition(get_sync(cluster, namespace))).get("reason") == "SourceNotReady" and c,
        timeout=10,
        what="SourceNotReady",
    )
    assert f"GitRepository {namespace}/app not found" in ready["message"]
    assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/cm")  # what it applied stays


def test_a_sync_that_failed_for_a_missing_namespace_applies_as_soon_as_it_is_created(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    later = f"{namespace}-later"
    commit = Source(cluster, namespace, git_http).push({"cm.yaml": m.configmap("settings", namespace=later)})
    create_sync(cluster, namespace)  # retries an hour after a failure
    ready = condition(wait_failed(cluster, namespace, commit))
    assert ready["reason"] == "ValidationFailed"
    assert f"cm.yaml (document 1): namespace '{later}' of ConfigMap/{later}/settings does not exist" in ready["message"]
    cluster.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": later}})
    try:
        wait_applied(cluster, namespace, commit)  # the Namespace's watch event wakes the Sync
        assert cluster.get(f"/api/v1/namespaces/{later}/configmaps/settings")
    finally:
        cluster.api("DELETE", f"/api/v1/namespaces/{later}")


def test_a_sync_created_with_its_source_is_quiet_until_the_first_fetch(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    commit = Source(cluster, namespace, git_http).push({"cm.yaml": m.configmap("cm")})  # the GitRepository first
    create_sync(cluster, namespace)
    versions = cluster.watch(
        sync_path(namespace),
        "app",
        until=lambda s: (s.get("status") or {}).get("lastAppliedRevision", "").endswith(commit),
    )
    reasons = [c["reason"] for v in versions if (c := condition(v))]
    assert reasons[-1] == "Succeeded", reasons
    assert "SourceNotReady" not in reasons  # no status write while the source fetches


def test_a_no_op_interval_makes_no_requests_at_all(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    files = {f"cm-{i}.yaml": m.configmap(f"cm-{i}") for i in range(5)} | {"web.yaml": m.deployment("web")}
    commit = source.push(files)
    create_sync(cluster, namespace, interval="1s")
    sync = wait_applied(cluster, namespace, commit)
    line = f"Sync {namespace}/app: Applied revision"
    wait.until(lambda: operator.log_text().count(line) >= 2, what="a no-op reconcile")
    assert get_sync(cluster, namespace)["status"]["plan"] == sync["status"]["plan"]  # the applying turn's
    assert sync["status"]["plan"]["created"] == 6
    wait_others_finalized(cluster, namespace)
    audit = AuditLog(cluster.kubeconfig.parent / "audit.log")
    audit.mark()
    # Three more reconciles of six objects each, seen in the operator's (debug) log.
    before = operator.log_text().count(line)
    wait.until(lambda: operator.log_text().count(line) >= before + 3, timeout=15, what="three no-op reconciles")
    requests = audit.complete(cluster)  # any namespace, and cluster-scoped ones
    assert [f"{e['verb']} {e['requestURI']}" for e in requests if not AuditLog.others_work(e)] == []


def test_a_requested_reconcile_that_changes_nothing_keeps_the_plan_of_the_apply(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    create_sync(cluster, namespace)
    source.push({"a.yaml": m.configmap("a"), "b.yaml": m.configmap("b")})
    commit = source.push({"a.yaml": m.configmap("a", "v2"), "b.yaml": m.configmap("b")})
    applied = wait_applied(cluster, namespace, commit)["status"]["plan"]
    stamp = request(cluster, sync_path(namespace, "app"))
    handled = wait.until(
        lambda: (s := get_sync(cluster, namespace)["status"]).get("lastHandledReconcileAt") == stamp and s,
        what="the request handled",
    )
    assert handled["plan"] == applied
    assert applied["objects"] == 2
    assert applied["created"] + applied["changed"] >= 1


def test_a_new_revision_shows_reconciling_while_it_runs_then_ready(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    first = source.push({"cm.yaml": m.configmap("cm", "v1")})
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, first)
    second = source.push({"cm.yaml": m.configmap("cm", "v2")})
    versions = cluster.watch(
        sync_path(namespace),
        "app",
        until=lambda s: (s.get("status") or {}).get("lastAppliedRevision", "").endswith(second),
    )
    states = [(c["status"], c["reason"]) for v in versions if (c := condition(v))]
    assert ("Unknown", "Progressing") in states
    reconciling = next(v for v in versions if condition(v).get("status") == "Unknown")
    assert condition(reconciling, "Reconciling")["status"] == "True"
    assert second in condition(reconciling)["message"]
    assert [c["type"] for c in versions[-1]["status"]["conditions"]] == ["Ready", "Healthy"]
    assert condition(versions[-1])["status"] == "True"


def test_an_object_whose_applied_version_left_the_server_is_still_pruned(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    group = f"{namespace}.example.com"
    both = m.crd(group).replace("  - name: v1\n    served: true\n    storage: true\n", VERSIONS.format(v1="true"))
    source = Source(cluster, namespace, git_http)
    first = source.push({"crd.yaml": both, "widget.yaml": m.custom(group, "gizmo")})
    create_sync(cluster, namespace)
    sync = wait_applied(cluster, namespace, first)
    assert {e["v"] for e in sync["status"]["inventory"]["entries"]} >= {f"{group}/v1"}
    second = source.push(
        {"crd.yaml": both.replace(VERSIONS.format(v1="true"), VERSIONS.format(v1="false")), "widget.yaml": None}
    )
    sync = wait_applied(cluster, namespace, second)
    assert sync["status"]["plan"]["pruned"] == 1
    assert cluster.get(f"/apis/{group}/v2/namespaces/{namespace}/widgets/gizmo") is None


VERSIONS = """  - name: v2
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {{type: integer}}
  - name: v1
    served: {v1}
    storage: false
"""


def test_a_sync_deleted_while_it_applies_prunes_what_that_reconcile_created(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    source.push({f"cm-{i:03}.yaml": m.configmap(f"cm-{i:03}") for i in range(800)})
    create_sync(cluster, namespace)
    selector = f"/api/v1/namespaces/{namespace}/configmaps?labelSelector=pullsync.dev/name"
    wait.until(lambda: (cluster.get(selector) or {}).get("items"), interval=0.01, what="the first objects written")
    cluster.api("DELETE", sync_path(namespace, "app"))
    wait.until(lambda: get_sync(cluster, namespace) == {}, timeout=60, what="the Sync gone")
    assert [c["metadata"]["name"] for c in (cluster.get(selector) or {})["items"]] == []


def test_a_second_sync_claiming_an_object_is_refused_and_writes_nothing(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    files = {"a/cm.yaml": m.configmap("shared", "from-a"), "b/cm.yaml": m.configmap("shared", "from-b")}
    commit = source.push({**files, "c/cm.yaml": m.configmap("other", "from-c")})
    create_sync(cluster, namespace, "sync-a", path="a")
    wait_applied(cluster, namespace, commit, "sync-a")
    owner = get_sync(cluster, namespace, "sync-a")["status"]
    audit = AuditLog(cluster.kubeconfig.parent / "audit.log")
    audit.mark()
    create_sync(cluster, namespace, "sync-b", path="b")
    message = condition(wait_failed(cluster, namespace, commit, "sync-b"))["message"]
    assert f"ConfigMap/{namespace}/shared (b/cm.yaml (document 1)): managed by Sync {namespace}/sync-a" in message
    cm = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/shared") or {}
    assert (cm["metadata"]["labels"]["pullsync.dev/name"], cm["data"]) == ("sync-a", {"value": "from-a"})
    requests = [e for e in audit.complete(cluster) if f"/namespaces/{namespace}/" in e["requestURI"]]
    assert [w for w in AuditLog.writes(requests) if "/configmaps/" in w] == []
    assert get_sync(cluster, namespace, "sync-a")["status"] == owner  # the owner is unaffected

    # sync-a moves on to another path without pruning: what it leaves behind is free to take over.
    move = {"spec": {"prune": False, "path": "c"}}
    cluster.api("PATCH", sync_path(namespace, "sync-a"), move, content_type="application/merge-patch+json")
    wait.until(lambda: ids(get_sync(cluster, namespace, "sync-a")) == {f"{namespace}_other__ConfigMap"}, what="moved")
    request(cluster, sync_path(namespace, "sync-b"))
    wait_applied(cluster, namespace, commit, "sync-b")
    cm = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/shared") or {}
    assert (cm["metadata"]["labels"]["pullsync.dev/name"], cm["data"]) == ("sync-b", {"value": "from-b"})


def test_a_large_object_is_watched_like_any_other(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    big = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  blob: " + "x" * 900_000 + "\n"
    source = Source(cluster, namespace, git_http)
    commit = source.push({"big.yaml": big})
    create_sync(cluster, namespace, interval="1h")
    wait_applied(cluster, namespace, commit)
    path = f"/api/v1/namespaces/{namespace}/configmaps/big"
    cluster.api("PATCH", path, {"data": {"blob": "changed"}}, content_type="application/merge-patch+json")
    wait.until(lambda: len((cluster.get(path) or {})["data"]["blob"]) == 900_000, timeout=10, what="drift reverted")
    assert "watch of v1/configmaps " not in operator.log_text()  # neither "broke" nor "failed": no re-list
