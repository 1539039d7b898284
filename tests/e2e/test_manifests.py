"""Manifests from real repositories, end to end: what the Sync applies is what kubectl
would apply from the same files (YAML 1.1 scalars, aliases, dates, empty fields, the
YAML 1.1 value tag), files can be left out (.sourceignore, spec.ignore, defaults), and
what cannot be applied is reported plainly, file and document named."""

from support import manifests as m
from support.cluster import Cluster, condition
from support.git import HttpGitServer
from support.operator import Operator
from support.sync import Source, create_gitrepo, create_sync, ids, wait_applied, wait_failed

DEPLOYMENT_WITH_OCTAL_MODES = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, annotations: }
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      automountServiceAccountToken: no
      containers: [{name: web, image: nginx:1.19}]
      volumes:
      - {name: secret, secret: {secretName: web, defaultMode: 0400}}
      - {name: config, configMap: {name: web, defaultMode: 0644}}
"""

DATED_CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: release}\ndata:\n  released: 2024-01-15\n"


def enum_crd(group: str) -> str:
    """A CRD whose schema enum holds an unquoted `=`, as kube-prometheus's do."""
    return m.crd(group).replace(
        "              size: {type: integer}",
        "              size: {type: integer}\n              op:\n                type: string\n"
        "                enum:\n                - =\n                - '!='",
    )


def test_the_sync_applies_what_kubectl_would_apply(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    group = f"{namespace}.example.com"
    crd = enum_crd(group)
    source = Source(cluster, namespace, git_http)
    commit = source.push(
        {
            "svc.yaml": m.ALIASED_SERVICE,
            "deploy.yaml": DEPLOYMENT_WITH_OCTAL_MODES,
            "release.yaml": DATED_CONFIGMAP,
            "crd.yaml": crd,
        }
    )
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, commit)
    svc = cluster.get(f"/api/v1/namespaces/{namespace}/services/web") or {}
    assert svc["spec"]["selector"] == {"app": "web"}
    assert svc["metadata"]["labels"] == {"app": "web", "pullsync.dev/name": "app", "pullsync.dev/namespace": namespace}
    pod = (cluster.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web") or {})["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert [v.get("secret", v.get("configMap"))["defaultMode"] for v in pod["volumes"]] == [256, 420]
    release = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/release") or {}
    assert release["data"] == {"released": "2024-01-15"}
    live_crd = cluster.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}") or {}
    schema = live_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"]["properties"]["op"]["enum"] == ["=", "!="]


def test_files_are_left_out_by_default_by_sourceignore_and_by_spec_ignore(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    commit = source.push(
        {
            ".github/workflows/ci.yaml": "on: push\njobs: {}\n",
            ".sourceignore": "kustomization.yaml\n",
            "deploy/kustomization.yaml": "resources: [web.yaml]\n",
            "deploy/web.yaml": m.configmap("web"),
            "deploy/.sourceignore": "config/\n",
            "deploy/config/app.yaml": "logLevel: debug\n",
            "deploy/all-in-one/everything.yaml": m.configmap("web"),
        }
    )
    create_sync(cluster, namespace, path="./deploy")
    failed = wait_failed(cluster, namespace, commit)
    assert condition(failed)["reason"] == "ValidationFailed"
    assert "deploy/web.yaml (document 1)" in condition(failed)["message"]
    assert "also defined in deploy/all-in-one/everything.yaml (document 1)" in condition(failed)["message"]

    spec = {"url": source.url, "interval": "1h", "secretRef": {"name": "git"}, "ignore": "all-in-one/\n"}
    create_gitrepo(cluster, namespace, spec)  # the same commit, read again with the new rules
    sync = wait_applied(cluster, namespace, commit)
    assert ids(sync) == {f"{namespace}_web__ConfigMap"}


def test_what_cannot_be_applied_is_named_with_file_document_and_remedy(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    good = source.push({"app/cm.yaml": m.configmap("settings")})
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, good)

    def fails_with(files: dict[str, str | None], *words: str) -> None:
        commit = source.push(files)
        message = condition(wait_failed(cluster, namespace, commit))["message"]
        for word in words:
            assert word in message, message
        assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/settings") is not None  # nothing lost

    fails_with(
        {"app/flags.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: flags}\ndata:\n  enabled: yes\n"},
        "app/flags.yaml (document 1): data.enabled is a boolean, not a string",
        "quote the value",
    )
    mesh = "apiVersion: networking.istio.io/v1beta1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {{}}\n"
    fails_with(
        {
            "app/flags.yaml": None,
            "app/mesh.yaml": "---\n".join(
                mesh.format(kind=k, name=n) for k, n in [("Gateway", "gw"), ("VirtualService", "a"), ("Gateway", "b")]
            ),
            "app/policy.yaml": mesh.format(kind="AuthorizationPolicy", name="deny").replace(
                "networking.istio.io/v1beta1", "security.istio.io/v1"
            ),
        },
        "Gateway in networking.istio.io/v1beta1 (app/mesh.yaml (document 1) and 1 more)",
        "VirtualService in networking.istio.io/v1beta1 (app/mesh.yaml (document 2))",
        "AuthorizationPolicy in security.istio.io/v1 (app/policy.yaml (document 1))",
    )
    fails_with(
        {
            "app/mesh.yaml": None,
            "app/policy.yaml": None,
            "app/svc.yaml": m.service("web").replace("    protocol: TCP\n", ""),
        },
        "app/svc.yaml (document 1)",
        "needs `protocol: TCP`",
    )
    fails_with(
        {"app/svc.yaml": None, "app/kustomization.yaml": "resources: [cm.yaml]\n"},
        "app/kustomization.yaml: a kustomization below spec.path; pullsync builds a kustomization only at spec.path",
    )
