"""Webhook signatures of every supported forge, and what the receiver does with a call:
nothing is written unless the signature checks out, for a GitRepository of this
operator's namespaces and shard; a standby writes the annotation, a leader wakes its poller."""

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pullsync import kube
from pullsync.runtime import bus, config
from pullsync.web import webhook

TOKEN = b"hook-token"
BODY = b'{"ref": "refs/heads/main"}'
SHA256 = hmac.new(TOKEN, BODY, hashlib.sha256).hexdigest()
SHA1 = hmac.new(TOKEN, BODY, hashlib.sha1).hexdigest()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Hub-Signature-256": f"sha256={SHA256}"},
        {"X-Gitea-Signature": SHA256},
        {"X-Gitlab-Token": TOKEN.decode()},
        {"X-Hub-Signature": f"sha256={SHA256}"},
        {"X-Hub-Signature": f"sha1={SHA1}"},
        {"X-Signature": f"sha256={SHA256}"},
    ],
)
def test_valid_signatures_are_accepted(headers: dict[str, str]) -> None:
    assert webhook.signature_valid(headers, BODY, TOKEN)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Gitlab-Token": "wrong"},
        {"X-Signature": f"md5={SHA256}"},
        {"X-Gitea-Signature": SHA1},
    ],
)
def test_bad_or_missing_signatures_are_refused(headers: dict[str, str]) -> None:
    assert not webhook.signature_valid(headers, BODY, TOKEN)


def test_a_signature_over_another_body_is_refused() -> None:
    assert not webhook.signature_valid({"X-Hub-Signature-256": f"sha256={SHA256}"}, BODY + b" ", TOKEN)


def test_the_rate_limiter_allows_a_burst_then_refuses_per_path() -> None:
    limiter = webhook.RateLimiter(rate=0.001, burst=3)
    assert [limiter.allow("a/b") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("a/other")


def test_the_rate_limiter_forgets_the_oldest_paths() -> None:
    limiter = webhook.RateLimiter(rate=0.001, burst=1, paths=2)
    assert limiter.allow("one")
    assert limiter.allow("two")
    assert limiter.allow("three")  # pushes "one" out
    assert limiter.allow("one")  # a fresh bucket again


class Cluster:
    """A stand-in API client: GitRepositories `team/app` (shard `a`) and `team/plain`,
    their webhook Secret, and the patches the receiver sends."""

    def __init__(self, *, patch_fails: bool = False) -> None:
        self.patch_fails = patch_fails
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.gets: list[str] = []

    async def get(self, resource: kube.Resource, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets.append(f"{resource.plural}/{namespace}/{name}")
        if resource == kube.SECRETS:
            return {"data": {"token": base64.b64encode(TOKEN).decode()}} if name == "hook" else None
        labels = {"pullsync.dev/shard": "a"} if name == "app" else {}
        spec = {"url": "https://example.com/r.git", "webhookSecretRef": {"name": "hook"}}
        return {"metadata": {"labels": labels}, "spec": spec} if name in ("app", "plain") else None

    async def merge_patch(self, resource: kube.Resource, namespace: str, name: str, patch: dict[str, Any]) -> Any:
        if self.patch_fails:
            raise kube.ApiError(403, {"message": "forbidden"}, verb="patch", path=f"/{namespace}/{name}")
        self.patches.append((namespace, name, patch))


def call(receiver: webhook.Receiver, path: str, headers: dict[str, str], *pieces: bytes) -> int:
    """POST `pieces` (BODY by default) one after another, as a slow network delivers them."""

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
            await asyncio.sleep(0.05)

    async def post() -> int:
        async with TestClient(TestServer(receiver.app())) as client:
            response = await client.post(path, data=body() if pieces else BODY, headers=headers)
            return response.status

    return asyncio.run(post())


SIGNED = {"X-Hub-Signature-256": f"sha256={SHA256}"}


@pytest.mark.parametrize(
    ("path", "headers", "status", "looked_up"),
    [
        ("/hooks/team/app", {"X-Hub-Signature-256": "sha256=" + "0" * 64}, 401, True),
        ("/hooks/team/plain", SIGNED, 404, True),  # of no shard, at shard a's operator
        ("/hooks/team/nope", SIGNED, 404, True),
        ("/hooks/elsewhere/app", SIGNED, 404, False),  # a namespace this operator does not watch
    ],
)
def test_a_call_that_does_not_check_out_writes_nothing(
    path: str, headers: dict[str, str], status: int, looked_up: bool
) -> None:
    cluster = Cluster()
    receiver = webhook.Receiver(cluster, config.Config(shard="a", namespaces=("team",)))  # type: ignore[arg-type]
    assert call(receiver, path, headers) == status
    assert cluster.patches == []
    assert bool(cluster.gets) is looked_up


def test_a_standby_relays_a_verified_call_to_the_leader_as_the_requested_at_annotation() -> None:
    cluster = Cluster()
    receiver = webhook.Receiver(cluster, config.Config(shard="a"))  # type: ignore[arg-type]
    assert call(receiver, "/hooks/team/app", SIGNED) == 202
    [(namespace, name, patch)] = cluster.patches
    assert (namespace, name, list(patch["metadata"]["annotations"])) == ("team", "app", ["pullsync.dev/requestedAt"])


def test_a_leader_wakes_its_poller_and_writes_nothing() -> None:
    cluster, signals = Cluster(), bus.Bus()
    signals.waker(("GitRepository", "team", "app"))
    receiver = webhook.Receiver(cluster, config.Config(shard="a"))  # type: ignore[arg-type]
    receiver.lead(signals)
    assert call(receiver, "/hooks/team/app", SIGNED) == 202
    assert signals.take_request(("GitRepository", "team", "app"))
    assert cluster.patches == []


def test_a_relay_the_api_server_refuses_is_a_503_to_try_again() -> None:
    receiver = webhook.Receiver(Cluster(patch_fails=True), config.Config(shard="a"))  # type: ignore[arg-type]
    assert call(receiver, "/hooks/team/app", SIGNED) == 503


def test_a_body_that_arrives_in_pieces_is_read_whole_and_one_too_large_is_refused() -> None:
    cluster = Cluster()
    receiver = webhook.Receiver(cluster, config.Config(shard="a"))  # type: ignore[arg-type]
    assert call(receiver, "/hooks/team/app", SIGNED, BODY[:5], BODY[5:]) == 202
    assert call(receiver, "/hooks/team/app", SIGNED, b"x" * webhook.MAX_BODY, b"x") == 413
    assert len(cluster.patches) == 1


def test_a_receiver_that_stops_leading_relays_again() -> None:
    cluster, signals = Cluster(), bus.Bus()
    signals.waker(("GitRepository", "team", "app"))
    receiver = webhook.Receiver(cluster, config.Config(shard="a"))  # type: ignore[arg-type]
    receiver.lead(signals)
    receiver.lead(None)  # Kopf stopped: its pollers are gone
    assert call(receiver, "/hooks/team/app", SIGNED) == 202
    assert len(cluster.patches) == 1
    assert not signals.take_request(("GitRepository", "team", "app"))
