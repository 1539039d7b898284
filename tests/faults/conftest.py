"""Fixtures of the fault suite. Its namespaces are named `fault-*`, outside the shared
e2e operator's `test-*`: every case runs operators of its own, as separate processes
(they are killed, frozen, cut off), with the chart's identity and RBAC."""

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import wait
from support.cluster import Cluster
from support.faults import PrivateCluster
from support.helm import chart_identity


def make_namespace(cluster: Cluster, request: pytest.FixtureRequest) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:36].strip("-")
    name = f"fault-{slug}-{secrets.token_hex(3)}"
    cluster.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait.until(lambda: cluster.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"), what="default SA")
    return name


@pytest.fixture
def app(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the shared control plane for this test."""
    name = make_namespace(cluster, request)
    yield name
    cluster.delete_namespace(name)


@pytest.fixture(scope="session")
def identity(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The chart's identity on the shared control plane: (kubeconfig, user name)."""
    return chart_identity(cluster, tmp_path_factory.mktemp("faults"), "faults")


@pytest.fixture
def private(request: pytest.FixtureRequest) -> Iterator[tuple[PrivateCluster, str, Path]]:
    """A control plane of this test only (its API server is stopped, its etcd paused), a
    namespace in it, and the chart's identity there."""
    plane = PrivateCluster()
    try:
        namespace = make_namespace(plane.cluster, request)
        kubeconfig, _ = chart_identity(plane.cluster, plane.directory, "faults")
        yield plane, namespace, kubeconfig
    finally:
        plane.down()
