"""The webhook receiver: `POST /hooks/<namespace>/<gitrepository>` wakes that poller.

Nothing from the payload is trusted or echoed: a call whose signature checks out with the
`token` of the GitRepository's `webhookSecretRef` only asks for an immediate poll. Every
replica receives: the leader wakes its poller (`for_leader`); a standby sets
`pullsync.dev/requestedAt` on the GitRepository (`for_standby`), which the leader's watch
sees, so a call that the Service sends to any replica is a poll.
Accepted: GitHub `X-Hub-Signature-256`, Gitea/Forgejo `X-Gitea-Signature`, GitLab
`X-Gitlab-Token`, Bitbucket `X-Hub-Signature`, generic `X-Signature: sha256=<hex>`.
Status codes: 202 accepted, 401 bad or missing signature, 404 unknown repository or no
webhook secret (or a GitRepository of another shard), 413 body over 1 MiB, 429 more than
a burst of 20 calls (then 2 per second) for one path, 503 the poll could not be asked for
(the API server refused or did not answer); the rate limit is checked before anything is
looked up.
"""

import base64
import hmac
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from pullsync import api, kube
from pullsync.api import clock
from pullsync.runtime import tokenbucket
from pullsync.runtime.services import Services

log = logging.getLogger("pullsync.webhook")

MAX_BODY = 1024 * 1024


class RateLimiter:
    """A token bucket per webhook path, checked before any API lookup; bounded memory."""

    def __init__(self, *, rate: float = 2.0, burst: int = 20, paths: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.paths = paths
        self._buckets: OrderedDict[str, tokenbucket.TokenBucket] = OrderedDict()  # least recently used first

    def allow(self, path: str) -> bool:
        bucket = self._buckets.pop(path, None) or tokenbucket.TokenBucket(self.rate, self.burst)
        self._buckets[path] = bucket
        while len(self._buckets) > self.paths:
            self._buckets.popitem(last=False)
        return bucket.take() == 0.0


def signature_valid(headers: Mapping[str, str], body: bytes, token: bytes) -> bool:
    """True when one of the supported signature headers matches (constant-time)."""

    def mac(algorithm: str) -> str:
        return hmac.new(token, body, algorithm).hexdigest()

    gitlab = headers.get("X-Gitlab-Token")
    if gitlab is not None:
        return hmac.compare_digest(gitlab.encode(), token)
    gitea = headers.get("X-Gitea-Signature")
    if gitea is not None:
        return hmac.compare_digest(gitea.strip().lower(), mac("sha256"))
    for header in ("X-Hub-Signature-256", "X-Hub-Signature", "X-Signature"):
        value = headers.get(header)
        if value is not None:
            algorithm, _, digest = value.strip().partition("=")
            if algorithm.lower() not in ("sha256", "sha1", "sha512"):
                return False
            return hmac.compare_digest(digest.lower(), mac(algorithm.lower()))
    return False


Poll = Callable[[str, str], Awaitable[object]]  # ask for a poll of the GitRepository (namespace, name) now


def for_leader(services: Services, limiter: RateLimiter | None = None) -> web.Application:
    """The receiver of the replica that reconciles: a call wakes the poller in this process."""

    async def wake(namespace: str, name: str) -> None:
        services.bus.wake(("GitRepository", namespace, name), request=True)

    return app(services.client, services.config.shard, wake, "polling now", limiter)


def for_standby(client: kube.Client, shard: str | None) -> web.Application:
    """The receiver of a replica waiting for the Lease: a call sets `pullsync.dev/requestedAt`
    on the GitRepository, and the leader polls when its watch sees it (as `pullsync
    reconcile gitrepo` asks)."""

    async def annotate(namespace: str, name: str) -> None:
        requested = {api.ANNOTATION_REQUESTED_AT: clock.now_micro()}
        await client.merge_patch(kube.GITREPOSITORIES, namespace, name, {"metadata": {"annotations": requested}})

    return app(client, shard, annotate, "the leader polls now")


def app(
    client: kube.Client, shard: str | None, poll: Poll, polling: str, limiter: RateLimiter | None = None
) -> web.Application:
    """The aiohttp application of a receiver for the GitRepositories of `shard`: `poll` acts
    on an accepted call, and the log says `polling`."""
    limiter = limiter or RateLimiter()

    async def receive(request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if not limiter.allow(f"{namespace}/{name}"):
            return web.Response(status=429, headers={"Retry-After": "1"}, text="too many requests\n")
        if (request.content_length or 0) > MAX_BODY:
            return web.Response(status=413, text="payload too large\n")
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return web.Response(status=413, text="payload too large\n")
        repo = await client.get(kube.GITREPOSITORIES, namespace, name)
        try:
            secret_name = api.GitRepositorySpec.parse((repo or {}).get("spec") or {}).webhook_secret_name
        except ValueError:
            secret_name = None
        secret = await client.get(kube.SECRETS, namespace, secret_name) if secret_name else None
        token_b64 = ((secret or {}).get("data") or {}).get("token")
        if not token_b64:
            return web.Response(status=404, text="not found\n")
        if not signature_valid(request.headers, body, base64.b64decode(token_b64)):
            log.warning("webhook %s/%s: rejected a call with a bad or missing signature", namespace, name)
            return web.Response(status=401, text="invalid signature\n")
        theirs = api.shard_of(repo or {})
        if theirs != shard:  # another operator polls it: say where the call belongs
            where = f"shard {theirs}" if theirs else "no shard"
            log.warning("webhook %s/%s: refused, the GitRepository is in %s", namespace, name, where)
            return web.Response(status=404, text=f"GitRepository {namespace}/{name} is in {where}: "
                                "send its webhooks to that operator's Service\n")  # fmt: skip
        try:
            await poll(namespace, name)
        except kube.ApiError as e:
            log.warning("webhook %s/%s: accepted, but could not ask for a poll: %s", namespace, name, e)
            return web.Response(status=503, headers={"Retry-After": "5"}, text="cannot ask for a poll now\n")
        log.info("webhook %s/%s: accepted, %s", namespace, name, polling)
        return web.Response(status=202, text="accepted\n")

    application = web.Application(client_max_size=MAX_BODY + 1)
    application.router.add_post("/hooks/{namespace}/{name}", receive)
    return application
