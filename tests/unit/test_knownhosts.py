"""known_hosts entries as OpenSSH picks them for one host and port (libssh2 matches a bare
host on any port, no wildcard, names case by case, and ignores @revoked)."""

import base64
import hashlib
import hmac

import pytest

from pullsync.source import git, knownhosts

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7w1wPvL5uG0xQeT3bAqQe8i7U0lYbq4gq0ZcM1m2gX"


def hashed(name: str) -> str:
    salt = b"0123456789abcdefghij"
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def test_a_bare_host_names_port_22_only() -> None:
    text = f"git.example.com {KEY}\n"
    assert knownhosts.entries_for(text, "git.example.com", 22) == f"git.example.com {KEY}\n"
    with pytest.raises(ValueError, match=r"has no entry for \[git\.example\.com\]:2222$"):
        knownhosts.entries_for(text, "git.example.com", 2222)


def test_another_port_is_named_in_brackets_plain_or_hashed() -> None:
    for field in ("[127.0.0.1]:2222", hashed("[127.0.0.1]:2222"), "[127.0.0.1]:2222,other"):
        entries = knownhosts.entries_for(f"{field} {KEY} comment\n", "127.0.0.1", 2222)
        assert entries == f"[127.0.0.1]:2222 {KEY} comment\n"
    with pytest.raises(ValueError, match="has no entry"):
        knownhosts.entries_for(f"{hashed('127.0.0.1')} {KEY}\n", "127.0.0.1", 2222)


def test_names_compare_without_case_and_are_written_as_the_url_spells_them() -> None:
    for field in ("git.example.com", "GIT.Example.com", hashed("git.example.com")):
        assert knownhosts.entries_for(f"{field} {KEY}\n", "Git.Example.com", 22) == f"Git.Example.com {KEY}\n"


def test_wildcards_and_negations_as_openssh_reads_them() -> None:
    text = f"!bad.example.com,*.example.com {KEY}\n# a comment\n\ngit?.example.org {KEY}\r\n"
    assert knownhosts.entries_for(text, "git.example.com", 22) == f"git.example.com {KEY}\n"
    assert knownhosts.entries_for(text, "git1.example.org", 22) == f"git1.example.org {KEY}\n"
    with pytest.raises(ValueError, match="has no entry"):
        knownhosts.entries_for(text, "bad.example.com", 22)


def test_a_revoked_key_is_dropped_and_certificates_are_said_to_be_unsupported() -> None:
    text = f"@revoked * {KEY}\nh {KEY}\nh {OTHER}\n"
    assert knownhosts.entries_for(text, "h", 22) == f"h {OTHER}\n"
    with pytest.raises(ValueError, match=r"lists only @revoked keys for h$"):
        knownhosts.entries_for(f"@revoked h {KEY}\nh {KEY}\n", "h", 22)
    with pytest.raises(ValueError, match=r"has no entry for h \(host certificates"):
        knownhosts.entries_for(f"@cert-authority *.example.com,h {KEY}\n", "h", 22)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("ssh://git@Git.Example.com/org/r.git", ("Git.Example.com", 22)),
        ("ssh://git@host:2222/org/r.git", ("host", 2222)),
        ("ssh://git@[::1]:2222/r.git", ("::1", 2222)),
        ("git@GitHub.com:org/r.git", ("GitHub.com", 22)),
    ],
)
def test_the_ssh_address_keeps_the_hosts_spelling(url: str, address: tuple[str, int]) -> None:
    assert git.ssh_address(url) == address
