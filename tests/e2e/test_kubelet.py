"""The fake kubelet (support/kubelet.py) with the real 1.20 controllers: Deployments,
StatefulSets, DaemonSets and Jobs roll out, crash, complete and fail as on a cluster with
nodes, and the Pods the controllers delete are finalised."""

from collections.abc import Iterator
from typing import Any

import pytest

from support import wait
from support.cluster import Cluster, condition
from support.kubelet import FakeKubelet


@pytest.fixture(scope="module")
def kubelet(cluster: Cluster) -> Iterator[FakeKubelet]:
    """One node for the module, running Pods only in the namespaces of its tests."""
    node = FakeKubelet(cluster, namespaces=()).start()
    yield node
    node.stop()
    assert not node.errors, node.errors


@pytest.fixture
def ns(kubelet: FakeKubelet, namespace: str) -> str:
    kubelet.serve(namespace)
    return namespace


def apply(cluster: Cluster, namespace: str, kind: str, name: str, spec: dict[str, Any]) -> str:
    """Server-side apply of a workload (Pod, Deployment, ...) of the 1.20 API; its path."""
    api = {"Pod": "api/v1", "Job": "apis/batch/v1"}.get(kind, "apis/apps/v1")
    path = f"/{api}/namespaces/{namespace}/{kind.lower()}s/{name}"
    manifest = {"apiVersion": api.removeprefix("api/").removeprefix("apis/"), "kind": kind}
    cluster.apply(
        manifest | {"metadata": {"name": name, "namespace": namespace, "labels": {"app": name}}, "spec": spec}, path
    )
    return path


def template(app: str, image: str, restart: str = "Always") -> dict[str, Any]:
    """A Pod template. No token mounted: until the token controller has made the new namespace's
    token Secret, the ServiceAccount admission refuses Pods that would mount it (HTTP 500)."""
    containers = [{"name": "main", "image": image}]
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"restartPolicy": restart, "automountServiceAccountToken": False, "containers": containers},
    }


def pods(cluster: Cluster, namespace: str, app: str) -> list[dict[str, Any]]:
    found = cluster.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3D{app}") or {}
    return list(found.get("items", []))


def status(cluster: Cluster, path: str) -> dict[str, Any]:
    """The status of the object at `path`, once its controller has seen its current spec."""
    obj = cluster.get(path) or {}
    found: dict[str, Any] = obj.get("status") or {}
    assert found.get("observedGeneration") == obj["metadata"]["generation"], f"not observed yet: {found}"
    return found


def test_the_node_is_ready_schedulable_and_renews_its_lease(cluster: Cluster, kubelet: FakeKubelet) -> None:
    node = cluster.get(f"/api/v1/nodes/{kubelet.node}") or {}
    assert condition(node)["status"] == "True"
    assert not node["spec"].get("taints"), "the admission's not-ready taint is removed"
    assert node["status"]["allocatable"]["pods"] == "250"
    lease = cluster.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{kubelet.node}") or {}
    assert lease["spec"]["holderIdentity"] == kubelet.node


def test_a_deployment_rolls_out_and_rolls_on(cluster: Cluster, ns: str, kubelet: FakeKubelet) -> None:
    spec = {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": template("web", "example.com/web:1"),
    }
    path = apply(cluster, ns, "Deployment", "web", spec)

    def rolled_out() -> dict[str, Any]:
        found = status(cluster, path)
        assert (found.get("updatedReplicas"), found.get("availableReplicas"), found.get("replicas")) == (2, 2, 2), found
        return found

    found = wait.until(rolled_out, what="the Deployment rolled out")
    assert {c["type"]: c["status"] for c in found["conditions"]} == {"Available": "True", "Progressing": "True"}
    for pod in pods(cluster, ns, "web"):
        assert (pod["spec"]["nodeName"], pod["status"]["phase"]) == (kubelet.node, "Running")
        assert condition(pod)["status"] == "True"
        assert pod["status"]["containerStatuses"][0]["state"]["running"]

    # A new image: new Pods up, the old ones deleted by the controller and finalised by the kubelet.
    apply(cluster, ns, "Deployment", "web", spec | {"template": template("web", "example.com/web:2")})
    wait.until(rolled_out, what="the second rollout")
    wait.until(
        lambda: [p["spec"]["containers"][0]["image"] for p in pods(cluster, ns, "web")] == ["example.com/web:2"] * 2,
        what="only the new Pods left",
    )


def test_a_crashlooping_deployment_never_becomes_available(cluster: Cluster, ns: str) -> None:
    spec = {
        "replicas": 2,
        "progressDeadlineSeconds": 1,
        "selector": {"matchLabels": {"app": "crash"}},
        "template": template("crash", "example.com/crashloop:1"),
    }
    path = apply(cluster, ns, "Deployment", "crash", spec)

    def crashing() -> list[dict[str, Any]]:
        states = [c for p in pods(cluster, ns, "crash") for c in (p.get("status") or {}).get("containerStatuses", [])]
        assert len(states) == 2, states
        assert all(s["state"]["waiting"]["reason"] == "CrashLoopBackOff" and s["restartCount"] > 0 for s in states)
        return states

    wait.until(crashing, what="two Pods in CrashLoopBackOff")
    # The controller's own verdict: no progress within the deadline, and nothing available.
    wait.until(lambda: condition(cluster.get(path), "Progressing").get("reason") == "ProgressDeadlineExceeded")
    found = status(cluster, path)
    assert condition(cluster.get(path), "Available")["status"] == "False"
    assert (found.get("availableReplicas", 0), found.get("readyReplicas", 0), found["unavailableReplicas"]) == (0, 0, 2)
    assert all(p["status"]["phase"] == "Running" for p in pods(cluster, ns, "crash"))


@pytest.mark.parametrize(
    ("image", "phase", "waiting"),
    [
        ("example.com/no-such-image:1", "Pending", "ImagePullBackOff"),
        ("example.com/imagepull:1", "Pending", "ImagePullBackOff"),
        ("example.com/oomkilled:1", "Running", "CrashLoopBackOff"),
        ("example.com/never-ready:1", "Running", None),
    ],
)
def test_what_the_image_says_a_pod_does(cluster: Cluster, ns: str, image: str, phase: str, waiting: str | None) -> None:
    apply(cluster, ns, "Pod", "p", template("p", image)["spec"])

    def started() -> dict[str, Any]:
        pod = cluster.get(f"/api/v1/namespaces/{ns}/pods/p") or {}
        assert pod.get("status", {}).get("startTime"), pod.get("status")
        return pod

    pod = wait.until(started, what="the Pod's status")
    container = pod["status"]["containerStatuses"][0]
    assert (pod["status"]["phase"], condition(pod)["status"], container["ready"]) == (phase, "False", False)
    assert container["state"].get("waiting", {}).get("reason") == waiting
    if "oomkilled" in image:
        assert container["lastState"]["terminated"]["reason"] == "OOMKilled"


@pytest.mark.parametrize(
    ("image", "outcome", "reason"),
    [("example.com/task:1", "Complete", None), ("example.com/fail:1", "Failed", "BackoffLimitExceeded")],
)
def test_a_job_completes_or_fails(cluster: Cluster, ns: str, image: str, outcome: str, reason: str | None) -> None:
    path = apply(cluster, ns, "Job", "job", {"backoffLimit": 0, "template": template("job", image, "Never")})

    def finished() -> dict[str, Any]:
        job = cluster.get(path) or {}
        assert condition(job, outcome).get("status") == "True", job.get("status")
        return job

    job = wait.until(finished, what=f"the Job {outcome}")
    assert condition(job, outcome).get("reason") == reason
    counts = [job["status"].get(k, 0) for k in ("active", "succeeded", "failed")]
    assert counts == ([0, 1, 0] if reason is None else [0, 0, 1])
    assert [p["status"]["phase"] for p in pods(cluster, ns, "job")] == ["Succeeded" if reason is None else "Failed"]


def test_a_statefulset_becomes_ready_in_order(cluster: Cluster, ns: str, kubelet: FakeKubelet) -> None:
    spec = {
        "replicas": 2,
        "serviceName": "db",
        "selector": {"matchLabels": {"app": "db"}},
        "template": template("db", "example.com/db:1"),
    }
    path = apply(cluster, ns, "StatefulSet", "db", spec)

    def ready() -> dict[str, Any]:
        found = status(cluster, path)
        assert (found.get("readyReplicas"), found.get("currentReplicas"), found.get("replicas")) == (2, 2, 2), found
        return found

    wait.until(ready, what="the StatefulSet ready")
    assert sorted((p["metadata"]["name"], p["spec"]["nodeName"]) for p in pods(cluster, ns, "db")) == [
        ("db-0", kubelet.node),
        ("db-1", kubelet.node),
    ]


def test_a_daemonset_runs_on_the_node(cluster: Cluster, ns: str, kubelet: FakeKubelet) -> None:
    pod = template("agent", "example.com/agent:1")
    pod["spec"]["nodeSelector"] = {
        "kubernetes.io/hostname": kubelet.node
    }  # other tests' nodes serve not this namespace
    path = apply(cluster, ns, "DaemonSet", "agent", {"selector": {"matchLabels": {"app": "agent"}}, "template": pod})

    def ready() -> dict[str, Any]:
        found = status(cluster, path)
        counts = [found.get(k) for k in ("desiredNumberScheduled", "numberReady", "numberAvailable")]
        assert counts == [1, 1, 1], found
        return found

    wait.until(ready, what="the DaemonSet ready")
    assert [p["spec"]["nodeName"] for p in pods(cluster, ns, "agent")] == [kubelet.node]
