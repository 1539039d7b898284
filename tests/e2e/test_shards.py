"""Shards: two `pullsync run --shard` processes and the unsharded one against one cluster,
each with its own Lease; each GitRepository and Sync is reconciled by exactly one of
them, and relabelling a Sync (with its GitRepository) hands it over: the new shard takes
it at once and writes nothing that was already applied."""

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import manifests as m
from support import wait
from support.cluster import AuditLog, Cluster, condition, gitrepo_path, sync_path
from support.git import HttpGitServer
from support.operator import OperatorProcess, post_webhook
from support.sync import request, wait_applied

SHARDS = (None, "a", "b")
LEASES = "pullsync-e2e"  # the chart's release namespace: its Role covers Leases there


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A namespace of the shards' own: not `test-*`, which the session's operator serves."""
    with cluster.scratch_namespace("shards") as name:
        yield name


@pytest.fixture
def operators(
    cluster: Cluster, operator_kubeconfig: Path, namespace: str
) -> Iterator[dict[str | None, OperatorProcess]]:
    """The three operators; at the end, the Syncs are deleted while their shards still run
    (their finalizers are theirs to remove: no other operator handles sharded Syncs)."""
    common = ["--namespace", namespace, "--allow-insecure-http", "--allow-local-urls"]
    common += ["--leader-elect", "--leader-election-namespace", LEASES, "--lease-duration", "6"]
    started = {}
    for shard in SHARDS:
        lease = f"shards-{secrets.token_hex(3)}" + (f"-{shard}" if shard else "")
        args = [*common, "--leader-election-id", lease, *(["--shard", shard] if shard else [])]
        started[shard] = OperatorProcess(operator_kubeconfig, *args)
    yield started
    syncs = f"/apis/pullsync.dev/v1alpha1/namespaces/{namespace}/syncs"
    for sync in (cluster.get(syncs) or {}).get("items", []):
        cluster.api("DELETE", f"{syncs}/{sync['metadata']['name']}")
    wait.until(lambda: not (cluster.get(syncs) or {}).get("items"), timeout=30, what="the Syncs finalized")
    for process in started.values():
        process.stop()


def labelled(shard: str | None) -> dict[str, Any]:
    return {"labels": {"pullsync.dev/shard": shard}} if shard else {}


def create(cluster: Cluster, namespace: str, name: str, shard: str | None, url: str) -> None:
    """A GitRepository and a Sync named `name`, of `shard`, applying the directory `name`."""
    meta = {"name": name, "namespace": namespace, **labelled(shard)}
    source = {"url": url, "interval": "1h", "secretRef": {"name": "git"}}
    cluster.apply(
        {"apiVersion": "pullsync.dev/v1alpha1", "kind": "GitRepository", "metadata": meta, "spec": source},
        gitrepo_path(namespace, name),
    )
    spec = {"sourceRef": {"kind": "GitRepository", "name": name}, "path": f"./{name}", "prune": True, "interval": "1h"}
    cluster.apply(
        {"apiVersion": "pullsync.dev/v1alpha1", "kind": "Sync", "metadata": meta, "spec": spec},
        sync_path(namespace, name),
    )


def create_one(cluster: Cluster, namespace: str, git_http: HttpGitServer, name: str, shard: str | None) -> None:
    """A repository of one ConfigMap under `name/`, and its GitRepository and Sync of `shard`."""
    repo_name = f"shards-{secrets.token_hex(3)}"
    git_http.repo(repo_name).commit({f"{name}/cm.yaml": m.configmap(name)})
    cluster.secret(namespace, "git", {"username": git_http.username, "password": git_http.password})
    create(cluster, namespace, name, shard, git_http.url(repo_name))


def applied_by(operators: dict[str | None, OperatorProcess], namespace: str, name: str, commit: str) -> set[str | None]:
    line = f"Sync {namespace}/{name}: Applied revision: main@sha1:{commit}"
    return {shard for shard, process in operators.items() if line in process.output()}


def test_each_object_has_exactly_one_shard_and_relabelling_hands_it_over(
    cluster: Cluster, operators: dict[str | None, OperatorProcess], namespace: str, git_http: HttpGitServer
) -> None:
    for process in operators.values():
        process.wait_ready()  # each holds its own Lease
    repo_name = f"shards-{secrets.token_hex(3)}"
    repo = git_http.repo(repo_name)
    names = {"plain": None, "alpha": "a", "beta": "b"}
    first = repo.commit({f"{name}/cm.yaml": m.configmap(f"{name}-cm") for name in names})
    cluster.secret(namespace, "git", {"username": git_http.username, "password": git_http.password})
    for name, shard in names.items():
        create(cluster, namespace, name, shard, git_http.url(repo_name))
    for name, shard in names.items():
        wait_applied(cluster, namespace, first, name=name)
        assert wait.until(lambda n=name: applied_by(operators, namespace, n, first)) == {shard}

    audit = AuditLog(cluster.kubeconfig.parent / "audit.log")
    audit.mark()
    for path in (gitrepo_path(namespace, "alpha"), sync_path(namespace, "alpha")):  # to shard b
        cluster.api("PATCH", path, {"metadata": labelled("b")}, content_type="application/merge-patch+json")
    second = repo.commit({"alpha/cm.yaml": m.configmap("alpha-cm", "v2")})
    request(cluster, gitrepo_path(namespace, "alpha"))  # poll now
    wait_applied(cluster, namespace, second, name="alpha", timeout=30)
    assert applied_by(operators, namespace, "alpha", second) == {"b"}
    writes = [w for w in AuditLog.writes(audit.complete(cluster)) if "/configmaps/alpha-cm" in w]
    assert len(writes) == 1, writes  # the new revision's change, once: nothing written twice on the way


def test_a_sync_whose_source_is_in_another_shard_says_so(
    cluster: Cluster, operators: dict[str | None, OperatorProcess], namespace: str, git_http: HttpGitServer
) -> None:
    create_one(cluster, namespace, git_http, "mixed", "a")
    patch = {"metadata": labelled("b")}
    cluster.api("PATCH", gitrepo_path(namespace, "mixed"), patch, content_type="application/merge-patch+json")

    def said() -> str:
        message = str(condition(cluster.get(sync_path(namespace, "mixed")) or {}).get("message", ""))
        assert "is in shard b, this Sync in shard a" in message, message
        return message

    assert "pullsync.dev/shard" in wait.until(said, timeout=30, what="the shard mismatch said")


def test_a_webhook_is_accepted_only_by_the_shard_of_its_repository(
    cluster: Cluster, operators: dict[str | None, OperatorProcess], namespace: str, git_http: HttpGitServer
) -> None:
    create_one(cluster, namespace, git_http, "hooked", "a")
    cluster.secret(namespace, "hook", {"token": "hook-token"})
    patch = {"spec": {"webhookSecretRef": {"name": "hook"}}}
    cluster.api("PATCH", gitrepo_path(namespace, "hooked"), patch, content_type="application/merge-patch+json")
    body = b'{"ref": "refs/heads/main"}'
    headers = {"X-Signature": "sha256=" + hmac.new(b"hook-token", body, hashlib.sha256).hexdigest()}
    for process in operators.values():
        process.wait_ready()  # leaders serve webhooks

    assert post_webhook(operators[None].webhook_port, f"/hooks/{namespace}/hooked", body, headers) == 404
    assert post_webhook(operators["b"].webhook_port, f"/hooks/{namespace}/hooked", body, headers) == 404
    assert post_webhook(operators["a"].webhook_port, f"/hooks/{namespace}/hooked", body, headers) == 202
    assert "is in shard a" in operators[None].output()
