"""known_hosts read as OpenSSH reads it, for the one host and port a fetch connects to.

libgit2 verifies SSH host keys through libssh2, which reads known_hosts its own way: an
entry for a bare host name also matches that host on any port, and wildcard patterns
match nothing. pullsync hands it only the entries OpenSSH would consult for the URL's
host and port, each written under the one name libssh2 looks up. When none applies the
fetch stops before connecting, saying so; a refusal after that means the key differs.
"""

import base64
import binascii
import hashlib
import hmac
import re


def name(host: str, port: int) -> str:
    """How known_hosts names `host` on `port`: bare on 22, else `[host]:port`."""
    return host if port == 22 else f"[{host}]:{port}"


def entries_for(text: str, host: str, port: int) -> str:
    """The lines of `text` that name `host` on `port`, under that name; '' when none does.
    Lines with a marker (`@revoked`, `@cert-authority`) are kept as they are."""
    wanted = name(host, port)
    marked, entries = [], []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0].startswith("@"):
            marked.append(line)
        elif len(fields) >= 3 and _names(fields[0], wanted):
            entries.append(" ".join([wanted, *fields[1:]]))
    return "".join(f"{line}\n" for line in marked + entries) if entries else ""


def _names(patterns: str, wanted: str) -> bool:
    """Whether a known_hosts host field (hashed, or patterns with `*`, `?` and `!`) names `wanted`."""
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
