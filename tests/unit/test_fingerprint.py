"""Fingerprints cover the fields pullsync owns (its server-side apply entry in
managedFields): other managers' writes are not drift, a change of pullsync's fields is."""

import copy
from typing import Any

from pullsync.kube import fingerprint, watchcache

OWNED = {
    "f:metadata": {"f:labels": {"f:pullsync.dev/name": {}}},
    "f:spec": {
        "f:replicas": {},
        "f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}}},
    },
}


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "labels": {"pullsync.dev/name": "app"},
            "managedFields": [
                {"manager": "pullsync", "operation": "Apply", "apiVersion": "apps/v1", "fieldsV1": OWNED},
                {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {}}},
            ],
        },
        "spec": {
            "replicas": 0,
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1", "terminationMessagePath": "/x"}]}},
        },
    }


def test_what_other_managers_add_does_not_change_the_fingerprint() -> None:
    obj = deployment()
    touched = copy.deepcopy(obj)
    touched["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    touched["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/y"
    touched["status"] = {"replicas": 0}
    assert fingerprint.of(obj) == fingerprint.of(touched)


def test_a_change_to_a_field_pullsync_owns_changes_the_fingerprint() -> None:
    obj = deployment()
    scaled, image, relabelled = copy.deepcopy(obj), copy.deepcopy(obj), copy.deepcopy(obj)
    scaled["spec"]["replicas"] = 3
    image["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    relabelled["metadata"]["labels"] = {}
    for changed in (scaled, image, relabelled):
        assert fingerprint.of(changed) != fingerprint.of(obj)


def test_a_field_taken_over_by_another_manager_is_drift() -> None:
    obj = deployment()
    taken = copy.deepcopy(obj)
    del taken["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:replicas"]  # `kubectl scale` took it
    assert fingerprint.of(taken) != fingerprint.of(obj)


def test_without_pullsync_s_entry_the_whole_object_counts() -> None:
    obj = deployment()
    del obj["metadata"]["managedFields"]
    annotated = copy.deepcopy(obj)
    annotated["metadata"]["annotations"] = {"a": "b"}
    assert fingerprint.of(obj) != fingerprint.of(annotated)


def test_the_live_cache_keeps_only_pullsync_s_managed_fields_and_the_same_fingerprint() -> None:
    obj = deployment()
    before = fingerprint.of(obj)
    slim = watchcache.slim(copy.deepcopy(obj))
    assert [m["manager"] for m in slim["metadata"]["managedFields"]] == ["pullsync"]
    assert fingerprint.of(slim) == before
