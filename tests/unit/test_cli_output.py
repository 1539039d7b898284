"""The command line's output on plain data: tables aligned as kubectl's, colour only on a
terminal, -o json|yaml, ages as kubectl says them, short revisions, and a Sync's
inventory as a tree with the health of each object."""

import datetime
import io
import json
from typing import Any

import pytest

from pullsync.cli import objects, output
from pullsync.cli.output import Cell
from pullsync.render import kubeyaml

NOW = datetime.datetime(2026, 11, 27, 10, 0, 0, tzinfo=datetime.UTC)
SHA = "4f1c2a3b5d6e7f8091a2b3c4d5e6f708192a3b4c"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def sync(name: str = "app", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pullsync.dev/v1alpha1",
        "kind": "Sync",
        "metadata": {"name": name, "namespace": "team-a", "creationTimestamp": "2026-11-27T09:55:30Z"},
        "spec": {"sourceRef": {"kind": "GitRepository", "name": "app"}, "prune": True},
        "status": status,
    }


def ready(status: str, message: str, *, reconciling: bool = False) -> list[dict[str, str]]:
    found = [{"type": "Ready", "status": status, "reason": "Succeeded", "message": message}]
    if reconciling:
        found.append({"type": "Reconciling", "status": "True", "reason": "Progressing", "message": message})
    return found


def test_columns_are_aligned_three_spaces_apart_whatever_the_widths() -> None:
    text = output.table(["NAME", "READY", "STATUS"], [["a", "True", "fine"], ["longer-name", "False", "broken"]])
    assert text.splitlines() == [
        "NAME          READY   STATUS",
        "a             True    fine",
        "longer-name   False   broken",
    ]


def test_colour_codes_do_not_count_in_the_widths() -> None:
    rows = [[Cell("True", "green"), "x"], [Cell("Unknown", "yellow"), "y"]]
    plain = output.table(["READY", "STATUS"], rows)
    coloured = output.table(["READY", "STATUS"], rows, colour=True)
    assert "\033[32mTrue\033[0m      x" in coloured
    assert coloured.replace("\033[32m", "").replace("\033[33m", "").replace("\033[0m", "") == plain


def test_on_a_terminal_the_last_column_is_cut_to_fit_but_never_below_20_characters() -> None:
    rows = [["app", "x" * 200]]
    assert output.table(["NAME", "STATUS"], rows, width=40).splitlines()[1] == "app    " + "x" * 32 + "…"
    assert output.table(["NAME", "STATUS"], rows, width=10).splitlines()[1] == "app    " + "x" * 19 + "…"
    assert output.table(["NAME", "STATUS"], rows).splitlines()[1].endswith("x" * 200)  # a pipe: all of it


def test_colour_only_on_a_terminal_and_never_with_NO_COLOR(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert output.colour_enabled(Terminal())
    assert not output.colour_enabled(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not output.colour_enabled(Terminal())
    assert output.terminal_width(io.StringIO()) is None


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (150, "2m30s"),
        (300, "5m"),
        (3000, "50m"),
        (4 * 3600 + 300, "4h5m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (40 * 86400, "40d"),
        (3 * 365 * 86400 + 10 * 86400, "3y10d"),
        (-5, "<invalid>"),
    ],
)
def test_ages_read_as_kubectl_prints_them(seconds: int, expected: str) -> None:
    assert output.human_duration(seconds) == expected


def test_an_age_is_counted_from_an_rfc3339_timestamp() -> None:
    assert output.age("2026-11-27T09:55:30Z", NOW) == "4m30s"
    assert output.age(None, NOW) == "<unknown>"


def test_a_revision_is_shortened_to_its_ref_and_12_hex_digits() -> None:
    assert output.short_revision(f"main@sha1:{SHA}") == "main@4f1c2a3b5d6e"
    assert output.short_revision(f"sha1:{SHA}") == "4f1c2a3b5d6e"
    assert output.short_revision(None) == ""


def test_json_and_yaml_are_the_objects_as_a_list_without_managed_fields() -> None:
    obj = sync()
    obj["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    listing = output.as_list([output.strip_managed_fields(obj)])
    as_json = json.loads(output.document(listing, "json"))
    [(_, as_yaml)] = list(kubeyaml.documents(output.document(listing, "yaml")))
    assert as_json == as_yaml
    assert as_json["kind"] == "List"
    assert as_json["items"][0]["metadata"] == {k: v for k, v in obj["metadata"].items() if k != "managedFields"}


def test_a_sync_row_says_ready_revision_objects_health_age_and_status() -> None:
    obj = sync(
        conditions=ready("True", f"Applied revision: main@sha1:{SHA}"),
        lastAppliedRevision=f"main@sha1:{SHA}",
        inventory={"count": 7, "entries": []},
        health={"status": "Current", "unhealthy": []},
    )
    text = output.table(
        objects.headers(objects.SYNC, all_namespaces=True), [objects.row(objects.SYNC, obj, NOW, all_namespaces=True)]
    )
    header, line = text.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "READY", "REVISION", "OBJECTS", "HEALTH", "AGE", "STATUS"]
    assert line.split()[:7] == ["team-a", "app", "True", "main@4f1c2a3b5d6e", "7", "Current", "4m30s"]
    assert line.endswith(f"Applied revision: main@sha1:{SHA}")


def test_a_sync_not_yet_reconciled_shows_unknown_and_dashes() -> None:
    cells = objects.row(objects.SYNC, sync(), NOW, all_namespaces=False)
    assert [c.text if isinstance(c, Cell) else c for c in cells] == ["app", "Unknown", "-", "-", "-", "4m30s", ""]


@pytest.mark.parametrize(
    ("conditions", "colour"),
    [
        (ready("True", "ok"), "green"),
        (ready("False", "broken"), "red"),
        (ready("Unknown", "reconciling revision main@sha1:x", reconciling=True), "yellow"),
    ],
)
def test_the_ready_column_is_green_red_or_yellow(conditions: list[dict[str, str]], colour: str) -> None:
    assert objects.ready_cell(sync(conditions=conditions)).colour == colour


def test_gitrepository_and_preview_rows() -> None:
    repo = {
        "metadata": {"name": "app", "namespace": "team-a", "creationTimestamp": "2026-11-25T10:00:00Z"},
        "spec": {"url": "https://git.example.com/org/app.git"},
        "status": {"artifact": {"revision": f"main@sha1:{SHA}"}, "conditions": ready("True", "stored")},
    }
    assert objects.headers(objects.GITREPO, all_namespaces=False) == [
        "NAME", "URL", "READY", "REVISION", "AGE", "STATUS",
    ]  # fmt: skip
    cells = objects.row(objects.GITREPO, repo, NOW, all_namespaces=False)
    assert [c.text if isinstance(c, Cell) else c for c in cells] == [
        "app", "https://git.example.com/org/app.git", "True", "main@4f1c2a3b5d6e", "2d", "stored",
    ]  # fmt: skip
    preview = {
        "metadata": {"name": "prs", "namespace": "team-a", "creationTimestamp": "2026-11-27T09:00:00Z"},
        "spec": {"syncRef": {"name": "prod"}},
        "status": {"previews": [{"ref": "refs/pull/1/head"}, {"ref": "refs/pull/2/head"}]},
    }
    cells = objects.row(objects.PREVIEW, preview, NOW, all_namespaces=False)
    assert [c.text if isinstance(c, Cell) else c for c in cells] == ["prs", "prod", "2", "Unknown", "60m", ""]


def test_the_tree_lists_every_object_of_the_inventory_with_its_health() -> None:
    obj = sync(
        lastAppliedRevision=f"main@sha1:{SHA}",
        inventory={
            "entries": [
                {"id": "team-a_web_apps_Deployment", "v": "apps/v1"},
                {"id": "team-a_ci_deployer_rbac.authorization.k8s.io_RoleBinding", "v": "rbac.authorization.k8s.io/v1"},
                {"id": "_team-a__Namespace", "v": "v1"},
                {"id": "team-a_config__ConfigMap", "v": "v1"},
            ]
        },
        health={
            "status": "InProgress",
            "unhealthy": [{"id": "team-a_web_apps_Deployment", "status": "InProgress", "message": "1 of 3 ready"}],
        },
    )
    root = objects.sync_node(obj)
    text = output.tree(root)
    assert text.splitlines() == [
        f"Sync/team-a/app                      InProgress   main@sha1:{SHA}",
        "├── Namespace/team-a                 Current",
        "├── ConfigMap/team-a/config          Current",
        "├── Deployment/team-a/web            InProgress   1 of 3 ready",
        "└── RoleBinding/team-a/ci_deployer   Current",
    ]  # cluster-scoped first, then by namespace, group, kind, name
    assert root.as_dict()["children"][2] == {
        "object": "Deployment/team-a/web",
        "status": "InProgress",
        "message": "1 of 3 ready",
    }


def test_without_a_complete_health_list_unlisted_objects_have_no_status() -> None:
    many = [{"id": f"team-a_d{i}_apps_Deployment", "status": "InProgress", "message": ""} for i in range(20)]
    entries = [{"id": f"team-a_d{i}_apps_Deployment", "v": "apps/v1"} for i in range(21)]
    root = objects.sync_node(sync(inventory={"entries": entries}, health={"status": "InProgress", "unhealthy": many}))
    statuses = {c.label: c.status for c in root.children}
    assert statuses["Deployment/team-a/d19"] == "InProgress"
    assert statuses["Deployment/team-a/d20"] == ""  # at most 20 are listed: d20 may be anything


def test_nested_trees_draw_their_branches() -> None:
    leaf = output.Node("ConfigMap/b/c", "Current")
    root = output.Node("Sync/a/app", "", "", [output.Node("Sync/b/child", "Current", "", [leaf]), output.Node("X/y")])
    assert output.tree(root).splitlines() == [
        "Sync/a/app",
        "├── Sync/b/child        Current",
        "│   └── ConfigMap/b/c   Current",
        "└── X/y",
    ]
