"""kstatus health (pullsync.health): kstatus's own test cases and the issue's, as objects in
health_cases/*.yaml (see its README), then the summary of a set and inputs no API serves."""

import ast
import copy
import dataclasses
import datetime
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from pullsync import health
from pullsync.health import status as kstatus

CASES_DIR = Path(__file__).parent / "health_cases"
NOW = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
STATUSES = {"Current", "InProgress", "Failed", "Terminating", "NotFound", "Unknown"}

# Every case of kstatus's status_compute_test.go, by test and name: each is in health_cases/.
KSTATUS_CASES = {
    "TestPodStatus": (
        "podNoStatus",
        "podReady",
        "podCompletedSuccessfully",
        "podCompletedFailed",
        "podBeingScheduled",
        "podUnschedulable",
        "podCrashLooping",
    ),
    "TestPVCStatus": ("pvcNoStatus", "pvcBound"),
    "TestStsStatus": ("stsNoStatus", "stsBadStatus", "stsOK", "stsLessReady", "stsLessCurrent", "stsExtraPods"),
    "TestDaemonsetStatus": (
        "dsNoStatus",
        "dsBadStatus",
        "dsOK",
        "dsDifferentGeneration",
        "dsLessReady",
        "dsLessAvailable",
    ),
    "TestDeploymentStatus": (
        "depNoStatus",
        "depOK",
        "depNotProgressing",
        "depNoProgressDeadlineSeconds",
        "depNotAvailable",
    ),
    "TestReplicasetStatus": ("rsNoStatus", "rsOK1", "rsOK2", "rsLessReady", "rsLessAvailable", "rsReplicaFailure"),
    "TestPDBStatus": ("pdbNotObserved", "pdbObserved"),
    "TestCRDGenericStatus": ("crdNoStatus", "crdReady", "crdNotReady", "crdNoCondition", "crdMismatchStatusGeneration"),
    "TestJobStatus": ("jobNoStatus", "jobComplete", "jobFailed", "jobInProgress"),
    "TestCronJobStatus": ("cronjobNoStatus", "cronjobWithStatus"),
    "TestServiceStatus": ("serviceDefault", "serviceNodePort", "serviceLBnok", "serviceLBok"),
    "TestCRDStatus": ("crdNoConditions", "crdInstalling", "crdNamesNotAccepted", "crdEstablished"),
}

# The kinds with a rule of their own, and one without: each has cases.
KINDS = {
    ("", "Pod"),
    ("", "PersistentVolumeClaim"),
    ("", "Service"),
    ("", "Namespace"),
    ("", "ConfigMap"),
    ("", "Secret"),
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("networking.k8s.io", "Ingress"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("policy", "PodDisruptionBudget"),
    ("something", "MyCR"),
}


def load_cases() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        for case in YAML(typ="safe").load(path.read_text()):
            cases.append((f"{path.stem}/{case['name']}", case))
    return cases


CASES = load_cases()


@pytest.mark.parametrize("case", [c for _, c in CASES], ids=[i for i, _ in CASES])
def test_case(case: dict[str, Any]) -> None:
    got = kstatus.of(case["object"], now=NOW)
    assert got.status == case["want"], got.message
    for text in case.get("says", []):
        assert text in got.message
    assert got.message
    assert "\n" not in got.message


def test_the_cases_are_well_formed_and_cover_kstatus_and_every_kind() -> None:
    ids = [i for i, _ in CASES]
    assert len(ids) == len(set(ids))
    for case_id, case in CASES:
        assert set(case) <= {"name", "from", "want", "kstatus", "says", "object"}, case_id
        assert case["want"] in STATUSES, case_id
        assert case.get("kstatus", case["want"]) in STATUSES, case_id
        assert case.get("kstatus") != case["want"], f"{case_id}: `kstatus` is only for where it differs"
    from_kstatus: dict[str, set[str]] = {}  # kstatus test: the names of the cases taken from it
    for _, case in CASES:
        source = str(case.get("from", "")).split()
        if source[:1] == ["kstatus"] and len(source) > 1:
            from_kstatus.setdefault(source[1], set()).add(case["name"])
    for test, names in KSTATUS_CASES.items():
        assert set(names) <= from_kstatus.get(test, set()), test
    kinds = {(c["object"]["apiVersion"].rpartition("/")[0], c["object"]["kind"]) for _, c in CASES}
    assert kinds >= KINDS


def test_the_object_is_not_changed() -> None:
    for _, case in CASES:
        before = copy.deepcopy(case["object"])
        kstatus.of(case["object"], now=NOW)
        assert case["object"] == before


def test_nothing_is_not_found() -> None:
    assert kstatus.of(None) == kstatus.Health("NotFound", "not found")


def test_health_is_a_frozen_value() -> None:
    h = kstatus.of({"apiVersion": "v1", "kind": "ConfigMap"})
    assert h == kstatus.Health(kstatus.CURRENT, h.message)
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.status = kstatus.FAILED  # type: ignore[misc]


def test_the_package_exports_the_api() -> None:
    assert health.of is kstatus.of
    assert health.worst is kstatus.worst
    assert health.Health is kstatus.Health
    assert {health.CURRENT, health.IN_PROGRESS, health.FAILED, health.TERMINATING} | {
        health.NOT_FOUND,
        health.UNKNOWN,
    } == STATUSES


def test_the_order_of_the_worst() -> None:
    assert kstatus.ORDER == ("Failed", "Unknown", "NotFound", "Terminating", "InProgress", "Current")
    assert set(kstatus.ORDER) == STATUSES


@pytest.mark.parametrize(
    ("statuses", "summary"),
    [
        ([], "Current"),
        (["Current"], "Current"),
        (["Current", "Current"], "Current"),
        (["Current", "InProgress"], "InProgress"),
        (["InProgress", "Terminating", "Current"], "Terminating"),
        (["Terminating", "NotFound"], "NotFound"),
        (["NotFound", "Unknown", "InProgress"], "Unknown"),
        (["Unknown", "Failed", "Current"], "Failed"),
        (["Current", "Failed", "InProgress", "Terminating", "NotFound", "Unknown"], "Failed"),
        (["Current", "Bogus"], "Unknown"),  # not one of the six: counted as Unknown
        (["Failed", "Bogus"], "Failed"),
    ],
)
def test_worst(statuses: list[str], summary: str) -> None:
    assert kstatus.worst(kstatus.Health(s, "") for s in statuses) == summary


def test_worst_of_a_generator_of_computed_healths() -> None:
    objects = [case["object"] for _, case in CASES if case["name"] in ("depOK", "podCrashLooping", "jobInProgress")]
    assert kstatus.worst(kstatus.of(o, now=NOW) for o in objects) == "Failed"


def unschedulable_pod(created: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "big", "creationTimestamp": created},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        },
    }


def test_an_unschedulable_pod_has_15_seconds_on_the_wall_clock() -> None:
    just_now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert kstatus.of(unschedulable_pod(just_now)).status == "InProgress"
    assert kstatus.of(unschedulable_pod("2020-01-01T00:00:00Z")).status == "Failed"
    assert kstatus.of(unschedulable_pod("2024-05-01T11:59:46Z"), now=NOW).status == "InProgress"
    assert kstatus.of(unschedulable_pod("2024-05-01T11:59:45Z"), now=NOW).status == "Failed"
    assert kstatus.of(unschedulable_pod("yesterday"), now=NOW).status == "Failed"  # unreadable: long ago


def test_a_long_container_message_is_cut() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "web", "state": {"waiting": {"reason": "ErrImagePull", "message": "x" * 5000}}}
            ],
        },
    }
    got = kstatus.of(pod)
    assert got.status == "Failed"
    assert got.message.startswith("container web: ErrImagePull: xxx")
    assert len(got.message) < 300


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"apiVersion": 3, "kind": ["Pod"], "metadata": "x"},
        {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": "3"}, "status": {"replicas": True}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generation": True}, "status": {}},
        {"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running", "containerStatuses": "web"}},
        {"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running", "containerStatuses": [1, {"state": []}]}},
        {"apiVersion": "v1", "kind": "Pod", "status": {"phase": 1}},
        {"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": []}},
        {"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": [{"type": "Complete", "status": True}]}},
        {"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": ["Complete"]}},
        {"apiVersion": "v1", "kind": "Namespace", "status": None},
    ],
)
def test_any_mapping_gets_a_health(obj: dict[str, Any]) -> None:
    assert kstatus.of(obj, now=NOW).status in STATUSES


@pytest.mark.parametrize("obj", [[], "Pod", 3])
def test_what_is_not_an_object_is_unknown(obj: Any) -> None:
    assert kstatus.of(obj).status == "Unknown"


def test_the_module_imports_nothing_of_pullsync_but_the_api() -> None:
    package = Path(kstatus.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                if name.split(".")[0] == "pullsync":
                    assert name.startswith(("pullsync.health", "pullsync.api")), f"{path.name} imports {name}"
