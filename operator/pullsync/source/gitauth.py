"""Git credentials from a Secret, and the pygit2 callbacks that use them.

Secret keys (shared/api.md): `username` + `password` (HTTPS basic; a token goes in
`password`), `bearerToken`, `identity` (SSH private key) + `known_hosts` (required for
SSH) + optional `password` (key passphrase), `ca.crt`. Nothing here ever formats a
credential into a message; `scrub()` removes them from text that came from elsewhere.
"""

import base64
import dataclasses
import re
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import pygit2

from pullsync.runtime import redact


class GitFailure(Exception):
    """A git operation failed; `cause` is one of auth, hostkey, connect, ref, timeout, other."""

    def __init__(self, cause: str, message: str) -> None:
        self.cause = cause
        super().__init__(message)


@dataclasses.dataclass(frozen=True, repr=False)
class Credentials:
    """Decoded Secret data; repr shows which keys are present, never their values."""

    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    identity: str | None = None
    known_hosts: str | None = None
    ca_cert: str | None = None

    @classmethod
    def from_secret(cls, data: Mapping[str, str]) -> "Credentials":
        """Build from a Secret's base64 `data`."""

        def get(key: str) -> str | None:
            raw = data.get(key)
            return base64.b64decode(raw).decode() if raw else None

        return cls(
            username=get("username"),
            password=get("password"),
            bearer_token=get("bearerToken"),
            identity=get("identity"),
            known_hosts=get("known_hosts"),
            ca_cert=get("ca.crt"),
        )

    def secrets(self) -> list[str]:
        """Every secret value, for scrubbing text."""
        return [v for v in (self.password, self.bearer_token, self.identity) if v]

    def __repr__(self) -> str:
        present = [f.name for f in dataclasses.fields(self) if getattr(self, f.name)]
        return f"Credentials(keys={present})"


def redact_url(url: str) -> str:
    """The URL with any user info (user:password@) replaced by `***@`."""
    return redact.urls(url)


def scrub(text: str, creds: Credentials | None) -> str:
    """Remove URL user info and every credential value from `text`."""
    return redact.values(redact.urls(text), creds.secrets() if creds else (), shortest=4)


class Callbacks(pygit2.RemoteCallbacks):
    """Credentials, host-key verification and a deadline for one git operation."""

    def __init__(
        self, creds: Credentials | None, deadline: float, *, ssh: bool, max_bytes: int, host: str, where: str
    ) -> None:
        super().__init__()
        self.host = host  # the URL's host: a redirect elsewhere is refused
        self.where = where  # the host as messages name it: [host]:port for SSH on another port than 22
        self.creds = creds or Credentials()
        self.secret_named = creds is not None  # spec.secretRef names a Secret
        self.deadline = deadline
        self.ssh = ssh
        self.max_bytes = max_bytes
        self.auth_attempts = 0

    def _check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise GitFailure("timeout", "timed out")

    def _check_host(self, host: str) -> None:
        if not self.ssh and host.lower() != self.host:
            raise GitFailure("policy", f"the server redirected to {host}; pullsync follows no redirect to another host")

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: pygit2.enums.CredentialType
    ) -> pygit2.Username | pygit2.UserPass | pygit2.Keypair:
        self._check_deadline()
        self._check_host(urlsplit(url).hostname or "")  # libgit2 asks with the URL after redirects
        self.auth_attempts += 1
        if self.auth_attempts > 1:
            raise GitFailure("auth", "authentication failed: the server rejected the credentials")
        c = self.creds
        if allowed_types & pygit2.enums.CredentialType.SSH_MEMORY and c.identity:
            return pygit2.KeypairFromMemory(
                username_from_url or c.username or "git", None, c.identity, c.password or ""
            )
        if allowed_types & pygit2.enums.CredentialType.USERPASS_PLAINTEXT and c.username and c.password:
            return pygit2.UserPass(c.username, c.password)
        if allowed_types & pygit2.enums.CredentialType.USERNAME:
            return pygit2.Username(username_from_url or c.username or "git")
        if not self.secret_named:
            raise GitFailure("auth", "the server asks for credentials: name a Secret with them in spec.secretRef")
        if c.bearer_token and not self.ssh:  # sent as a header: a server that still asks refused it
            raise GitFailure("auth", "authentication failed: the server refused the secretRef Secret's bearerToken")
        if c.identity and self.ssh:
            raise GitFailure("auth", "authentication failed: the server takes no SSH key (identity) login")
        raise GitFailure(
            "auth",
            "the server asks for credentials that the secretRef Secret lacks "
            f"({'identity' if self.ssh else 'username and password, or bearerToken'})",
        )

    def certificate_check(self, certificate: None, valid: bool, host: bytes) -> bool:
        self._check_host(host.decode(errors="replace"))  # before any request reaches that host
        # pygit2's default accepts any SSH host key; libgit2 checks known_hosts and says `valid`.
        if not valid and self.ssh:  # it has an entry (else the fetch stopped before connecting)
            raise GitFailure(
                "hostkey",
                f"SSH host key of {self.where} does not match its known_hosts entry: the host's key changed, "
                "or something is in between; check it before you replace the entry",
            )
        if not valid:
            raise GitFailure("hostkey", f"TLS certificate of {host.decode(errors='replace')} is not trusted")
        return True

    def custom_headers(self) -> list[str] | None:
        if self.creds.bearer_token:
            return [f"Authorization: Bearer {self.creds.bearer_token}"]
        return None

    def transfer_progress(self, stats: pygit2.remotes.TransferProgress) -> None:
        self._check_deadline()
        if stats.received_bytes > self.max_bytes:
            raise GitFailure("limit", f"the fetch exceeded {self.max_bytes} bytes (--max-fetch-bytes)")

    def sideband_progress(self, string: str) -> None:
        self._check_deadline()


_CAUSES = [
    ("hostkey", re.compile(r"host ?key|known_hosts|certificate", re.I)),
    ("auth", re.compile(r"auth|401|403|credential|permission denied|password|publickey", re.I)),
    ("connect", re.compile(r"connect|resolve|unreachable|refused|name or service|timed out|reset|network", re.I)),
    ("ref", re.compile(r"not found|404|does not appear|no such|repository", re.I)),
]


def classify(error: Exception, creds: Credentials | None) -> GitFailure:
    """A GitFailure naming the cause of a pygit2 error, with credentials scrubbed."""
    if isinstance(error, GitFailure):
        return GitFailure(error.cause, scrub(str(error), creds))
    text = scrub(str(error) or type(error).__name__, creds)
    for cause, pattern in _CAUSES:
        if pattern.search(text):
            return GitFailure(cause, text)
    return GitFailure("other", text)
