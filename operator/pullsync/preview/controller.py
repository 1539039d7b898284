"""Preview reconciliation: plan every matching ref of a Sync's repository, publish each plan.

One `PreviewLoop` runs per Preview. Each interval (or at once, on a spec change or the
requestedAt annotation) it lists the remote refs of the Sync's GitRepository URL (one
ref listing, as a poll); a ref matching `spec.refs` whose commit is new to it is
fetched (shallow, into the GitRepository's cache), rendered exactly as the Sync would
render it, and planned against the live cluster as the Sync's identity (`planner`: dry
runs only, never a write to a managed object). Each new plan goes to `spec.provider`: a
commit status and one pull request comment, edited in place. A publish that fails is
said in `Ready` and retried at the next turn, without planning again. Refs that are gone
(the pull request closed) leave status. The Sync and its GitRepository are read from
the operator's own watch (no API request), and status is written only when it changed.
"""

import asyncio
import base64
import dataclasses
import fnmatch
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import pygit2

from pullsync import api, kube
from pullsync.api import clock, conditions
from pullsync.api.conditions import Outcome
from pullsync.preview import planner, report
from pullsync.render import build, documents, trees
from pullsync.runtime import loops, metrics
from pullsync.runtime.services import Services
from pullsync.source import git, repository, urlpolicy
from pullsync.source.gitauth import Credentials, GitFailure
from pullsync.sync import inventory, reconcile
from pullsync.web import providers, resolver

log = logging.getLogger("pullsync.preview")

KIND = "Preview"
RETRY = 30.0  # seconds before a failed turn (git, API, provider) is tried again, at most the interval


@dataclasses.dataclass
class RefPlan:
    """The plan of one ref's commit, and which of its parts the provider has."""

    ref: str
    commit: str
    key: tuple[Any, ...]  # what else it was planned for: the Sync's and the Preview's generations, requestedAt
    report: report.Report
    planned_at: str
    sent: frozenset[str] = frozenset()  # of providers.PARTS

    @property
    def published(self) -> bool:
        return self.sent >= providers.PARTS

    def as_status(self) -> dict[str, Any]:
        r = self.report
        return {
            "ref": self.ref,
            "revision": f"sha1:{self.commit}",
            "result": api.PLANNED if r.ok else api.PLAN_FAILED,
            "summary": r.summary(),
            "created": r.created,
            "changed": r.changed,
            "pruned": r.pruned,
            "unchanged": r.unchanged,
            "message": r.summary() if r.ok else "; ".join(r.errors),
            "published": self.published,
            "lastPlanned": self.planned_at,
        }


def appeared(previews: loops.Loops, kind: str, body: Mapping[str, Any]) -> None:
    """A Sync or GitRepository was seen: the Previews that found it missing plan now, not
    at their next retry."""
    meta = body.get("metadata") or {}
    seen = (kind, meta.get("namespace"), meta.get("name"))
    for loop, _ in previews.tasks.values():
        if isinstance(loop, PreviewLoop) and loop.missing == seen:
            previews.signals.wake(loop.key, request=True)


class PreviewLoop(loops.ObjectLoop):
    """The planner of one Preview; call it to take one turn."""

    kind = KIND

    def __init__(
        self,
        services: Services,
        namespace: str,
        name: str,
        body: Callable[[], Mapping[str, Any]],
        *,
        syncs: loops.Lookup,
        repositories: loops.Lookup,
    ) -> None:
        super().__init__(services, namespace, name, body)
        self.syncs = syncs
        self.repositories = repositories
        self.plans: dict[str, RefPlan] = {}
        self.carried: dict[str, dict[str, Any]] | None = None  # status entries an earlier process published
        self.known: dict[str, Any] = {}  # what the provider told us (comment ids, our user), for edits in place
        self.url: str | None = None
        self.creds: Credentials | None = None
        self.missing: tuple[str, str, str] | None = None  # (kind, ns, name) of a Sync or GitRepository it waits for

    async def take_turn(self) -> float:
        body = self.body()
        requested, wait = self.not_due(body)
        if wait is not None:
            return wait
        started = time.monotonic()
        if self.carried is None:  # planned by an earlier process: kept (in status too) until its ref moves
            entries = (body.get("status") or {}).get("previews") or []
            self.carried = {e["ref"]: e for e in entries if e.get("published") and e.get("ref")}
        try:
            spec = api.PreviewSpec.parse(body.get("spec") or {})
        except ValueError as e:
            await self.write_status(body, Outcome.failure(api.VALIDATION_FAILED, str(e), stalled=True), requested)
            self.next_due = started + 3600
            return 3600.0
        if spec.suspend:
            await self.write_status(body, Outcome.failure(api.SUSPENDED, "planning is suspended"), requested)
            self.next_due = started + spec.interval
            return spec.interval
        try:
            outcome = await self.preview(body, spec, requested)
        except Exception as e:  # a bug: said as such, with the traceback in the log
            log.exception("Preview %s/%s: unexpected error", self.namespace, self.name)
            outcome = Outcome.unexpected(e, "preview")
        await self.write_status(body, outcome, requested)
        delay = spec.interval if outcome.ready == "True" else min(spec.interval, RETRY)
        metrics.RECONCILE_SECONDS.labels(KIND, outcome.ready).observe(time.monotonic() - started)
        self.next_due = started + delay
        return max(0.0, self.next_due - time.monotonic())

    def release(self) -> None:
        """The Preview is gone: free its share of the git cache and its bus entries."""
        if self.url is not None:
            self.services.cache.release(self.url, self.owner)
        self.services.bus.forget(self.key)

    @property
    def owner(self) -> str:
        return f"preview:{self.namespace}/{self.name}"

    async def preview(self, body: Mapping[str, Any], spec: api.PreviewSpec, requested: str | None) -> Outcome:
        """List, plan what is new, publish what is unpublished; the Ready outcome."""
        self.missing = ("Sync", self.namespace, spec.sync_name)
        sync = self.syncs(self.namespace, spec.sync_name)
        if sync is None:
            return Outcome.failure(api.SOURCE_NOT_READY, f"Sync {self.namespace}/{spec.sync_name} not found")
        try:
            sync_spec = api.SyncSpec.parse(sync.get("spec") or {})
        except ValueError as e:
            return Outcome.failure(api.VALIDATION_FAILED, f"Sync {self.namespace}/{spec.sync_name}: {e}")
        source = (sync_spec.source_namespace or self.namespace, sync_spec.source_name)
        if source[0] != self.namespace and not self.services.config.allow_cross_namespace_refs:
            message = (
                f"Sync {self.namespace}/{spec.sync_name} uses GitRepository {source[0]}/{source[1]} of another "
                "namespace; the operator does not allow cross-namespace references (--allow-cross-namespace-refs)"
            )
            return Outcome.failure(api.ACCESS_DENIED, message, stalled=True)
        self.missing = ("GitRepository", *source)
        repo_body = self.repositories(*source)
        if repo_body is None:
            return Outcome.failure(api.SOURCE_NOT_READY, f"GitRepository {source[0]}/{source[1]} not found")
        self.missing = None
        try:
            repo_spec = api.GitRepositorySpec.parse(repo_body.get("spec") or {})
        except ValueError as e:
            return Outcome.failure(api.SOURCE_NOT_READY, f"GitRepository {source[0]}/{source[1]}: {e}")
        try:
            refs = await self.list_refs(source[0], repo_spec, spec.refs)
        except GitFailure as e:
            message = f"cannot list the refs of GitRepository {source[0]}/{source[1]}: {e}"
            return Outcome.failure(api.FETCH_FAILED, message)
        self.forget_closed(refs)
        key = (
            (sync.get("metadata") or {}).get("generation"),
            (body.get("metadata") or {}).get("generation"),
            requested,
        )
        retry: list[str] = []
        carried = self.carried or {}
        for ref, commit in sorted(refs.items()):
            last = self.plans.get(ref)
            if last is not None and (last.commit, last.key) == (commit, key):
                continue
            if last is None and carried.get(ref, {}).get("revision") == f"sha1:{commit}":
                continue  # planned and published before this process started
            carried.pop(ref, None)
            try:
                plan = await self.plan(ref, commit, key=key, sync=sync, sync_spec=sync_spec, repo_spec=repo_spec)
            except (GitFailure, planner.Unavailable) as e:  # of the moment: planned at the next turn
                log.warning("Preview %s/%s: cannot plan %s yet: %s", self.namespace, self.name, ref, e)
                retry.append(f"{ref}: {e}")
                continue
            if last is not None and last.commit == commit and last.report == plan.report:
                plan.sent = last.sent  # planned again (the Sync changed, say), to the same plan: nothing to send
            self.plans[ref] = plan
        published = await self.publish_all(body, spec)
        if retry:
            message = f"cannot plan {'; '.join(retry[:3])} (retried)"
            return Outcome.failure(api.PROGRESSING_WITH_RETRY, message)
        return published

    async def list_refs(
        self, namespace: str, repo_spec: api.GitRepositorySpec, globs: tuple[str, ...]
    ) -> dict[str, str]:
        """The remote refs that match `globs`, by name: their commits."""
        try:
            await urlpolicy.check(repo_spec.url, self.services.url_policy)
        except urlpolicy.Refused as e:
            raise GitFailure("policy", f"refused by the URL policy: {e}") from None
        if self.url != repo_spec.url:
            if self.url is not None:
                self.services.cache.release(self.url, self.owner)
            self.services.cache.acquire(repo_spec.url, self.owner)
            self.url = repo_spec.url
        self.creds = await repository.credentials(self.services, namespace, repo_spec.secret_name)
        cache = self.services.cache
        timeout = repo_spec.timeout
        remote = await repository.run_git("list", timeout, cache.list_refs, repo_spec.url, self.creds, timeout)
        return {
            name: commit
            for name, commit in remote.items()
            if not name.endswith("^{}") and any(fnmatch.fnmatchcase(name, g) for g in globs)
        }

    def forget_closed(self, refs: Mapping[str, str]) -> None:
        """Drop the plans of refs that are gone (the pull request closed or merged)."""
        for gone in set(self.plans) - set(refs):
            del self.plans[gone]
        for gone in set(self.carried or {}) - set(refs):
            del (self.carried or {})[gone]

    async def plan(
        self,
        ref: str,
        commit: str,
        *,
        key: tuple[Any, ...],
        sync: Mapping[str, Any],
        sync_spec: api.SyncSpec,
        repo_spec: api.GitRepositorySpec,
    ) -> RefPlan:
        """Fetch, render and plan one ref's commit as the Sync would apply it."""
        revision = f"{ref}@sha1:{commit}"
        cache = self.services.cache
        sync_name = sync["metadata"]["name"]
        try:
            if not cache.has_commit(repo_spec.url, commit):
                resolved = git.Resolved(ref, ref, commit)
                timeout = repo_spec.timeout
                await repository.run_git("fetch", timeout, cache.fetch, repo_spec.url, self.creds, resolved, timeout)
                await asyncio.to_thread(cache.compact, repo_spec.url)  # a fetch adds a pack: bounded here too
            docs = await asyncio.get_running_loop().run_in_executor(
                reconcile.RENDER_THREADS, self.render, str(cache.path(repo_spec.url)), commit, sync_name, sync_spec
            )
        except documents.RenderError as e:
            result = report.Report(self.namespace, sync_name, revision, [], 0, [str(e)])
        except (pygit2.GitError, OSError) as e:  # the cache on this host, not the revision
            raise GitFailure("cache", f"cannot read commit {commit} from the git cache: {e}") from None
        else:
            client = reconcile.acting_client(self.services, self.namespace, sync_spec)
            planning = planner.plan_revision(
                client,
                docs,
                operator=self.services.client,
                sync_namespace=self.namespace,
                sync_name=sync_name,
                spec=sync_spec,
                old_inventory=inventory.load(sync.get("status")),
                revision=revision,
                concurrency=self.services.config.max_concurrency,
                cache=self.services.live if client is self.services.client else None,
            )
            try:
                result = await asyncio.wait_for(planning, sync_spec.timeout)
            except TimeoutError:
                raise planner.Unavailable(f"planning timed out after {sync_spec.timeout:g}s (spec.timeout)") from None
        log.info("Preview %s/%s: %s: %s", self.namespace, self.name, revision, result.summary())
        return RefPlan(ref, commit, key, result, clock.now())

    def render(self, path: str, commit: str, sync_name: str, sync_spec: api.SyncSpec) -> list[documents.Document]:
        """The documents of `commit` as the Sync would render them (in a thread)."""
        tree = trees.GitTree(pygit2.Repository(path), commit)
        cfg = self.services.config
        repo_body = self.repositories(sync_spec.source_namespace or self.namespace, sync_spec.source_name) or {}
        metrics.RENDERS.inc()
        return build.render(
            tree,
            sync_spec.path,
            sync_name=sync_name,
            sync_namespace=self.namespace,
            target_namespace=sync_spec.target_namespace,
            ignore_rules=(repo_body.get("spec") or {}).get("ignore") or None,
            helm_spec=sync_spec.helm,
            allow_remote_bases=cfg.allow_remote_bases,
            limits=cfg.limits,
        )

    async def publish_all(self, body: Mapping[str, Any], spec: api.PreviewSpec) -> Outcome:
        """Send every plan the provider does not have yet; Ready says how it went."""
        count = len(self.plans) + len(self.carried or {})
        done = Outcome.success(f"planned {count} ref{'s' * (count != 1)}")
        todo = [p for p in self.plans.values() if not p.published]
        if spec.provider is None or not todo:
            return done
        try:
            target = await self.target(spec.provider)
        except (urlpolicy.Refused, GitFailure) as e:
            return Outcome.failure(api.PUBLISH_FAILED, f"spec.provider: {e}", stalled=True)
        failures = []
        context = f"pullsync/{self.namespace}/{spec.sync_name}"  # the commit status's name
        async with resolver.session(self.services.url_policy) as session:
            for p in todo:
                try:
                    await providers.publish(
                        session,
                        target,
                        context=context,
                        marker=f"{context} preview={self.name}",  # one comment per Preview and pull request
                        ref=p.ref,
                        commit=p.commit,
                        report=p.report,
                        known=self.known,
                        parts=providers.PARTS - p.sent,  # a part that went through is not sent again
                    )
                except providers.PublishError as e:
                    p.sent |= e.sent
                    failures.append(f"{p.ref}: {e}")
                    continue
                p.sent = providers.PARTS
                await self.events.normal(body, "Published", f"{p.ref}@{p.commit[:12]}: {p.report.summary()}")
        if failures:
            message = f"publishing to {spec.provider.type} failed (retried): " + "; ".join(failures[:3])
            await self.events.warning(body, api.PUBLISH_FAILED, message)
            return Outcome.failure(api.PUBLISH_FAILED, message)
        return done

    async def target(self, provider: api.ProviderSpec) -> providers.Target:
        """Where and as whom to publish; Refused if the URL policy forbids the address."""
        try:
            if urlpolicy.split(provider.address)[0] not in ("https", "http"):
                raise urlpolicy.Refused("a provider is reached over https:// (or http://)")
            await urlpolicy.check(provider.address, self.services.url_policy)
        except urlpolicy.Refused as e:
            raise urlpolicy.Refused(f"address {provider.address} refused by the URL policy: {e}") from None
        token = None
        if provider.secret_name:
            secret = await repository.read_secret(
                self.services, self.namespace, provider.secret_name, field="spec.provider.secretRef", error=GitFailure
            )
            data = secret.get("data") or {}
            if "token" not in data:
                raise GitFailure("auth", f"secret {self.namespace}/{provider.secret_name} has no key `token`")
            token = base64.b64decode(data["token"]).decode().strip()
        return providers.Target(provider.type, provider.address, provider.repository, token)

    async def write_status(self, body: Mapping[str, Any], outcome: Outcome, requested: str | None) -> None:
        """Merge-patch status, only when something in it changed."""
        old = body.get("status") or {}
        meta = body.get("metadata", {})
        entries = [p.as_status() for p in self.plans.values()] + list((self.carried or {}).values())
        entries.sort(key=lambda e: str(e.get("lastPlanned")), reverse=True)
        status: dict[str, Any] = {
            "observedGeneration": meta.get("generation"),
            "conditions": conditions.build(outcome, generation=meta.get("generation"), previous=old.get("conditions")),
            "previews": entries,
            "count": len(entries),
        }
        if requested is not None:
            status["lastHandledReconcileAt"] = requested
        await self.services.client.patch_status(kube.PREVIEWS, self.namespace, self.name, status, previous=old)
