"""known_hosts read as OpenSSH reads it, for the one host and port a fetch connects to.

libgit2 verifies SSH host keys through libssh2, which reads known_hosts its own way: an
entry for a bare host name also matches that host on any port, wildcard patterns match
nothing, names are compared case by case, and `@revoked` lines are ignored. pullsync
hands it only the entries OpenSSH would accept for the URL's host and port, each written
under the name libssh2 looks up (the host as the URL spells it), without the keys a
`@revoked` line for that host names. When none is left the fetch stops before
connecting, saying so; a refusal after that means the key differs.
"""

import base64
import binascii
import hashlib
import hmac
import re

NO_CERTIFICATES = "host certificates (@cert-authority) are not supported: list the host's keys"


def name(host: str, port: int) -> str:
    """How known_hosts names `host` on `port`: bare on 22, else `[host]:port`."""
    return host if port == 22 else f"[{host}]:{port}"


def entries_for(text: str, host: str, port: int) -> str:
    """The lines of `text` for `host` on `port`, under that name (the host as the URL spells
    it); ValueError saying why when none is left."""
    entries: list[list[str]] = []
    revoked: set[tuple[str, str]] = set()
    authorities = False
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else ""
        if len(fields) < 3 or not _names(fields[0], name(host.lower(), port)):
            continue
        if marker == "@revoked":
            revoked.add((fields[1], fields[2]))
        elif marker == "@cert-authority":
            authorities = True
        elif not marker:
            entries.append(fields[1:])
    kept = [" ".join([name(host, port), *fields]) for fields in entries if (fields[0], fields[1]) not in revoked]
    if kept:
        return "".join(f"{line}\n" for line in kept)
    if entries:
        raise ValueError(f"lists only @revoked keys for {name(host, port)}")
    raise ValueError(f"has no entry for {name(host, port)}" + (f" ({NO_CERTIFICATES})" if authorities else ""))


def _names(patterns: str, wanted: str) -> bool:
    """Whether a known_hosts host field (hashed, or patterns with `*`, `?` and `!`) names
    `wanted` (lowercase, as OpenSSH compares and hashes it)."""
    if patterns.startswith("|1|"):
        try:
            salt, digest = (base64.b64decode(part, validate=True) for part in patterns[3:].split("|", 1))
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(hmac.new(salt, wanted.encode(), hashlib.sha1).digest(), digest)
    named = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.removeprefix("!"))
        if re.fullmatch(regex, wanted, re.IGNORECASE):
            if negated:
                return False
            named = True
    return named
