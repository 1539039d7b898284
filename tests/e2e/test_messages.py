"""What a person reads: events list what changed and say how many more, the Ready message
stays short with the details in an event, an object that existed without pullsync's
labels is "configured" (not "created"), `status.plan` is the last attempt's, and a new
Sync whose GitRepository is still fetching raises no warning."""

from support import manifests as m
from support import wait
from support.cluster import Cluster, condition
from support.git import HttpGitServer
from support.operator import Operator
from support.sync import Source, create_sync, get_sync, wait_applied, wait_failed


def events_of(cluster: Cluster, namespace: str, reason: str) -> list[str]:
    return [e["message"] for e in cluster.events(namespace) if e["reason"] == reason]


def test_a_large_change_set_event_is_cut_between_objects_and_counts_the_rest(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    commit = source.push({f"cm-{i:03}.yaml": m.configmap(f"config-map-with-a-long-name-{i:03}") for i in range(60)})
    create_sync(cluster, namespace)
    wait_applied(cluster, namespace, commit)
    (message,) = wait.until(lambda: events_of(cluster, namespace, "ReconciliationSucceeded"), what="an event")
    lines = message.splitlines()
    assert lines[0] == f"ConfigMap/{namespace}/config-map-with-a-long-name-000 created"
    assert all(line.endswith(" created") for line in lines[:-1])
    assert lines[-1] == f"... and {60 - len(lines) + 1} more"


def test_an_object_that_existed_without_labels_is_configured_not_created(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    cluster.kubectl("create", "configmap", "existing", "-n", namespace, "--from-literal=value=by-hand")
    source = Source(cluster, namespace, git_http)
    commit = source.push({"cm.yaml": m.configmap("existing", "from-git")})
    create_sync(cluster, namespace)
    sync = wait_applied(cluster, namespace, commit)
    assert sync["status"]["plan"]["created"] == 0
    assert sync["status"]["plan"]["changed"] == 1
    (message,) = wait.until(lambda: events_of(cluster, namespace, "ReconciliationSucceeded"), what="an event")
    assert message == f"ConfigMap/{namespace}/existing configured"


def test_the_plan_and_messages_of_a_failed_attempt(
    cluster: Cluster, operator: Operator, namespace: str, git_http: HttpGitServer
) -> None:
    source = Source(cluster, namespace, git_http)
    create_sync(cluster, namespace)  # before the GitRepository has fetched anything
    good = source.push({"a.yaml": m.configmap("a"), "b.yaml": m.configmap("b")})
    wait_applied(cluster, namespace, good)
    assert events_of(cluster, namespace, "SourceNotReady") == []
    bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: bad-{i}}}\nspec: {{replicas: oops}}\n"
    broken = source.push({f"bad-{i:02}.yaml": bad.format(i=i) for i in range(30)})
    sync = wait_failed(cluster, namespace, broken)
    assert sync["status"]["plan"] == {"objects": 32, "changed": 0, "operations": 0, "created": 0, "pruned": 0}
    message = condition(sync)["message"]
    assert len(message) < 500
    assert message.startswith("bad-00.yaml (document 1): Deployment/")
    assert message.endswith("(all of it in the Sync's Warning event)")
    (warning,) = wait.until(lambda: events_of(cluster, namespace, "ValidationFailed"), what="a warning")
    assert len(warning) > len(message)
    assert get_sync(cluster, namespace)["status"]["lastAppliedRevision"].endswith(good)
