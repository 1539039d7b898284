"""Credentials never leak into messages."""

import base64

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
