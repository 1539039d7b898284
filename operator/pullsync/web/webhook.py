"""The webhook receiver: `POST /hooks/<namespace>/<gitrepository>` wakes that poller.

Nothing from the payload is trusted or echoed: a call whose signature checks out with the
`token` of the GitRepository's `webhookSecretRef` only asks for an immediate poll. Every
replica receives, for its whole life (`Receiver`): the leader wakes its poller, a standby
sets `pullsync.dev/requestedAt` on the GitRepository, which the leader's watch sees, so a
call that the Service sends to any replica is a poll.
Accepted: GitHub `X-Hub-Signature-256`, Gitea/Forgejo `X-Gitea-Signature`, GitLab
`X-Gitlab-Token`, Bitbucket `X-Hub-Signature`, generic `X-Signature: sha256=<hex>`.
Status codes: 202 accepted, 401 bad or missing signature, 404 unknown repository, no
webhook secret, a namespace this operator does not watch or a GitRepository of another
shard, 408 a body not sent within 10 s, 413 body over 1 MiB, 429 more than a burst of 20
calls (then 2 per second) for one path, 503 the API server refused or did not answer the
lookup or the annotation; the rate limit is checked before anything is looked up.
"""

import asyncio
import base64
import hmac
import logging
from collections import OrderedDict
from collections.abc import Mapping

from aiohttp import web

from pullsync import api, kube
from pullsync.api import clock
from pullsync.runtime import bus, config, tokenbucket

log = logging.getLogger("pullsync.webhook")

MAX_BODY = 1024 * 1024
BODY_SECONDS = 10.0  # to send the body: a call that trickles in holds nothing longer


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


class Receiver:
    """The webhook receiver of one process, for its whole life (`app`). While this process
    reconciles (`lead`), a verified call wakes the poller here; otherwise (a standby that
    waits for the Lease, or Kopf starting) it sets `pullsync.dev/requestedAt` on the
    GitRepository, and the leader polls when its watch sees that, as for `pullsync
    reconcile gitrepo`. Only GitRepositories of this operator's namespaces and shard."""

    def __init__(self, client: kube.Client, cfg: config.Config) -> None:
        self.client = client  # the process's own: reads, and the annotation (never fenced)
        self.shard = cfg.shard
        self.namespaces = cfg.namespaces
        self.limiter = RateLimiter()
        self.bus: bus.Bus | None = None

    def lead(self, signals: bus.Bus | None) -> None:
        """Wake the pollers on `signals` from now on (None: relay to the leader again)."""
        self.bus = signals

    async def poll(self, namespace: str, name: str) -> str:
        """Ask for a poll of the GitRepository now; how, for the log."""
        if self.bus is not None:
            self.bus.wake(("GitRepository", namespace, name), request=True)
            return "polling now"
        requested = {api.ANNOTATION_REQUESTED_AT: clock.now_micro()}
        await self.client.merge_patch(kube.GITREPOSITORIES, namespace, name, {"metadata": {"annotations": requested}})
        return "the leader polls now"

    def app(self) -> web.Application:
        application = web.Application(client_max_size=MAX_BODY)
        application.router.add_post("/hooks/{namespace}/{name}", self.receive)
        return application

    async def receive(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if not self.limiter.allow(f"{namespace}/{name}"):
            return web.Response(status=429, headers={"Retry-After": "1"}, text="too many requests\n")
        if not config.in_scope(namespace, self.namespaces):
            return web.Response(status=404, text="not found\n")
        if (request.content_length or 0) > MAX_BODY:
            return web.Response(status=413, text="payload too large\n")
        try:
            async with asyncio.timeout(BODY_SECONDS):
                body = await request.read()  # the whole body, however many pieces it comes in
        except TimeoutError:
            return web.Response(status=408, text="the body took too long\n")
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="payload too large\n")
        try:
            return await self.verified(namespace, name, request.headers, body)
        except kube.ApiError as e:
            log.warning("webhook %s/%s: could not look it up or ask for a poll: %s", namespace, name, e)
            return web.Response(status=503, headers={"Retry-After": "5"}, text="cannot ask for a poll now\n")

    async def verified(self, namespace: str, name: str, headers: Mapping[str, str], body: bytes) -> web.Response:
        """Check the call against the GitRepository's webhook token, then ask for a poll."""
        repo = await self.client.get(kube.GITREPOSITORIES, namespace, name)
        try:
            secret_name = api.GitRepositorySpec.parse((repo or {}).get("spec") or {}).webhook_secret_name
        except ValueError:
            secret_name = None
        secret = await self.client.get(kube.SECRETS, namespace, secret_name) if secret_name else None
        token_b64 = ((secret or {}).get("data") or {}).get("token")
        if not token_b64:
            return web.Response(status=404, text="not found\n")
        if not signature_valid(headers, body, base64.b64decode(token_b64)):
            log.warning("webhook %s/%s: rejected a call with a bad or missing signature", namespace, name)
            return web.Response(status=401, text="invalid signature\n")
        shard = api.shard_of(repo or {})
        if shard != self.shard:  # another operator polls it: say where the call belongs
            where = f"shard {shard}" if shard else "no shard"
            log.warning("webhook %s/%s: refused, the GitRepository is in %s", namespace, name, where)
            return web.Response(status=404, text=f"GitRepository {namespace}/{name} is in {where}: "
                                "send its webhooks to that operator's Service\n")  # fmt: skip
        how = await self.poll(namespace, name)
        log.info("webhook %s/%s: accepted, %s", namespace, name, how)
        return web.Response(status=202, text="accepted\n")
