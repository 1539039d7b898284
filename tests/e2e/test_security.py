"""Tenancy and hostile input: a Sync does only what its ServiceAccount may, no repo or
request can hurt the operator, and no secret leaks into status, events or logs."""

import hashlib
import hmac
import json
import resource
from typing import Any

import pytest

from support import manifests as m
from support import wait
from support.cluster import ApiError, Cluster, condition, gitrepo_path
from support.git import HttpGitServer
from support.operator import Operator, post_webhook
from support.sync import Source, create_gitrepo, create_sync, get_sync, grant_configmaps, ids, wait_applied, wait_failed

RSS_BOUND_MB = 1024  # peak RSS of the whole test process (operator + tests) after the hostile repos


CRB = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects: [{{kind: ServiceAccount, name: deployer, namespace: {ns}}}]
"""


@pytest.mark.parametrize(
    ("case", "extra", "words", "denied"),
    [
        (
            "a ClusterRoleBinding",
            lambda ns: {"crb.yaml": CRB.format(name=f"{ns}-escalate", ns=ns)},
            "ClusterRoleBinding (cluster scope) denied",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{ns}-escalate",
        ),
        (
            "a Deployment in another namespace",
            lambda ns: {"d.yaml": m.deployment(f"{ns}-web").replace("\nspec:", "\n  namespace: default\nspec:", 1)},
            "Deployment in namespace default denied",
            "/apis/apps/v1/namespaces/default/deployments/{ns}-web",
        ),
    ],
)
def test_a_sync_acts_only_with_its_service_accounts_rights(
    cluster: Cluster,
    operator: Operator,
    namespace: str,
    git_http: HttpGitServer,
    case: str,
    extra: Any,
    words: str,
    denied: str,
) -> None:
    grant_configmaps(cluster, namespace)
    source = Source(cluster, namespace, git_http)
    first = source.push({"cm.yaml": m.configmap("cm", "v1")})
    create_sync(cluster, namespace, serviceAccountName="deployer")
    wait_applied(cluster, namespace, first)
    cm = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/cm")
    assert cm is not None
    assert any(f["manager"] == "pullsync" for f in cm["metadata"]["managedFields"])
    bad = source.push({"cm.yaml": m.configmap("cm", "v2"), **extra(namespace)}, case)
    sync = wait_failed(cluster, namespace, bad)
    ready = condition(sync)
    assert ready["reason"] == "AccessDenied", ready
    assert words in ready["message"], ready["message"]
    cm = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/cm")
    assert cm is not None
    assert cm["data"]["value"] == "v1"  # nothing of that commit was applied
    assert cluster.get(denied.format(ns=namespace)) is None


def test_the_default_service_account_flag_makes_impersonation_mandatory(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    commit = source.push({"cm.yaml": m.configmap("cm")})
    operator.reconfigure(default_service_account="nobody")
    try:
        create_sync(cluster, namespace)
        sync = wait_failed(cluster, namespace, commit)
        assert condition(sync)["reason"] == "AccessDenied"
        assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/cm") is None
    finally:
        operator.reconfigure(default_service_account=None)


def test_cross_namespace_sources_are_refused_unless_allowed(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    commit = source.push({"cm.yaml": m.configmap("cm", namespace=namespace)})
    other = cluster.kubectl("create", "namespace", f"{namespace}-x").stdout and f"{namespace}-x"
    try:
        create_sync(cluster, other, sourceRef={"kind": "GitRepository", "name": "app", "namespace": namespace})
        ready = wait.until(lambda: condition(get_sync(cluster, other)), what="a Ready condition")
        assert (ready["status"], ready["reason"]) == ("False", "AccessDenied")
        assert condition(get_sync(cluster, other), "Stalled")["status"] == "True"
        assert "--allow-cross-namespace-refs" in ready["message"]
        operator.reconfigure(allow_cross_namespace_refs=True)
        create_sync(
            cluster, other, sourceRef={"kind": "GitRepository", "name": "app", "namespace": namespace}, interval="30s"
        )
        wait_applied(cluster, other, commit)
    finally:
        operator.reconfigure(allow_cross_namespace_refs=False)
        cluster.api("DELETE", f"/api/v1/namespaces/{other}")


LOL = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
)
HOSTILE = [
    ("billion laughs", {"hostile/lol.yaml": LOL}, {}, None, "YAML aliases expand to more than"),
    ("a 50 MB file", {"hostile/big.yaml": "# " + "x" * (50 * 1024 * 1024)}, {}, None, "bytes is over the limit"),
    ("100 000 tiny documents", {"hostile/many.yaml": "---\na: 1\n" * 100_000}, {}, None, "more than 5000 objects"),
    (
        "10 000-deep nesting",
        {"hostile/deep.yaml": "a: " + "[" * 10_000 + "]" * 10_000},
        {},
        None,
        "nesting deeper than",
    ),
    (
        "a symlink to the pod's secrets",
        {},
        {"hostile/token.yaml": "/var/run/secrets/kubernetes.io/serviceaccount/token"},
        None,
        "leaves the repository",
    ),
    ("a symlink to ../..", {}, {"hostile/up": "../.."}, None, "leaves the repository"),
    ("a path outside the repository", {}, {}, "../../etc", "leaves the repository"),
    (
        "a python tag (read as plain data, as kubectl does; never run)",
        {
            "hostile/py.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: py}\n"
            "data: {x: !!python/object/apply:os.system ['touch /tmp/pwned']}\n"
        },
        {},
        None,
        "hostile/py.yaml (document 1): data.x is a list, not a string",
    ),
    (
        "duplicate keys",
        {"hostile/dup.yaml": "apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata: {name: x}\n"},
        {},
        None,
        'duplicate key "kind"',
    ),
]


@pytest.mark.parametrize(("case", "files", "links", "path", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_repository_fails_precisely_while_a_healthy_sync_keeps_converging(
    cluster: Cluster,
    operator: Operator,
    namespace: str,
    git_http: HttpGitServer,
    case: str,
    files: dict[str, str],
    links: dict[str, str],
    path: str | None,
    words: str,
) -> None:
    source = Source(cluster, namespace, git_http)
    first = source.push({"healthy/cm.yaml": m.configmap("healthy", "v1"), "hostile/ok.yaml": m.configmap("ok")})
    create_sync(cluster, namespace, "healthy", path="healthy")
    create_sync(cluster, namespace, "hostile", path="hostile")
    wait_applied(cluster, namespace, first, "healthy")
    wait_applied(cluster, namespace, first, "hostile")
    if path:  # before the push: else the new commit may be applied at the old path first
        create_sync(cluster, namespace, "hostile", path=path)
    bad = source.push({"healthy/cm.yaml": m.configmap("healthy", "v2"), **files}, case, links=links)
    sync = wait_failed(cluster, namespace, bad, "hostile")
    ready = condition(sync)
    assert ready["reason"] == "BuildFailed", ready
    assert words in ready["message"], ready["message"]
    assert sync["status"]["lastAppliedRevision"].endswith(first)
    wait_applied(cluster, namespace, bad, "healthy")
    cm = cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/healthy")
    assert cm is not None
    assert cm["data"]["value"] == "v2"
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert peak_mb < RSS_BOUND_MB, f"peak RSS {peak_mb:.0f} MB"


SECRET_VALUE = "TOPSECRET-value-0xC0FFEE"


@pytest.mark.parametrize(
    ("case", "manifest"),
    [
        (
            "undecodable data",
            f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ndata:\n  password: '{SECRET_VALUE}!!'\n",
        ),
        (
            "an invalid key",
            f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData:\n  'bad key!': {SECRET_VALUE}\n",
        ),
        (
            "a value of the wrong type (the API server quotes it)",
            f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData:\n  k: [{SECRET_VALUE}]\n",
        ),
    ],
)
def test_a_failing_secret_never_shows_its_values(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, case: str, manifest: str
) -> None:
    source = Source(cluster, namespace, git_http)
    commit = source.push({"secret.yaml": manifest})
    create_sync(cluster, namespace)
    sync = wait_failed(cluster, namespace, commit)
    assert "secret.yaml (document 1)" in condition(sync)["message"]
    events = wait.until(
        lambda: [e for e in cluster.events(namespace) if e["type"] == "Warning"], what="a warning event"
    )
    everything = json.dumps(sync) + json.dumps(events) + operator.log_text()
    assert SECRET_VALUE not in everything


def test_a_password_in_the_url_is_refused_and_never_stored(
    cluster: Cluster, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    url = source.url.replace("http://", "http://git:LEAKY-pa55-word@")
    with pytest.raises(ApiError) as refused:
        create_gitrepo(cluster, namespace, {"url": url, "interval": "1h"})
    assert refused.value.status == 422
    assert "spec.url" in str(refused.value)
    assert cluster.get(gitrepo_path(namespace, "app")) is None
    create_gitrepo(cluster, namespace, {"url": source.url.replace("http://", "http://git@"), "interval": "1h"})


def test_a_link_local_host_is_refused_without_a_connection(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    create_gitrepo(cluster, namespace, {"url": "http://169.254.169.254/latest/meta-data.git", "interval": "1h"})
    ready = wait.until(lambda: condition(cluster.get(gitrepo_path(namespace, "app"))), what="Ready")
    assert ready["reason"] == "FetchFailed"
    assert "refused by the URL policy" in ready["message"]
    assert "link-local" in ready["message"]


def test_a_burst_of_bad_webhook_calls_triggers_nothing_and_slows_nothing(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    cluster.secret(namespace, "hook", {"token": "good-token"})
    first = source.push({"cm.yaml": m.configmap("cm", "v1")})
    cluster.api("PATCH", gitrepo_path(namespace, "app"), {"spec": {"webhookSecretRef": {"name": "hook"}}},
                content_type="application/merge-patch+json")  # fmt: skip
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, first)

    before = git_http.hits(source.name)
    body = b'{"ref": "refs/heads/main"}'
    codes = [
        post_webhook(
            operator.webhook_port, f"/hooks/{namespace}/app", body, {"X-Hub-Signature-256": "sha256=" + "0" * 64}
        )
        for _ in range(1000)
    ]
    assert set(codes) <= {401, 429}
    assert codes.count(429) > 900  # the limiter answered before any lookup
    assert git_http.hits(source.name) == before
    second = source.push({"cm.yaml": m.configmap("cm", "v2")}, "after the burst")  # requestedAt, not the webhook
    wait_applied(cluster, namespace, second, timeout=5)
    signature = hmac.new(b"good-token", body, hashlib.sha256).hexdigest()
    assert ids(get_sync(cluster, namespace)) == {f"{namespace}_cm__ConfigMap"}
    assert (
        post_webhook(operator.webhook_port, "/hooks/nope/nope", body, {"X-Hub-Signature-256": f"sha256={signature}"})
        == 404
    )


def test_a_redirect_to_another_host_is_refused_before_credentials_go_there(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    source.repo.commit({"cm.yaml": m.configmap("cm")})
    cluster.secret(namespace, "git", {"username": git_http.username, "password": git_http.password})
    moved = source.url.replace(f":{git_http.port}/", f":{git_http.port}/elsewhere/")
    create_gitrepo(cluster, namespace, {"url": moved, "interval": "1h", "secretRef": {"name": "git"}})
    ready = wait.until(lambda: condition(cluster.get(gitrepo_path(namespace, "app"))), what="Ready")
    assert (ready["status"], ready["reason"]) == ("False", "FetchFailed")
    assert "redirected to localhost" in ready["message"]
    # What reached localhost came without credentials: libgit2 asks for them only after that
    # host's 401, and then is refused. Sending them would take a second request there.
    followed = git_http.hits(source.name)  # requests at localhost, counted before what led there
    redirected = sum(1 for _, path in git_http.requests if path.startswith(f"/elsewhere/{source.name}.git/"))
    assert followed <= redirected
