"""Durations as the CRDs accept them."""

import pytest

from pullsync.api import durations


@pytest.mark.parametrize(("text", "seconds"), [("1m", 60), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("0m5s", 5)])
def test_valid_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert durations.parse(text) == seconds


@pytest.mark.parametrize("text", ["0s", "-1m", "10", "1ns", "", "m", "1m 30s", "1.5m"])
def test_invalid_or_zero_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        durations.parse(text)
