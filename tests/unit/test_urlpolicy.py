"""The URL policy refuses before any network attempt (names resolve locally here)."""

import pytest

from pullsync.source import urlpolicy

STRICT = urlpolicy.UrlPolicy()
LOCAL = urlpolicy.UrlPolicy(allow_insecure_http=True, allow_local_urls=True)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("file:///etc/passwd", "without a host"),
        ("ext::sh -c id", "transport ext:: is not allowed"),
        ("fd::17", "transport fd:: is not allowed"),
        ("ftp://example.com/x.git", "scheme ftp:// is not allowed"),
        ("http://127.0.0.1/x.git", "http:// is not allowed"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/x.git", "link-local"),
        ("https://[::ffff:169.254.169.254]/x.git", "link-local"),
        ("ssh://git@127.0.0.1/x.git", "--allow-local-urls"),
        ("git@localhost:org/x.git", "--allow-local-urls"),
        ("https://0.0.0.0/x.git", "--allow-local-urls"),
    ],
)
async def test_refused_urls_say_why(url: str, words: str) -> None:
    with pytest.raises(urlpolicy.Refused, match=words.replace("+", r"\+")):
        await urlpolicy.check(url, STRICT)


async def test_link_local_is_refused_even_when_local_urls_are_allowed() -> None:
    with pytest.raises(urlpolicy.Refused, match="never allowed"):
        await urlpolicy.check("http://169.254.169.254/x.git", LOCAL)


async def test_the_cluster_api_host_needs_the_local_flag() -> None:
    policy = urlpolicy.UrlPolicy(api_hosts=frozenset({"10.0.0.1"}))
    with pytest.raises(urlpolicy.Refused, match="cluster API"):
        await urlpolicy.check("https://10.0.0.1/x.git", policy)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/x.git", "ssh://git@localhost:2222/x.git", "git@127.0.0.1:x.git"]
)
async def test_local_urls_pass_with_the_flags(url: str) -> None:
    await urlpolicy.check(url, LOCAL)


async def test_private_addresses_are_allowed() -> None:
    await urlpolicy.check("https://10.1.2.3/org/app.git", STRICT)
