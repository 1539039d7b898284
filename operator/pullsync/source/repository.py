"""GitRepository reconciliation: poll the remote's refs, fetch new commits, publish them.

One `RepositoryLoop` runs per GitRepository (as a step of `bus.run_loop`). A poll costs
one ref listing; a shallow fetch happens only when the resolved commit is not cached.
Each new revision is published on the bus (Syncs listen) and written to
`status.artifact`. Failures keep the last artifact, back off, and say why in `Ready`.
Status is written only when it changed, so an unchanged remote costs no API writes.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pullsync import api, kube
from pullsync.api import clock, conditions
from pullsync.kube import watchcache
from pullsync.runtime import bus, config, loops, metrics
from pullsync.runtime.services import Services
from pullsync.source import git, semver, urlpolicy
from pullsync.source.gitauth import Credentials, GitFailure, redact_url

log = logging.getLogger("pullsync.repository")

KIND = "GitRepository"
T = TypeVar("T")


class RepositoryLoop(loops.ObjectLoop):
    """The poller of one GitRepository; call it to take one turn."""

    kind = KIND

    def __init__(self, services: Services, namespace: str, name: str, body: Callable[[], Mapping[str, Any]]) -> None:
        super().__init__(services, namespace, name, body)
        self.url: str | None = None
        self.failures = 0
        self.written: dict[str, Any] = {}  # the status this loop wrote last (newer than a lagging body)

    async def take_turn(self) -> float:
        body = self.body()
        requested, wait = self.not_due(body)
        if wait is not None:
            return wait
        now = time.monotonic()
        try:
            spec = api.GitRepositorySpec.parse(body.get("spec") or {})
            if spec.ref.semver:
                semver.check(spec.ref.semver)  # a range that can never match polls nothing
        except ValueError as e:
            failed = conditions.Outcome.failure(api.VALIDATION_FAILED, str(e), stalled=True)
            await self.write_status(body, failed, None, requested=requested)
            self.next_due = now + 3600
            return 3600
        if spec.suspend:
            suspended = conditions.Outcome.failure(api.SUSPENDED, "polling is suspended")
            await self.write_status(body, suspended, None, requested=requested)
            if self.services.bus.artifact(self.key) is None and self.status(body).get("artifact"):
                # Its Syncs keep the artifact published before; a process started since has
                # none (its git cache starts empty) and fetches nothing: they say why they wait.
                why = "suspended, and not fetched since this operator started: resume it to fetch its revision"
                self.services.bus.fetch_failed(self.key, why)
            self.next_due = now + spec.interval
            return spec.interval
        self.track_url(spec.url)
        started = time.monotonic()
        try:
            artifact = await self.poll(spec)
        except Exception as e:
            self.failures += 1
            delay = min(spec.interval, 2.0 * float(2 ** min(self.failures, 8)))
            if isinstance(e, GitFailure):
                message = f"{e.cause}: {e}" if e.cause not in str(e) else str(e)
                message = f"failed to poll {redact_url(spec.url)}: {message}"
                log.warning("GitRepository %s/%s: %s (retry in %.0fs)", self.namespace, self.name, message, delay)
                outcome = conditions.Outcome(
                    "False", api.FETCH_FAILED, message, extra=((api.FETCH_FAILED, "True", api.FETCH_FAILED, message),)
                )
            else:  # a bug: said as such (not as a fetch failure), with the traceback in the log
                log.exception("GitRepository %s/%s: unexpected error while polling", self.namespace, self.name)
                outcome = conditions.Outcome.unexpected(e, "poll")
            await self.write_status(body, outcome, None, requested=requested)
            await self.events.warning(body, outcome.reason, outcome.message)
            self.services.bus.fetch_failed(self.key, outcome.message)
        else:
            self.failures = 0
            self.events.recovered()
            delay = spec.interval
            outcome = conditions.Outcome.success(f"stored artifact for revision '{artifact.revision}'")
            old = self.status(body).get("artifact") or {}
            if old.get("revision") != artifact.revision:
                log.info(
                    "GitRepository %s/%s: revision %s (%s) in %.2fs",
                    self.namespace,
                    self.name,
                    artifact.revision,
                    artifact.message,
                    time.monotonic() - started,
                )
                await self.events.normal(body, "NewArtifact", f"revision {artifact.revision}: {artifact.message}")
            await self.write_status(body, outcome, artifact, requested=requested)
        metrics.RECONCILE_SECONDS.labels(KIND, outcome.ready).observe(time.monotonic() - started)
        self.next_due = started + delay  # a steady period, whatever the status write costs
        return max(0.0, self.next_due - time.monotonic())

    def track_url(self, url: str) -> None:
        """Hold a share of the URL's cache; let go of the old one when the URL changed."""
        owner = f"{self.namespace}/{self.name}"
        if self.url != url:
            if self.url is not None:
                self.services.cache.release(self.url, owner)
            self.services.cache.acquire(url, owner)
            self.url = url

    def release(self) -> None:
        """The GitRepository is gone: free its cache share and its bus entries."""
        if self.url is not None:
            self.services.cache.release(self.url, f"{self.namespace}/{self.name}")
        self.services.bus.forget(self.key)

    async def poll(self, spec: api.GitRepositorySpec) -> bus.Artifact:
        """List refs, resolve, fetch if the commit is new; publish and return the artifact
        (after a fetch, the cache compacts the repository when it holds too many packs)."""
        cache = self.services.cache
        try:
            await urlpolicy.check(spec.url, self.services.url_policy)
        except urlpolicy.Refused as e:
            raise GitFailure("policy", f"refused by the URL policy: {e}") from None
        creds = await credentials(self.services, self.namespace, spec.secret_name)
        refs = await run_git("list", spec.timeout, cache.list_refs, spec.url, creds, spec.timeout)
        resolved = git.resolve(refs, spec.ref)
        fetched = not cache.has_commit(spec.url, resolved.commit)
        if fetched:
            await run_git("fetch", spec.timeout, cache.fetch, spec.url, creds, resolved, spec.timeout)
        artifact = bus.Artifact(
            url=spec.url,
            repository=str(cache.path(spec.url)),
            revision=resolved.revision,
            short_revision=resolved.short_revision,
            commit=resolved.commit,
            message=cache.message(spec.url, resolved.commit),
            ignore=spec.ignore,
        )
        previous = self.services.bus.artifact(self.key)
        if previous != artifact:
            if previous is not None:  # a render of it may be under way: compaction keeps it a while
                cache.used(previous.url, previous.commit)
            self.services.bus.publish(self.key, artifact)
        if fetched:  # after publishing: the cache keeps what the artifacts name
            await asyncio.to_thread(cache.compact, spec.url)
        return artifact

    async def write_status(
        self,
        body: Mapping[str, Any],
        outcome: conditions.Outcome,
        artifact: bus.Artifact | None,
        *,
        requested: str | None = None,
    ) -> None:
        """Merge-patch status, only when something in it changed."""
        old = self.status(body)
        meta = body.get("metadata", {})
        status: dict[str, Any] = {
            "observedGeneration": meta.get("generation"),
            "conditions": conditions.build(outcome, generation=meta.get("generation"), previous=old.get("conditions")),
        }
        if artifact is not None:
            same = (old.get("artifact") or {}).get("revision") == artifact.revision
            status["artifact"] = {
                "revision": artifact.revision,
                "shortRevision": artifact.short_revision,
                "commit": artifact.commit,
                "message": artifact.message,
                "lastUpdateTime": (old.get("artifact") or {}).get("lastUpdateTime") if same else clock.now(),
            }
        if requested is not None:
            status["lastHandledReconcileAt"] = requested
        await self.services.client.patch_status(kube.GITREPOSITORIES, self.namespace, self.name, status, previous=old)
        self.written = {**self.written, **status}

    def status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The status as this loop knows it: the body's, and what it wrote since (under load
        the watch may deliver our own write after the next poll: without this, that poll
        took its artifact for new, wrote status and posted NewArtifact again)."""
        return {**(body.get("status") or {}), **self.written}


async def credentials(services: Services, namespace: str, secret_name: str | None) -> Credentials | None:
    """The git credentials of the Secret `secret_name` (spec.secretRef), or None without one.

    Read from a watch of Secrets: a quiet poll makes no API request, and a changed Secret
    makes the GitRepositories of its namespace poll at once (`Bus.wake_sources`). Without
    the rights to watch, a GET each poll."""
    if not secret_name:
        return None
    secret = await read_secret(services, namespace, secret_name, field="spec.secretRef", error=GitFailure)
    return Credentials.from_secret(secret.get("data") or {})


async def read_secret(
    services: Services, namespace: str, name: str, *, field: str, error: Callable[[str, str], Exception]
) -> Mapping[str, Any]:
    """The Secret `namespace/name`, from the watch of Secrets when it may be watched;
    `error(cause, message)` is raised when it is missing or may not be read."""
    clusterwide, _ = config.kopf_scope(services.config.namespaces)
    scope = None if clusterwide else namespace
    secret = services.live.secret(namespace, name, scope=scope)
    if secret is watchcache.UNKNOWN:
        try:
            secret = await services.client.get(kube.SECRETS, namespace, name)
        except kube.ApiError as e:
            raise error("auth", f"cannot read secret {namespace}/{name} ({field}): {e.message}") from None
        services.live.known_secret(namespace, name, secret, scope=scope)
    if secret is None:
        raise error("auth", f"secret {namespace}/{name} ({field}) not found")
    found: Mapping[str, Any] = secret
    return found


async def run_git(operation: str, timeout: float, fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking git call in a thread, bounded by `timeout`, measured."""
    started = time.monotonic()
    result = "error"
    try:
        value = await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout + 1)
        result = "ok"
        return value
    except TimeoutError:
        raise GitFailure("timeout", f"timed out after {timeout:g}s") from None
    finally:
        metrics.GIT_OPERATIONS.labels(operation, result).inc()
        metrics.GIT_SECONDS.labels(operation).observe(time.monotonic() - started)
