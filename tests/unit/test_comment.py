"""The pull request comment of a plan: readable, findable by its marker, without Secret
values, and within GitHub's size limit; the commit status's state and description."""

import json
from typing import Any

from pullsync.preview import comment, report

SHA = "4f1c2ab" + "0" * 33
CONTEXT = "pullsync/team-a/prod-prs"


def change(action: str, kind: str, name: str, patch: list[dict[str, object]], where: str = "a.yaml#0") -> report.Change:
    return report.Change(action, f"team-a_{name}__{kind}", kind, "team-a", name, where, patch)


def plan(changes: list[report.Change], errors: list[str] | None = None, unchanged: int = 4) -> report.Report:
    return report.Report("team-a", "prod", f"refs/pull/12/head@sha1:{SHA}", changes, unchanged, errors or [])


WEB = change(
    report.CHANGE,
    "Deployment",
    "web",
    [
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
        {"op": "remove", "path": "/spec/paused"},
    ],
    "deploy/web.yaml#0",
)


def test_the_comment_starts_with_its_marker_then_says_what_would_happen() -> None:
    created = change(report.CREATE, "Service", "web", [{"op": "add", "path": "", "value": {"kind": "Service"}}])
    pruned = report.Change(report.PRUNE, "old", "ConfigMap", "team-a", "old", "", [])
    body = comment.markdown(plan([created, WEB, pruned]), context=CONTEXT, commit=f"sha1:{SHA}")

    lines = body.splitlines()
    assert lines[0] == "<!-- pullsync:pullsync/team-a/prod-prs -->"
    assert lines[1] == "### pullsync plan: Sync team-a/prod at 4f1c2ab"
    assert "**+1 ~1 -1**: 1 to create, 1 to change, 1 to prune; 4 unchanged." in lines
    assert "| `+` create | Service/team-a/web | 1 | a.yaml#0 |" in lines
    assert "| `~` change | Deployment/team-a/web | 3 | deploy/web.yaml#0 |" in lines
    assert "| `-` prune | ConfigMap/team-a/old |  |  |" in lines
    assert "<details><summary>Deployment/team-a/web: 3 operations</summary>" in lines
    assert "<details><summary>Service/team-a/web: 1 operation</summary>" in lines
    assert "ConfigMap/team-a/old:" not in body  # a prune has no patch
    block = body.split("<summary>Deployment/team-a/web: 3 operations</summary>")[1].split("```json\n")[1]
    assert json.loads(block.split("\n```")[0]) == WEB.patch
    assert json.dumps(WEB.patch, indent=2) in body
    assert comment.is_ours(body, CONTEXT)
    assert not comment.is_ours(body, "pullsync/team-b/other")


def test_errors_are_said_plainly_as_a_list() -> None:
    body = comment.markdown(
        plan([], errors=["deploy/a.yaml#2: kind Foo is not known", "deploy/b.yaml#0: name missing"]),
        context=CONTEXT,
        commit=SHA,
    )
    assert "**This revision would fail** (2 errors):" in body
    assert "- deploy/a.yaml#2: kind Foo is not known\n- deploy/b.yaml#0: name missing" in body
    assert "| Action |" not in body


def test_a_plan_without_changes_says_so() -> None:
    body = comment.markdown(plan([], unchanged=7), context=CONTEXT, commit=SHA)
    assert "**No changes**: 7 objects unchanged." in body


def test_pipes_newlines_and_html_in_table_cells_are_escaped() -> None:
    odd = change(report.CHANGE, "ConfigMap", "x", [{"op": "add", "path": "/a", "value": 1}], "dir|a\nb<!--.yaml#0")
    body = comment.markdown(plan([odd]), context=CONTEXT, commit=SHA)
    assert "| `~` change | ConfigMap/team-a/x | 1 | dir\\|a b&lt;!--.yaml#0 |" in body.splitlines()


def test_a_patch_holding_backticks_gets_a_longer_fence() -> None:
    tricky = change(report.CHANGE, "ConfigMap", "md", [{"op": "add", "path": "/data/x", "value": "```\nboom"}])
    body = comment.markdown(plan([tricky]), context=CONTEXT, commit=SHA)
    assert "````json\n" in body


def test_secret_values_never_reach_the_comment() -> None:
    raw: list[dict[str, Any]] = [
        {"op": "replace", "path": "/data/password", "value": "aHVudGVyMg=="},
        {"op": "add", "path": "/stringData", "value": {"token": "plain-secret-value"}},
    ]
    hidden = report.hide_secret_values("Secret", raw)
    assert hidden == [
        {"op": "replace", "path": "/data/password", "value": report.HIDDEN},
        {"op": "add", "path": "/stringData", "value": {"token": report.HIDDEN}},
    ]
    created = report.hide_secret_values(
        "Secret", [{"op": "add", "path": "", "value": {"kind": "Secret", "data": {"k": "czNjcjN0"}}}]
    )
    body = comment.markdown(
        plan([change(report.CHANGE, "Secret", "creds", hidden), change(report.CREATE, "Secret", "new", created)]),
        context=CONTEXT,
        commit=SHA,
    )
    for value in ("aHVudGVyMg==", "plain-secret-value", "czNjcjN0"):
        assert value not in body
    assert '"/data/password"' in body  # which key changes is shown
    assert body.count(report.HIDDEN) == 3


def test_the_comment_stays_under_60000_characters_dropping_patches_from_the_end() -> None:
    big = [
        change(report.CHANGE, "ConfigMap", f"cm-{i:03}", [{"op": "add", "path": "/data/blob", "value": "x" * 5_000}])
        for i in range(40)
    ]
    body = comment.markdown(plan(big), context=CONTEXT, commit=SHA)

    assert len(body) < 60_000
    assert body.count("<details>") + int(body.split(" patches left out")[0].rsplit("\n", 1)[1]) == 40
    assert "<summary>ConfigMap/team-a/cm-000: 1 operation</summary>" in body
    assert "<summary>ConfigMap/team-a/cm-039" not in body
    assert "| `~` change | ConfigMap/team-a/cm-039 | 1 | a.yaml#0 |" in body  # every row stays
    assert body.startswith(comment.marker(CONTEXT))


def test_even_a_huge_table_fits_by_summarising_rows() -> None:
    many = [
        change(report.CHANGE, "ConfigMap", f"cm-{i:05}", [{"op": "add", "path": "/a", "value": 1}]) for i in range(5000)
    ]
    body = comment.markdown(plan(many), context=CONTEXT, commit=SHA)
    assert len(body) < 60_000
    assert "more objects |" in body
    assert "5000 patches left out" in body


def test_the_status_state_and_description_fit_githubs_limits() -> None:
    assert comment.state(plan([WEB])) == "success"
    assert comment.description(plan([WEB])) == "+0 ~1 -0"
    failing = plan([], errors=["deploy/x.yaml#0: " + "very long reason\n" * 20])
    assert comment.state(failing) == "failure"
    text = comment.description(failing)
    assert len(text) == 140
    assert text.endswith("…")
    assert "\n" not in text
    assert text.startswith("failed: deploy/x.yaml#0: very long reason very long reason")


def test_a_marker_names_the_comment_apart_from_the_status_context() -> None:
    named = comment.markdown(plan([WEB]), context=CONTEXT, commit=SHA, marker=f"{CONTEXT}/merges")
    plain = comment.markdown(plan([WEB]), context=CONTEXT, commit=SHA)

    assert named.splitlines()[0] == "<!-- pullsync:pullsync/team-a/prod-prs/merges -->"
    assert named.splitlines()[1:] == plain.splitlines()[1:]  # the same heading and plan for a reader
    assert comment.is_ours(named, f"{CONTEXT}/merges")
    assert not comment.is_ours(named, CONTEXT)
    assert not comment.is_ours(plain, f"{CONTEXT}/merges")
    assert comment.markdown(plan([WEB]), context=CONTEXT, commit=SHA, marker=CONTEXT) == plain
