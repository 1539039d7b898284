"""The live cache of an operator that watches listed namespaces keeps only the objects
its own Syncs own (watchcache.owned_selector), as the real API server selects them."""

import asyncio
from pathlib import Path

from pullsync import api, kube
from pullsync.kube import watchcache
from support.cluster import Cluster

CONFIGMAPS = kube.Resource("", "v1", "ConfigMap", "configmaps", True)


def owned_configmap(cluster: Cluster, namespace: str, name: str, sync_namespace: str) -> None:
    labels = api.owner_labels("app", sync_namespace)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}}
    cluster.api("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)


def cached(kubeconfig: Path, namespaces: list[str], namespace: str, names: list[str]) -> dict[str, bool]:
    """Which of the ConfigMaps `names` in `namespace` a live cache for `namespaces` holds."""

    async def look() -> dict[str, bool]:
        client = await kube.Client.connect(str(kubeconfig))
        live = watchcache.LiveCache(client, on_drift=lambda ns, n: None, selector=watchcache.owned_selector(namespaces))
        try:
            await live.wait_synced([CONFIGMAPS], timeout=30)
            found = {name: live.get(CONFIGMAPS, namespace, name) for name in names}
            assert watchcache.UNKNOWN not in found.values(), "the watch of ConfigMaps never listed"
            return {name: obj is not None for name, obj in found.items()}
        finally:
            await live.close()
            await client.close()

    return asyncio.run(look())


def test_an_operator_of_listed_namespaces_caches_only_its_own_syncs_objects(
    cluster: Cluster, operator_kubeconfig: Path, namespace: str
) -> None:
    owned_configmap(cluster, namespace, "ours", sync_namespace=namespace)
    owned_configmap(cluster, namespace, "also-ours", sync_namespace="team-b")
    owned_configmap(cluster, namespace, "theirs", sync_namespace="team-c")
    names = ["ours", "also-ours", "theirs"]

    listed = cached(operator_kubeconfig, [namespace, "team-b"], namespace, names)
    assert listed == {"ours": True, "also-ours": True, "theirs": False}
    everyone = cached(operator_kubeconfig, [], namespace, names)  # cluster-wide: every Sync's
    assert everyone == {"ours": True, "also-ours": True, "theirs": True}
