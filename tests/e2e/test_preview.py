"""Previews: each pull request of a Sync's repository planned against the live cluster
(dry-runs as the Sync's identity, never a write to a managed object) and published to a
local fake of GitHub's and Gitea's REST APIs: a commit status and one comment, edited in
place; closed pull requests leave status; a provider the URL policy forbids is refused."""

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pullsync import cli
from pullsync.preview import controller
from support import manifests as m
from support import wait
from support.cluster import AuditLog, Cluster, condition
from support.git import HttpGitServer, git
from support.operator import Operator, OperatorProcess
from support.provider import FakeProvider
from support.sync import Source, create_sync, grant_configmaps, request, wait_applied

REPO = "org/deploy-config"


def secret(name: str, password: str) -> str:
    encoded = base64.b64encode(password.encode()).decode()
    return f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ndata:\n  password: {encoded}\n"


def preview_path(namespace: str, name: str = "prs") -> str:
    return f"/apis/pullsync.dev/v1alpha1/namespaces/{namespace}/previews/{name}"


def create_preview(
    cluster: Cluster, namespace: str, provider: dict[str, Any] | None, name: str = "prs", **spec: Any
) -> None:
    body: dict[str, Any] = {"syncRef": {"name": "app"}, "refs": ["refs/pull/*/head"], "interval": "1h", **spec}
    if provider is not None:
        body["provider"] = provider
    cluster.apply(
        {"apiVersion": "pullsync.dev/v1alpha1", "kind": "Preview", "metadata": {"name": name, "namespace": namespace},
         "spec": body},
        preview_path(namespace, name),
    )  # fmt: skip


def open_pull_request(source: Source, number: int, files: dict[str, str | None]) -> str:
    """Commit `files` on a branch and publish it as refs/pull/N/head, as GitHub does."""
    commit = source.repo.commit(files, f"PR {number}", branch=f"pr-{number}")
    git("-C", str(source.repo.work), "push", "-q", "-f", "origin", f"HEAD:refs/pull/{number}/head")
    git("-C", str(source.repo.work), "checkout", "-q", "main")
    return commit


def close_pull_request(source: Source, number: int) -> None:
    git("-C", str(source.repo.work), "push", "-q", "origin", f":refs/pull/{number}/head")


def planned(cluster: Cluster, namespace: str, ref: str, commit: str) -> dict[str, Any]:
    """The Preview's status entry of `ref` once it has planned `commit` (polled)."""
    return wait.until(
        lambda: planned_now(cluster, namespace, ref, commit), timeout=30, what=f"{ref} planned at {commit[:12]}"
    )


def planned_now(cluster: Cluster, namespace: str, ref: str, commit: str) -> dict[str, Any]:
    """The Preview's status entry of `ref`; AssertionError unless it planned `commit`."""
    status = (cluster.get(preview_path(namespace)) or {}).get("status") or {}
    found = [e for e in status.get("previews") or [] if e["ref"] == ref]
    assert found, status
    assert found[0]["revision"] == f"sha1:{commit}", status
    return found[0]


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(secrets.token_hex(8)) as fake:
        yield fake


@pytest.fixture
def deployed(cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer) -> Source:
    """A Sync `app` Ready with two ConfigMaps, a Secret and a Deployment."""
    source = Source(cluster, namespace, git_http)
    commit = source.push(
        {
            "deploy/settings.yaml": m.configmap("settings", "a"),
            "deploy/old.yaml": m.configmap("old", "x"),
            "deploy/credentials.yaml": secret("credentials", "hunter2-old"),
            "deploy/web.yaml": m.deployment("web"),
        }
    )
    create_sync(cluster, namespace, path="./deploy")
    wait_applied(cluster, namespace, commit)
    return source


def test_a_pull_request_is_planned_and_published_to_github_and_no_managed_object_is_written(
    cluster: Cluster, namespace: str, deployed: Source, provider: FakeProvider
) -> None:
    cluster.secret(namespace, "gh", {"token": provider.token})
    audit = AuditLog(cluster.kubeconfig.parent / "audit.log")
    audit.mark()
    first = open_pull_request(
        deployed,
        7,
        {
            "deploy/settings.yaml": m.configmap("settings", "b"),
            "deploy/new.yaml": m.configmap("new", "n"),
            "deploy/old.yaml": None,
            "deploy/credentials.yaml": secret("credentials", "s3cret-new"),
        },
    )
    github = {"type": "github", "address": provider.url, "repository": REPO, "secretRef": {"name": "gh"}}
    create_preview(cluster, namespace, github)

    entry = planned(cluster, namespace, "refs/pull/7/head", first)
    assert entry["result"] == "Planned"
    assert (entry["created"], entry["changed"], entry["pruned"]) == (1, 2, 1)
    assert entry["summary"] == "+1 ~2 -1"
    context = f"pullsync/{namespace}/app"
    wait.until(lambda: provider.comments(REPO, 7), what="the comment")
    [status] = provider.statuses(REPO, first)
    assert status == {"state": "success", "description": "+1 ~2 -1", "context": context}
    [comment] = provider.comments(REPO, 7)
    body = comment.body
    assert f"<!-- pullsync:{context} preview=prs -->" in body
    for shown in (f"ConfigMap/{namespace}/new", f"ConfigMap/{namespace}/settings", f"ConfigMap/{namespace}/old"):
        assert shown in body
    for hidden in ("hunter2-old", "s3cret-new"):
        assert hidden not in body
        assert base64.b64encode(hidden.encode()).decode() not in body
    assert all(c.headers.get("authorization") == f"Bearer {provider.token}" for c in provider.calls)

    # A later push to the pull request edits the one comment in place.
    second = open_pull_request(deployed, 7, {"deploy/new.yaml": m.configmap("new", "n2")})
    request(cluster, preview_path(namespace))
    planned(cluster, namespace, "refs/pull/7/head", second)
    wait.until(lambda: provider.statuses(REPO, second), what="the second status")
    wait.until(lambda: "n2" in provider.comments(REPO, 7)[0].body, what="the comment edited")
    assert len(provider.comments(REPO, 7)) == 1
    assert [c.method for c in provider.calls if "/comments" in c.path and c.method != "GET"] == ["POST", "PATCH"]

    # Nothing was written to the Sync's objects: dry-runs and reads only.
    requests = [e for e in audit.complete(cluster) if f"/namespaces/{namespace}/" in e["requestURI"]]
    managed = [w for w in AuditLog.writes(requests) if "/pullsync.dev/" not in w and "/events" not in w]
    assert managed == []
    assert any("dryRun=All" in e["requestURI"] for e in requests)
    assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/old") is not None
    assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/new") is None

    # A closed pull request leaves status.
    close_pull_request(deployed, 7)
    request(cluster, preview_path(namespace))
    wait.until(
        lambda: not (cluster.get(preview_path(namespace)) or {}).get("status", {}).get("previews"),
        what="the closed pull request dropped",
    )


def test_a_broken_pull_request_fails_its_gitea_status_with_the_file_and_document(
    cluster: Cluster, namespace: str, deployed: Source, provider: FakeProvider
) -> None:
    cluster.secret(namespace, "gitea", {"token": provider.token})
    broken = m.configmap("settings", "c") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: [oops\n"
    commit = open_pull_request(deployed, 3, {"deploy/settings.yaml": broken})
    gitea = {"type": "gitea", "address": provider.url, "repository": REPO, "secretRef": {"name": "gitea"}}
    create_preview(cluster, namespace, gitea)

    entry = planned(cluster, namespace, "refs/pull/3/head", commit)
    assert entry["result"] == "Failed"
    assert "deploy/settings.yaml" in entry["message"], entry
    assert "document 2" in entry["message"], entry
    wait.until(lambda: provider.statuses(REPO, commit), what="the status")
    [status] = provider.statuses(REPO, commit)
    assert status["state"] == "failure"
    assert status["context"] == f"pullsync/{namespace}/app"
    assert all(c.path.startswith("/api/v1/") for c in provider.calls)
    assert all(c.headers.get("authorization") == f"token {provider.token}" for c in provider.calls)
    [comment] = wait.until(lambda: provider.comments(REPO, 3), what="the comment")
    assert "deploy/settings.yaml" in comment.body


def test_a_failed_comment_is_retried_alone_and_a_forbidden_provider_address_is_refused(
    cluster: Cluster, namespace: str, deployed: Source, provider: FakeProvider
) -> None:
    cluster.secret(namespace, "gh", {"token": provider.token})
    commit = open_pull_request(deployed, 5, {"deploy/settings.yaml": m.configmap("settings", "d")})
    provider.fail_next(500, method="POST", path=f"/repos/{REPO}/issues/5/comments")  # the status goes through
    github = {"type": "github", "address": provider.url, "repository": REPO, "secretRef": {"name": "gh"}}
    create_preview(cluster, namespace, github, interval="2s")

    def publish_failed() -> dict[str, Any]:
        ready = condition(cluster.get(preview_path(namespace)) or {})
        assert ready.get("reason") == "PublishFailed", ready
        return ready

    assert "500" in wait.until(publish_failed, what="the publish failure")["message"]
    wait.until(lambda: planned(cluster, namespace, "refs/pull/5/head", commit)["published"], what="published")
    assert condition(cluster.get(preview_path(namespace)) or {})["status"] == "True"
    assert len(provider.statuses(REPO, commit)) == 1  # the retry sent the comment only
    assert len(provider.comments(REPO, 5)) == 1

    # Planned again (asked for) to the same plan: nothing is sent again.
    calls = len(provider.calls)
    stamp = request(cluster, preview_path(namespace))
    wait.until(
        lambda: (cluster.get(preview_path(namespace)) or {})["status"].get("lastHandledReconcileAt") == stamp,
        what="the requested turn",
    )
    assert [c for c in provider.calls[calls:] if c.method != "GET"] == []

    # The cloud metadata address is never contacted, whatever the operator allows.
    metadata = {"type": "generic", "address": "http://169.254.169.254/plan"}
    calls = len(provider.calls)
    create_preview(cluster, namespace, metadata, name="metadata")

    def refused() -> str:
        ready = condition(cluster.get(preview_path(namespace, "metadata")) or {})
        assert ready.get("reason") == "PublishFailed", ready
        assert "link-local" in ready.get("message", ""), ready
        return str(ready["message"])

    wait.until(refused, what="the address refused")
    assert len(provider.calls) == calls


def test_a_pull_request_is_planned_with_the_rights_of_the_syncs_service_account(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    grant_configmaps(cluster, namespace)
    source = Source(cluster, namespace, git_http)
    commit = source.push({"deploy/settings.yaml": m.configmap("settings", "a")})
    create_sync(cluster, namespace, path="./deploy", serviceAccountName="deployer")
    wait_applied(cluster, namespace, commit)
    allowed = open_pull_request(source, 1, {"deploy/settings.yaml": m.configmap("settings", "b")})
    denied = open_pull_request(source, 2, {"deploy/credentials.yaml": secret("credentials", "zq9-never-shown")})
    create_preview(cluster, namespace, None)

    assert planned(cluster, namespace, "refs/pull/1/head", allowed)["summary"] == "+0 ~1 -0"
    entry = planned(cluster, namespace, "refs/pull/2/head", denied)
    assert entry["result"] == "Failed"
    assert "deploy/credentials.yaml" in entry["message"], entry
    assert "denied" in entry["message"], entry
    assert "zq9-never-shown" not in str(entry)


def test_pullsync_diff_of_a_checkout_is_the_plan_the_preview_publishes(
    cluster: Cluster,
    namespace: str,
    deployed: Source,
    provider: FakeProvider,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    open_pull_request(
        deployed,
        9,
        {
            "deploy/settings.yaml": m.configmap("settings", "b"),
            "deploy/new.yaml": m.configmap("new", "n"),
            "deploy/old.yaml": None,
            "deploy/credentials.yaml": secret("credentials", "s3cret-new"),
            "deploy/web.yaml": m.deployment("web", image="nginx:1.28"),
        },
    )
    cluster.secret(namespace, "hook", {"token": provider.token})
    create_preview(
        cluster, namespace, {"type": "generic", "address": f"{provider.url}/plan", "secretRef": {"name": "hook"}}
    )
    [call] = wait.until(lambda: provider.calls_to("POST", "/plan"), what="the plan posted")
    published = call.json["plan"]

    git("-C", str(deployed.repo.work), "checkout", "-q", "pr-9")
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    code = cli.main(["diff", str(deployed.repo.work / "deploy"), "--sync", "app", "-n", namespace, "-o", "json"])
    local = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (local["created"], local["changed"], local["pruned"]) == (1, 3, 1)
    assert {k: v for k, v in local.items() if k != "revision"} == {
        k: v for k, v in published.items() if k != "revision"
    }
    assert "s3cret-new" not in json.dumps(local)
    assert cli.main(["get", "previews", "-n", namespace]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:4] == ["prs", "app", "1", "True"]

    # In a terminal's words, and 0 once the cluster is what the directory says.
    assert cli.main(["diff", str(deployed.repo.work / "deploy"), "--sync", "app", "-n", namespace]) == 1
    text = capsys.readouterr().out
    assert f"+ ConfigMap/{namespace}/new" in text
    assert f"- ConfigMap/{namespace}/old" in text
    assert "replace /spec/template/spec/containers/0/image" in text
    git("-C", str(deployed.repo.work), "checkout", "-q", "main")
    assert cli.main(["diff", str(deployed.repo.work / "deploy"), "--sync", "app", "-n", namespace]) == 0

    # A field of the wrong type is the directory's fault, not the API server's: a failed plan.
    web = deployed.repo.work / "deploy" / "web.yaml"
    web.write_text(web.read_text().replace("replicas: 2", "replicas: three"))
    capsys.readouterr()
    assert cli.main(["diff", str(deployed.repo.work / "deploy"), "--sync", "app", "-n", namespace, "-o", "json"]) == 2
    [error] = json.loads(capsys.readouterr().out)["errors"]
    assert error.startswith(f"deploy/web.yaml (document 1): Deployment/{namespace}/web: .spec.replicas: expected num")
    assert error.endswith("as kubectl does; quote strings)")


def test_a_restarted_operator_sends_nothing_again_and_keeps_the_plans_in_status(
    cluster: Cluster, operator_kubeconfig: Path, git_http: HttpGitServer, provider: FakeProvider
) -> None:
    with cluster.scratch_namespace("preview-restart") as namespace:  # not test-*: its own operators only
        args = ("--namespace", namespace, "--allow-insecure-http", "--allow-local-urls")
        first = OperatorProcess(operator_kubeconfig, *args)
        try:
            first.wait_ready()
            source = Source(cluster, namespace, git_http)
            commit = source.push({"deploy/settings.yaml": m.configmap("settings", "a")})
            create_sync(cluster, namespace, path="./deploy", prune=False)  # no finalizer left behind
            wait_applied(cluster, namespace, commit)
            cluster.secret(namespace, "gh", {"token": provider.token})
            pull = open_pull_request(source, 4, {"deploy/settings.yaml": m.configmap("settings", "b")})
            github = {"type": "github", "address": provider.url, "repository": REPO, "secretRef": {"name": "gh"}}
            create_preview(cluster, namespace, github)
            wait.until(lambda: planned(cluster, namespace, "refs/pull/4/head", pull)["published"], what="published")
        finally:
            first.stop()
        sent = len(provider.calls)
        second = OperatorProcess(operator_kubeconfig, *args)
        try:
            second.wait_ready()
            stamp = request(cluster, preview_path(namespace))
            wait.until(
                lambda: (cluster.get(preview_path(namespace)) or {})["status"].get("lastHandledReconcileAt") == stamp,
                what="a turn of the new process",
            )
            assert planned(cluster, namespace, "refs/pull/4/head", pull)["published"]
            assert provider.calls[sent:] == []
            assert len(provider.statuses(REPO, pull)) == 1
            assert len(provider.comments(REPO, 4)) == 1
        finally:
            second.stop()


def test_a_preview_created_before_its_sync_plans_as_soon_as_the_sync_is_seen(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    source.repo.commit({"deploy/settings.yaml": m.configmap("settings", "a")}, "main")
    commit = open_pull_request(source, 9, {"deploy/settings.yaml": m.configmap("settings", "b")})
    create_preview(cluster, namespace, None)

    def waiting(missing: str) -> dict[str, Any]:
        ready = condition(cluster.get(preview_path(namespace)))
        assert ready.get("reason") == "SourceNotReady", ready
        assert f"{missing} {namespace}/app not found" in ready["message"], ready
        return ready

    wait.until(lambda: waiting("Sync"), what="the Preview waiting for its Sync")
    create_sync(cluster, namespace, path="./deploy")  # the GitRepository is still missing
    # Each is seen well before the Preview's retry (controller.RETRY) would come round.
    wait.until(lambda: waiting("GitRepository"), timeout=controller.RETRY / 2, what="waiting for the GitRepository")
    source.push({})  # creates the GitRepository
    deadline = controller.RETRY / 2  # a Preview that waited for its retry would miss it
    entry = wait.until(lambda: planned_now(cluster, namespace, "refs/pull/9/head", commit), timeout=deadline,
                       what="the pull request planned")  # fmt: skip
    assert entry["result"] == "Planned", entry
