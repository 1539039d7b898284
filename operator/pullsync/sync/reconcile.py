"""Sync reconciliation: a linear pipeline (source, render, validate, apply, prune) and
one place that writes status.

One `SyncLoop` runs per Sync. It reconciles when the spec or the requestedAt annotation
changes, when its GitRepository publishes a new revision, every `interval` (drift
correction) and `retryInterval` after a failure. Each step records what it did in a
`Turn` and raises with a reason when it fails; however a turn ends, `finish` writes its
status, with every object it may have written in the inventory (written ahead, before
the first write). Nothing is written before every object that can be checked is
validated, and the last applied revision stays in place when a new one is bad. While
`prune` is true the Sync holds pullsync's finalizer, and its deletion is handled by the
same loop after the reconcile in flight: what that reconcile wrote is pruned too.
"""

import asyncio
import concurrent.futures
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import pygit2

from pullsync import api, kube
from pullsync.api import clock, conditions
from pullsync.api.conditions import Outcome
from pullsync.health import status as kstatus
from pullsync.kube import events, fingerprint, watchcache
from pullsync.render import build, documents, trees
from pullsync.runtime import bus, loops, metrics
from pullsync.runtime.services import Services
from pullsync.sync import apply, healthcheck, history, inventory, plan

log = logging.getLogger("pullsync.sync")

KIND = "Sync"
FINALIZE_ATTEMPTS = 5  # prune attempts when a Sync is deleted, FINALIZE_RETRY seconds apart
FINALIZE_RETRY = 5.0
WAIT_POLL = 5.0  # seconds between health checks while `wait` waits, whatever else wakes the Sync
HEALTH_RECHECK = 1.0  # at most one health-only turn per second (status of its objects moved)
CONDITION_LIMIT = 400  # characters of the Ready message (the STATUS column); events carry the rest
STAGE_REASONS = {
    "render": api.BUILD_FAILED,
    "validate": api.VALIDATION_FAILED,
    "apply": api.APPLY_FAILED,
    "prune": api.PRUNE_FAILED,
    "health": api.HEALTH_CHECK_FAILED,
}


@dataclasses.dataclass
class Result:
    """What one reconcile did, for status and events."""

    outcome: Outcome
    revision: str | None = None  # attempted
    applied: bool = False
    entries: list[inventory.Entry] | None = None  # the new inventory; None: keep the old one
    plan: dict[str, int] | None = None
    changes: list[str] = dataclasses.field(default_factory=list)
    warn: bool = True  # a failure worth a Warning event (not a source still fetching its first revision)
    transient: bool = False  # failed only for the API server's state (no answer, 429, 5xx): retry soon
    history: list[dict[str, Any]] | None = None  # status.history with this reconcile in it; None: as it was
    health: healthcheck.Report | None = None  # the applied objects' health; None: as it was

    @property
    def warns(self) -> bool:
        """A failure worth a Warning event and a warning in the log."""
        return self.outcome.ready == "False" and self.outcome.reason != api.SUSPENDED and self.warn


@dataclasses.dataclass
class Turn:
    """One reconcile in flight: what it has done so far, so that however it ends (a
    failed step, an API error, the timeout, a bug) status says what it wrote."""

    revision: str
    old: list[inventory.Entry]  # the inventory before this turn
    news: bool = False  # a revision or spec not attempted before: worth a Progressing status before writing
    stage: str = "render"
    objects: int = 0
    writes: apply.Writes = dataclasses.field(default_factory=apply.Writes)
    desired: list[inventory.Entry] = dataclasses.field(default_factory=list)  # once everything is applied

    def failed(self, reason: str, message: str, *, transient: bool = False) -> Result:
        """The result of a turn that a failed step, an API error or the timeout ended."""
        done = self.writes.applied()
        if done:
            message += f" (applied before the failure: {', '.join(p.item.entry.describe() for p in done)})"
        return self.ended(Outcome.failure(reason, message), transient=transient)

    def crashed(self, error: BaseException) -> Result:
        """The result of a turn that a bug ended: said as such."""
        return self.ended(Outcome.unexpected(error, self.stage))

    def ended(self, outcome: Outcome, *, transient: bool = False) -> Result:
        """The inventory keeps every object that this turn may have written (and, from the
        prune on, the whole desired set), so a later prune or the Sync's deletion finds them."""
        touched = [p.item.entry for p in self.writes.begun] + self.desired
        return Result(
            outcome,
            revision=self.revision,
            entries=self.old + touched if touched else None,
            plan=summarise(self.objects, self.writes.applied(), []),  # what this attempt did, not the last success
            transient=transient,
        )


def plan_stands(status: Mapping[str, Any], generation: Any, artifact: bus.Artifact | None) -> bool:
    """Whether the plan in `status` is that of a turn that applied `artifact` at this
    `generation`, with no failure since: a turn that then applies and finds nothing to
    change keeps it, whatever woke it (the interval, drift, a request, a restart)."""
    reason = next((c.get("reason") for c in status.get("conditions") or () if c.get("type") == api.READY), None)
    return (
        artifact is not None
        and status.get("observedGeneration") == generation
        and status.get("lastAppliedRevision") == artifact.revision == status.get("lastAttemptedRevision")
        and reason in (api.SUCCEEDED, api.PROGRESSING, api.HEALTH_CHECK_FAILED)  # applied, whatever the health
    )


def acting_client(services: Services, namespace: str, spec: api.SyncSpec) -> kube.Client:
    """The client a Sync acts with: its ServiceAccount's identity when it names one, or
    the operator's --default-service-account."""
    account = spec.service_account_name or services.config.default_service_account
    if not account:
        return services.client
    # Only the user: the API server adds a ServiceAccount's groups itself, and impersonating
    # groups would need a right (`impersonate groups`) the chart does not grant.
    return services.client.impersonating(f"system:serviceaccount:{namespace}:{account}")


# Renders wait here, not in the default executor: a burst of slow kustomize builds must
# not hold up the git polls and fetches that run there.
RENDER_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="pullsync-render")


@dataclasses.dataclass(frozen=True)
class Rendered:
    """A render kept for the next reconcile: valid while its inputs (`key`: source,
    path, helm, limits) are the same and a commit shows what it `observed` the same."""

    key: tuple[Any, ...]
    commit: str
    author: str  # of the commit: "Name <email>"
    observed: dict[tuple[str, str], str | None]  # what the render learned from the commit
    documents: str  # as JSON: each reconcile gets fresh copies


class ArtifactError(documents.RenderError):
    """The source's commit cannot be read from the git cache of this host."""

    reason = api.ARTIFACT_FAILED


class SyncLoop(loops.ObjectLoop):
    """The reconciler of one Sync; call it to take one turn."""

    kind = KIND

    def __init__(
        self,
        services: Services,
        namespace: str,
        name: str,
        body: Callable[[], Mapping[str, Any]],
        *,
        repositories: loops.Lookup,
    ) -> None:
        super().__init__(services, namespace, name, body)
        self.repositories = repositories  # the GitRepositories this process reconciles, by (namespace, name)
        self.verified: plan.Verified = {}  # what this loop last applied or checked, per object
        self.rendered: Rendered | None = None
        self.written: dict[str, Any] = {}  # the status fields this loop wrote last (newer than a cached body)
        self.unsaved: dict[str, Any] = {}  # status a failed write could not save: sent with the next one
        self.finalize_attempts = 0
        self.source_waits = 0  # reconciles in a row without a revision to apply
        self.transient_failures = 0  # reconciles in a row that failed for the API server's state
        self.finalizer_written: str | None = None  # the resourceVersion our last finalizer change was based on
        self.waiting_since: tuple[str, float] | None = None  # (revision, when applied) while `wait` waits
        self.health_only: tuple[Any, ...] | None = None  # `seen` of a Ready turn whose health the cache can tell
        self.health_checked = 0.0  # when `recheck_health` last ran

    def status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The status as this loop knows it: the body's, what it wrote since, what is due."""
        return {**(body.get("status") or {}), **self.written, **self.unsaved}

    async def take_turn(self) -> float:
        body = self.body()
        meta = body.get("metadata", {})
        if meta.get("deletionTimestamp"):
            return await self.finalize(body)
        requested = (meta.get("annotations") or {}).get(api.ANNOTATION_REQUESTED_AT)
        try:
            spec = api.SyncSpec.parse(body.get("spec") or {})
        except ValueError as e:
            await self.finish(
                body, Result(Outcome.failure(api.VALIDATION_FAILED, str(e), stalled=True)), requested=requested
            )
            return 3600.0
        if (api.FINALIZER in (meta.get("finalizers") or [])) != spec.prune and meta.get("resourceVersion") != (
            self.finalizer_written  # else this body predates our own write of the finalizer
        ):
            await self.set_finalizer(meta, spec.prune)  # a Sync that prunes prunes when deleted, too
        source_key: bus.Key = ("GitRepository", spec.source_namespace or self.namespace, spec.source_name)
        self.services.bus.listen(self.key, source_key)
        artifact = self.services.bus.artifact(source_key)
        seen = (meta.get("generation"), requested, artifact)
        now = time.monotonic()
        drifted = self.services.bus.take_request(self.key)  # the live cache saw a change
        status_moved = self.services.take_status_change(self.key)  # a controller wrote status of ours
        if seen == self.seen and now < self.next_due and not drifted:
            if not status_moved:
                return self.next_due - now
            if self.health_only == seen:  # no render, no plan: the health, from the live cache
                pause = self.health_checked + HEALTH_RECHECK - now
                if pause > 0:  # a rollout writes status many times a second: look at most once per HEALTH_RECHECK
                    self.services.status_changed.add(self.key)
                    return min(pause, self.next_due - now)
                self.health_checked = now
                await self.recheck_health(body)
                return self.next_due - now
            # else (waiting for health, a failed turn, no live cache): a whole turn
        kept = plan_stands(self.status(body), meta.get("generation"), artifact)
        self.seen = seen
        started = time.monotonic()
        result = await self.reconcile(body, spec, source_key, artifact)
        if result is None:  # waiting for the poller: its artifact (or first failure) wakes us
            self.next_due = started + spec.retry_interval
            return spec.retry_interval
        if result.outcome.reason == api.DEPENDENCY_NOT_READY:
            self.seen = None  # a dependency that becomes Ready wakes us: then apply
        metrics.RECONCILE_SECONDS.labels(KIND, result.outcome.ready).observe(time.monotonic() - started)
        cached = acting_client(self.services, self.namespace, spec) is self.services.client
        self.health_only = (
            seen if result.applied and result.outcome.ready == "True" and cached and not spec.wait else None
        )
        if kept and result.applied and not result.changes:
            result.plan = None  # a turn that found nothing to do keeps the plan of the one that applied
        await self.finish(body, result, requested=requested)
        self.transient_failures = self.transient_failures + 1 if result.transient else 0
        if result.outcome.ready == "True":
            delay = spec.interval
        elif self.waiting_since is not None and result.outcome.reason == api.PROGRESSING:
            # `wait`: the watch of what it applied wakes it; healthChecks objects are looked at again
            remaining = self.waiting_since[1] + spec.timeout - time.monotonic()
            delay = max(1.0, min(spec.retry_interval, remaining, WAIT_POLL))
        elif result.transient:  # back off from 2 s: the API server is likely back before retryInterval
            delay = min(spec.retry_interval, 2.0**self.transient_failures)
        else:
            delay = spec.retry_interval
        self.next_due = started + delay  # a steady period, whatever the reconcile costs
        return max(0.0, self.next_due - time.monotonic())

    async def recheck_health(self, body: Mapping[str, Any]) -> None:
        """A controller wrote status of an object this Sync applied, and nothing else
        changed since its last turn, which was Ready without `wait`: only the health can
        have moved. Read it from the live cache (no request) and write status only if it
        did. (With `wait`, a failed turn or a Sync acting as a ServiceAccount, the whole
        turn runs instead.)"""
        status = self.status(body)
        revision = str(status.get("lastAppliedRevision") or "")
        report = await healthcheck.check(
            self.services.client,
            self.services.live,
            inventory.load(status),
            (),
            namespace=self.namespace,
            written={},
        )
        if report.as_status() == status.get("health"):
            return
        applied = Outcome.success(f"Applied revision: {revision}")
        await self.finish(body, Result(applied, revision=revision, applied=True, health=report))

    def release(self) -> None:
        """The Sync is gone."""
        self.services.bus.forget(self.key)
        metrics.set_sync_health(self.namespace, self.name, None)

    async def set_finalizer(self, meta: Mapping[str, Any], present: bool) -> None:
        """Add or remove pullsync's finalizer; a conflict means a newer body is on its way."""
        finalizers = [f for f in meta.get("finalizers") or [] if f != api.FINALIZER] + ([api.FINALIZER] * present)
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}
        try:
            await self.services.client.merge_patch(kube.SYNCS, self.namespace, self.name, patch)
        except kube.ApiError as e:
            if e.status not in (404, 409):
                raise
        self.finalizer_written = meta.get("resourceVersion")

    async def finalize(self, body: Mapping[str, Any]) -> float:
        """The Sync is being deleted: with `prune: true`, delete what it applied (what the
        last reconcile wrote included), then let it go. After a few failed attempts it
        lets go anyway, so that deletion never hangs; what stayed is logged."""
        meta = body["metadata"]
        if api.FINALIZER not in (meta.get("finalizers") or []):
            return 3600.0
        status = self.status(body)
        result = await prune_all(self.services, {**body, "status": status})
        if result.failures and self.finalize_attempts < FINALIZE_ATTEMPTS:
            self.finalize_attempts += 1
            message = "prune on deletion failed: " + "; ".join(result.failures[:5])
            log.warning("Sync %s/%s: %s (attempt %d)", self.namespace, self.name, message, self.finalize_attempts)
            await self.events.warning(body, api.PRUNE_FAILED, message)
            return FINALIZE_RETRY
        kept = f"; kept after {FINALIZE_ATTEMPTS} attempts: {', '.join(result.failures)}" if result.failures else ""
        log.info("Sync %s/%s deleted: pruned %d objects%s", self.namespace, self.name, len(result.pruned), kept)
        await self.set_finalizer(meta, False)
        return 3600.0

    async def reconcile(
        self, body: Mapping[str, Any], spec: api.SyncSpec, source_key: bus.Key, artifact: bus.Artifact | None
    ) -> Result | None:
        if spec.suspend:
            return Result(Outcome.failure(api.SUSPENDED, "reconciliation is suspended"))
        if source_key[1] != self.namespace and not self.services.config.allow_cross_namespace_refs:
            message = (
                f"spec.sourceRef: GitRepository {source_key[1]}/{source_key[2]} is in another namespace; "
                "the operator does not allow cross-namespace references (--allow-cross-namespace-refs)"
            )
            return Result(Outcome.failure(api.ACCESS_DENIED, message, stalled=True))
        waiting = self.waiting_for_dependencies(spec)
        if waiting is not None:
            return waiting
        if artifact is None:
            return await self.source_not_ready(source_key)
        self.source_waits = 0
        started = time.monotonic()
        status = self.status(body)
        new_spec = status.get("observedGeneration") != body.get("metadata", {}).get("generation")
        news = new_spec or artifact.revision != status.get("lastAttemptedRevision")
        turn = Turn(artifact.revision, inventory.load(status), news)
        try:
            async with self.services.pipelines:  # a turn, not its wait for one, counts against spec.timeout
                result = await asyncio.wait_for(self.pipeline(turn, body, spec, artifact), spec.timeout)
        except TimeoutError:
            message = f"timed out after {spec.timeout:g}s during {turn.stage} (spec.timeout)"
            result = turn.failed(STAGE_REASONS[turn.stage], message)
        except kube.ApiError as e:
            reason = api.ACCESS_DENIED if e.status == 403 else STAGE_REASONS[turn.stage]
            result = turn.failed(reason, f"{turn.stage}: {e}", transient=kube.transient(e))
        except Exception as e:  # a bug: said as such, and what was written stays in the inventory
            log.exception("Sync %s/%s: unexpected error during %s", self.namespace, self.name, turn.stage)
            result = turn.crashed(e)
        elapsed = time.monotonic() - started
        rendered = self.rendered
        if turn.stage != "render" and rendered is not None and rendered.commit == artifact.commit:
            result.history = history.record(
                status.get("history") or [],
                set_digest=history.digest(rendered.documents),
                revision=artifact.revision,
                author=rendered.author,
                message=artifact.message,
                status=result.outcome.reason,
                seconds=elapsed,
                now=clock.now(),
                changed=bool(result.changes),
            )
        quiet = not result.changes and result.outcome.ready == "True"
        level = logging.WARNING if result.warns else logging.DEBUG if quiet else logging.INFO
        counts = ""
        if result.plan:
            p = result.plan
            counts = f": {p['objects']} objects, {p['created']} created, {p['changed']} changed, {p['pruned']} pruned"
        log.log(level, "Sync %s/%s: %s%s (%.2fs)", self.namespace, self.name, result.outcome.message, counts, elapsed)
        return result

    def waiting_for_dependencies(self, spec: api.SyncSpec) -> Result | None:
        """Why this Sync may not apply yet: a Sync of spec.dependsOn that is not Ready at
        its current revision, a reference to another namespace, a cycle; None if none.
        A dependency that becomes Ready wakes this loop at once (`bus.announce`)."""
        keys = tuple((KIND, namespace or self.namespace, name) for namespace, name in spec.depends_on)
        self.services.bus.depend(self.key, keys)
        foreign = [k for k in keys if k[1] != self.namespace]
        if foreign and not self.services.config.allow_cross_namespace_refs:
            message = (
                f"spec.dependsOn: Sync {foreign[0][1]}/{foreign[0][2]} is in another namespace; the operator "
                "does not allow cross-namespace references (--allow-cross-namespace-refs)"
            )
            return Result(Outcome.failure(api.ACCESS_DENIED, message, stalled=True))
        cycle = self.cycle()
        if cycle:
            path = " -> ".join(f"{k[1]}/{k[2]}" for k in cycle)
            return Result(Outcome.failure(api.DEPENDENCY_NOT_READY, f"spec.dependsOn: a cycle: {path}", stalled=True))
        waiting = [k for k in keys if not self.services.bus.ready(k)]
        if not waiting:
            return None
        named = [
            f"Sync {k[1]}/{k[2]}" + ("" if self.services.bus.ready(k) is False else " (not found yet)") for k in waiting
        ]
        return Result(
            Outcome.failure(api.DEPENDENCY_NOT_READY, f"waiting for {', '.join(named)} to be Ready"), warn=False
        )

    def cycle(self) -> list[bus.Key]:
        """A path of dependencies from this Sync back to itself, or []."""

        def walk(path: list[bus.Key], seen: set[bus.Key]) -> list[bus.Key]:
            for dependency in self.services.bus.dependencies(path[-1]):
                if dependency == self.key:
                    return [*path, dependency]
                if dependency not in seen:
                    seen.add(dependency)
                    found = walk([*path, dependency], seen)
                    if found:
                        return found
            return []

        return walk([self.key], set())

    async def source_not_ready(self, source_key: bus.Key) -> Result | None:
        """Why there is no revision to apply; None while there is nothing to say yet. A
        source whose first fetch is under way is no news: no status until it fails (its
        loop wakes this one) or still has nothing at the next retry; a Warning event only
        then, or once the source is missing at the retry. A source this process reconciles
        is read from its watch; any other (missing, of another shard) from the API server."""
        repo = self.repositories(source_key[1], source_key[2])
        if repo is None:
            repo = await self.services.client.get(kube.GITREPOSITORIES, source_key[1], source_key[2])
        self.source_waits += 1
        why = self.services.bus.failure(source_key) or ""  # fresher than a watched status
        if repo is None:
            message = f"GitRepository {source_key[1]}/{source_key[2]} not found"
        elif api.shard_of(repo) != self.services.config.shard:
            message = (
                f"GitRepository {source_key[1]}/{source_key[2]} is in {_shard(api.shard_of(repo))}, this Sync in "
                f"{_shard(self.services.config.shard)}: give both the same {api.LABEL_SHARD} label"
            )
            return Result(Outcome.failure(api.SOURCE_NOT_READY, message))
        elif (repo.get("status") or {}).get("artifact"):
            if not why:
                return None  # it has a revision that this process has not fetched yet
            message = f"GitRepository {source_key[1]}/{source_key[2]}: this operator cannot fetch its revision: {why}"
        else:
            if not why:
                _, why = conditions.ready_message((repo.get("status") or {}).get("conditions"))
            if not why and self.source_waits == 1:
                return None  # fetching: the artifact or the failure wakes this loop
            message = f"GitRepository {source_key[1]}/{source_key[2]} has no artifact yet" + (f": {why}" if why else "")
        return Result(Outcome.failure(api.SOURCE_NOT_READY, message), warn=bool(why) or self.source_waits > 1)

    async def pipeline(self, turn: Turn, body: Mapping[str, Any], spec: api.SyncSpec, artifact: bus.Artifact) -> Result:
        """Build, validate, apply (staged), prune: each step records what it did in `turn`
        and fails with a reason; nothing is written before everything checkable is valid."""
        client = acting_client(self.services, self.namespace, spec)
        # The live cache reads with the operator's identity: only for Syncs that act with it.
        cache = self.services.live if client is self.services.client else None
        try:
            docs = await self.build(turn, artifact, spec)
            items, planned = await self.validate(turn, client=client, cache=cache, docs=docs, spec=spec)
            await self.record_ahead(turn, body, items, planned)
            planned += await self.apply_staged(
                turn, client=client, cache=cache, items=items, planned=planned, spec=spec
            )
        except documents.RenderError as e:
            return turn.failed(e.reason, str(e))
        except (plan.PlanError, apply.ApplyError) as e:
            if isinstance(e, plan.PlanError) and e.missing_namespace:
                self.services.bus.await_namespace(e.missing_namespace, self.key)  # try again once it exists
            return turn.failed(e.reason, str(e), transient=e.transient)
        self.remember(planned, turn.writes, cache)
        pruned = await self.prune_stale(turn, client=client, cache=cache, items=items, spec=spec)
        changes = [f"{p.item.entry.describe()} {self.verb(p)}" for p in turn.writes.applied()] + [
            f"{e.describe()} pruned" for e in pruned.pruned
        ]
        summary = summarise(len(items), [p for p in planned if p.changed], pruned.pruned)
        entries = [i.entry for i in items] + pruned.kept
        turn.stage = "health"
        report = await healthcheck.check(
            client,
            self.services.live,
            [i.entry for i in items],
            spec.health_checks if spec.wait else (),
            namespace=spec.target_namespace or self.namespace,
            written={
                p.item.entry.id: obj for p in planned if (obj := turn.writes.results.get(p.item.entry.id, p.live))
            },
        )
        if pruned.failures:
            outcome = Outcome.failure(api.PRUNE_FAILED, "prune failed: " + "; ".join(pruned.failures[:5]))
            return Result(
                outcome,
                revision=turn.revision,
                entries=entries,
                plan=summary,
                changes=changes,
                transient=pruned.transient,
                health=report,
            )
        outcome = self.waited(report, spec, turn.revision)
        if outcome.reason == api.HEALTH_CHECK_FAILED:  # say why, from the Pods of what did not come up
            report = await healthcheck.explain(client, self.services.live, report)
            outcome = dataclasses.replace(outcome, message=f"{outcome.message}{report.describe()}")
        return Result(
            outcome,
            revision=turn.revision,
            applied=True,
            entries=entries,
            plan=summary,
            changes=changes,
            health=report,
        )

    def waited(self, report: healthcheck.Report, spec: api.SyncSpec, revision: str) -> Outcome:
        """Ready once applied, or, with `wait`, once every object is Current; after
        spec.timeout from the apply of this revision, HealthCheckFailed."""
        if not spec.wait or report.current:
            self.waiting_since = None
            return Outcome.success(f"Applied revision: {revision}")
        if self.waiting_since is None or self.waiting_since[0] != revision:
            self.waiting_since = (revision, time.monotonic())
        waited = time.monotonic() - self.waiting_since[1]
        if waited >= spec.timeout:
            message = f"not healthy {spec.timeout:g}s after revision {revision} was applied: "
            return Outcome.failure(api.HEALTH_CHECK_FAILED, message)  # the caller adds what is not, and why
        return Outcome.progressing(f"applied revision {revision}; waiting for {report.describe()}")

    async def build(self, turn: Turn, artifact: bus.Artifact, spec: api.SyncSpec) -> list[documents.Document]:
        """The documents at the artifact's commit under spec.path; never an empty set."""
        turn.stage = "render"
        try:
            docs = await self.render(artifact, spec)
        except (pygit2.GitError, OSError, KeyError) as e:  # the cache on this host (a commit gone from it too)
            raise ArtifactError(f"cannot read commit {artifact.commit} from the git cache: {e}") from None
        turn.objects = len(docs)
        if not docs:
            where = f"under {spec.path!r} at {turn.revision}"
            raise documents.RenderError(f"no objects found {where}; refusing to apply an empty set (nothing pruned)")
        return docs

    async def validate(
        self,
        turn: Turn,
        *,
        client: kube.Client,
        cache: watchcache.LiveCache | None,
        docs: list[documents.Document],
        spec: api.SyncSpec,
    ) -> tuple[list[plan.Item], list[plan.Planned]]:
        """Pair each document with where it lives, then plan it against its live object by
        a dry-run (stage 1 first: what depends on a changed CRD or role waits for it); check
        ownership and new namespaces. Returns every item, and the plans of those that did
        not wait for stage 1."""
        turn.stage = "validate"
        concurrency = self.services.config.max_concurrency
        items = await plan.prepare(
            client,
            docs,
            target_namespace=spec.target_namespace or self.namespace,
            operator=self.services.client,
            cache=cache,
        )
        planned: list[plan.Planned] = []
        for stage in (1, 2):
            ready = [i for i in items if i.stage == stage and not i.deferred]
            planned += await plan.dry_run(
                client, ready, force=spec.force, concurrency=concurrency, cache=cache, verified=self.verified
            )
            if stage == 1:
                plan.defer_dependents(items, planned)
        await plan.check_claims(planned, owner=(self.namespace, self.name), operator=self.services.client)
        await plan.probe_new_namespaces(client, items, namespace=self.namespace, concurrency=concurrency)
        return items, planned

    async def record_ahead(
        self, turn: Turn, body: Mapping[str, Any], items: list[plan.Item], planned: list[plan.Planned]
    ) -> None:
        """Before the first write, once all that could be checked is valid: write ahead (the
        inventory gets every object of the set that it lacks, so that a turn cut short where
        no status can follow, by SIGKILL or the leadership lost, leaves nothing it wrote
        unrecorded), and say Progressing for a new revision or spec that changes something
        (a first sync of thousands of objects takes a while). A drift check, a retry, or a
        commit that changes nothing live writes no status here; a retry after a write-ahead
        that could not be saved writes it again (what is only `unsaved` is not recorded)."""
        saved = {e.id for e in inventory.load({**(body.get("status") or {}), **self.written})}  # not `unsaved`
        new = [i.entry for i in items if i.entry.id not in saved]
        writes = any(p.changed for p in planned) or any(i.deferred for i in items)
        if not new and not (turn.news and writes):
            return
        held = {e.id for e in turn.old}
        turn.old = turn.old + [e for e in new if e.id not in held]
        applying = Outcome.progressing(f"applying revision {turn.revision}")
        await self.finish(body, Result(applying, revision=turn.revision, entries=turn.old))

    async def apply_staged(
        self,
        turn: Turn,
        *,
        client: kube.Client,
        cache: watchcache.LiveCache | None,
        items: list[plan.Item],
        planned: list[plan.Planned],
        spec: api.SyncSpec,
    ) -> list[plan.Planned]:
        """Stage 1, its CRDs Established, then what waited for it (planned now: returned),
        then the rest."""
        turn.stage = "apply"
        concurrency = self.services.config.max_concurrency
        first = [p for p in planned if p.item.stage == 1]
        await apply.apply(client, first, concurrency=concurrency, writes=turn.writes)
        await apply.wait_established(client, turn.writes.done, timeout=spec.timeout)  # only CRDs written now
        deferred = await plan.dry_run(
            client,
            [i for i in items if i.deferred],
            force=spec.force,
            concurrency=concurrency,
            cache=cache,
            verified=self.verified,
        )
        await plan.check_claims(deferred, owner=(self.namespace, self.name), operator=self.services.client)
        rest = [p for p in planned if p.item.stage == 2] + deferred
        await apply.apply(client, rest, concurrency=concurrency, writes=turn.writes)
        return deferred

    async def prune_stale(
        self,
        turn: Turn,
        *,
        client: kube.Client,
        cache: watchcache.LiveCache | None,
        items: list[plan.Item],
        spec: api.SyncSpec,
    ) -> apply.PruneResult:
        """Delete what the last inventory has and git no longer has (with `prune: true`)."""
        turn.stage = "prune"
        turn.desired = [i.entry for i in items]
        if not spec.prune:
            return apply.PruneResult()
        return await apply.prune(
            client,
            inventory.stale(turn.old, turn.desired),
            sync_name=self.name,
            sync_namespace=self.namespace,
            concurrency=self.services.config.max_concurrency,
            cache=cache,
        )

    async def render(self, artifact: bus.Artifact, spec: api.SyncSpec) -> list[documents.Document]:
        """The documents at the artifact's commit: rendered again only when the commit
        changed something the last render read (see `trees.Recorded`); fresh copies each time."""
        cfg = self.services.config
        key: tuple[Any, ...] = (artifact.repository, artifact.ignore, spec.path, spec.helm, spec.target_namespace)
        key += (cfg.limits, cfg.allow_remote_bases)
        loop = asyncio.get_running_loop()
        self.rendered = await loop.run_in_executor(RENDER_THREADS, self.rendering, artifact, spec, key)
        return [documents.Document(**d) for d in json.loads(self.rendered.documents)]

    def rendering(self, artifact: bus.Artifact, spec: api.SyncSpec, key: tuple[Any, ...]) -> Rendered:
        """The last render if the commit changed nothing it read, else a new one (in a thread)."""
        repository = pygit2.Repository(artifact.repository)
        tree = trees.GitTree(repository, artifact.commit)
        signature = repository[artifact.commit].peel(pygit2.Commit).author
        author = f"{signature.name} <{signature.email}>"
        last = self.rendered
        if last is not None and last.key == key and (last.commit == artifact.commit or tree.unchanged(last.observed)):
            return dataclasses.replace(last, commit=artifact.commit, author=author)
        metrics.RENDERS.inc()
        recorded = trees.Recorded(tree)
        docs = build.render(
            recorded,
            spec.path,
            sync_name=self.name,
            sync_namespace=self.namespace,
            target_namespace=spec.target_namespace,
            ignore_rules=artifact.ignore,
            helm_spec=spec.helm,
            allow_remote_bases=self.services.config.allow_remote_bases,
            limits=self.services.config.limits,
        )
        documents_json = json.dumps([dataclasses.asdict(d) for d in docs])
        return Rendered(key, artifact.commit, author, recorded.observed, documents_json)

    def remember(self, planned: list[plan.Planned], writes: apply.Writes, cache: watchcache.LiveCache | None) -> None:
        """Record what every object is now (as written, or as planned when unchanged), so
        the next reconcile can skip unchanged ones and the live cache can tell pullsync's
        own writes from drift."""
        self.verified = {}
        for p in planned:
            now = writes.results.get(p.item.entry.id, p.result)
            if now is None or p.left_alone:
                continue
            content = fingerprint.of(now)
            self.verified[p.item.entry.id] = (p.item.digest, content)
            if cache is not None:
                cache.note(p.item.resource, now, content, (self.namespace, self.name))

    async def health_changed(
        self, body: Mapping[str, Any], before: str | None, report: healthcheck.Report | None
    ) -> None:
        """An event and the metric when the health of the applied objects changes."""
        if report is None or report.status == before:
            return
        metrics.set_sync_health(self.namespace, self.name, report.status)
        message = f"health {before or 'unknown'} -> {report.status}" + (
            f": {report.describe()}" if report.unhealthy else ""
        )
        if report.status == kstatus.FAILED:
            await self.events.warning(body, api.HEALTH_CHECK_FAILED, events.fit(message.split("; "), separator="; "))
        elif before is not None:  # the first health known is no change (its apply has an event of its own)
            await self.events.normal(body, "HealthChanged", events.fit(message.split("; "), separator="; "))

    @staticmethod
    def verb(planned: plan.Planned) -> str:
        if planned.recreate:
            return "recreated"
        return "created" if planned.live is None else "configured"

    async def finish(self, body: Mapping[str, Any], result: Result, *, requested: str | None = None) -> None:
        """The one place that writes status and events."""
        saved = {**(body.get("status") or {}), **self.written}
        old = {**saved, **self.unsaved}
        generation = body.get("metadata", {}).get("generation")
        health = result.health.as_status() if result.health is not None else old.get("health")
        outcome = dataclasses.replace(result.outcome, extra=healthy_condition(health, result.health))
        short = events.fit(outcome.message.split("; "), limit=CONDITION_LIMIT, separator="; ")
        if short != outcome.message:
            short += " (all of it in the Sync's Warning event)"
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "conditions": conditions.build(
                dataclasses.replace(outcome, message=short), generation=generation, previous=old.get("conditions")
            ),
        }
        if result.revision is not None:
            status["lastAttemptedRevision"] = result.revision
        if result.applied:
            status["lastAppliedRevision"] = result.revision
        if result.entries is not None:
            status["inventory"] = inventory.dump(result.entries)
        if result.plan is not None:
            status["plan"] = result.plan
        if requested is not None:
            status["lastHandledReconcileAt"] = requested
        if result.history is not None:
            status["history"] = result.history
        if result.health is not None:
            status["health"] = health
        status = {**self.unsaved, **status}
        try:
            await self.services.client.patch_status(kube.SYNCS, self.namespace, self.name, status, previous=saved)
        except kube.ApiError:
            self.unsaved = status  # nothing written is forgotten: the inventory goes with the next write
            raise
        self.unsaved = {}
        self.written = {**self.written, **status}
        self.services.bus.announce(self.key, outcome.ready == "True")
        if result.changes:
            reason = "ReconciliationSucceeded" if result.applied else "Progressing"
            await self.events.normal(body, reason, events.fit(result.changes))
        await self.health_changed(body, (old.get("health") or {}).get("status"), result.health)
        if result.warns:
            await self.events.warning(
                body, result.outcome.reason, events.fit(result.outcome.message.split("; "), separator="; ")
            )
        elif result.outcome.ready == "True":
            self.events.recovered()


def _shard(name: str | None) -> str:
    return f"shard {name}" if name else "no shard"


def healthy_condition(
    health: Mapping[str, Any] | None, report: healthcheck.Report | None
) -> tuple[tuple[str, str, str, str], ...]:
    """The Healthy condition, from this reconcile's report or the last one in status."""
    if not health:
        return ()
    status = str(health.get("status"))
    truth = "True" if status == kstatus.CURRENT else "False" if status == kstatus.FAILED else "Unknown"
    if report is not None:
        message = report.describe() if report.unhealthy else "every applied object is Current"
    else:
        listed = health.get("unhealthy") or []
        shown = tuple((str(u.get("id")), str(u.get("status")), str(u.get("message") or "")) for u in listed)
        message = healthcheck.Report(status, shown).describe()
    return ((api.HEALTHY, truth, status, message or status),)


def summarise(objects: int, changed: list[plan.Planned], pruned: list[inventory.Entry]) -> dict[str, int]:
    """`status.plan`: what one reconcile changed (or, when it failed, wrote before that)."""
    return {
        "objects": objects,
        "changed": len(changed),
        "operations": sum(len(p.patch) + int(p.recreate) for p in changed),
        "created": sum(1 for p in changed if p.live is None),
        "pruned": len(pruned),
    }


async def prune_all(services: Services, body: Mapping[str, Any]) -> apply.PruneResult:
    """A Sync with `prune: true` is being deleted: delete everything it still owns."""
    meta = body["metadata"]
    try:
        spec = api.SyncSpec.parse(body.get("spec") or {})
    except ValueError:
        return apply.PruneResult()  # a spec never valid applied nothing
    if not spec.prune:
        return apply.PruneResult()
    return await apply.prune(
        acting_client(services, meta["namespace"], spec),
        inventory.load(body.get("status")),
        sync_name=meta["name"],
        sync_namespace=meta["namespace"],
        concurrency=services.config.max_concurrency,
    )
