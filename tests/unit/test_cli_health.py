"""`pullsync health -f FILE`: the operator's health rules on objects in a file."""

import json
from pathlib import Path

import pytest

from pullsync import cli

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team-a, generation: 2}
spec: {replicas: 2}
status: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, readyReplicas: 1, availableReplicas: 1}
"""
JOB = """apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: team-a}
status:
  failed: 1
  conditions:
  - {type: Failed, status: "True", reason: BackoffLimitExceeded, message: Job has reached the backoff limit}
"""
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: team-a}\n"


def test_each_object_gets_its_status_and_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "objects.yaml"
    path.write_text("---\n".join([DEPLOYMENT, JOB, CONFIGMAP]))
    assert cli.main(["health", "-f", str(path), "-o", "json"]) == 1  # not all Current
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["status"]) for r in rows] == [
        ("team-a_web_apps_Deployment", "InProgress"),
        ("team-a_migrate_batch_Job", "Failed"),
        ("team-a_settings__ConfigMap", "Current"),
    ]
    assert "BackoffLimitExceeded" in rows[1]["message"]


def test_a_list_of_current_objects_exits_0_with_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "list.json"
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}}
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [configmap]}))
    assert cli.main(["health", "-f", str(path)]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "STATUS", "MESSAGE"]
    assert row.split()[:2] == ["n_a__ConfigMap", "Current"]


def test_an_unreadable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["health", "-f", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n", "a ConfigMap without metadata.name"),
        ("# nothing here\n", "no objects"),
    ],
)
def test_a_file_without_named_objects_is_an_error_not_a_verdict(
    text: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "objects.yaml"
    path.write_text(text)
    assert cli.main(["health", "-f", str(path)]) == 2
    assert says in capsys.readouterr().err
