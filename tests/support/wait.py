"""Polling with a deadline: the only way tests wait for something."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> T:
    """Call `check` until it returns a truthy value (returned) or the deadline passes.

    AssertionErrors raised by `check` count as "not yet"; the last one is re-raised
    at the deadline so the failure says what was wrong.
    """
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError as e:
            last = e
        if time.monotonic() > deadline:
            if last is not None:
                raise last
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
