"""Creating GitRepositories and Syncs, and reading their status, for Sync tests."""

import secrets
from typing import Any

from support import wait
from support.cluster import Cluster, condition, gitrepo_path, sync_path
from support.git import HttpGitServer, Repo


class Source:
    """A repository on the HTTP git server and the GitRepository `app` that follows it."""

    def __init__(self, cluster: Cluster, namespace: str, git_http: HttpGitServer, interval: str = "1h") -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = f"s{secrets.token_hex(4)}"
        self.repo: Repo = git_http.repo(self.name)
        self.url = git_http.url(self.name)
        cluster.secret(namespace, "git", {"username": git_http.username, "password": git_http.password})
        self.interval = interval

    def push(self, files: dict[str, str | None], message: str = "change", links: dict[str, str] | None = None) -> str:
        """Commit and push, then make the GitRepository poll at once; return the commit."""
        commit = self.repo.commit(files, message, links=links)
        if self.cluster.get(gitrepo_path(self.namespace, "app")) is None:
            create_gitrepo(
                self.cluster, self.namespace, {"url": self.url, "interval": self.interval, "secretRef": {"name": "git"}}
            )
        else:
            request(self.cluster, gitrepo_path(self.namespace, "app"))
        return commit


def create_gitrepo(cluster: Cluster, namespace: str, spec: dict[str, Any], name: str = "app") -> None:
    """Create or update (server-side apply) the GitRepository `name`."""
    cluster.apply(
        {
            "apiVersion": "pullsync.dev/v1alpha1",
            "kind": "GitRepository",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        },
        gitrepo_path(namespace, name),
    )


def request(cluster: Cluster, path: str) -> str:
    """Set pullsync.dev/requestedAt to a new value."""
    stamp = secrets.token_hex(4)
    cluster.api(
        "PATCH",
        path,
        {"metadata": {"annotations": {"pullsync.dev/requestedAt": stamp}}},
        content_type="application/merge-patch+json",
    )
    return stamp


def create_sync(cluster: Cluster, namespace: str, name: str = "app", **spec: Any) -> None:
    body = {"sourceRef": {"kind": "GitRepository", "name": "app"}, "prune": True, "interval": "1h", **spec}
    cluster.apply(
        {
            "apiVersion": "pullsync.dev/v1alpha1",
            "kind": "Sync",
            "metadata": {"name": name, "namespace": namespace},
            "spec": body,
        },
        sync_path(namespace, name),
    )


def get_sync(cluster: Cluster, namespace: str, name: str = "app") -> dict[str, Any]:
    return cluster.get(sync_path(namespace, name)) or {}


def wait_applied(
    cluster: Cluster, namespace: str, commit: str, name: str = "app", timeout: float = 30
) -> dict[str, Any]:
    def applied() -> dict[str, Any]:
        sync = get_sync(cluster, namespace, name)
        ready = condition(sync)
        assert ready.get("status") == "True", ready or sync.get("status")
        assert sync["status"].get("lastAppliedRevision", "").endswith(commit), sync["status"]
        return sync

    return wait.until(applied, timeout=timeout, what=f"revision {commit} applied")


def wait_failed(
    cluster: Cluster, namespace: str, commit: str, name: str = "app", timeout: float = 30
) -> dict[str, Any]:
    def failed() -> dict[str, Any]:
        sync = get_sync(cluster, namespace, name)
        ready = condition(sync)
        assert ready.get("status") == "False", ready
        assert sync["status"].get("lastAttemptedRevision", "").endswith(commit), sync["status"]
        return sync

    return wait.until(failed, timeout=timeout, what=f"revision {commit} to fail")


def ids(sync: dict[str, Any]) -> set[str]:
    return {e["id"] for e in sync["status"]["inventory"]["entries"]}


def grant_configmaps(cluster: Cluster, namespace: str, account: str = "deployer") -> None:
    """A ServiceAccount that may manage ConfigMaps in `namespace` and nothing else."""
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=f"""apiVersion: v1
kind: ServiceAccount
metadata: {{name: {account}, namespace: {namespace}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: configmaps, namespace: {namespace}}}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: deployer-configmaps, namespace: {namespace}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmaps}}
subjects: [{{kind: ServiceAccount, name: {account}, namespace: {namespace}}}]
""",
    )


def wait_others_finalized(cluster: Cluster, namespace: str) -> None:
    """The session operator serves every `test-*` namespace, and earlier tests' namespaces
    are deleted without waiting: finalizing their Syncs (pruning, with the same identity)
    goes on for a while. Wait until no pullsync object but this test's is being deleted."""

    def settled() -> bool:
        namespaces = (cluster.get("/api/v1/namespaces") or {}).get("items", [])
        terminating = {n["metadata"]["name"] for n in namespaces if n["status"].get("phase") == "Terminating"}
        busy = [
            f"{item['kind']} {ns}/{item['metadata']['name']}"
            for plural in ("syncs", "gitrepositories")
            for item in (cluster.get(f"/apis/pullsync.dev/v1alpha1/{plural}") or {}).get("items", [])
            if (ns := item["metadata"]["namespace"]) != namespace
            and ns.startswith("test-")
            and (ns in terminating or item["metadata"].get("deletionTimestamp"))
        ]
        assert not busy, f"the operator still has to finalize {busy}"
        return True

    wait.until(settled, timeout=60, what="earlier tests' Syncs finalized")
