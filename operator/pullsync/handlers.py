"""The Kopf layer: start-up settings, and watch events of GitRepositories, Syncs and Previews.

The only module that imports kopf. Handlers stay thin: each event goes to `loops`, which
runs one engine loop per object (`repository.RepositoryLoop`, `reconcile.SyncLoop`,
`controller.PreviewLoop`, which reads Syncs and GitRepositories from the other loops' bodies).
Only `on.event` handlers are registered, and only on pullsync's own kinds: Kopf never
writes to any object (no finalizers, no annotations); the Sync loop keeps its own
finalizer for pruning on deletion.
"""

import base64
import logging
from typing import Any

import kopf

from pullsync import api
from pullsync.kube import kubeconfig
from pullsync.preview import controller
from pullsync.runtime import config, loops
from pullsync.runtime.services import Services
from pullsync.source import repository
from pullsync.sync import reconcile

log = logging.getLogger("pullsync")


def in_scope(namespace: str | None, memo: Any, **_: Any) -> bool:
    """A filter on every handler: the namespace matches `--namespace` (names or patterns)."""
    return config.in_scope(namespace, memo.config.namespaces)


def as_seen(event: str | None, body: kopf.Body, memo: Any) -> str | None:
    """The event as this operator's loops see it: an object of another shard (relabelled
    away, say) is gone for them, and its loop stops; its new shard's operator takes it."""
    return event if api.shard_of(body) == memo.config.shard else "DELETED"


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.inactivity_timeout = 600  # re-establish a watch that went silent
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    # Back within 5 s of an API server's return; Kopf gives up after the last (then pullsync starts it again).
    settings.networking.error_backoffs = [1, 1, 2, 3, *[5] * 24]
    settings.posting.enabled = False  # pullsync posts its own, deliberate, events
    settings.queueing.error_delays = [1, 2, 5, 10, 30, 60]
    memo.services = services = await Services.start(memo.config, fence=memo.get("fence"))
    memo.gitrepositories = loops.Loops(
        services.bus, lambda ns, name, body: repository.RepositoryLoop(services, ns, name, body)
    )
    memo.syncs = loops.Loops(
        services.bus,
        lambda ns, name, body: reconcile.SyncLoop(
            services, ns, name, body, repositories=lambda ns, name: memo.gitrepositories.bodies.get((ns, name))
        ),
    )
    memo.previews = loops.Loops(
        services.bus,
        lambda ns, name, body: controller.PreviewLoop(
            services,
            ns,
            name,
            body,
            syncs=lambda ns, name: memo.syncs.bodies.get((ns, name)),
            repositories=lambda ns, name: memo.gitrepositories.bodies.get((ns, name)),
        ),
    )
    memo.receiver.lead(services.bus)  # webhooks wake the pollers here
    if memo.get("ready") is not None:
        memo.ready.set()  # /readyz: this replica reconciles and receives webhooks
    namespaces = ", ".join(memo.config.namespaces) or "all namespaces"
    shard = f"shard {memo.config.shard}" if memo.config.shard else "objects of no shard"
    log.info("pullsync started: watching %s (%s), API server %s", namespaces, shard, memo.services.client.server)


@kopf.on.login()
async def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """Kopf's own connection, from the same kubeconfig (or in-cluster config) as the engine's."""
    connection = kubeconfig.load(memo.config.kubeconfig)
    basic = connection.username is not None
    scheme, _space, token = ("" if basic else await connection.authorization() or "").partition(" ")
    return kopf.ConnectionInfo(
        server=connection.server,
        ca_path=connection.ca_file,
        ca_data=_base64(connection.ca_data),
        insecure=connection.insecure,
        username=connection.username,
        password=connection.password,
        scheme=scheme or None,
        token=token or None,
        certificate_path=connection.cert_file,
        certificate_data=_base64(connection.cert_data),
        private_key_path=connection.key_file,
        private_key_data=_base64(connection.key_data),
        expiration=connection.expiration(),
    )


def _base64(pem: str | None) -> str | None:
    """PEM as kopf takes it whatever text precedes the first `-----BEGIN` (base64)."""
    return base64.b64encode(pem.encode()).decode() if pem else None


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.receiver.lead(None)  # from now on relayed to the leader (this process's next Kopf, or another)
    await memo.previews.close()
    await memo.syncs.close()
    await memo.gitrepositories.close()
    await memo.services.close()
    log.info("pullsync stopped")


@kopf.on.event(api.GROUP, api.VERSION, "gitrepositories", when=in_scope)
async def gitrepository_event(*, type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.gitrepositories.observe(as_seen(type, body, memo), body)
    controller.appeared(memo.previews, "GitRepository", body)


@kopf.on.event(api.GROUP, api.VERSION, "syncs", when=in_scope)
async def sync_event(*, type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.syncs.observe(as_seen(type, body, memo), body)
    controller.appeared(memo.previews, "Sync", body)


@kopf.on.event(api.GROUP, api.VERSION, "previews", when=in_scope)
async def preview_event(*, type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    memo.previews.observe(as_seen(type, body, memo), body)
