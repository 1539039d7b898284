"""The provider session's resolver: every address a connection uses passes the URL policy
again, so a name that passed the check cannot lead to a forbidden address later."""

import asyncio

import aiohttp
import pytest

from pullsync.source import urlpolicy
from pullsync.web import resolver


def test_an_address_the_policy_refuses_is_never_handed_to_a_connection() -> None:
    async def resolve(host: str, policy: urlpolicy.UrlPolicy) -> list[str]:
        found = await resolver.PolicyResolver(policy).resolve(host, 80)
        return [r["host"] for r in found]

    assert asyncio.run(resolve("127.0.0.1", urlpolicy.UrlPolicy(allow_local_urls=True))) == ["127.0.0.1"]
    with pytest.raises(OSError, match=r"link-local address 169\.254\.169\.254"):
        asyncio.run(resolve("169.254.169.254", urlpolicy.UrlPolicy(allow_local_urls=True)))
    with pytest.raises(OSError, match="--allow-local-urls"):
        asyncio.run(resolve("localhost", urlpolicy.UrlPolicy()))


def test_a_session_of_the_policy_fails_to_connect_to_a_refused_address() -> None:
    async def post() -> None:
        async with resolver.session(urlpolicy.UrlPolicy(allow_insecure_http=True)) as session:
            await session.post("http://localhost:9/plan", json={})  # a name (aiohttp resolves no IP literal)

    with pytest.raises(aiohttp.ClientConnectorError, match="refused by the URL policy"):
        asyncio.run(post())
