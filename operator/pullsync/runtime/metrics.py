"""Prometheus metrics of the operator, served on `--metrics-addr` at `/metrics`."""

import contextlib

from prometheus_client import Counter, Gauge, Histogram

API_REQUESTS = Counter("pullsync_api_requests_total", "Kubernetes API requests, by verb", ["verb"])
API_THROTTLED = Counter("pullsync_api_throttled_total", "Kubernetes API answers 429 Too Many Requests")
RECONCILE_SECONDS = Histogram(
    "pullsync_reconcile_duration_seconds",
    "Duration of one reconcile, by kind and Ready status",
    ["kind", "ready"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
GIT_SECONDS = Histogram(
    "pullsync_git_duration_seconds",
    "Duration of git operations: list (remote refs) and fetch",
    ["operation"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
GIT_OPERATIONS = Counter(
    "pullsync_git_operations_total", "Git operations, by operation and result", ["operation", "result"]
)
RENDERS = Counter(
    "pullsync_renders_total", "Renders of a Sync's path (a commit that changes nothing it reads costs none)"
)
OBJECTS_APPLIED = Counter("pullsync_objects_applied_total", "Objects written with server-side apply")
OBJECTS_PRUNED = Counter("pullsync_objects_pruned_total", "Objects deleted by pruning")
DRY_RUNS_SKIPPED = Counter(
    "pullsync_dry_runs_skipped_total", "Objects found unchanged from the live cache, without a dry-run"
)
SYNC_HEALTH = Gauge(
    "pullsync_sync_health",
    "1 for the kstatus health of a Sync's applied objects (Current, InProgress, Failed, Unknown), by Sync",
    ["namespace", "name", "status"],
)
HEALTH_STATUSES = ("Current", "InProgress", "Failed", "Unknown")


def set_sync_health(namespace: str, name: str, status: str | None) -> None:
    """Mark `status` as the Sync's health (None: the Sync is gone, drop its series)."""
    for each in HEALTH_STATUSES:
        if status is None:
            with contextlib.suppress(KeyError):
                SYNC_HEALTH.remove(namespace, name, each)
        else:
            SYNC_HEALTH.labels(namespace, name, each).set(1 if each == status else 0)
