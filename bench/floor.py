"""The API server's floor for an initial sync, measured beside pullsync and kubectl.

A bare client (aiohttp, one connection pool, the operator's bearer token; no render, no status, no
ownership checks) that does what pullsync must: a server-side-apply dry-run of every
object, then, once all passed, the apply of every object (all kinds at once: Services 2
in flight, the rest 16). No client that validates everything before its first write can
be faster on this server. Also the CPU seconds kube-apiserver and etcd spent on it, read
from /proc: on a machine whose cores they fill, that work alone bounds the time.
"""

import asyncio
import json
import os
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
from ruamel.yaml import YAML

from support.cluster import Cluster

PATHS = {"ConfigMap": "api/v1", "Service": "api/v1", "Deployment": "apis/apps/v1"}
CONCURRENCY = {"Service": 2}
DEFAULT_CONCURRENCY = 16


def cpu_seconds(cluster_dir: Path, process: str) -> float:
    """User + system CPU seconds of one control-plane process (by its pid file)."""
    pid = (cluster_dir / f"{process}.pid").read_text().strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(cluster: Cluster, files: dict[str, str], *, token: str) -> dict[str, float]:
    """Dry-run then apply the objects of `files` (their namespaces exist) with the bearer
    `token`; seconds of each phase and CPU seconds of the API server and etcd over both."""
    yaml = YAML(typ="safe")
    objects = [yaml.load(text) for text in files.values()]
    cluster_dir = cluster.kubeconfig.parent
    before = {p: cpu_seconds(cluster_dir, p) for p in ("kube-apiserver", "etcd")}
    dry_run, apply = asyncio.run(_both(cluster, objects, token))
    return {
        "dry_run_s": round(dry_run, 2),
        "apply_s": round(apply, 2),
        "total_s": round(dry_run + apply, 2),
        **{f"{p}_cpu_s": round(cpu_seconds(cluster_dir, p) - before[p], 2) for p in before},
    }


async def _both(cluster: Cluster, objects: list[dict[str, Any]], token: str) -> tuple[float, float]:
    context = ssl.create_default_context(cafile=str(cluster.kubeconfig.parent / "pki" / "ca.crt"))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/apply-patch+yaml"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=64), headers=headers) as s:

        async def one(obj: dict[str, Any], dry_run: bool, limit: asyncio.Semaphore) -> None:
            meta = obj["metadata"]
            plural = obj["kind"].lower() + "s"
            url = f"{cluster.server}/{PATHS[obj['kind']]}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
            params = {"fieldManager": "floor", "force": "true", **({"dryRun": "All"} if dry_run else {})}
            async with limit, s.patch(url, params=params, data=json.dumps(obj)) as response:
                body = await response.read()
                assert response.status in (200, 201), body[:500]
                json.loads(body)  # what any client reads

        async def phase(dry_run: bool) -> float:
            limits = {kind: asyncio.Semaphore(CONCURRENCY.get(kind, DEFAULT_CONCURRENCY)) for kind in PATHS}
            started = time.monotonic()
            await asyncio.gather(*(one(o, dry_run, limits[o["kind"]]) for o in objects))
            return time.monotonic() - started

        return await phase(True), await phase(False)
