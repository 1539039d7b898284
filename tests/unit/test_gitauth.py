"""Credentials never leak into messages, and missing ones are said to be missing where
they should be."""

import base64
import time

import pygit2
import pytest

from pullsync.source import gitauth


def creds() -> gitauth.Credentials:
    data = {"username": "bot", "password": "hunter2-very-secret", "bearerToken": "tok-123456"}
    return gitauth.Credentials.from_secret({k: base64.b64encode(v.encode()).decode() for k, v in data.items()})


def test_user_info_in_urls_is_redacted() -> None:
    assert (
        gitauth.redact_url("https://bot:pw@host/r.git and ssh://git@h/x") == "https://***@host/r.git and ssh://***@h/x"
    )


def test_scrub_removes_every_secret_value() -> None:
    text = "failed: hunter2-very-secret rejected for https://bot:hunter2-very-secret@h/r.git; token tok-123456"
    scrubbed = gitauth.scrub(text, creds())
    assert "hunter2" not in scrubbed
    assert "tok-123456" not in scrubbed


def test_repr_shows_keys_not_values() -> None:
    text = repr(creds())
    assert "password" in text
    assert "hunter2" not in text


def test_errors_are_classified_by_cause_and_scrubbed() -> None:
    failure = gitauth.classify(Exception("remote authentication required for hunter2-very-secret"), creds())
    assert failure.cause == "auth"
    assert "hunter2" not in str(failure)
    assert gitauth.classify(Exception("failed to connect to 127.0.0.1: Connection refused"), None).cause == "connect"


KEY, PASSWORD = pygit2.enums.CredentialType.SSH_MEMORY, pygit2.enums.CredentialType.USERPASS_PLAINTEXT


@pytest.mark.parametrize(
    ("secret", "ssh", "offered", "words"),
    [
        (None, False, PASSWORD, "the server asks for credentials: name a Secret with them in spec.secretRef"),
        (gitauth.Credentials(ca_cert="pem"), False, PASSWORD, "Secret lacks (username and password, or bearerToken)"),
        (gitauth.Credentials(known_hosts="h k"), True, KEY, "the secretRef Secret lacks (identity)"),
        (gitauth.Credentials(bearer_token="t"), False, PASSWORD, "server refused the secretRef Secret's bearerToken"),
        (gitauth.Credentials(identity="k", known_hosts="h k"), True, PASSWORD, "takes no SSH key (identity) login"),
    ],
)
def test_credentials_asked_for_and_missing_say_where_they_belong(
    secret: gitauth.Credentials | None, ssh: bool, offered: pygit2.enums.CredentialType, words: str
) -> None:
    callbacks = gitauth.Callbacks(secret, time.monotonic() + 10, ssh=ssh, max_bytes=1, host="h", where="h")
    with pytest.raises(gitauth.GitFailure) as failed:
        callbacks.credentials("https://h/r.git", None, offered)
    assert words in str(failed.value)
