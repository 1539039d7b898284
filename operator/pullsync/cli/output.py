"""How the command line prints for people and for scripts: aligned tables as kubectl
prints them, trees, ages, short revisions, colour, and `-o json|yaml`.

Colour only when the stream is a terminal and $NO_COLOR is unset or empty
(https://no-color.org); column widths never count the colour codes. Everything here
works on plain data, so the tests need no cluster.
"""

import argparse
import dataclasses
import datetime
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from pullsync.render import kubeyaml

GAP = "   "  # between columns, as kubectl's tab writer pads
ELLIPSIS = "…"
MIN_LAST_COLUMN = 20  # a terminal too narrow still shows this much of the last column
CODES = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2"}
READY_COLOURS = {"True": "green", "False": "red", "Unknown": "yellow"}
HEALTH_COLOURS = {"Current": "green", "InProgress": "yellow", "Failed": "red", "Terminating": "yellow"}


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, except that a paragraph with indented lines (a list of exit codes, an
    example) keeps its lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            if any(line.startswith("  ") for line in paragraph.splitlines()):
                paragraphs.append("\n".join(indent + line for line in paragraph.splitlines()))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)


def colour_enabled(stream: TextIO) -> bool:
    """Whether to colour what goes to `stream`: a terminal, and no $NO_COLOR."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def terminal_width(stream: TextIO) -> int | None:
    """The width to fit lines into on a terminal; None when `stream` is not one (a pipe,
    a file: print everything)."""
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()):
        return None
    return shutil.get_terminal_size().columns


def paint(text: str, colour: str | None, enabled: bool) -> str:
    if not enabled or not colour or not text:
        return text
    return f"\033[{CODES[colour]}m{text}\033[0m"


@dataclasses.dataclass(frozen=True)
class Cell:
    """A table cell: its text and, on a terminal, its colour."""

    text: str
    colour: str | None = None


def _cell(value: "str | Cell") -> Cell:
    return value if isinstance(value, Cell) else Cell(value)


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, the last one an ellipsis when cut."""
    text = " ".join(text.split())  # one line: messages may hold newlines
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def table(
    headers: Sequence[str], rows: Iterable[Sequence["str | Cell"]], *, colour: bool = False, width: int | None = None
) -> str:
    """An aligned table, a header line then one line per row, columns three spaces apart.

    With `width` (a terminal's), the last column is cut to fit, never below
    MIN_LAST_COLUMN characters."""
    cells = [[_cell(v) for v in row] for row in rows]
    grid = [[Cell(h) for h in headers], *cells]
    widths = [max(len(row[i].text) for row in grid) for i in range(len(headers) - 1)]
    lines = []
    for row in grid:
        parts = [paint(c.text, c.colour, colour) + " " * (w - len(c.text)) for c, w in zip(row, widths, strict=False)]
        last = row[-1]
        text = last.text
        if width is not None:
            used = sum(widths) + len(GAP) * len(widths)
            text = truncate(text, max(width - used, MIN_LAST_COLUMN))
        parts.append(paint(text, last.colour, colour))
        lines.append(GAP.join(parts).rstrip())
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class Node:
    """One line of a tree: a label (`Kind/namespace/name`), a status and why, children."""

    label: str
    status: str = ""
    message: str = ""
    children: list["Node"] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"object": self.label, "status": self.status, "message": self.message}
        if self.children:
            out["children"] = [c.as_dict() for c in self.children]
        return out


def tree(root: Node, *, colour: bool = False, width: int | None = None) -> str:
    """The tree under `root` with box-drawing branches, its statuses aligned in a column."""
    flat: list[tuple[str, Node]] = []

    def walk(node: Node, prefix: str, branch: str) -> None:
        flat.append((prefix + branch + node.label, node))
        below = prefix + ("" if not branch else "    " if branch.startswith("└") else "│   ")
        for i, child in enumerate(node.children):
            walk(child, below, "└── " if i == len(node.children) - 1 else "├── ")

    walk(root, "", "")
    rows = [[Cell(label), Cell(n.status, HEALTH_COLOURS.get(n.status)), Cell(n.message)] for label, n in flat]
    lines = table(["", "", ""], rows, colour=colour, width=width).splitlines()[1:]  # no header line
    return "\n".join(line.rstrip() for line in lines) + "\n"


def parse_time(stamp: str | None) -> datetime.datetime | None:
    """An RFC 3339 timestamp as the API server writes it, or None."""
    if not stamp:
        return None
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(stamp: str | None, now: datetime.datetime) -> str:
    """How long ago `stamp` was, as kubectl's AGE column says it (`<unknown>` without one)."""
    then = parse_time(stamp)
    if then is None:
        return "<unknown>"
    return human_duration((now - then).total_seconds())


def human_duration(seconds: float) -> str:
    """kubectl's short durations: 45s, 5m30s, 3h, 2d4h, 400d, 2y30d (k8s.io/apimachinery
    duration.HumanDuration)."""
    if seconds < -1:
        return "<invalid>"
    s = max(int(seconds), 0)
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 60 * 2:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def short_revision(revision: str | None) -> str:
    """`main@sha1:<40 hex>` as `main@<12 hex>` (the GitRepository's shortRevision form)."""
    if not revision:
        return ""
    ref, _, digest = revision.rpartition("@")
    digest = digest.split(":", 1)[1] if ":" in digest else digest
    return f"{ref}@{digest[:12]}" if ref else digest[:12]


def document(value: Any, fmt: str) -> str:
    """`value` as `-o json` (indented, as kubectl) or `-o yaml` prints it."""
    if fmt == "json":
        return json.dumps(value, indent=2) + "\n"
    return kubeyaml.dump([value])


def as_list(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Objects as one `v1 List`, as `kubectl get -o yaml` prints several."""
    return {"apiVersion": "v1", "kind": "List", "items": list(items), "metadata": {"resourceVersion": ""}}


def strip_managed_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` without metadata.managedFields (kubectl hides them too, unless asked)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}
