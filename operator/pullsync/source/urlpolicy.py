"""Which git URLs the operator may contact, decided before any network attempt.

Allowed: https://, ssh:// and scp-like `user@host:path`; http:// only with
`--allow-insecure-http`. Never: file://, git's `ext::`/`fd::` transports, or any host
that resolves to a link-local address (169.254.0.0/16, fe80::/10: cloud metadata
services live there). Loopback, unspecified addresses and the cluster's own API server
only with `--allow-local-urls`. A redirect to another host is refused (see
`gitauth.Callbacks`): over HTTPS before any request reaches it, over HTTP before any
credential does.
"""

import asyncio
import dataclasses
import ipaddress
import re
import socket
from urllib.parse import urlsplit

_SCP = re.compile(r"^(?:[A-Za-z0-9._~-]+@)?(?P<host>[^/:@]+):(?!//)")


class Refused(Exception):
    """The URL is not allowed; the message says why."""


@dataclasses.dataclass(frozen=True)
class UrlPolicy:
    allow_insecure_http: bool = False
    allow_local_urls: bool = False
    api_hosts: frozenset[str] = frozenset()  # the cluster's API server, by name or address


def split(url: str) -> tuple[str, str]:
    """(scheme, host) of a git URL; scp-like URLs count as ssh. Refused if unusable."""
    if "::" in url.split("/", 1)[0]:
        raise Refused(f"the git transport {url.split('::', 1)[0]}:: is not allowed")
    if "://" not in url:
        scp = _SCP.match(url)
        if not scp:
            raise Refused("not a URL: use https://, ssh:// or user@host:path")
        return "ssh", scp["host"]
    parts = urlsplit(url)
    if not parts.hostname:
        raise Refused(f"{parts.scheme}:// URLs without a host are not allowed")
    return parts.scheme.lower(), parts.hostname.lower()


async def check(url: str, policy: UrlPolicy) -> None:
    """Raise Refused unless `url` may be contacted under `policy`."""
    scheme, host = split(url)
    if scheme == "http" and not policy.allow_insecure_http:
        raise Refused("http:// is not allowed (credentials and content would travel in clear); use https:// "
                      "or start the operator with --allow-insecure-http")  # fmt: skip
    if scheme not in ("https", "ssh", "http"):
        raise Refused(f"the scheme {scheme}:// is not allowed; use https:// or ssh://")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as e:
        raise Refused(f"cannot resolve host {host}: {e.strerror or e}") from None
    for info in infos:
        refused = refusal(host, str(info[4][0]), policy)
        if refused:
            raise Refused(refused)


def refusal(host: str, resolved: str, policy: UrlPolicy) -> str | None:
    """Why `host`, resolved to the address `resolved`, may not be contacted; None if it may.
    Also for a connection's own resolution (see `web.resolver`): a name that resolved to an
    allowed address when checked cannot lead elsewhere when connected (DNS rebinding)."""
    address = ipaddress.ip_address(resolved.split("%", maxsplit=1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_link_local:
        return f"host {host} resolves to the link-local address {address}, which is never allowed"
    local = address.is_loopback or address.is_unspecified or str(address) in policy.api_hosts
    if (local or host in policy.api_hosts) and not policy.allow_local_urls:
        return (
            f"host {host} resolves to {address}, a local or cluster API address; "
            "start the operator with --allow-local-urls to allow it"
        )
    return None
