"""The API client against a local HTTP server: throttling, verbs, impersonation headers."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pullsync import kube
from pullsync.kube import kubeconfig


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, list[web.Request]]]:
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        if request.path == "/throttled" and sum(r.path == "/throttled" for r in seen) <= 2:
            return web.json_response({"message": "slow down"}, status=429, headers={"Retry-After": "0"})
        if request.path == "/always-throttled":
            return web.json_response({"message": "slow down"}, status=429, headers={"Retry-After": "0"})
        if request.path == "/forbidden":
            return web.json_response({"reason": "Forbidden", "message": "no"}, status=403)
        return web.json_response({"ok": True})

    async with serving(handler) as test_server:
        yield test_server, seen


@contextlib.asynccontextmanager
async def serving(handler: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[TestServer]:
    """A local HTTP server answering every request with `handler`."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    test_server = TestServer(app)
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


async def client_for(test_server: TestServer) -> kube.Client:
    async def auth() -> dict[str, str]:
        return {"Authorization": "Bearer t"}

    return kube.Client(
        server=str(test_server.make_url("")),
        session=aiohttp.ClientSession(),
        auth=auth,
        discovery=kube.Discovery(),
    )


async def test_a_429_is_retried_after_retry_after(server: tuple[TestServer, list[web.Request]]) -> None:
    test_server, seen = server
    client = await client_for(test_server)
    try:
        assert await client.request("GET", "/throttled") == {"ok": True}
        assert sum(r.path == "/throttled" for r in seen) == 3
        with pytest.raises(kube.ApiError) as e:
            await client.request("GET", "/always-throttled")
        assert e.value.status == 429
        assert sum(r.path == "/always-throttled" for r in seen) == 1 + kube.THROTTLE_RETRIES
    finally:
        await client.close()


async def test_errors_carry_the_kubernetes_verb(server: tuple[TestServer, list[web.Request]]) -> None:
    test_server, _ = server
    client = await client_for(test_server)
    try:
        with pytest.raises(kube.ApiError) as e:
            await client.request(
                "PATCH", "/forbidden", body={}, params={"dryRun": "All"}, content_type="application/apply-patch+yaml"
            )
        assert (e.value.status, e.value.verb, e.value.reason) == (403, "dry-run apply", "Forbidden")
    finally:
        await client.close()


async def test_an_impersonating_view_sends_only_the_user(server: tuple[TestServer, list[web.Request]]) -> None:
    test_server, seen = server
    client = await client_for(test_server)
    try:
        view = client.impersonating("system:serviceaccount:a:b")
        await view.request("GET", "/x")
        headers = seen[-1].headers
        assert headers["Impersonate-User"] == "system:serviceaccount:a:b"
        assert "Impersonate-Group" not in headers  # the API server adds a ServiceAccount's groups
        assert view.limiter is client.limiter
        await client.request("GET", "/y")
        assert "Impersonate-User" not in seen[-1].headers
    finally:
        await client.close()


async def test_the_rate_limiter_spaces_requests_after_the_burst() -> None:
    limiter = kube.RateLimiter(qps=50, burst=5)
    started = time.monotonic()
    for _ in range(5):
        await limiter.acquire()
    burst = time.monotonic() - started
    for _ in range(25):
        await limiter.acquire()
    total = time.monotonic() - started
    assert burst < 0.05  # the burst does not wait (one paced request would take 0.02 s)
    # 30 requests with 5 saved up take (30 - 5) / 50 = 0.5 s; never less, a bit more when loaded.
    assert 0.49 <= total < 1.5


async def test_the_rate_limiter_saves_up_no_more_than_the_burst() -> None:
    limiter = kube.RateLimiter(qps=50, burst=5)
    await asyncio.sleep(0.3)  # idle for 15 requests' worth
    started = time.monotonic()
    for _ in range(15):
        await limiter.acquire()
    assert 0.19 <= time.monotonic() - started < 1.0  # 5 at once, the other 10 at 50 per second


async def test_a_401_fetches_a_rotated_token_once_and_retries(tmp_path: Path) -> None:
    """A token file rotated under the client (or a plugin's token revoked): the 401 drops
    the token, the next try reads the new one; a token still refused is an error."""
    (tmp_path / "token").write_text("old")
    tries: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        tries.append(request.headers.get("Authorization", ""))
        if tries[-1] != "Bearer new":
            return web.json_response({"reason": "Unauthorized", "message": "Unauthorized"}, status=401)
        return web.json_response({"ok": True})

    async with serving(handler) as test_server:
        connection = kubeconfig.Connection(server=str(test_server.make_url("")), token_file=str(tmp_path / "token"))

        async def auth() -> dict[str, str]:
            return {"Authorization": str(await connection.authorization())}

        client = kube.Client(
            server=connection.server,
            session=aiohttp.ClientSession(),
            auth=auth,
            discovery=kube.Discovery(),
            forget=connection.forget,
        )
        try:
            with pytest.raises(kube.ApiError) as refused:  # read again once, still "old": refused
                await client.request("GET", "/x")
            assert refused.value.status == 401
            assert tries == ["Bearer old", "Bearer old"]
            (tmp_path / "token").write_text("new")  # the kubelet rotates it
            assert await client.request("GET", "/x") == {"ok": True}
            assert tries[2:] == ["Bearer old", "Bearer new"]
        finally:
            await client.close()
