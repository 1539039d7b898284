"""Health of applied objects, with kstatus's rules: `of` one object, the `worst` of a set.

Pure: it reads the objects it is given (plain JSON data) and never reaches the API.
"""

from pullsync.health.status import (
    CURRENT,
    FAILED,
    IN_PROGRESS,
    NOT_FOUND,
    ORDER,
    TERMINATING,
    UNKNOWN,
    Health,
    of,
    rank,
    worst,
)

__all__ = [
    "CURRENT",
    "FAILED",
    "IN_PROGRESS",
    "NOT_FOUND",
    "ORDER",
    "TERMINATING",
    "UNKNOWN",
    "Health",
    "of",
    "rank",
    "worst",
]
