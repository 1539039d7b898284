"""Apply and prune: write the plan to the cluster.

Only objects whose patch is non-empty are written, with server-side apply as field
manager `pullsync`, kind by kind (`plan.KIND_ORDER`; kinds that need none of each
other go at once), each kind in bounded concurrency (Services lower: the server
allocates their IPs one at a time).
Stage 1 (Namespaces, CRDs, ClusterRoles, Roles) goes first and CRDs must be
`Established` before what waited for stage 1 is dry-run and applied. Prune deletes only
objects that still carry the Sync's owner labels and lack `pullsync.dev/prune: disabled`,
in the reverse order: custom resources before their CRD, Namespaces last.
"""

import asyncio
import dataclasses
import functools
import logging
import time
from typing import Any

from pullsync import api, kube
from pullsync.kube import watchcache
from pullsync.runtime import metrics
from pullsync.sync import inventory
from pullsync.sync.plan import CRD, Planned, bounded, describe_failure, rank, waves

log = logging.getLogger("pullsync.sync")
CRDS = kube.Resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False)


# Kinds whose writes the API server serialises: a Service's ClusterIP (and NodePort) comes
# from one allocation record in etcd, updated by compare-and-swap, so concurrent creates
# conflict and retry inside the server (measured: 16 in flight, ~100 ms each, 1000
# objects' Services in 2.6 s; 2 in flight, ~6 ms each, 1.5 s).
KIND_CONCURRENCY = {"Service": 2}
# Kinds none of which needs another of them to exist first: one wave, each kind with its
# own concurrency (Services, slow and serial, no longer hold up the ConfigMaps).
TOGETHER = (rank("Secret"), rank("PodDisruptionBudget"))


def tier(kind: str) -> int:
    """The wave of `kind`: its rank, shared by the kinds of `TOGETHER`."""
    r = rank(kind)
    return TOGETHER[0] if TOGETHER[0] <= r <= TOGETHER[1] else r


class ApplyError(Exception):
    """Some writes failed; `reason` is a condition reason; `transient` when only the
    server's state (no answer, 429, 5xx) made them fail."""

    def __init__(self, reason: str, message: str, *, transient: bool = False) -> None:
        self.reason = reason
        self.transient = transient
        super().__init__(message)


@dataclasses.dataclass
class Writes:
    """What one reconcile has written so far, kept by its caller: read when the reconcile
    ends early (an error, its timeout), so that nothing written is ever forgotten."""

    begun: list[Planned] = dataclasses.field(default_factory=list)  # about to be sent (maybe done, maybe not)
    done: list[Planned] = dataclasses.field(default_factory=list)
    results: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # id -> the object written

    def applied(self) -> list[Planned]:
        """What was written, in apply order (kinds, then files), not in order of completion."""
        return sorted(self.done, key=lambda p: (p.item.rank, p.item.doc.path, p.item.doc.index))


async def apply(client: kube.Client, planned: list[Planned], *, concurrency: int, writes: Writes) -> None:
    """Apply every changed object, kind by kind in `plan.KIND_ORDER` (the kinds of
    `TOGETHER` at once), recording each in `writes`. ApplyError (and nothing of a later
    wave written) if any write failed."""
    for wave in waves([p for p in planned if p.changed], key=lambda p: tier(p.item.obj["kind"])):
        kinds: dict[str, list[Planned]] = {}
        for p in wave:
            kinds.setdefault(p.item.obj["kind"], []).append(p)
        by_kind = await asyncio.gather(
            *(
                bounded(
                    min(concurrency, KIND_CONCURRENCY.get(kind, concurrency)),
                    (functools.partial(_apply_one, client, p, writes) for p in group),
                )
                for kind, group in kinds.items()
            )
        )
        sent = [p for group in kinds.values() for p in group]
        results = [r for group_results in by_kind for r in group_results]
        failed = [(p.item, r) for p, r in zip(sent, results, strict=True) if isinstance(r, BaseException)]
        metrics.OBJECTS_APPLIED.inc(len(wave) - len(failed))
        if failed:
            described = [describe_failure(item, error) for item, error in failed]
            reason = api.ACCESS_DENIED if any(r == api.ACCESS_DENIED for r, _ in described) else api.APPLY_FAILED
            transient = all(kube.transient(e) for _, e in failed)
            raise ApplyError(reason, "; ".join(m for _, m in described[:5]), transient=transient)


async def _apply_one(client: kube.Client, planned: Planned, writes: Writes) -> None:
    item, live = planned.item, planned.live
    meta = item.obj["metadata"]
    writes.begun.append(planned)
    if planned.recreate and live is not None:
        await client.delete(item.resource, meta.get("namespace"), meta["name"], uid=live["metadata"].get("uid"))
        await _wait_gone(client, item.resource, meta.get("namespace"), meta["name"])
    try:
        writes.results[item.entry.id] = await client.apply(item.resource, item.obj)
    except kube.ApiError as e:
        if not kube.transient(e) and not planned.recreate:  # refused: nothing was written
            writes.begun.remove(planned)
        raise
    writes.done.append(planned)


async def _wait_gone(client: kube.Client, resource: kube.Resource, namespace: str | None, name: str) -> None:
    deadline = time.monotonic() + 60
    while await client.get(resource, namespace, name) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{resource.kind}/{name} was not deleted within 60s")
        await asyncio.sleep(0.2)


async def wait_established(client: kube.Client, written: list[Planned], *, timeout: float) -> None:
    """Wait until every CRD among `written` is Established; refresh discovery for their kinds."""
    deadline = time.monotonic() + timeout
    for item in (p.item for p in written):
        if item.group_kind != CRD:
            continue
        name = item.obj["metadata"]["name"]
        while not _established(await client.get(CRDS, None, name)):
            if time.monotonic() > deadline:
                raise ApplyError(api.APPLY_FAILED, f"CustomResourceDefinition {name} is not Established")
            await asyncio.sleep(0.1)
        spec = item.obj.get("spec", {})
        for version in spec.get("versions", []):
            client.discovery.forget(f"{spec.get('group')}/{version.get('name')}")


def _established(crd: dict[str, Any] | None) -> bool:
    conditions = ((crd or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


@dataclasses.dataclass
class PruneResult:
    pruned: list[inventory.Entry] = dataclasses.field(default_factory=list)
    kept: list[inventory.Entry] = dataclasses.field(default_factory=list)  # still ours, delete failed
    failures: list[str] = dataclasses.field(default_factory=list)
    transient: bool = False  # every failure was the API server's state (no answer, 429, 5xx)


async def prune(
    client: kube.Client,
    stale: list[inventory.Entry],
    *,
    sync_name: str,
    sync_namespace: str,
    concurrency: int,
    cache: watchcache.LiveCache | None = None,
) -> PruneResult:
    """Delete the stale entries that are still ours, kind by kind in the reverse of the apply
    order (custom resources before their CRD, Namespaces last). Deletions by pullsync are
    not drift: the live cache is told before each one."""
    result = PruneResult()
    outcomes_all: list[Any] = []
    labels = api.owner_labels(sync_name, sync_namespace)
    for api_version in {e.v for e in stale}:  # a version may have left the server since it was applied
        client.discovery.forget(api_version)
    for batch in waves(stale, key=lambda e: -rank(e.kind)):
        outcomes = await bounded(concurrency, (functools.partial(_prune_one, client, e, labels, cache) for e in batch))
        outcomes_all += outcomes
        for entry, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                result.kept.append(entry)
                result.failures.append(f"{entry.describe()}: {_message(outcome)}")
            elif outcome:
                result.pruned.append(entry)
                metrics.OBJECTS_PRUNED.inc()
    errors = [o for o in outcomes_all if isinstance(o, BaseException)]
    result.transient = bool(errors) and all(kube.transient(e) for e in errors)
    return result


async def _prune_one(
    client: kube.Client, entry: inventory.Entry, labels: dict[str, str], cache: watchcache.LiveCache | None
) -> bool:
    """True if deleted; False if gone already, no longer ours, or protected."""
    resource = await client.resource_in_group(entry.v, entry.kind)
    if resource is None:
        return False  # the API (CRD) is gone, and with it the object
    live = await client.get(resource, entry.namespace or None, entry.name)
    if live is None:
        return False
    if not prunable(live, labels):
        why = "it carries pullsync.dev/prune: disabled" if api.is_disabled(live, api.ANNOTATION_PRUNE) else "not ours"
        log.info("not pruning %s: %s (it leaves the inventory)", entry.describe(), why)
        return False
    if cache is not None:
        cache.forget(resource, entry.namespace or None, entry.name)
    return await client.delete(resource, entry.namespace or None, entry.name, uid=live["metadata"].get("uid"))


def prunable(live: dict[str, Any], labels: dict[str, str]) -> bool:
    """A live object that a prune may delete: it still carries the Sync's owner `labels`
    and lacks `pullsync.dev/prune: disabled`."""
    live_labels = live.get("metadata", {}).get("labels") or {}
    return all(live_labels.get(k) == v for k, v in labels.items()) and not api.is_disabled(live, api.ANNOTATION_PRUNE)


def _message(error: BaseException) -> str:
    if isinstance(error, kube.ApiError):
        return f"delete denied: {error.message}" if error.status == 403 else error.message
    return f"{type(error).__name__}: {error}"
