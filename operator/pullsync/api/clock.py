"""Wall-clock timestamps as the Kubernetes API writes them (UTC). Durations and
deadlines use `time.monotonic()`; only what is written to the API reads this clock."""

import datetime


def now() -> str:
    """RFC 3339 with seconds precision: conditions, events, artifacts."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """RFC 3339 with microseconds (MicroTime): Lease renew and acquire times."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
