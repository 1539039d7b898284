"""Kustomize overlays and Helm charts from git, end to end on the real control plane and
git server: an overlay with a generated ConfigMap that rolls (the old one pruned), an
overlay change that costs one write, a commit elsewhere that costs no render and no
write, a chart with its CRD and values files, and every refusal of the sandbox as the
Sync reports it (BuildFailed, nothing applied, the last good revision kept)."""

from collections.abc import Iterator
from typing import Any

import pytest

from pullsync.runtime import metrics
from support import manifests as m
from support.cluster import AuditLog, Cluster, condition
from support.git import HttpGitServer
from support.operator import Operator
from support.remote import recording_server
from support.sync import Source, create_sync, get_sync, ids, wait_applied, wait_failed

BASE = {
    "base/kustomization.yaml": (
        "resources: [web.yaml, svc.yaml]\n"
        "configMapGenerator:\n- name: web-config\n  files: [config/app.properties]\n"
        "labels:\n- pairs: {app.kubernetes.io/name: web}\n"
    ),
    "base/config/app.properties": "greeting=hello\n",
    "base/web.yaml": m.deployment("web").replace(
        "      containers:\n",
        "      volumes: [{name: config, configMap: {name: web-config}}]\n      containers:\n",
    ),
    "base/svc.yaml": m.service("web"),
}
OVERLAY = "resources: [../../base]\nnamePrefix: prod-\npatches: [{path: replicas.yaml}]\n"
REPLICAS = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: %d}\n"


def live(cluster: Cluster, path: str) -> dict[str, Any]:
    return cluster.get(path) or {}


def test_an_overlay_is_applied_its_generated_configmap_rolls_and_a_one_object_change_is_one_write(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    first = source.push(
        {**BASE, "overlays/prod/kustomization.yaml": OVERLAY, "overlays/prod/replicas.yaml": REPLICAS % 3}
    )
    create_sync(cluster, namespace, path="./overlays/prod")
    sync = wait_applied(cluster, namespace, first)
    configmaps = sorted(i for i in ids(sync) if i.endswith("__ConfigMap"))
    assert len(configmaps) == 1
    assert configmaps[0].startswith(f"{namespace}_prod-web-config-")
    deployment = live(cluster, f"/apis/apps/v1/namespaces/{namespace}/deployments/prod-web")
    assert deployment["spec"]["replicas"] == 3
    old_name = configmaps[0].split("_")[1]
    assert deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == old_name

    second = source.push({"base/config/app.properties": "greeting=bonjour\n"})  # a new hash, a rollout
    sync = wait_applied(cluster, namespace, second)
    new_name = next(i for i in ids(sync) if i.endswith("__ConfigMap")).split("_")[1]
    assert new_name != old_name
    assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/{old_name}") is None  # pruned
    assert live(cluster, f"/api/v1/namespaces/{namespace}/configmaps/{new_name}")["data"] == {
        "app.properties": "greeting=bonjour\n"
    }
    deployment = live(cluster, f"/apis/apps/v1/namespaces/{namespace}/deployments/prod-web")
    assert deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == new_name

    audit = AuditLog(cluster.kubeconfig.parent / "audit.log")
    audit.mark()
    third = source.push({"overlays/prod/replicas.yaml": REPLICAS % 4})
    sync = wait_applied(cluster, namespace, third)
    assert sync["status"]["plan"]["changed"] == 1
    managed = [
        w
        for w in AuditLog.writes([e for e in audit.complete(cluster) if f"/namespaces/{namespace}/" in e["requestURI"]])
        if "/pullsync.dev/" not in w and "/events" not in w
    ]
    assert managed == [
        f"patch /apis/apps/v1/namespaces/{namespace}/deployments/prod-web?fieldManager=pullsync&force=true"
    ]


def test_a_commit_that_changes_nothing_the_sync_reads_costs_no_render_and_no_write(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    files = {**BASE, "overlays/prod/kustomization.yaml": OVERLAY, "overlays/prod/replicas.yaml": REPLICAS % 2}
    first = source.push({**files, "overlays/dev/kustomization.yaml": "resources: [../../base]\n"})
    create_sync(cluster, namespace, path="./overlays/prod")
    wait_applied(cluster, namespace, first)
    renders = metrics.RENDERS._value.get()
    audit = AuditLog(cluster.kubeconfig.parent / "audit.log")
    audit.mark()
    elsewhere = source.push({"overlays/dev/kustomization.yaml": "resources: [../../base]\nnamePrefix: dev-\n"})
    sync = wait_applied(cluster, namespace, elsewhere)
    assert metrics.RENDERS._value.get() == renders
    assert sync["status"]["plan"]["changed"] == 0
    requests = [e for e in audit.complete(cluster) if f"/namespaces/{namespace}/" in e["requestURI"]]
    assert [w for w in AuditLog.writes(requests) if "/pullsync.dev/" not in w and "/events" not in w] == []

    in_base = source.push({"base/config/app.properties": "greeting=hola\n"})  # the base is read: a render
    wait_applied(cluster, namespace, in_base)
    assert metrics.RENDERS._value.get() > renders


def chart(group: str) -> dict[str, str]:
    """A chart that brings its own CRD and an object of it, and two values files beside it."""
    release = "{{ .Release.Name }}"
    return {
        "charts/web/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
        "charts/web/values.yaml": "greeting: hello\nreplicas: 1\n",
        "charts/web/crds/crd.yaml": m.crd(group),
        "charts/web/templates/widget.yaml": m.custom(group, f"{release}-widget"),
        "charts/web/templates/config.yaml": (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: '{release}-config'}}\n"
            "data: {greeting: '{{ .Values.greeting }}', replicas: '{{ .Values.replicas }}'}\n"
        ),
        "charts/web/templates/web.yaml": m.deployment(release).replace(
            "replicas: 2", "replicas: {{ .Values.replicas }}"
        ),
        "env/prod.yaml": "replicas: 3\ngreeting: prod\n",
        "env/prod-eu.yaml": "greeting: prod-eu\n",
    }


def test_a_chart_with_its_crd_and_values_files_is_applied_and_owned_like_any_set(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    group = f"{namespace}.example.com"
    source = Source(cluster, namespace, git_http)
    first = source.push(chart(group))
    helm = {"releaseName": "site", "valuesFiles": ["../../env/prod.yaml", "../../env/prod-eu.yaml"]}
    create_sync(cluster, namespace, path="./charts/web", helm={**helm, "values": {"replicas": 4}})
    sync = wait_applied(cluster, namespace, first)
    assert ids(sync) == {
        f"_widgets.{group}_apiextensions.k8s.io_CustomResourceDefinition",
        f"{namespace}_site-widget_{group}_Widget",
        f"{namespace}_site-config__ConfigMap",
        f"{namespace}_site_apps_Deployment",
    }
    config = live(cluster, f"/api/v1/namespaces/{namespace}/configmaps/site-config")
    assert config["data"] == {"greeting": "prod-eu", "replicas": "4"}  # files in order, inline values last
    assert live(cluster, f"/apis/apps/v1/namespaces/{namespace}/deployments/site")["spec"]["replicas"] == 4
    assert cluster.get(f"/api/v1/namespaces/{namespace}/secrets?labelSelector=owner%3Dhelm")["items"] == []

    second = source.push({"env/prod-eu.yaml": None, "charts/web/templates/widget.yaml": None})
    create_sync(cluster, namespace, path="./charts/web", helm={**helm, "valuesFiles": ["../../env/prod.yaml"]})
    sync = wait_applied(cluster, namespace, second)
    assert live(cluster, f"/api/v1/namespaces/{namespace}/configmaps/site-config")["data"]["greeting"] == "prod"
    assert cluster.get(f"/apis/{group}/v1/namespaces/{namespace}/widgets/site-widget") is None  # pruned


@pytest.fixture
def remote_base() -> Iterator[tuple[str, list[str]]]:
    """A "remote" base: a local HTTP server that records what it is asked for."""
    with recording_server(None) as (url, requests):
        yield f"{url}/base.yaml", requests


def test_every_refusal_is_build_failed_with_nothing_applied_and_the_last_revision_kept(
    cluster: Cluster,
    operator: Operator,
    namespace: str,
    git_http: HttpGitServer,
    remote_base: tuple[str, list[str]],
) -> None:
    url, requests = remote_base
    source = Source(cluster, namespace, git_http)
    good = source.push({**BASE, "app/kustomization.yaml": "resources: [../base]\n"})
    create_sync(cluster, namespace, path="./app")
    wait_applied(cluster, namespace, good)
    before = ids(get_sync(cluster, namespace))

    def refused(files: dict[str, str | None], words: str, links: dict[str, str] | None = None) -> None:
        commit = source.push({"app/extra.yaml": m.configmap("extra"), **files}, links=links)
        sync = wait_failed(cluster, namespace, commit)
        ready = condition(sync)
        assert ready["reason"] == "BuildFailed"
        assert words in ready["message"], ready["message"]
        assert sync["status"]["lastAppliedRevision"].endswith(good)
        assert ids(sync) == before
        assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/extra") is None  # nothing applied

    kustomization = "app/kustomization.yaml"
    refused(
        {kustomization: "resources: [../base, extra.yaml, ../../etc]\n"},
        f"{kustomization}: resources entry '../../etc' is outside the repository",
    )
    refused(
        {kustomization: f"resources: [../base, extra.yaml, {url}]\n"},
        f"{kustomization}: resources entry '{url}' is remote; remote bases and resources are refused unless",
    )
    assert requests == []
    refused(
        {kustomization: "resources: [../base, extra.yaml, host]\n"},
        f"{kustomization}: resources entry 'host': app/host: symbolic link to '/etc' leaves the repository",
        links={"app/host": "/etc"},
    )
    refused(
        {"app/host": None, kustomization: "resources: [../base, extra.yaml]\nhelmCharts: [{name: redis}]\n"},
        "helmCharts: kustomize's Helm inflation never runs in pullsync",
    )
    refused(
        {kustomization: "resources: [../base, extra.yaml]\npatches: [{path: missing.yaml}]\n"},
        "kustomize build failed: ",
    )
    assert requests == []
