"""Fixtures for all tests: the local control plane, git servers and the operator are
session-wide (one of each per run); every e2e test gets its own namespace."""

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import wait
from support.cluster import OPERATOR_SERVICE_ACCOUNT, ROOT, Cluster
from support.git import HttpGitServer, SshGitServer
from support.helm import chart_identity
from support.kubelet import FakeKubelet
from support.operator import Operator


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The local control plane, up (reused if running), with pullsync's CRDs installed."""
    c = Cluster.up()
    c.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for crd in ("gitrepositories.pullsync.dev", "syncs.pullsync.dev", "previews.pullsync.dev"):
        c.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")
    return c


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The identity and the RBAC the chart gives the operator (a release installed with no
    replicas): every operator of the e2e tests runs with it, never as system:masters."""
    kubeconfig, user = chart_identity(cluster, tmp_path_factory.mktemp("operator"), "e2e")
    assert user == OPERATOR_SERVICE_ACCOUNT
    return kubeconfig


@pytest.fixture(scope="session")
def operator(operator_kubeconfig: Path) -> Iterator[Operator]:
    """The operator in this process, watching the namespaces of the `namespace` fixture
    (`test-*`): other tests run operators of their own (namespaced mode, leader election)
    in namespaces named otherwise."""
    op = Operator(operator_kubeconfig, namespaces=("test-*",)).start()
    yield op
    op.stop()


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test; deleted afterwards (without waiting)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{slug}-{secrets.token_hex(3)}"
    cluster.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait.until(lambda: cluster.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"), what="default SA")
    yield name
    cluster.api("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="session")
def git_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpGitServer]:
    server = HttpGitServer(tmp_path_factory.mktemp("git-http"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def git_ssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshGitServer]:
    server = SshGitServer(tmp_path_factory.mktemp("git-ssh"))
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kubelet(cluster: Cluster) -> Iterator[FakeKubelet]:
    """A fake kubelet (tests/support/kubelet.py) that runs the Pods of the namespaces given
    to its `serve()`: workloads roll out there as on a cluster with nodes."""
    node = FakeKubelet(cluster, namespaces=()).start()
    yield node
    node.stop()
