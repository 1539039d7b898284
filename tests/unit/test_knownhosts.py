"""known_hosts entries as OpenSSH picks them for one host and port (libssh2 matches a bare
host on any port and no wildcard)."""

import base64
import hashlib
import hmac

from pullsync.source import knownhosts

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def hashed(name: str) -> str:
    salt = b"0123456789abcdefghij"
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def test_a_bare_host_names_port_22_only() -> None:
    text = f"git.example.com {KEY}\n"
    assert knownhosts.entries_for(text, "git.example.com", 22) == f"git.example.com {KEY}\n"
    assert knownhosts.entries_for(text, "git.example.com", 2222) == ""


def test_another_port_is_named_in_brackets_plain_or_hashed() -> None:
    for field in ("[127.0.0.1]:2222", hashed("[127.0.0.1]:2222"), "[127.0.0.1]:2222,other"):
        assert (
            knownhosts.entries_for(f"{field} {KEY} comment\n", "127.0.0.1", 2222) == f"[127.0.0.1]:2222 {KEY} comment\n"
        )
    assert knownhosts.entries_for(f"{hashed('127.0.0.1')} {KEY}\n", "127.0.0.1", 2222) == ""


def test_wildcards_and_negations_as_openssh_reads_them() -> None:
    text = f"!bad.example.com,*.example.com {KEY}\n# a comment\n\ngit?.example.org {KEY}\n"
    assert knownhosts.entries_for(text, "git.example.com", 22) == f"git.example.com {KEY}\n"
    assert knownhosts.entries_for(text, "bad.example.com", 22) == ""
    assert knownhosts.entries_for(text, "git1.example.org", 22) == f"git1.example.org {KEY}\n"


def test_marked_lines_stay_with_the_entries_and_alone_are_no_entry() -> None:
    revoked = f"@revoked * {KEY}"
    assert knownhosts.entries_for(f"{revoked}\n", "h", 22) == ""
    assert knownhosts.entries_for(f"{revoked}\nh {KEY}\n", "h", 22) == f"{revoked}\nh {KEY}\n"
