"""The plan of a revision of a Sync against the live cluster, without writing anything.

The same steps as a Sync's validation (`sync.plan`: pair, server-side dry-run as the
Sync's identity, JSON patch from live to the dry-run's result, ownership), stopped
before the first write, plus what the Sync's prune would delete: the Preview
controller plans each pull request with it and `pullsync diff` a local directory.
Objects that a Sync would dry-run only after its stage 1 (in a Namespace, or of a CRD,
that the same revision creates or changes) cannot be dry-run before that exists: they
are checked in an existing namespace, and their patch is what git says of them.
"""

import functools
from typing import Any

import jsonpatch

from pullsync import api, kube
from pullsync.kube import fingerprint, watchcache
from pullsync.preview import report
from pullsync.render.documents import Document
from pullsync.sync import apply, inventory, plan


class Unavailable(Exception):
    """The API server could not answer now (no answer, 429, 5xx): no plan, try again."""


async def plan_revision(
    client: kube.Client,
    docs: list[Document],
    *,
    operator: kube.Client,
    sync_namespace: str,
    sync_name: str,
    spec: api.SyncSpec,
    old_inventory: list[inventory.Entry],
    revision: str,
    concurrency: int,
    cache: watchcache.LiveCache | None = None,
) -> report.Report:
    """The Report of `docs` as the next revision of the Sync `sync_namespace/sync_name`
    (`client`: the Sync's identity; `operator`: the operator's, for what a Sync reads
    with it). Failures of the revision are the Report's errors, as the Sync would say
    them; failures of the moment (the API server unavailable, 429, 5xx) raise
    `Unavailable`: they say nothing of the revision."""

    def failed(message: str) -> report.Report:
        return report.Report(sync_namespace, sync_name, revision, [], 0, [message])

    if not docs:
        return failed(f"no objects found under {spec.path!r}; a Sync refuses to apply an empty set")
    try:
        items = await plan.prepare(
            client, docs, target_namespace=spec.target_namespace or sync_namespace, operator=operator, cache=cache
        )
        planned: list[plan.Planned] = []
        for stage in (1, 2):
            ready = [i for i in items if i.stage == stage and not i.deferred]
            planned += await plan.dry_run(client, ready, force=spec.force, concurrency=concurrency, cache=cache)
            if stage == 1:
                plan.defer_dependents(items, planned)
        await plan.check_claims(planned, owner=(sync_namespace, sync_name), operator=operator)
        await plan.probe_new_namespaces(client, items, namespace=sync_namespace, concurrency=concurrency)
        deferred = await plan.bounded(
            concurrency, (functools.partial(_after_stage1, client, i) for i in items if i.deferred)
        )
        pruned = await _pruned(
            client,
            spec=spec,
            old=old_inventory,
            items=items,
            sync_namespace=sync_namespace,
            sync_name=sync_name,
            concurrency=concurrency,
        )
    except plan.PlanError as e:
        if e.transient:
            raise Unavailable(str(e)) from e
        return failed(str(e))
    except kube.ApiError as e:
        if kube.transient(e):
            raise Unavailable(str(e)) from e
        return failed(f"the API server answered: {e}")
    failures = [e for e in [*deferred, *pruned] if isinstance(e, BaseException)]
    lasting = [e for e in failures if not kube.transient(e)]
    if lasting:
        return failed(f"the API server answered: {lasting[0]}")
    if failures:
        raise Unavailable(str(failures[0])) from failures[0]
    changes = [_change(p) for p in sorted(planned, key=lambda p: (p.item.rank, p.item.entry.id)) if p.changed]
    changes += [c for c in deferred if c is not None]
    changes += [
        report.Change(report.PRUNE, e.id, e.kind, e.namespace, e.name, "", [])
        for e, gone in zip(inventory.stale(old_inventory, [i.entry for i in items]), pruned, strict=True)
        if gone
    ]
    unchanged = sum(1 for p in planned if not p.changed)
    return report.Report(sync_namespace, sync_name, revision, changes, unchanged, [])


def _change(planned: plan.Planned) -> report.Change:
    """A created, changed or recreated object, with its patch (Secret values hidden)."""
    item = planned.item
    if planned.recreate:
        action, patch = report.RECREATE, _desired_patch(None, item.obj)
    else:
        action, patch = (report.CREATE if planned.live is None else report.CHANGE), planned.patch
    return _of(item, action, patch)


def _of(item: plan.Item, action: str, patch: list[dict[str, Any]]) -> report.Change:
    entry = item.entry
    patch = report.hide_secret_values(entry.kind, patch)
    return report.Change(action, entry.id, entry.kind, entry.namespace, entry.name, item.doc.where, patch)


async def _after_stage1(client: kube.Client, item: plan.Item) -> report.Change | None:
    """An object a Sync plans only after stage 1: its patch is what git says of it."""
    meta = item.obj["metadata"]
    live = None if item.new_namespace else await client.get(item.resource, meta.get("namespace"), meta["name"])
    patch = _desired_patch(live, item.obj)
    if live is not None and not patch:
        return None
    return _of(item, report.CREATE if live is None else report.CHANGE, patch)


def _desired_patch(live: dict[str, Any] | None, desired: dict[str, Any]) -> list[dict[str, Any]]:
    """The patch from `live` to what git says, without removals: the server would keep
    the fields it defaults, which git does not name."""
    ops = jsonpatch.make_patch(fingerprint.normalise(live or {}), fingerprint.normalise(desired)).patch
    return [op for op in ops if op["op"] != "remove"]


async def _pruned(
    client: kube.Client,
    *,
    spec: api.SyncSpec,
    old: list[inventory.Entry],
    items: list[plan.Item],
    sync_namespace: str,
    sync_name: str,
    concurrency: int,
) -> list[Any]:
    """For each stale entry: whether the Sync's prune would delete it (it is still there,
    still the Sync's, not protected); all False without `prune`."""
    stale = inventory.stale(old, [i.entry for i in items])
    labels = api.owner_labels(sync_name, sync_namespace)

    async def deletes(entry: inventory.Entry) -> bool:
        if not spec.prune:
            return False
        resource = await client.resource_in_group(entry.v, entry.kind)
        live = await client.get(resource, entry.namespace or None, entry.name) if resource is not None else None
        return live is not None and apply.prunable(live, labels)

    return await plan.bounded(concurrency, (functools.partial(deletes, e) for e in stale))
