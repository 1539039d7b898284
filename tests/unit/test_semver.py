"""Semver ranges pick the newest matching tag."""

import pytest

from pullsync.source import semver

TAGS = ["v1.0.0", "v1.2.0", "v1.3.5", "v1.10.0", "v2.0.0", "1.4.0-rc.1", "1.4.0", "latest", "v3.0.0-beta.2"]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (">=1.2.0 <2.0.0", "v1.10.0"),
        (">=1.2.0, <1.4.0", "v1.3.5"),
        ("^1.2", "v1.10.0"),
        ("~1.2.0", "v1.2.0"),
        ("1.x", "v1.10.0"),
        ("*", "v2.0.0"),
        ("<1.3", "v1.2.0"),
        ("1.0.0", "v1.0.0"),
        ("=2.0.0 || 1.3.x", "v2.0.0"),
        (">=1.4.0-rc.0 <1.4.0", "1.4.0-rc.1"),
        (">=3", None),
    ],
)
def test_the_newest_tag_in_range_wins(case: str, expected: str | None) -> None:
    assert semver.newest(TAGS, case) == expected


def test_prereleases_are_ignored_unless_asked_for() -> None:
    assert semver.newest(["v3.0.0-beta.2", "v2.9.0"], ">=2.0.0") == "v2.9.0"


def test_a_malformed_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="invalid version"):
        semver.newest(TAGS, ">=banana")
