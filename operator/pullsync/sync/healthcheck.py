"""The check_health step: the kstatus health (see `pullsync.health`) of the objects a
Sync applied, read from the live cache (no request while the cache follows their kinds),
and of the `healthChecks` objects, read as the Sync's identity. A report holds the worst
status and at most `SHOWN` objects that are not Current, with why.
"""

import dataclasses
from typing import Any

from pullsync import api, kube
from pullsync.health import status as kstatus
from pullsync.kube import watchcache
from pullsync.sync import inventory

SHOWN = 20
WORKLOADS = {("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"), ("apps", "ReplicaSet")}
WORKLOADS |= {("batch", "Job")}


@dataclasses.dataclass(frozen=True)
class Report:
    """The health of a set of objects."""

    status: str
    unhealthy: tuple[tuple[str, str, str], ...] = ()  # (id, status, message), worst first

    def as_status(self) -> dict[str, Any]:
        """`status.health`."""
        shown = [{"id": i, "status": s, "message": m} for i, s, m in self.unhealthy[:SHOWN]]
        return {"status": self.status, "unhealthy": shown}

    def describe(self, limit: int = 5) -> str:
        """What is not Current, for a condition message."""
        parts = [f"{inventory.Entry(i, '').describe()}: {m or s}" for i, s, m in self.unhealthy[:limit]]
        more = len(self.unhealthy) - limit
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")

    @property
    def current(self) -> bool:
        return self.status == kstatus.CURRENT


async def check(
    client: kube.Client,
    cache: watchcache.LiveCache,
    entries: list[inventory.Entry],
    extra: tuple[api.ObjectRef, ...],
    *,
    namespace: str,
    written: dict[str, dict[str, Any]],
) -> Report:
    """The health of the inventory `entries` (from the live cache, or from what this
    reconcile wrote or read when the cache has not seen that yet) and of the `extra`
    objects of spec.healthChecks (GET as `client`; `namespace` for those that name none)."""
    found: list[tuple[str, kstatus.Health]] = []
    for entry in entries:
        resource = await client.resource_in_group(entry.v, entry.kind)
        if resource is None:
            found.append((entry.id, kstatus.Health(kstatus.UNKNOWN, f"the API server does not serve {entry.v}")))
            continue
        cache.ensure(resource)
        obj = _fresher(cache.get(resource, entry.namespace or None, entry.name), written.get(entry.id))
        if obj is watchcache.UNKNOWN:
            obj = await client.get(resource, entry.namespace or None, entry.name)
        found.append((entry.id, kstatus.of(obj)))
    for ref in extra:
        resource = await client.resource_in_group(ref.api_version, ref.kind)
        ref_namespace = (ref.namespace or namespace) if resource is None or resource.namespaced else None
        group = ref.api_version.rpartition("/")[0]
        ref_id = f"{ref_namespace or ''}_{ref.name}_{group}_{ref.kind}"
        if resource is None:
            found.append((ref_id, kstatus.Health(kstatus.UNKNOWN, f"the API server does not serve {ref.api_version}")))
            continue
        found.append((ref_id, kstatus.of(await client.get(resource, ref_namespace, ref.name))))
    found = [(i, _as_api(h)) for i, h in found]
    unhealthy = [(i, h.status, h.message) for i, h in found if h.status != kstatus.CURRENT]
    unhealthy.sort(key=lambda u: kstatus.rank(u[1]))
    return Report(kstatus.worst(h for _, h in found), tuple(unhealthy))


def _as_api(health: kstatus.Health) -> kstatus.Health:
    """`health` in the four statuses of a Sync's status (api.md: Current, InProgress,
    Failed, Unknown): an object being deleted or not there (yet) is waited for, InProgress,
    and its message says which."""
    if health.status in (kstatus.TERMINATING, kstatus.NOT_FOUND):
        return kstatus.Health(kstatus.IN_PROGRESS, health.message or health.status)
    return health


def _fresher(cached: Any, written: dict[str, Any] | None) -> Any:
    """The cache's copy, unless it has not seen the object this reconcile wrote (or
    read) yet: not there, or of an older generation."""
    if written is None or (
        cached is not watchcache.UNKNOWN and cached is not None and _generation(cached) >= _generation(written)
    ):
        return cached
    return written


def _generation(obj: dict[str, Any]) -> int:
    generation = (obj.get("metadata") or {}).get("generation")
    return generation if isinstance(generation, int) else 0


async def explain(client: kube.Client, cache: watchcache.LiveCache, report: Report) -> Report:
    """`report` with, for each workload that is not Current, the worst of its Pods named
    (a Deployment says "0 of 2 available"; its Pod says ImagePullBackOff): one LIST of
    Pods per such workload, as the Sync's identity, only when a wait has failed."""
    explained = []
    for entry_id, status, message in report.unhealthy:
        why = await _worst_pod(client, cache, inventory.Entry(entry_id, ""))
        explained.append((entry_id, status, f"{message}; {why}" if why else message))
    return dataclasses.replace(report, unhealthy=tuple(explained))


async def _worst_pod(client: kube.Client, cache: watchcache.LiveCache, entry: inventory.Entry) -> str:
    """`Pod NAME: why` for the worst Pod of a workload that is not Current, or ''."""
    if (entry.group, entry.kind) not in WORKLOADS:
        return ""
    resource = await client.resource_in_group(f"{entry.group}/v1", entry.kind)
    live = cache.get(resource, entry.namespace, entry.name) if resource is not None else None
    if live is watchcache.UNKNOWN or not live:
        return ""
    labels = ((live.get("spec") or {}).get("selector") or {}).get("matchLabels")
    if not labels:
        return ""
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    pods = (await client.list(kube.PODS, entry.namespace, selector=selector)).get("items") or []
    found = [
        (kstatus.of({"apiVersion": "v1", "kind": "Pod", **p}), p["metadata"]["name"]) for p in pods
    ]  # LIST items name no kind
    worst = sorted(found, key=lambda w: kstatus.rank(w[0].status))
    if not worst or worst[0][0].status == kstatus.CURRENT:
        return ""
    health, name = worst[0]
    return f"Pod {name}: {health.message or health.status}"
