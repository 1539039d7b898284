"""An aiohttp resolver that applies the URL policy to every address a connection uses.

The Preview's provider address is checked (`urlpolicy.check`) before anything is sent;
a name can still resolve elsewhere a moment later, when aiohttp connects (DNS
rebinding: a tenant's name that answered a public address to the check and the cloud
metadata address to the connection). Every address this resolver hands to aiohttp has
passed the same policy; a name with none left fails the connection.
"""

import errno
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from pullsync.source import urlpolicy


class PolicyResolver(AbstractResolver):
    """aiohttp's default resolution, without the addresses `policy` refuses."""

    def __init__(self, policy: urlpolicy.UrlPolicy) -> None:
        self.policy = policy
        self.resolver = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.resolver.resolve(host, port, family)
        allowed = [r for r in found if urlpolicy.refusal(host.lower(), r["host"], self.policy) is None]
        if not allowed:
            reason = urlpolicy.refusal(host.lower(), found[0]["host"], self.policy) if found else "no address"
            raise OSError(errno.EACCES, f"refused by the URL policy: {reason}")  # errno: aiohttp shows strerror
        return allowed

    async def close(self) -> None:
        await self.resolver.close()


def session(policy: urlpolicy.UrlPolicy, **kwargs: Any) -> aiohttp.ClientSession:
    """A client session whose connections reach only what `policy` allows."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=PolicyResolver(policy)), **kwargs)
