"""GitRepository end to end: real git servers (smart HTTP with basic auth, SSH with host
keys), the real API server, the operator in this process."""

import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from support import wait
from support.cluster import AuditLog, Cluster, condition, gitrepo_path
from support.git import HttpGitServer, Repo, SshGitServer, make_ca
from support.operator import Operator, post_webhook
from support.sync import create_gitrepo, wait_others_finalized

PASSWORD_SECRET = "git-creds"
# Ref listings per poll with a password: libgit2 asks without it first (a 401), then with it.
LISTINGS_PER_POLL = 2


def make_repo(git_http: HttpGitServer) -> tuple[str, Repo, str]:
    name = f"r{secrets.token_hex(4)}"
    repo = git_http.repo(name)
    commit = repo.commit({"deploy/cm.yaml": "kind: ConfigMap\n"}, "first commit")
    return name, repo, commit


def http_spec(cluster: Cluster, namespace: str, git_http: HttpGitServer, name: str, **extra: Any) -> dict[str, Any]:
    cluster.secret(namespace, PASSWORD_SECRET, {"username": git_http.username, "password": git_http.password})
    return {"url": git_http.url(name), "interval": "1h", "secretRef": {"name": PASSWORD_SECRET}, **extra}


def artifact(cluster: Cluster, namespace: str, name: str = "app") -> dict[str, Any]:
    return dict(((cluster.get(gitrepo_path(namespace, name)) or {}).get("status") or {}).get("artifact") or {})


def wait_commit(cluster: Cluster, namespace: str, commit: str, timeout: float = 30) -> dict[str, Any]:
    return wait.until(
        lambda: (a := artifact(cluster, namespace)).get("commit") == commit and a,
        timeout=timeout,
        what=f"artifact {commit}",
    )


def wait_failed(cluster: Cluster, namespace: str, words: str) -> dict[str, Any]:
    def failed() -> dict[str, Any]:
        ready = condition(cluster.get(gitrepo_path(namespace, "app")))
        assert ready.get("status") == "False", ready
        assert words in ready["message"], ready
        return ready

    return wait.until(failed, timeout=30, what=f"Ready=False with {words!r}")


def request_reconcile(cluster: Cluster, namespace: str) -> str:
    stamp = secrets.token_hex(4)
    cluster.api(
        "PATCH",
        gitrepo_path(namespace, "app"),
        {"metadata": {"annotations": {"pullsync.dev/requestedAt": stamp}}},
        content_type="application/merge-patch+json",
    )
    return stamp


def test_a_new_repository_gets_an_artifact_at_the_head_commit(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    name, _, commit = make_repo(git_http)
    create_gitrepo(cluster, namespace, http_spec(cluster, namespace, git_http, name))
    got = wait_commit(cluster, namespace, commit)
    assert got["revision"] == f"main@sha1:{commit}"
    assert got["message"] == "first commit"
    obj = cluster.get(gitrepo_path(namespace, "app"))
    assert obj is not None
    assert condition(obj)["status"] == "True"
    assert condition(obj)["reason"] == "Succeeded"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    row = cluster.kubectl("get", "gitrepo", "app", "-n", namespace).stdout.splitlines()[1]
    assert f"main@{commit[:12]}" in row
    assert "True" in row


def test_a_push_is_picked_up_within_one_interval_and_other_branches_are_ignored(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    name, repo, first = make_repo(git_http)
    create_gitrepo(cluster, namespace, {**http_spec(cluster, namespace, git_http, name), "interval": "2s"})
    wait_commit(cluster, namespace, first)
    second = repo.commit({"deploy/cm.yaml": "kind: ConfigMap\nv: 2\n"}, "second")
    wait_commit(cluster, namespace, second, timeout=2 + 3)
    repo.commit({"other.txt": "x"}, "on a feature branch", branch="feature")
    listings = git_http.listings(name)
    # Two whole polls after the push to another branch (the third has begun, so they are
    # over, status written): the artifact must not move.
    wait.until(
        lambda: git_http.listings(name) >= listings + 3 * LISTINGS_PER_POLL,
        timeout=15,
        what="two more polls",
    )
    assert artifact(cluster, namespace)["commit"] == second


def test_polling_an_unchanged_remote_fetches_nothing_and_makes_no_api_request(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    name, _, commit = make_repo(git_http)
    create_gitrepo(cluster, namespace, {**http_spec(cluster, namespace, git_http, name), "interval": "1s"})
    wait_commit(cluster, namespace, commit)
    fetches = git_http.fetches(name)
    assert fetches >= 1
    wait_others_finalized(cluster, namespace)
    audit = AuditLog(cluster.kubeconfig.parent / "audit.log")
    audit.mark()

    before = git_http.listings(name)
    wait.until(lambda: git_http.listings(name) >= before + 3 * LISTINGS_PER_POLL, timeout=10, what="three more polls")
    assert git_http.fetches(name) == fetches
    requests = audit.complete(cluster)  # any namespace, and cluster-scoped ones
    assert [f"{e['verb']} {e['requestURI']}" for e in requests if not AuditLog.others_work(e)] == []
    cluster.secret(namespace, PASSWORD_SECRET, {"username": "git", "password": "rotated-elsewhere"})
    wait_failed(cluster, namespace, "authentication failed")  # no requestedAt: the next poll reads it


@pytest.mark.parametrize(
    ("case", "ref_of"),
    [
        ("a tag picks the tagged commit", lambda tags: {"tag": "v1.0.0"}),
        ("a semver range picks the newest matching tag", lambda tags: {"semver": ">=1.0.0 <2.0.0"}),
        ("an exact commit pins it", lambda tags: {"commit": tags["v1.0.0"]}),
        ("a commit wins over a branch, named after it", lambda tags: {"branch": "main", "commit": tags["v1.0.0"]}),
    ],
)
def test_tags_semver_and_commits_pick_the_right_revision(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, case: str, ref_of: Any
) -> None:
    name, repo, _ = make_repo(git_http)
    tags = {"v1.0.0": repo.tag("v1.0.0")}
    repo.commit({"a": "1"}, "1.2")
    tags["v1.2.0"] = repo.tag("v1.2.0", annotated=False)
    repo.commit({"a": "2"}, "2.0")
    tags["v2.0.0"] = repo.tag("v2.0.0")
    repo.commit({"a": "3"}, "head of main")
    ref = ref_of(tags)
    create_gitrepo(cluster, namespace, http_spec(cluster, namespace, git_http, name, ref=ref))
    expected = "v1.0.0" if "commit" in ref or "tag" in ref else "v1.2.0"
    got = wait_commit(cluster, namespace, tags[expected])
    name = ref.get("branch") if "commit" in ref else expected
    assert got["revision"] == (f"{name}@sha1:" if name else "sha1:") + tags[expected]


def test_a_semver_range_that_cannot_match_is_refused_before_any_poll(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    name, _, _ = make_repo(git_http)
    create_gitrepo(cluster, namespace, http_spec(cluster, namespace, git_http, name, ref={"semver": "not a range"}))
    ready = wait_failed(cluster, namespace, "spec.ref.semver: invalid version 'not' in semver range")
    assert ready["reason"] == "ValidationFailed"
    stalled = condition(cluster.get(gitrepo_path(namespace, "app")), "Stalled")
    assert stalled["status"] == "True"
    assert git_http.hits(name) == 0


def test_ssh_with_the_right_known_hosts_works(
    cluster: Cluster, operator: Operator, namespace: str, git_ssh: SshGitServer
) -> None:
    repo = Repo(git_ssh.root / "ssh-ok.git")
    commit = repo.commit({"x.yaml": "a: 1\n"}, "over ssh")
    cluster.secret(namespace, "ssh", {"identity": git_ssh.identity(), "known_hosts": git_ssh.known_hosts()})
    create_gitrepo(cluster, namespace, {"url": git_ssh.url("ssh-ok"), "interval": "1h", "secretRef": {"name": "ssh"}})
    wait_commit(cluster, namespace, commit)


@pytest.mark.parametrize(
    ("case", "known_hosts", "words"),
    [
        ("a wrong host key", "wrong", "does not match its known_hosts entry: the host's key changed"),
        ("the right key for the bare host, port 22 only", "bare", "known_hosts in the secretRef Secret has no entry"),
        ("no known_hosts", None, "SSH needs known_hosts"),
    ],
)
def test_ssh_refuses_an_unverified_host_key(
    cluster: Cluster,
    operator: Operator,
    namespace: str,
    git_ssh: SshGitServer,
    tmp_path: Any,
    case: str,
    known_hosts: str | None,
    words: str,
) -> None:
    Repo(git_ssh.root / "ssh-refused.git").commit({"x": "1"}) if not (
        git_ssh.root / "ssh-refused.git"
    ).exists() else None
    data = {"identity": git_ssh.identity()}
    if known_hosts == "wrong":
        other = SshGitServer(tmp_path)  # another host key, same address pattern
        data["known_hosts"] = other.known_hosts().replace(f"]:{other.port} ", f"]:{git_ssh.port} ")
        other.stop()
    if known_hosts == "bare":  # OpenSSH reads an entry without a port as one for port 22
        data["known_hosts"] = git_ssh.known_hosts().replace(f"[127.0.0.1]:{git_ssh.port}", "127.0.0.1")
    cluster.secret(namespace, "ssh", data)
    create_gitrepo(
        cluster, namespace, {"url": git_ssh.url("ssh-refused"), "interval": "1h", "secretRef": {"name": "ssh"}}
    )
    ready = wait_failed(cluster, namespace, words)
    assert ready["reason"] == "FetchFailed"
    if known_hosts is not None:
        assert f"[127.0.0.1]:{git_ssh.port}" in ready["message"]
    assert not artifact(cluster, namespace)


@pytest.mark.parametrize(
    ("case", "mutate", "words"),
    [
        (
            "a wrong password",
            lambda spec, c, ns: c.secret(ns, PASSWORD_SECRET, {"username": "git", "password": "WRONG-pa55word-xyz"}),
            "authentication failed",
        ),
        (
            "an unreachable host",
            lambda spec, c, ns: spec.update(url="http://127.0.0.1:9/nothing.git"),
            "failed to poll http://127.0.0.1:9/nothing.git",
        ),
        ("a missing branch", lambda spec, c, ns: spec.update(ref={"branch": "nope"}), "branch 'nope' not found"),
        (
            "a missing Secret",
            lambda spec, c, ns: spec.update(secretRef={"name": "absent"}),
            "secret {ns}/absent (spec.secretRef) not found",
        ),
    ],
)
def test_failures_say_what_went_wrong_without_leaking_credentials(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, case: str, mutate: Any, words: str
) -> None:
    name, _, _ = make_repo(git_http)
    spec = http_spec(cluster, namespace, git_http, name)
    mutate(spec, cluster, namespace)
    create_gitrepo(cluster, namespace, spec)
    ready = wait_failed(cluster, namespace, words.format(ns=namespace))
    assert ready["reason"] == "FetchFailed"
    obj = cluster.get(gitrepo_path(namespace, "app"))
    assert condition(obj, "FetchFailed")["status"] == "True"
    events = wait.until(lambda: [e for e in cluster.events(namespace) if e["reason"] == "FetchFailed"], what="event")
    everything = json.dumps(obj) + json.dumps(events) + operator.log_text()
    for secret in (git_http.password, "WRONG-pa55word-xyz"):
        assert secret not in everything


def test_a_fixed_password_is_tried_at_once_not_at_the_next_retry(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    name, _, commit = make_repo(git_http)
    spec = http_spec(cluster, namespace, git_http, name)  # interval 1h
    cluster.secret(namespace, PASSWORD_SECRET, {"username": git_http.username, "password": "WRONG-pa55word-xyz"})
    create_gitrepo(cluster, namespace, spec)
    wait_failed(cluster, namespace, "authentication failed")
    tried = git_http.listings(name)
    wait.until(lambda: git_http.listings(name) >= tried + LISTINGS_PER_POLL, timeout=15, what="a retry (4 s on)")
    cluster.secret(namespace, PASSWORD_SECRET, {"username": git_http.username, "password": git_http.password})
    wait_commit(cluster, namespace, commit, timeout=5)  # the next retry was 8 s away


def test_the_last_good_artifact_stays_when_the_remote_fails(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    name, _, commit = make_repo(git_http)
    create_gitrepo(cluster, namespace, http_spec(cluster, namespace, git_http, name))
    wait_commit(cluster, namespace, commit)
    cluster.secret(namespace, PASSWORD_SECRET, {"username": "git", "password": "no-longer-valid"})
    request_reconcile(cluster, namespace)
    wait_failed(cluster, namespace, "authentication failed")
    assert artifact(cluster, namespace)["commit"] == commit


def test_requested_at_triggers_a_poll_and_is_echoed(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    name, repo, first = make_repo(git_http)
    create_gitrepo(cluster, namespace, http_spec(cluster, namespace, git_http, name))
    wait_commit(cluster, namespace, first)
    second = repo.commit({"b": "2"}, "second")
    stamp = request_reconcile(cluster, namespace)
    wait_commit(cluster, namespace, second, timeout=10)
    status = (cluster.get(gitrepo_path(namespace, "app")) or {})["status"]
    assert status.get("lastHandledReconcileAt") == stamp  # written with the artifact of the requested poll


def test_suspend_stops_polling(cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer) -> None:
    name, _, commit = make_repo(git_http)
    create_gitrepo(cluster, namespace, http_spec(cluster, namespace, git_http, name, suspend=True))
    ready = wait.until(lambda: condition(cluster.get(gitrepo_path(namespace, "app"))), what="Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Suspended")
    stamp = request_reconcile(cluster, namespace)  # answered (`pullsync reconcile --wait` ends), not polled
    wait.until(
        lambda: (
            (cluster.get(gitrepo_path(namespace, "app")) or {}).get("status", {}).get("lastHandledReconcileAt") == stamp
        ),
        what="requestedAt echoed while suspended",
    )
    assert git_http.hits(name) == 0  # not even a ref listing
    create_gitrepo(cluster, namespace, http_spec(cluster, namespace, git_http, name, suspend=False))
    wait_commit(cluster, namespace, commit)


def test_deleting_a_gitrepository_does_not_hang(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    name, _, commit = make_repo(git_http)
    create_gitrepo(cluster, namespace, http_spec(cluster, namespace, git_http, name))
    wait_commit(cluster, namespace, commit)
    cache = operator.config.cache_dir
    assert any(cache.glob("*.git"))
    cluster.api("DELETE", gitrepo_path(namespace, "app"))
    wait.until(lambda: cluster.get(gitrepo_path(namespace, "app")) is None, timeout=15, what="deletion")


@pytest.mark.parametrize("forge", ["github", "gitlab"])
def test_a_signed_webhook_call_triggers_a_poll_at_once(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, forge: str
) -> None:
    name, repo, first = make_repo(git_http)
    cluster.secret(namespace, "hook", {"token": "hook-token-123"})
    create_gitrepo(cluster, namespace, http_spec(cluster, namespace, git_http, name, webhookSecretRef={"name": "hook"}))
    wait_commit(cluster, namespace, first)
    second = repo.commit({"c": "3"}, "pushed")
    body = json.dumps({"ref": "refs/heads/main", "after": second}).encode()
    if forge == "github":
        signature = hmac.new(b"hook-token-123", body, hashlib.sha256).hexdigest()
        headers = {"X-Hub-Signature-256": f"sha256={signature}", "X-GitHub-Event": "push"}
    else:
        headers = {"X-Gitlab-Token": "hook-token-123", "X-Gitlab-Event": "Push Hook"}
    assert post_webhook(operator.webhook_port, f"/hooks/{namespace}/app", body, headers) == 202
    wait_commit(cluster, namespace, second, timeout=10)  # the interval is 1h


def test_the_webhook_refuses_bad_signatures_unknown_repositories_and_large_bodies(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    name, repo, first = make_repo(git_http)
    cluster.secret(namespace, "hook", {"token": "hook-token-123"})
    create_gitrepo(cluster, namespace, http_spec(cluster, namespace, git_http, name, webhookSecretRef={"name": "hook"}))
    wait_commit(cluster, namespace, first)
    second = repo.commit({"c": "3"}, "pushed")  # what a poll woken by a bad call would find
    hits = git_http.hits(name)
    bad = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
    assert post_webhook(operator.webhook_port, f"/hooks/{namespace}/app", b"{}", bad) == 401
    assert post_webhook(operator.webhook_port, f"/hooks/{namespace}/app", b"{}", {}) == 401
    assert post_webhook(operator.webhook_port, f"/hooks/{namespace}/nope", b"{}", bad) == 404
    assert post_webhook(operator.webhook_port, f"/hooks/{namespace}/app", b"x" * (2 * 1024 * 1024), bad) == 413
    time.sleep(1)  # a poll woken by a call starts at once (the good call below takes about 0.1 s)
    assert git_http.hits(name) == hits
    assert artifact(cluster, namespace)["commit"] == first
    good = {"X-Hub-Signature-256": "sha256=" + hmac.new(b"hook-token-123", b"{}", hashlib.sha256).hexdigest()}
    assert post_webhook(operator.webhook_port, f"/hooks/{namespace}/app", b"{}", good) == 202
    wait_commit(cluster, namespace, second, timeout=10)  # the interval is 1h


def test_https_with_a_private_ca_needs_ca_crt(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    ca, cert, key = make_ca(tmp_path)
    server = HttpGitServer(tmp_path / "repos", tls=(cert, key))
    try:
        repo = server.repo("tls")
        commit = repo.commit({"a.yaml": "a: 1\n"}, "over https")
        creds = {"username": server.username, "password": server.password}
        cluster.secret(namespace, "git", creds)
        create_gitrepo(cluster, namespace, {"url": server.url("tls"), "interval": "1h", "secretRef": {"name": "git"}})
        ready = wait_failed(cluster, namespace, "TLS certificate of 127.0.0.1 is not trusted")
        assert ready["reason"] == "FetchFailed"
        cluster.secret(namespace, "git", {**creds, "ca.crt": ca.read_text()})
        request_reconcile(cluster, namespace)
        wait_commit(cluster, namespace, commit)
    finally:
        server.stop()


def test_a_bearer_token_authenticates_https_style(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    name, _, commit = make_repo(git_http)
    cluster.secret(namespace, "token", {"bearerToken": git_http.bearer_token})
    create_gitrepo(cluster, namespace, {"url": git_http.url(name), "interval": "1h", "secretRef": {"name": "token"}})
    wait_commit(cluster, namespace, commit)
    status = json.dumps((cluster.get(gitrepo_path(namespace, "app")) or {}).get("status"))
    assert git_http.bearer_token not in status + operator.log_text()
