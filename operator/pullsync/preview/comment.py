"""A plan as a pull request sees it: the Markdown of the one comment a Preview keeps on a
pull request, and the state and description of its commit status.

Pure functions of a `report.Report` (whose Secret values are already hidden). The
comment starts with a hidden marker naming the Preview (by default its status context), so
that the provider client finds it again and edits it in place instead of posting another. Its body stays
under 60,000 characters (GitHub refuses more than 65,536): patches are left out from the
end first, then table rows, then errors, and the comment says how many.
"""

import html
import json
import re
from collections.abc import Callable
from typing import Any

from pullsync.preview import report

MAX_CHARS = 60_000
MAX_DESCRIPTION = 140  # GitHub's limit for a commit status description

SYMBOLS = {
    report.CREATE: "`+` create",
    report.CHANGE: "`~` change",
    report.RECREATE: "`±` recreate",
    report.PRUNE: "`-` prune",
}


def marker(name: str) -> str:
    """The hidden first line that identifies the comment named `name` (a Preview's marker,
    by default its status context)."""
    safe = name.replace("--", "-").replace(">", "").replace("\n", " ")
    return f"<!-- pullsync:{safe} -->"


_marker = marker  # `markdown`'s keyword `marker` hides the function there


def is_ours(body: str, name: str) -> bool:
    """True when a comment's body starts with the marker `name` (who wrote it is the
    provider client's to check)."""
    return body.lstrip().startswith(marker(name))


def state(plan: report.Report) -> str:
    """The commit status state: "success" when the revision can be applied, else "failure"."""
    return "success" if plan.ok else "failure"


def description(plan: report.Report) -> str:
    """The commit status description: the plan's summary on one line, at most 140 characters."""
    return _one_line(plan.summary(), MAX_DESCRIPTION)


def markdown(plan: report.Report, *, context: str, commit: str, marker: str | None = None) -> str:
    """The pull request comment of `plan` for `commit` (under MAX_CHARS characters), starting
    with the hidden marker `marker` (default: `context`, the commit status's name)."""
    head = [
        _marker(context if marker is None else marker),
        f"### pullsync plan: Sync {plan.sync_namespace}/{plan.sync_name} at {short(commit)}",
        "",
        _headline(plan),
        "",
    ]
    errors = [f"- {html.escape(_one_line(error, 2_000), quote=False)}" for error in plan.errors]
    rows = [_row(change) for change in plan.changes]
    patches = [_patch(change) for change in plan.changes if change.action != report.PRUNE]
    foot = "<sub>Planned by pullsync with a server-side dry-run as the Sync's identity; Secret values are hidden.</sub>"

    def body(n_errors: int, n_rows: int, n_patches: int) -> str:
        return _assemble(
            head,
            errors=errors[:n_errors],
            rows=rows[:n_rows],
            patches=patches[:n_patches],
            foot=foot,
            omitted_errors=len(errors) - n_errors,
            omitted_rows=len(rows) - n_rows,
            omitted_patches=len(patches) - n_patches,
        )

    # patches go first (from the end), then table rows, then errors
    n_patches = _most(len(patches), lambda n: len(body(len(errors), len(rows), n)) < MAX_CHARS)
    if n_patches is not None:
        return body(len(errors), len(rows), n_patches)
    n_rows = _most(len(rows), lambda n: len(body(len(errors), n, 0)) < MAX_CHARS)
    if n_rows is not None:
        return body(len(errors), n_rows, 0)
    n_errors = _most(len(errors), lambda n: len(body(n, 0, 0)) < MAX_CHARS)
    if n_errors is not None:
        return body(n_errors, 0, 0)
    return body(0, 0, 0)[: MAX_CHARS - 2] + "\n…"


def _most(total: int, fits: Callable[[int], bool]) -> int | None:
    """The largest n in 0..total for which fits(n) (true up to some n), None if not even for 0."""
    if not fits(0):
        return None
    low, high = 0, total  # fits(low) holds
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def short(commit: str) -> str:
    """`4f1c2ab` for `sha1:4f1c2ab…` or `4f1c2ab…`."""
    return commit.rpartition(":")[2][:7]


def _headline(plan: report.Report) -> str:
    if plan.errors:
        return f"**This revision would fail** ({len(plan.errors)} error{'s' if len(plan.errors) != 1 else ''}):"
    if not plan.changes:
        return f"**No changes**: {plan.unchanged} object{'s' if plan.unchanged != 1 else ''} unchanged."
    return (
        f"**{plan.summary()}**: {plan.created} to create, {plan.changed} to change, "
        f"{plan.pruned} to prune; {plan.unchanged} unchanged."
    )


def _assemble(
    head: list[str],
    *,
    errors: list[str],
    rows: list[str],
    patches: list[str],
    foot: str,
    omitted_errors: int,
    omitted_rows: int,
    omitted_patches: int,
) -> str:
    parts = list(head)
    if errors:
        parts += errors
        if omitted_errors:
            parts.append(f"- … and {omitted_errors} more error{'s' if omitted_errors != 1 else ''}")
        parts.append("")
    if rows:
        if errors:
            parts += ["Objects planned so far:", ""]
        parts += ["| Action | Object | Operations | From |", "|---|---|---:|---|", *rows]
        if omitted_rows:
            parts.append(f"| | … and {omitted_rows} more object{'s' if omitted_rows != 1 else ''} | | |")
        parts.append("")
    for block in patches:
        parts += [block, ""]
    if omitted_patches:
        parts += [
            f"{omitted_patches} patch{'es' if omitted_patches != 1 else ''} left out to keep this comment "
            "within the size limit: `pullsync diff` shows them all.",
            "",
        ]
    parts.append(foot)
    return "\n".join(parts) + "\n"


def _row(change: report.Change) -> str:
    operations = "" if change.action == report.PRUNE else str(len(change.patch))
    return (
        f"| {SYMBOLS.get(change.action, _cell(change.action))} | {_cell(change.describe)} | {operations} "
        f"| {_cell(change.where)} |"
    )


def _patch(change: report.Change) -> str:
    text = json.dumps(change.patch, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    count = len(change.patch)
    what = f"{count} operation{'s' if count != 1 else ''}"
    if change.action == report.RECREATE:
        what += " (deleted, then created)"
    return "\n".join(
        [
            f"<details><summary>{html.escape(change.describe)}: {what}</summary>",
            "",
            f"{fence}json",
            text,
            fence,
            "",
            "</details>",
        ]
    )


def _cell(text: Any) -> str:
    """Text safe in a table cell: one line, pipes escaped, no HTML."""
    one = re.sub(r"\s*[\r\n]+\s*", " ", str(text))
    return html.escape(one, quote=False).replace("|", "\\|")


def _one_line(text: str, limit: int) -> str:
    one = re.sub(r"\s*[\r\n]+\s*", " ", text).strip()
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)
