"""The health of one Kubernetes object, as kstatus (cli-utils pkg/kstatus/status) judges it.

It works on the object alone, as plain JSON data: it never calls the API. The order of
the rules: deletion (Terminating), an unobserved generation (InProgress), the standard
`Reconciling` and `Stalled` conditions, then the rule for the object's kind, and for any
other kind its `Ready` condition; what none of them settles is Current. Where pullsync
asks for more than kstatus (Pod container failures, a running Job, a LoadBalancer's
address, PodDisruptionBudget health) the kind's function says so.
"""

import dataclasses
import datetime
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pullsync.health.fields import Fields, Unreadable

CURRENT = "Current"  # what its spec asks for
IN_PROGRESS = "InProgress"  # not yet
FAILED = "Failed"  # will not get there without a change
TERMINATING = "Terminating"  # being deleted
NOT_FOUND = "NotFound"  # not there
UNKNOWN = "Unknown"  # cannot tell

# Worst first. Failed needs a person; Unknown hides what the object does (kstatus's
# aggregator and gitops-engine also rank it above any progress); an object that is gone
# (NotFound) or going (Terminating) is further from its spec than one on its way.
ORDER = (FAILED, UNKNOWN, NOT_FOUND, TERMINATING, IN_PROGRESS, CURRENT)
_RANK = {status: rank for rank, status in enumerate(ORDER)}

_MAX_INT32 = 2**31 - 1  # a Deployment's progressDeadlineSeconds when it has none
SCHEDULE_GRACE = datetime.timedelta(seconds=15)  # before an unschedulable Pod is Failed


@dataclasses.dataclass(frozen=True)
class Health:
    """A status (one of the six above) and why, in a few words."""

    status: str
    message: str


def of(obj: Mapping[str, Any] | None, *, now: datetime.datetime | None = None) -> Health:
    """The health of `obj` (None: it does not exist). `now` is for Pods' scheduling grace."""
    if obj is None:
        return Health(NOT_FOUND, "not found")
    given: object = obj  # callers pass parsed files too: a list or a scalar is possible
    if not isinstance(given, Mapping):
        return Health(UNKNOWN, f"not an object: a {type(given).__name__}")
    try:
        o = Fields(obj, now or datetime.datetime.now(datetime.UTC))
        return _generic(o) or _BY_KIND.get((o.group, o.kind), _by_ready_condition)(o)
    except Unreadable as e:
        return Health(UNKNOWN, f"unreadable status: {e}")


def rank(status: str) -> int:
    """Where `status` stands in ORDER (0: the worst); a status outside the six ranks as Unknown."""
    return _RANK.get(status, _RANK[UNKNOWN])


def worst(healths: Iterable[Health]) -> str:
    """The status of a set: the worst of its members by ORDER; an empty set is Current.
    A status outside the six counts as Unknown."""
    ranks = [rank(h.status) for h in healths]
    return ORDER[min(ranks)] if ranks else CURRENT


def _in_progress(message: str) -> Health:
    return Health(IN_PROGRESS, message)


def _current(message: str) -> Health:
    return Health(CURRENT, message)


def _generic(o: Fields) -> Health | None:
    """The rules for every kind, first: deletion, generation, Reconciling and Stalled."""
    if o.get("metadata.deletionTimestamp"):
        return Health(TERMINATING, "being deleted")
    generation, observed = o.integer("metadata.generation"), o.integer("status.observedGeneration")
    if generation is not None and observed is not None and generation != observed:
        return _in_progress(f"generation {generation} not observed yet (status is of {observed})")
    for c in o.conditions():
        if c.type == "Reconciling" and c.status == "True":
            return _in_progress(c.says("reconciling"))
        if c.type == "Stalled" and c.status == "True":
            return Health(FAILED, c.says("stalled"))
    return None


def _by_ready_condition(o: Fields) -> Health:
    """Any other kind: its Ready condition if it has one, else Current."""
    for c in o.conditions():
        if c.type == "Ready" and c.status == "True":
            return _current("ready")
        if c.type == "Ready" and c.status in ("False", "Unknown"):
            return _in_progress(c.says("not ready"))
    return _current("no Ready condition" if o.get("status") else "no status")


def _always_current(o: Fields) -> Health:
    """ConfigMaps, Secrets, CronJobs (whose Jobs are judged on their own), Ingresses (kstatus
    does not wait for their address)."""
    return _current(f"{o.kind or 'object'} exists")


def _deployment(o: Fields) -> Health:
    # Without progressDeadlineSeconds the controller never sets Progressing: do not wait for it.
    progressing = o.count("spec.progressDeadlineSeconds", _MAX_INT32) == _MAX_INT32
    available = False
    for c in o.conditions():
        if c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded":
            return Health(FAILED, ": ".join(filter(None, ("progress deadline exceeded", c.message))))
        if c.type == "Progressing" and c.status == "True" and c.reason == "NewReplicaSetAvailable":
            progressing = True
        if c.type == "Available" and c.status == "True":
            available = True
    want = o.count("spec.replicas", 1)
    have = o.count("status.replicas")
    updated = o.count("status.updatedReplicas")
    ready = o.count("status.readyReplicas")
    avail = o.count("status.availableReplicas")
    if want > have:
        return _in_progress(f"{have} of {want} replicas created")
    if want > updated:
        return _in_progress(f"{updated} of {want} replicas updated")
    if have > want:
        return _in_progress(f"{have - want} old replicas pending termination")
    if updated > avail:
        return _in_progress(f"{avail} of {updated} replicas available")
    if want > ready:
        return _in_progress(f"{ready} of {want} replicas ready")
    if not progressing:
        return _in_progress("new ReplicaSet not available yet")
    if not available:
        return _in_progress("Available condition is not True")
    return _current(f"{avail} of {want} replicas available")


def _statefulset(o: Fields) -> Health:
    if o.text("spec.updateStrategy.type") == "OnDelete":
        return _current("OnDelete update strategy: pods change only when deleted")
    want = o.count("spec.replicas", 1)
    have = o.count("status.replicas")
    ready = o.count("status.readyReplicas")
    current = o.count("status.currentReplicas")
    updated = o.count("status.updatedReplicas")
    partition = o.integer("spec.updateStrategy.rollingUpdate.partition")
    if want > have:
        return _in_progress(f"{have} of {want} replicas created")
    if want > ready:
        return _in_progress(f"{ready} of {want} replicas ready")
    if have > want:
        return _in_progress(f"{have - want} extra replicas pending termination")
    if partition is not None:
        if updated < want - partition:
            return _in_progress(f"{updated} of {want - partition} replicas updated (partition {partition})")
        return _current(f"partitioned rollout done: {updated} replicas updated")
    if want > current:
        return _in_progress(f"{current} of {want} replicas at the current revision")
    if o.text("status.currentRevision") != o.text("status.updateRevision"):
        return _in_progress(f"rolling out revision {o.text('status.updateRevision') or '(unnamed)'}")
    return _current(f"{ready} of {want} replicas ready")


def _daemonset(o: Fields) -> Health:
    # The controller always writes observedGeneration: until it has, it has not looked.
    if o.integer("metadata.generation") is None:
        return _in_progress("no metadata.generation")
    if o.integer("status.observedGeneration") is None:
        return _in_progress("not observed by its controller yet")
    desired = o.integer("status.desiredNumberScheduled")
    if desired is None:
        return _in_progress("desired number of pods not known yet")
    for field, what in (
        ("currentNumberScheduled", "scheduled"),
        ("updatedNumberScheduled", "updated"),
        ("numberAvailable", "available"),
        ("numberReady", "ready"),
    ):
        if desired > (got := o.count(f"status.{field}")):
            return _in_progress(f"{got} of {desired} pods {what}")
    return _current(f"{desired} of {desired} pods ready")


def _replicaset(o: Fields) -> Health:
    failure = o.condition("ReplicaFailure")
    if failure is not None and failure.status == "True":  # as kstatus: InProgress (the controller retries)
        return _in_progress(failure.says("replica failure"))
    want = o.count("spec.replicas", 1)
    for field, what in (
        ("fullyLabeledReplicas", "labelled"),
        ("availableReplicas", "available"),
        ("readyReplicas", "ready"),
    ):
        if want > (got := o.count(f"status.{field}")):
            return _in_progress(f"{got} of {want} replicas {what}")
    if (have := o.count("status.replicas")) > want:
        return _in_progress(f"{have - want} extra replicas pending termination")
    return _current(f"{want} of {want} replicas available")


# A container waiting for one of these will not start without a change: the Pod is Failed.
_STUCK_WAITING = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


def _container_trouble(o: Fields, *, pod_failed: bool) -> list[str]:
    """`container NAME: WHY` for each container that keeps the Pod from running."""
    found = []
    for path, label in (("status.initContainerStatuses", "init container"), ("status.containerStatuses", "container")):
        for cs in o.entries(path):
            if why := _why_stuck(cs, pod_failed=pod_failed):
                found.append(f"{label} {cs.get('name') or '?'}: {why}")
    return found


def _why_stuck(cs: Mapping[str, Any], *, pod_failed: bool) -> str | None:
    """Waiting for a reason above; OOMKilled now, or last time while not ready again; in a
    failed Pod, ended with a non-zero code."""
    state, last = _mapping(cs.get("state")), _mapping(cs.get("lastState"))
    waiting, ended = _mapping(state.get("waiting")), _mapping(state.get("terminated"))
    reason, detail = waiting.get("reason"), waiting.get("message")
    stuck = reason in _STUCK_WAITING
    last_oom = _mapping(last.get("terminated")).get("reason") == "OOMKilled" and cs.get("ready") is not True
    if ended.get("reason") == "OOMKilled" or last_oom:
        return "OOMKilled" + (f" ({reason})" if stuck else "")
    if stuck:
        return f"{reason}: {detail[:200]}" if isinstance(detail, str) and detail else str(reason)
    code = ended.get("exitCode")
    if pod_failed and isinstance(code, int) and code != 0:
        return f"{ended.get('reason') or 'terminated'} (exit code {code})"
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _pod(o: Fields) -> Health:
    phase = o.text("status.phase")
    if phase == "Succeeded":
        return _current("completed")
    if phase == "Failed":  # kstatus: Current ("completed, but not successfully")
        said = ": ".join(filter(None, (o.text("status.reason"), o.text("status.message"))))
        trouble = _container_trouble(o, pod_failed=True)
        return Health(FAILED, "; ".join(trouble) or said or "failed")
    ready = o.condition("Ready")
    if phase == "Running" and ready is not None and ready.status == "True":
        return _current("running and ready")
    if phase in ("Running", "Pending") and (trouble := _container_trouble(o, pod_failed=False)):
        return Health(FAILED, "; ".join(trouble))  # kstatus: only CrashLoopBackOff, only if Running
    if phase == "Running":
        waiting = [str(cs.get("name")) for cs in o.entries("status.containerStatuses") if cs.get("ready") is not True]
        return _in_progress("running, not ready" + (f": {', '.join(waiting)}" if waiting else ""))
    if phase == "Pending":
        scheduled = o.condition("PodScheduled")
        if scheduled is not None and scheduled.status == "False" and scheduled.reason == "Unschedulable":
            created = o.created()
            if created is not None and o.now - created < SCHEDULE_GRACE:
                return _in_progress("waiting to be scheduled")
            return Health(FAILED, ": ".join(filter(None, ("unschedulable", scheduled.message))))
        return _in_progress("pending")
    if not phase:
        return _in_progress("not observed by the kubelet yet")
    return Health(UNKNOWN, f"phase {phase}")


def _job(o: Fields) -> Health:
    succeeded, active, failed = (o.count(f"status.{f}") for f in ("succeeded", "active", "failed"))
    for c in o.conditions():
        if c.type == "Complete" and c.status == "True":
            return _current(f"complete: {succeeded} succeeded")
        if c.type == "Failed" and c.status == "True":
            return Health(FAILED, c.says("failed"))
        if c.type == "Suspended" and c.status == "True" and o.flag("spec.suspend"):
            return _current("suspended")
    if not o.text("status.startTime"):
        return _in_progress("not started")
    # kstatus: Current once started. pullsync waits for a Job to finish.
    return _in_progress(f"running: {active} active, {succeeded} succeeded, {failed} failed")


def _pvc(o: Fields) -> Health:
    phase = o.text("status.phase")
    if phase == "Bound":
        return _current("bound")
    return _in_progress(f"not bound (phase {phase or 'unknown'})")


def _service(o: Fields) -> Health:
    if o.text("spec.type", "ClusterIP") != "LoadBalancer":
        return _current(f"{o.text('spec.type', 'ClusterIP')} Service")
    # kstatus only wants spec.clusterIP; pullsync waits for the load balancer's address.
    ingress = o.entries("status.loadBalancer.ingress")
    if not ingress:
        return _in_progress("waiting for a load balancer address")
    return _current(f"load balancer at {ingress[0].get('ip') or ingress[0].get('hostname') or '(no address)'}")


def _crd(o: Fields) -> Health:
    names, established = o.condition("NamesAccepted"), o.condition("Established")
    if names is not None and names.status == "False":
        return Health(FAILED, names.says("names not accepted"))
    if established is not None and established.status == "True":
        return _current("established")
    if established is not None and established.status == "False" and established.reason != "Installing":
        return Health(FAILED, established.says("not established"))
    return _in_progress("installing")


def _namespace(o: Fields) -> Health:
    if o.text("status.phase") == "Terminating":
        return Health(TERMINATING, "terminating")
    return _current("active")


def _apiservice(o: Fields) -> Health:
    available = o.condition("Available")
    if available is None:
        return _in_progress("availability not checked yet")
    if available.status == "True":
        return _current("available")
    return _in_progress(available.says("not available"))


def _pdb(o: Fields) -> Health:
    # kstatus: Current once the generation is observed. pullsync also wants the pods it
    # protects healthy enough.
    if o.integer("status.observedGeneration") is None:
        return _in_progress("not observed by the disruption controller yet")
    healthy, needed = o.count("status.currentHealthy"), o.count("status.desiredHealthy")
    if healthy < needed:
        return _in_progress(f"{healthy} of {needed} required pods healthy")
    return _current(f"{healthy} pods healthy, {needed} required")


_BY_KIND: dict[tuple[str, str], Callable[[Fields], Health]] = {
    ("", "ConfigMap"): _always_current,
    ("", "Secret"): _always_current,
    ("", "Pod"): _pod,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Service"): _service,
    ("", "Namespace"): _namespace,
    ("apps", "Deployment"): _deployment,
    ("extensions", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("extensions", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("extensions", "ReplicaSet"): _replicaset,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _always_current,
    ("policy", "PodDisruptionBudget"): _pdb,
    ("networking.k8s.io", "Ingress"): _always_current,
    ("extensions", "Ingress"): _always_current,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
    ("apiregistration.k8s.io", "APIService"): _apiservice,
}
