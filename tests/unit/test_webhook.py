"""Webhook signatures of every supported forge."""

import hashlib
import hmac

import pytest

from pullsync.web import webhook

TOKEN = b"hook-token"
BODY = b'{"ref": "refs/heads/main"}'
SHA256 = hmac.new(TOKEN, BODY, hashlib.sha256).hexdigest()
SHA1 = hmac.new(TOKEN, BODY, hashlib.sha1).hexdigest()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Hub-Signature-256": f"sha256={SHA256}"},
        {"X-Gitea-Signature": SHA256},
        {"X-Gitlab-Token": TOKEN.decode()},
        {"X-Hub-Signature": f"sha256={SHA256}"},
        {"X-Hub-Signature": f"sha1={SHA1}"},
        {"X-Signature": f"sha256={SHA256}"},
    ],
)
def test_valid_signatures_are_accepted(headers: dict[str, str]) -> None:
    assert webhook.signature_valid(headers, BODY, TOKEN)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Gitlab-Token": "wrong"},
        {"X-Signature": f"md5={SHA256}"},
        {"X-Gitea-Signature": SHA1},
    ],
)
def test_bad_or_missing_signatures_are_refused(headers: dict[str, str]) -> None:
    assert not webhook.signature_valid(headers, BODY, TOKEN)


def test_a_signature_over_another_body_is_refused() -> None:
    assert not webhook.signature_valid({"X-Hub-Signature-256": f"sha256={SHA256}"}, BODY + b" ", TOKEN)


def test_the_rate_limiter_allows_a_burst_then_refuses_per_path() -> None:
    limiter = webhook.RateLimiter(rate=0.001, burst=3)
    assert [limiter.allow("a/b") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("a/other")


def test_the_rate_limiter_forgets_the_oldest_paths() -> None:
    limiter = webhook.RateLimiter(rate=0.001, burst=1, paths=2)
    assert limiter.allow("one")
    assert limiter.allow("two")
    assert limiter.allow("three")  # pushes "one" out
    assert limiter.allow("one")  # a fresh bucket again
