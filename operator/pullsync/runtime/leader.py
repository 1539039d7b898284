"""Leader election on a coordination.k8s.io/v1 Lease, so that `replicas: 2` is safe.

Only the holder of the Lease reconciles. The holder renews it every `renew` seconds. A
candidate takes it over once the Lease it observes has not changed for
`leaseDurationSeconds` by its own clock (never the holder's clock), so a leader that dies
is replaced within about `duration + retry` seconds. A leader leads only while its last
renewal is younger than `renew_deadline` (shorter than the lease, as in client-go):
`leading()` fences every write of the operator's client, and past the deadline (a failing
API server, or a process frozen and resumed) it gives up (sets `lost`) without another
write, and the process exits to restart as a candidate. On a clean stop the Lease is
released at once. Updates are optimistic (resourceVersion): two candidates never both win.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from pullsync import kube
from pullsync.api import clock

log = logging.getLogger("pullsync.leader")

LEASES = kube.Resource("coordination.k8s.io", "v1", "Lease", "leases", True)
RELEASE_SECONDS = 5.0


class Election:
    """Campaign for, hold and release one Lease."""

    def __init__(
        self,
        client: kube.Client,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration: float = 15.0,
        renew: float = 5.0,
        retry: float = 2.0,
        renew_deadline: float | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew = renew
        self.retry = retry
        self.renew_deadline = renew_deadline or duration * 2 / 3
        self.lost = asyncio.Event()
        self.renewed_at = -float("inf")  # monotonic start of the last successful write of the Lease
        self.observed: tuple[Any, ...] | None = None  # the Lease record as last seen, and since when
        self.observed_at = 0.0

    def leading(self) -> bool:
        """Whether this process may still write: it renewed within the renew deadline."""
        return not self.lost.is_set() and time.monotonic() - self.renewed_at < self.renew_deadline

    async def acquire(self, stand_by: Callable[[], object], stop: asyncio.Event) -> bool:
        """Return True once this process holds the Lease, False once `stop` is set (after the
        attempt in flight: one that wins holds the Lease, to release). `stand_by` is called
        once, when the first attempt finds the Lease held by another."""
        announced = False
        while True:
            try:
                if await self._try():
                    break
                if not announced and not stop.is_set():
                    log.info("waiting to become the leader (Lease %s/%s)", self.namespace, self.name)
                    announced = True
                    stand_by()
            except kube.ApiError as e:
                if not kube.transient(e):  # forbidden, no such namespace: no retry mends that
                    raise
                log.warning("campaigning for the Lease %s/%s failed: %s", self.namespace, self.name, e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.retry)
            if stop.is_set():
                return False
        log.info("became the leader (Lease %s/%s, identity %s)", self.namespace, self.name, self.identity)
        return True

    async def keep(self) -> None:
        """Renew until cancelled; set `lost` once the last renewal is older than the renew
        deadline (checked before renewing: a process that was frozen steps down at once)."""
        while True:
            await asyncio.sleep(self.renew)
            if self.leading():
                try:
                    await self._try()
                except Exception as e:  # any failure to renew counts the same
                    log.warning("renewing the Lease failed: %s", e)
            if not self.leading():
                log.error("lost the leadership (Lease %s/%s): stepping down", self.namespace, self.name)
                self.lost.set()
                return

    async def release(self) -> None:
        """Give the Lease up so that a standby takes over at once (if the API server answers:
        else a standby takes it when it expires)."""
        try:
            async with asyncio.timeout(RELEASE_SECONDS):  # a pod being stopped has little time
                lease = await self.client.get(LEASES, self.namespace, self.name)
                if lease is None or lease.get("spec", {}).get("holderIdentity") != self.identity:
                    return
                lease["spec"]["holderIdentity"] = ""  # free: a candidate takes it at once
                lease["spec"]["leaseDurationSeconds"] = 1
                await self.client.request("PUT", LEASES.path(self.namespace, self.name), body=lease)
        except (kube.ApiError, TimeoutError) as e:
            why = str(e) or "no answer in time"
            log.warning("releasing the Lease failed: %s; a standby takes it when it expires", why)

    async def _try(self) -> bool:
        """Take or renew the Lease; True if this process holds it now."""
        started = time.monotonic()
        lease = await self.client.get(LEASES, self.namespace, self.name)
        now = clock.now_micro()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.duration),
            "renewTime": now,
        }
        if lease is None:
            spec["acquireTime"] = now
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": spec,
            }
            try:
                await self.client.request("POST", LEASES.path(self.namespace), body=body)
            except kube.ApiError as e:
                if e.status == 409:
                    return False
                raise
            self.renewed_at = started
            return True
        current = lease.get("spec") or {}
        holder = current.get("holderIdentity")
        record = (holder, current.get("renewTime"), current.get("leaseDurationSeconds"))
        if record != self.observed:
            self.observed, self.observed_at = record, started
        expired = started - self.observed_at > float(current.get("leaseDurationSeconds") or 15)
        if holder and holder != self.identity and not expired:
            return False
        spec["acquireTime"] = current.get("acquireTime") if holder == self.identity else now
        lease["spec"] = {**current, **spec}
        try:
            await self.client.request("PUT", LEASES.path(self.namespace, self.name), body=lease)
        except kube.ApiError as e:
            if e.status == 409:  # someone else wrote it first
                return False
            raise
        self.renewed_at = started
        return True
