"""The Kopf layer: start-up settings, one daemon per GitRepository and per Sync.

The only module that imports kopf. Handlers stay thin: they hand the object to an engine
loop (`repository.RepositoryLoop`, `reconcile.SyncLoop`) and wake it on watch events.
Kopf handlers are registered only on pullsync's own kinds, so managed objects are never
annotated or finalized by Kopf.
"""

import logging
from typing import Any

import kopf

from pullsync import api, bus, config, kube, reconcile, repository, webhook
from pullsync.endpoints import Servers
from pullsync.services import Services

log = logging.getLogger("pullsync")


def in_scope(namespace: str | None, memo: Any, **_: Any) -> bool:
    """A filter on every handler: the namespace matches `--namespace` (names or patterns)."""
    return config.in_scope(namespace, memo.config.namespaces)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.inactivity_timeout = 600  # re-establish a watch that went silent
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    settings.posting.enabled = False  # pullsync posts its own, deliberate, events
    settings.persistence.finalizer = api.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=api.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=api.GROUP, key="last-handled-configuration"
    )
    settings.queueing.error_delays = [1, 2, 5, 10, 30, 60]
    memo.services = await Services.start(memo.config)
    memo.servers = Servers()
    await memo.servers.start((memo.config.webhook_addr, webhook.app(memo.services)))
    if memo.get("ready") is not None:
        memo.ready.set()  # /readyz: this replica reconciles and receives webhooks
    namespaces = ", ".join(memo.config.namespaces) or "all namespaces"
    log.info("pullsync started: watching %s, API server %s", namespaces, memo.services.client.server)


@kopf.on.login()
async def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """Kopf's own connection, from the same kubeconfig (or in-cluster config) as the engine's."""
    cfg = await kube.load_configuration(memo.config.kubeconfig)
    token = await kube.bearer_token(cfg)
    return kopf.ConnectionInfo(
        server=str(cfg.host),
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        scheme="Bearer" if token else None,
        token=token.removeprefix("Bearer ") if token else None,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await memo.servers.stop()
    await memo.services.close()
    log.info("pullsync stopped")


@kopf.daemon(api.GROUP, api.VERSION, "gitrepositories", cancellation_timeout=5.0, when=in_scope)
async def gitrepository(*, body: kopf.Body, memo: Any, **_: Any) -> None:
    services: Services = memo.services
    namespace, name = body.metadata["namespace"], body.metadata["name"]
    loop = repository.RepositoryLoop(services, namespace, name, lambda: body)
    try:
        await bus.run_loop(loop, services.bus.waker(loop.key))
    finally:
        if body.metadata.get("deletionTimestamp"):
            loop.release()


@kopf.on.event(api.GROUP, api.VERSION, "gitrepositories", when=in_scope)
async def gitrepository_event(*, body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.services.bus.wake((repository.KIND, body.metadata["namespace"], body.metadata["name"]))


@kopf.daemon(api.GROUP, api.VERSION, "syncs", cancellation_timeout=5.0, when=in_scope)
async def sync(*, body: kopf.Body, memo: Any, **_: Any) -> None:
    services: Services = memo.services
    namespace, name = body.metadata["namespace"], body.metadata["name"]
    loop = reconcile.SyncLoop(services, namespace, name, lambda: body)
    try:
        await bus.run_loop(loop, services.bus.waker(loop.key))
    finally:
        if body.metadata.get("deletionTimestamp"):
            services.bus.forget(loop.key)


@kopf.on.delete(api.GROUP, api.VERSION, "syncs", retries=5, backoff=5, when=in_scope)
async def sync_deleted(*, body: kopf.Body, memo: Any, **_: Any) -> None:
    """With `prune: true`, delete what the Sync applied. Gives up after a few tries, so the
    Sync's deletion never hangs (what could not be deleted is logged and stays)."""
    if not body.get("spec", {}).get("prune"):
        return
    result = await reconcile.prune_all(memo.services, body)
    namespace, name = body.metadata["namespace"], body.metadata["name"]
    log.info("Sync %s/%s deleted: pruned %d objects", namespace, name, len(result.pruned))
    if result.failures:
        raise kopf.TemporaryError("prune failed: " + "; ".join(result.failures[:5]), delay=5)


@kopf.on.event(api.GROUP, api.VERSION, "syncs", when=in_scope)
async def sync_event(*, body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.services.bus.wake((reconcile.KIND, body.metadata["namespace"], body.metadata["name"]))
