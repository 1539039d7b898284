"""Fixtures of the fault suite. Every case runs its own operators as separate processes
(`python -m pullsync run`: they are killed, cut off, throttled), with the chart's RBAC and
never as system:masters, in namespaces named `fault-*` (outside the shared e2e
operator's `test-*`). Cases that stop the API server or freeze etcd get a control plane
of their own."""

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import wait
from support.cluster import Cluster
from support.faults import RELEASE, ControlPlane, Operators, Private
from support.helm import chart_identity


def make_namespace(cluster: Cluster, request: pytest.FixtureRequest) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_")).strip("-")[:40].strip("-")
    name = f"fault-{slug}-{secrets.token_hex(3)}"
    cluster.api("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait.until(lambda: cluster.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"), what="default SA")
    return name


@pytest.fixture
def operators() -> Iterator[Operators]:
    started = Operators()
    yield started
    started.stop_all()


@pytest.fixture(scope="session")
def identity(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The chart's ServiceAccount (a release `faults` with no replicas) on the shared
    control plane: (kubeconfig, user name)."""
    return chart_identity(cluster, tmp_path_factory.mktemp("identity"), RELEASE)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the shared control plane for this test, deleted afterwards."""
    name = make_namespace(cluster, request)
    yield name
    cluster.delete_namespace(name)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, Path, str]]:
    """A control plane of the module's own (its API server is stopped, its etcd frozen),
    the chart installed: (plane, the chart identity's kubeconfig, its user name)."""
    control = ControlPlane(tmp_path_factory.mktemp("plane"))
    try:
        yield control, *chart_identity(control.cluster, control.directory, RELEASE)
    finally:
        control.down()


@pytest.fixture
def private(plane: tuple[ControlPlane, Path, str], request: pytest.FixtureRequest) -> Iterator[Private]:
    """The private control plane, a namespace in it for this test; whole again afterwards."""
    control, kubeconfig, user = plane
    name = make_namespace(control.cluster, request)
    yield Private(control, control.cluster, name, kubeconfig, user)
    control.heal()
    control.cluster.delete_namespace(name)
