"""status.history on the real control plane: three commits, a drift corrected, a revert."""

from support import manifests as m
from support import wait
from support.cluster import Cluster
from support.git import HttpGitServer
from support.operator import Operator
from support.sync import Source, create_sync, get_sync, wait_applied


def test_history_after_three_commits_a_drift_correction_and_a_revert(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    first = source.push({"cm.yaml": m.configmap("cm", "v1")}, "first version\n\nmore words")
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, first)
    second = source.push({"cm.yaml": m.configmap("cm", "v2")}, "second version")
    wait_applied(cluster, namespace, second)
    third = source.push({"cm.yaml": m.configmap("cm", "v3")}, "third version")
    entries = wait_applied(cluster, namespace, third)["status"]["history"]
    assert [e["revision"][-40:] for e in entries] == [third, second, first]
    assert [e["message"] for e in entries] == ["third version", "second version", "first version"]
    assert {e["author"] for e in entries} == {"Test <test@example.com>"}
    assert {e["lastReconciledStatus"] for e in entries} == {"Succeeded"}
    assert len({e["digest"] for e in entries}) == 3
    assert all(e["totalReconciliations"] == 1 for e in entries)

    cm = f"/api/v1/namespaces/{namespace}/configmaps/cm"
    cluster.api("PATCH", cm, {"data": {"value": "by hand"}}, content_type="application/merge-patch+json")

    def corrected() -> list[dict[str, object]]:
        entries = get_sync(cluster, namespace)["status"]["history"]
        assert entries[0]["totalReconciliations"] == 2
        return entries

    entries = wait.until(corrected, timeout=30, what="the drift correction in history")
    assert len(entries) == 3
    assert (cluster.get(cm) or {})["data"] == {"value": "v3"}

    revert = source.push({"cm.yaml": m.configmap("cm", "v1")}, "back to the first version")
    entries = wait_applied(cluster, namespace, revert)["status"]["history"]
    assert [e["revision"][-40:] for e in entries] == [revert, third, second]  # the first set's entry, moved up
    assert entries[0]["totalReconciliations"] == 2
    assert entries[0]["message"] == "back to the first version"
