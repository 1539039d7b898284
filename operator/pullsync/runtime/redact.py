"""The one place where secret values are taken out of text bound for logs, events and
status: URL user info, and known secret values (credentials, Secret data)."""

import re
from collections.abc import Iterable

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def urls(text: str) -> str:
    """`text` with the user info (user:password@) of every URL in it replaced by `***@`."""
    return _USERINFO.sub(rf"\g<scheme>{MASK}@", text)


def values(text: str, secrets: Iterable[str], *, shortest: int) -> str:
    """`text` with every secret value (as given and stripped) replaced by `***`; values
    shorter than `shortest` are left (masking "1" or "a" would garble the text, not hide)."""
    for secret in secrets:
        for piece in {secret, secret.strip()}:
            if len(piece) >= shortest:
                text = text.replace(piece, MASK)
    return text
