"""Leader election on a coordination.k8s.io/v1 Lease, so that `replicas: 2` is safe.

Only the holder of the Lease reconciles. The holder renews it every `renew` seconds; a
candidate takes it over once `renewTime + leaseDurationSeconds` has passed, so a leader
that dies is replaced within about `duration + retry` seconds. A leader that cannot renew
for `duration` seconds gives up (sets `lost`) and the process exits to restart as a
candidate. On a clean stop the Lease is released at once. Updates are optimistic
(resourceVersion), so two candidates can never both win.
"""

import asyncio
import datetime
import logging
import time
from typing import Any

from pullsync import kube

log = logging.getLogger("pullsync.leader")

LEASES = kube.Resource("coordination.k8s.io", "v1", "Lease", "leases", True)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _micro(stamp: datetime.datetime) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    return datetime.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")


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
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew = renew
        self.retry = retry
        self.lost = asyncio.Event()

    async def acquire(self) -> None:
        """Return once this process holds the Lease."""
        announced = False
        while not await self._try():
            if not announced:
                log.info("waiting to become the leader (Lease %s/%s)", self.namespace, self.name)
                announced = True
            await asyncio.sleep(self.retry)
        log.info("became the leader (Lease %s/%s, identity %s)", self.namespace, self.name, self.identity)

    async def keep(self) -> None:
        """Renew until cancelled; set `lost` when renewing failed for a whole lease duration."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.renew)
            try:
                ok = await self._try()
            except Exception as e:  # any failure to renew counts the same
                log.warning("renewing the Lease failed: %s", e)
                ok = False
            if ok:
                last = time.monotonic()
            elif time.monotonic() - last > self.duration:
                log.error("lost the leadership (Lease %s/%s)", self.namespace, self.name)
                self.lost.set()
                return

    async def release(self) -> None:
        """Give the Lease up so that a standby takes over at once."""
        lease = await self.client.get(LEASES, self.namespace, self.name)
        if lease is None or lease.get("spec", {}).get("holderIdentity") != self.identity:
            return
        lease["spec"]["leaseDurationSeconds"] = 1
        lease["spec"]["renewTime"] = _micro(_now() - datetime.timedelta(seconds=60))
        try:
            await self.client.request("PUT", LEASES.path(self.namespace, self.name), body=lease)
        except kube.ApiError as e:
            log.warning("releasing the Lease failed: %s", e)

    async def _try(self) -> bool:
        lease = await self.client.get(LEASES, self.namespace, self.name)
        now = _now()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.duration),
            "renewTime": _micro(now),
        }
        if lease is None:
            spec["acquireTime"] = _micro(now)
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
            return True
        current = lease.get("spec") or {}
        holder = current.get("holderIdentity")
        renewed = _parse(current.get("renewTime"))
        expired = renewed is None or renewed + datetime.timedelta(seconds=current.get("leaseDurationSeconds", 15)) < now
        if holder and holder != self.identity and not expired:
            return False
        spec["acquireTime"] = current.get("acquireTime") if holder == self.identity else _micro(now)
        lease["spec"] = {**current, **spec}
        try:
            await self.client.request("PUT", LEASES.path(self.namespace, self.name), body=lease)
        except kube.ApiError as e:
            if e.status == 409:  # someone else wrote it first
                return False
            raise
        return True
