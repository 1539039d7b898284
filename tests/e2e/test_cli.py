"""`pullsync get|tree|reconcile|suspend|resume` against the real control plane, with the
session operator: what a person sees, the exit codes, and what lands in the cluster.
The command line runs in this process (`pullsync.cli.main`) except where the console
script and $KUBECONFIG are the point."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pullsync import cli
from pullsync.render import kubeyaml
from support import manifests as m
from support import wait
from support.cluster import Cluster, condition, gitrepo_path, token_kubeconfig
from support.git import HttpGitServer
from support.operator import Operator
from support.sync import Source, create_sync, get_sync, wait_applied

BROKEN = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec: {replicas: oops}\n"


class Cli:
    """`pullsync ...` in this process, with the cluster's kubeconfig."""

    def __init__(self, cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
        self.kubeconfig = str(cluster.kubeconfig)
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = cli.main([*args] if "--kubeconfig" in args else [*args, "--kubeconfig", self.kubeconfig])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def pullsync(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(cluster, capsys)


def applied_source(cluster: Cluster, namespace: str, git_http: HttpGitServer) -> tuple[Source, str]:
    """A GitRepository and a Sync `app` with a ConfigMap and a Service, applied."""
    source = Source(cluster, namespace, git_http)
    commit = source.push({"config.yaml": m.configmap("config"), "svc.yaml": m.service("web")})
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, commit)
    return source, commit


def test_get_lists_the_sync_ready_with_its_revision_and_tree_shows_its_objects(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, pullsync: Cli
) -> None:
    source, commit = applied_source(cluster, namespace, git_http)
    code, out, _ = pullsync("get", "-n", namespace)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NAME", "READY", "REVISION", "OBJECTS", "HEALTH", "AGE", "STATUS"]
    assert row.split()[:5] == ["app", "True", f"main@{commit[:12]}", "2", "Current"]
    assert row.endswith(f"Applied revision: main@sha1:{commit}")  # not a terminal: never cut
    assert "\033[" not in out  # not a terminal: no colour

    code, out, _ = pullsync("get", "syncs", "-A")
    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [namespace, "app", "True"] in [line.split()[:3] for line in out.splitlines()]

    code, out, _ = pullsync("get", "gitrepo", "-n", namespace)
    assert code == 0
    assert out.splitlines()[1].split()[:4] == ["app", source.url, "True", f"main@{commit[:12]}"]

    code, out, _ = pullsync("get", "sync", "app", "-n", namespace, "-o", "json")
    assert code == 0
    obj = json.loads(out)
    assert obj["status"]["lastAppliedRevision"] == f"main@sha1:{commit}"
    assert "managedFields" not in obj["metadata"]
    code, out, _ = pullsync("get", "app", "-n", namespace, "-o", "json")  # a name alone is a Sync's
    assert (code, json.loads(out)["kind"], json.loads(out)["metadata"]["name"]) == (0, "Sync", "app")
    code, _, err = pullsync("get", "widgets", "app", "-n", namespace)
    assert (code, err) == (2, "pullsync get: 'widgets': use syncs, gitrepos or previews\n")
    code, out, _ = pullsync("get", "syncs", "-n", namespace, "-o", "yaml")
    [(_, listing)] = list(kubeyaml.documents(out))
    assert [i["metadata"]["name"] for i in listing["items"]] == ["app"]

    code, out, err = pullsync("get", "previews", "-n", namespace)
    assert (code, out, err) == (0, "", f"No resources found in {namespace} namespace.\n")

    code, out, _ = pullsync("tree", "sync", "app", "-n", namespace)
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [
        [f"Sync/{namespace}/app", "Current", f"main@sha1:{commit}"],
        ["├──", f"ConfigMap/{namespace}/config", "Current"],
        ["└──", f"Service/{namespace}/web", "Current"],
    ]
    code, out, _ = pullsync("tree", "sync", "app", "-n", namespace, "-o", "json")
    assert [c["object"] for c in json.loads(out)["children"]] == [
        f"ConfigMap/{namespace}/config",
        f"Service/{namespace}/web",
    ]


def test_reconcile_with_source_and_wait_applies_the_new_commit(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, pullsync: Cli
) -> None:
    source, _ = applied_source(cluster, namespace, git_http)
    new = source.repo.commit({"more.yaml": m.configmap("more")})  # the GitRepository polls hourly: not seen yet
    code, out, err = pullsync("reconcile", "sync", "app", "-n", namespace, "--with-source", "--wait")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"► annotating GitRepository {namespace}/app"
    assert f"✔ fetched revision main@sha1:{new}" in lines
    assert f"► annotating Sync {namespace}/app" in lines
    assert lines[-1] == f"✔ applied revision main@sha1:{new}"
    assert get_sync(cluster, namespace)["status"]["lastAppliedRevision"] == f"main@sha1:{new}"
    assert cluster.get(f"/api/v1/namespaces/{namespace}/configmaps/more") is not None


def test_reconcile_and_wait_on_a_broken_commit_exits_1_naming_the_file_and_document(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, pullsync: Cli
) -> None:
    source, good = applied_source(cluster, namespace, git_http)
    broken = source.repo.commit({"bad.yaml": m.configmap("fine") + "---\n" + BROKEN})
    code, out, _ = pullsync("reconcile", "gitrepo", "app", "-n", namespace, "--wait")
    assert code == 0
    assert out.splitlines()[-1] == f"✔ fetched revision main@sha1:{broken}"
    code, out, err = pullsync("reconcile", "sync", "app", "-n", namespace, "--wait", "--timeout", "60s")
    assert code == 1, (out, err)
    assert err.startswith(f"✗ Sync {namespace}/app failed: bad.yaml (document 2): Deployment/")
    sync = get_sync(cluster, namespace)
    assert sync["status"]["lastAttemptedRevision"] == f"main@sha1:{broken}"
    assert sync["status"]["lastAppliedRevision"] == f"main@sha1:{good}"

    code, out, _ = pullsync("reconcile", "sync", "app", "-n", namespace)  # no --wait: asks, and says so
    assert code == 0
    assert out.splitlines()[-1].startswith(f"✔ Sync {namespace}/app annotated")
    annotations = get_sync(cluster, namespace)["metadata"]["annotations"]
    assert annotations["pullsync.dev/requestedAt"].endswith("Z")


def test_suspend_stops_the_sync_and_resume_brings_it_back(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, pullsync: Cli
) -> None:
    source, _ = applied_source(cluster, namespace, git_http)
    code, out, _ = pullsync("suspend", "sync", "app", "-n", namespace)
    assert (code, out) == (0, f"✔ Sync {namespace}/app suspended\n")
    assert get_sync(cluster, namespace)["spec"]["suspend"] is True

    def suspended() -> bool:
        ready = condition(get_sync(cluster, namespace))
        assert (ready.get("status"), ready.get("reason")) == ("False", "Suspended"), ready
        return True

    wait.until(suspended, what="the Sync to report Suspended")
    code, out, _ = pullsync("get", "-n", namespace)
    assert out.splitlines()[1].split()[1] == "False"
    assert out.splitlines()[1].endswith("reconciliation is suspended")
    code, _, err = pullsync("reconcile", "sync", "app", "-n", namespace, "--wait")
    assert code == 2
    assert f"`pullsync resume sync app -n {namespace}`" in err

    new = source.repo.commit({"more.yaml": m.configmap("more")})
    assert pullsync("reconcile", "gitrepo", "app", "-n", namespace, "--wait")[0] == 0
    code, out, _ = pullsync("resume", "sync", "app", "-n", namespace)
    assert (code, out) == (0, f"✔ Sync {namespace}/app resumed (reconcile requested)\n")
    sync = wait_applied(cluster, namespace, new)
    assert sync["spec"]["suspend"] is False
    assert sync["status"]["lastHandledReconcileAt"] == sync["metadata"]["annotations"]["pullsync.dev/requestedAt"]

    assert pullsync("suspend", "gitrepo", "app", "-n", namespace)[0] == 0
    wait.until(lambda: condition(cluster.get(gitrepo_path(namespace, "app"))).get("reason") == "Suspended")
    assert pullsync("resume", "gitrepo", "app", "-n", namespace)[0] == 0
    wait.until(lambda: condition(cluster.get(gitrepo_path(namespace, "app"))).get("status") == "True")


def test_an_object_not_found_exits_2_and_says_how_to_list_them(cluster: Cluster, namespace: str, pullsync: Cli) -> None:
    for args in (
        ("reconcile", "sync", "nope", "--wait"),
        ("tree", "sync", "nope"),
        ("suspend", "sync", "nope"),
        ("get", "sync", "nope"),
    ):
        code, out, err = pullsync(*args, "-n", namespace)
        assert (code, out) == (2, ""), args
        assert err == (
            f"pullsync {args[0]}: Sync {namespace}/nope not found: `pullsync get syncs -n {namespace}` lists them\n"
        )
    code, _, err = pullsync("resume", "gitrepo", "nope", "-n", namespace)
    assert code == 2
    assert f"GitRepository {namespace}/nope not found: `pullsync get gitrepos -n {namespace}`" in err


def test_forbidden_says_which_verb_on_which_object(
    cluster: Cluster, namespace: str, pullsync: Cli, tmp_path: Path
) -> None:
    cluster.kubectl("create", "serviceaccount", "viewer", "-n", namespace)
    cluster.kubectl(
        "create", "role", "sync-viewer", "-n", namespace,
        "--verb=get,list", "--resource=syncs.pullsync.dev,gitrepositories.pullsync.dev",
    )  # fmt: skip
    cluster.kubectl(
        "create", "rolebinding", "sync-viewer", "-n", namespace,
        "--role=sync-viewer", f"--serviceaccount={namespace}:viewer",
    )  # fmt: skip
    kubeconfig = token_kubeconfig(cluster, namespace, "viewer", tmp_path)
    create_sync(cluster, namespace)
    code, out, err = pullsync("suspend", "sync", "app", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert (code, out) == (2, "")
    assert err.startswith(
        f'pullsync suspend: forbidden: you may not patch syncs.pullsync.dev "app" in namespace {namespace}'
    )
    assert f"`kubectl auth can-i patch syncs.pullsync.dev -n {namespace}`" in err
    code, _, err = pullsync("get", "-A", "--kubeconfig", str(kubeconfig))
    assert code == 2
    assert "forbidden: you may not list syncs.pullsync.dev in every namespace" in err
    assert get_sync(cluster, namespace)["spec"]["suspend"] is False  # nothing written


def test_the_console_script_reads_KUBECONFIG_and_its_context_namespace(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer, tmp_path: Path
) -> None:
    _, commit = applied_source(cluster, namespace, git_http)
    config = json.loads(cluster.kubectl("config", "view", "--raw", "-o", "json").stdout)
    config["contexts"][0]["context"]["namespace"] = namespace
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    script = Path(sys.executable).parent / "pullsync"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NO_COLOR": ""}
    result = subprocess.run([str(script), "get"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:3] == ["app", "True", f"main@{commit[:12]}"]
    env["KUBECONFIG"] = str(tmp_path / "missing")
    result = subprocess.run(
        [sys.executable, "-m", "pullsync", "get"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr == f"pullsync get: the kubeconfig {tmp_path / 'missing'} does not exist: " \
        "pass --kubeconfig FILE or set $KUBECONFIG\n"  # fmt: skip
