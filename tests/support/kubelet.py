"""A fake kubelet: one Node that stays Ready, and a thread that "runs" the Pods given to it.

The local control plane has no scheduler and no kubelet, so Pods stay Pending and no
workload ever becomes ready. With a `FakeKubelet` started, the real Deployment, ReplicaSet,
StatefulSet, DaemonSet and Job controllers roll out as on a cluster with nodes: Pending
Pods are bound to the node (`pods/binding`), then given the status a kubelet would report
(`pods/status`), and Pods being deleted are finalised (deleted with grace period 0).

The image decides what a Pod does (substrings of the image name):
  `imagepull`, `no-such-image`  waiting ImagePullBackOff, phase Pending
  `crashloop`                   waiting CrashLoopBackOff, restarted, phase Running, not ready
  `oomkilled`                   the same, last terminated as OOMKilled
  `never-ready`                 running, never ready
  anything else                 running and ready; in a Pod of a Job: Succeeded (exit 0),
                                or Failed (exit 1) if the image contains `fail`

The node stays Ready the way a real kubelet's does: its Lease in kube-node-lease is renewed
every 10 s (the node-lifecycle controller, off in hack/cluster.sh, would mark a node without
heartbeats NotReady after 40 s and taint it unreachable). The NoSchedule taint
`node.kubernetes.io/not-ready` that the API server's TaintNodesByCondition admission puts
on every new Node is removed at once: that controller is what would remove it, and
DaemonSet Pods do not tolerate it.
"""

import datetime
import json
import secrets
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any

from support.cluster import ApiError, Cluster

WATCH_SECONDS = 1  # each watch of Pods lasts this long: how long stop() may wait for the thread
HEARTBEAT_SECONDS = 10
LEASE_SECONDS = 40
RESOURCES = {"cpu": "32", "memory": "128Gi", "pods": "250", "ephemeral-storage": "100Gi"}
MERGE = "application/merge-patch+json"
HOST_IP = "127.0.0.1"


class FakeKubelet:
    """`start()` registers the node and starts the thread; `stop()` ends both. `namespaces`:
    where Pods are run (None: everywhere; more with `serve()`). Pods already on the node are
    finalised wherever they are."""

    def __init__(self, cluster: Cluster, namespaces: Iterable[str] | None = None) -> None:
        self.cluster = cluster
        self.node = f"fake-kubelet-{secrets.token_hex(4)}"
        self.labels = {"kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        self.namespaces = None if namespaces is None else set(namespaces)
        self.errors: list[str] = []  # unexpected failures of the thread (it lists again and goes on)
        self._subnet = f"10.{secrets.randbelow(250) + 1}"
        self._pods_started = 0
        self._uid = ""
        self._relist = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.node, daemon=True)

    def start(self) -> "FakeKubelet":
        node = self.cluster.api("POST", "/api/v1/nodes", self._node_manifest())
        self._uid = node["metadata"]["uid"]
        self.cluster.api("PATCH", f"/api/v1/nodes/{self.node}", {"spec": {"taints": None}}, content_type=MERGE)
        self._heartbeat()
        self._thread.start()
        return self

    def serve(self, namespace: str) -> None:
        """Run the Pods of `namespace` too."""
        if self.namespaces is not None:
            self.namespaces.add(namespace)
            self._relist = True

    def stop(self) -> None:
        """End the thread and delete the node (its Lease goes with it; the pod GC controller
        deletes the Pods left on it within a minute: 54 s seen)."""
        self._stopped.set()
        self._thread.join(timeout=WATCH_SECONDS + 30)
        try:
            self.cluster.api("DELETE", f"/api/v1/nodes/{self.node}")
        except ApiError as e:
            if e.status != 404:
                raise

    def _node_manifest(self) -> dict[str, Any]:
        stamps = {"lastHeartbeatTime": _now(), "lastTransitionTime": _now()}

        def healthy(ctype: str, status: str, reason: str) -> dict[str, str]:
            return {"type": ctype, "status": status, "reason": reason, **stamps}

        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node, "labels": self.labels},
            "status": {
                "capacity": RESOURCES,
                "allocatable": RESOURCES,
                "conditions": [
                    healthy("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                    healthy("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                    healthy("PIDPressure", "False", "KubeletHasSufficientPID"),
                    healthy("Ready", "True", "KubeletReady"),
                ],
                "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": self.node}],
                "nodeInfo": {"kubeletVersion": "v1.20.2", "containerRuntimeVersion": "fake://1", "osImage": "fake"},
            },
        }

    def _heartbeat(self) -> None:
        """Create or renew the node's Lease (owned by the Node: deleted with it)."""
        owner = {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": self._uid}
        self.cluster.apply(
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.node, "namespace": "kube-node-lease", "ownerReferences": [owner]},
                "spec": {
                    "holderIdentity": self.node,
                    "leaseDurationSeconds": LEASE_SECONDS,
                    "renewTime": _now(micro=True),
                },
            },
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node}",
        )

    def _run(self) -> None:
        """List all Pods, then watch from there (again after a break or a 410), one short
        watch after another so that `stop()` and the heartbeat are never late."""
        version = ""
        last_beat = time.monotonic()
        while not self._stopped.is_set():
            try:
                if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    self._heartbeat()
                    last_beat = time.monotonic()
                if not version or self._relist:
                    self._relist = False
                    pods = self.cluster.api("GET", "/api/v1/pods")
                    for pod in pods["items"]:
                        self._handle(pod)
                    version = pods["metadata"]["resourceVersion"]
                for kind, obj in self._watch(version):
                    if kind == "ERROR":  # 410 Gone: the version is too old
                        version = ""
                        break
                    version = obj["metadata"]["resourceVersion"]
                    if kind in ("ADDED", "MODIFIED"):
                        self._handle(obj)
            except (ApiError, OSError, ValueError) as e:  # URLError and timeouts are OSErrors
                self.errors.append(f"{type(e).__name__}: {e}")
                version = ""
                self._stopped.wait(0.2)

    def _watch(self, version: str) -> Iterator[tuple[str, dict[str, Any]]]:
        query = urllib.parse.urlencode({"watch": "1", "resourceVersion": version, "timeoutSeconds": WATCH_SECONDS})
        request = urllib.request.Request(f"{self.cluster.server}/api/v1/pods?{query}")
        request.add_header("Authorization", f"Bearer {self.cluster.token}")
        with urllib.request.urlopen(request, context=self.cluster.context, timeout=WATCH_SECONDS + 10) as response:
            for line in response:
                event = json.loads(line)
                yield event["type"], event["object"]

    def _handle(self, pod: dict[str, Any]) -> None:
        """Do what this Pod needs next (nothing if it is not ours or has what it needs)."""
        meta, spec = pod["metadata"], pod["spec"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        node = spec.get("nodeName")
        if node not in (None, self.node):
            return
        if meta.get("deletionTimestamp"):  # only a Pod on a node waits for its kubelet
            if node:
                options = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0}
                self._call("DELETE", path, {**options, "preconditions": {"uid": meta["uid"]}})
        elif self.namespaces is not None and meta["namespace"] not in self.namespaces:
            return
        elif not node:
            if self._fits(spec):
                target = {"apiVersion": "v1", "kind": "Node", "name": self.node}
                self._call("POST", f"{path}/binding", {"metadata": {"name": meta["name"]}, "target": target})
        elif not (pod.get("status") or {}).get("startTime"):  # bound, not started yet
            self._call("PATCH", f"{path}/status", {"metadata": {"uid": meta["uid"]}, "status": self._status(pod)})

    def _call(self, method: str, path: str, body: dict[str, Any]) -> None:
        """An API call about a Pod that may have gone, been bound elsewhere or replaced by a
        namesake since (404, 409, 422 for a uid that changed): that is no error."""
        try:
            self.cluster.api(method, path, body, content_type=MERGE if method == "PATCH" else "application/json")
        except ApiError as e:
            if e.status not in (404, 409, 422):
                raise

    def _fits(self, spec: dict[str, Any]) -> bool:
        """The node matches the Pod's nodeSelector and required node affinity (DaemonSet Pods
        name their node in a matchFields term on metadata.name)."""
        if any(self.labels.get(key) != value for key, value in (spec.get("nodeSelector") or {}).items()):
            return False
        affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        terms = (affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
        fields = {"metadata.name": self.node}
        return not terms or any(
            all(_matches(r, self.labels) for r in term.get("matchExpressions") or [])
            and all(_matches(r, fields) for r in term.get("matchFields") or [])
            for term in terms
        )

    def _status(self, pod: dict[str, Any]) -> dict[str, Any]:
        """The status a kubelet would report for this Pod once its containers have started."""
        now = _now()
        self._pods_started += 1
        ip = f"{self._subnet}.{self._pods_started // 250}.{self._pods_started % 250 + 1}"
        job = any(owner.get("kind") == "Job" for owner in pod["metadata"].get("ownerReferences") or [])
        containers = [_container(c, job, now) for c in pod["spec"]["containers"]]
        init = [_container(c, True, now) for c in pod["spec"].get("initContainers") or []]
        if any("ImagePullBackOff" in json.dumps(c["state"]) for c in containers):
            phase = "Pending"
        elif job:
            phase = "Succeeded" if all(c["state"]["terminated"]["exitCode"] == 0 for c in containers) else "Failed"
        else:
            phase = "Running"
        ready = phase == "Running" and all(c["ready"] for c in containers)
        unready = [c["name"] for c in containers if not c["ready"]]
        reason = "PodCompleted" if job and phase != "Pending" else "ContainersNotReady"

        def condition(ctype: str, true: bool) -> dict[str, Any]:
            found = {"type": ctype, "status": str(true), "lastProbeTime": None, "lastTransitionTime": now}
            if not true:
                found |= {"reason": reason, "message": f"containers with unready status: [{' '.join(unready)}]"}
            return found

        return {
            "phase": phase,
            "conditions": [
                condition("Initialized", True),
                condition("Ready", ready),
                condition("ContainersReady", ready),
                condition("PodScheduled", True),
            ],
            "hostIP": HOST_IP,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now,
            "containerStatuses": containers,
            **({"initContainerStatuses": init} if init else {}),
        }


def _container(container: dict[str, Any], job: bool, now: str) -> dict[str, Any]:
    """The status of a container whose behaviour its image names (see the module's doc)."""
    image, name = container["image"], container["name"]
    started = {"containerID": f"containerd://{secrets.token_hex(32)}", "imageID": f"{image}@sha256:{'0' * 64}"}
    status: dict[str, Any] = {"name": name, "image": image, "imageID": "", "restartCount": 0}
    status |= {"ready": False, "started": False}
    if "imagepull" in image or "no-such-image" in image:
        message = f'Back-off pulling image "{image}"'
        status["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": message}}
    elif "crashloop" in image or "oomkilled" in image:
        oom = "oomkilled" in image
        last = {"exitCode": 137 if oom else 1, "reason": "OOMKilled" if oom else "Error", "startedAt": now}
        message = f"back-off 40s restarting failed container={name}"
        status |= started | {"restartCount": 3, "lastState": {"terminated": last | {"finishedAt": now}}}
        status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
    elif job:
        exit_code = 1 if "fail" in image else 0
        ended = {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed", "finishedAt": now}
        ended |= {"startedAt": now, "containerID": started["containerID"]}
        status |= started | {"state": {"terminated": ended}}
    else:
        status |= started | {"ready": "never-ready" not in image, "started": True}
        status["state"] = {"running": {"startedAt": now}}
    return status


def _matches(requirement: dict[str, Any], values: dict[str, str]) -> bool:
    """A node selector requirement (In, NotIn, Exists, DoesNotExist) against labels or fields."""
    key, operator, wanted = requirement["key"], requirement["operator"], requirement.get("values") or []
    present = key in values
    return {
        "In": present and values.get(key) in wanted,
        "NotIn": not present or values.get(key) not in wanted,
        "Exists": present,
        "DoesNotExist": not present,
    }.get(operator, False)


def _now(micro: bool = False) -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")
