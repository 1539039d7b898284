"""The foundation: CRDs installed and documented, invalid objects refused by the API
server with the field named, printer columns, and the operator process itself."""

import secrets
import signal
from pathlib import Path

import pytest

from support import wait
from support.cluster import Cluster, condition, sync_path
from support.operator import OperatorProcess

GITREPO = """
apiVersion: pullsync.dev/v1alpha1
kind: GitRepository
metadata: {{name: {name}, namespace: {ns}}}
spec:
  url: https://git.example.com/org/app.git
  {extra}
"""

SYNC = """
apiVersion: pullsync.dev/v1alpha1
kind: Sync
metadata: {{name: {name}, namespace: {ns}}}
spec:
  sourceRef: {{kind: {kind}, name: app}}
  {prune}
  {extra}
"""


def test_the_crds_are_established_with_short_names(cluster: Cluster) -> None:
    out = cluster.kubectl("api-resources", "--api-group=pullsync.dev").stdout
    assert "gitrepo" in out
    assert "syncs" in out


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ("sync.spec.prune", ["prune", "boolean", "Delete objects that this Sync applied earlier"]),
        ("gitrepository.spec.ref", ["ref", "branch", "semver", "commit", "tag"]),
        ("sync.status.inventory", ["entries"]),
    ],
)
def test_kubectl_explain_answers_from_the_schema(cluster: Cluster, field: str, words: list[str]) -> None:
    # The API server publishes a new CRD's schema to its OpenAPI document a few seconds late.
    out = wait.until(lambda: cluster.kubectl("explain", field, check=False).stdout, what=f"explain {field}")
    for word in words:
        assert word in out, out


@pytest.mark.parametrize("duration", ["0s", "-1m", "10", "1ns", "0m0s", "1.5.2m", ""])
def test_a_bad_gitrepository_interval_is_rejected_naming_the_field(
    cluster: Cluster, namespace: str, duration: str
) -> None:
    manifest = GITREPO.format(name="bad", ns=namespace, extra=f"interval: {duration!r}")
    result = cluster.kubectl("apply", "--validate=false", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert "spec.interval" in result.stderr


@pytest.mark.parametrize("duration", ["0s", "-1m", "10", "1ns"])
def test_a_bad_sync_duration_is_rejected_naming_the_field(cluster: Cluster, namespace: str, duration: str) -> None:
    for field in ("interval", "retryInterval", "timeout"):
        manifest = SYNC.format(
            name="bad", ns=namespace, kind="GitRepository", prune="prune: true", extra=f"{field}: {duration!r}"
        )
        result = cluster.kubectl("apply", "--validate=false", "-f", "-", input=manifest, check=False)
        assert result.returncode != 0
        assert f"spec.{field}" in result.stderr


@pytest.mark.parametrize(
    ("case", "manifest", "field"),
    [
        (
            "a Sync without prune",
            SYNC.format(name="x", ns="{ns}", kind="GitRepository", prune="", extra=""),
            "spec.prune",
        ),
        (
            "a Sync whose source is a Secret",
            SYNC.format(name="x", ns="{ns}", kind="Secret", prune="prune: true", extra=""),
            "spec.sourceRef.kind",
        ),
        (
            "a commit that is not 40 hex digits",
            GITREPO.format(name="x", ns="{ns}", extra="ref: {commit: abc123}"),
            "spec.ref.commit",
        ),
        (
            "a URL with an unknown scheme",
            GITREPO.format(name="x", ns="{ns}", extra="").replace("https://", "ftp://"),
            "spec.url",
        ),
    ],
)
def test_invalid_objects_are_rejected_naming_the_field(
    cluster: Cluster, namespace: str, case: str, manifest: str, field: str
) -> None:
    result = cluster.kubectl(
        "apply", "--validate=false", "-f", "-", input=manifest.replace("{ns}", namespace), check=False
    )
    assert result.returncode != 0, case
    assert field in result.stderr, result.stderr


def test_valid_objects_get_defaults_and_printer_columns(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=GITREPO.format(name="app", ns=namespace, extra="ref: {branch: main}"))
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=SYNC.format(name="app", ns=namespace, kind="GitRepository", prune="prune: true", extra=""),
    )
    sync = cluster.get(sync_path(namespace, "app"))
    assert sync is not None
    assert sync["spec"]["interval"] == "5m"
    assert sync["spec"]["path"] == "./"
    header = cluster.kubectl("get", "sync", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "REVISION", "OBJECTS", "HEALTH", "AGE", "STATUS"]
    header = cluster.kubectl("get", "gitrepo", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "URL", "READY", "REVISION", "AGE", "STATUS"]


def test_the_operator_process_serves_health_marks_status_and_stops_on_sigterm(
    cluster: Cluster, operator_kubeconfig: Path
) -> None:
    namespace = f"proc-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", namespace)
    process = OperatorProcess(operator_kubeconfig, "--namespace", namespace)
    try:
        process.wait_ready()
        assert process.probe("/healthz") == 200
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            input=SYNC.format(name="app", ns=namespace, kind="GitRepository", prune="prune: true", extra=""),
        )
        ready = wait.until(lambda: condition(cluster.get(sync_path(namespace, "app"))), what="a Ready condition")
        assert (ready["status"], ready["reason"]) == ("False", "SourceNotReady")
        samples = process.metrics()
        assert samples['pullsync_api_requests_total{verb="get"}'] >= 1
        assert 'pullsync_reconcile_duration_seconds_count{kind="Sync",ready="False"}' in samples
        assert process.stop(signal.SIGTERM) == 0
    finally:
        process.stop(signal.SIGKILL)
        cluster.delete_namespace(namespace)
    assert "pullsync started" in process.output()
