"""Paths in a repository tree: where `spec.path` and other repository paths really lead
(symbolic links followed, never out of the repository), the ignore rules that apply, and
the files below a directory. Shared by every renderer, so that plain manifests, a
kustomization and a chart see the same repository.
"""

import posixpath
from collections.abc import Iterator

from pullsync.render import ignore, trees
from pullsync.render.documents import Limits, RenderError, ignore_hint

EXTENSIONS = (".yaml", ".yml", ".json")  # what plain manifests are read from
SYMLINK_HOPS = 8


def normalise(path: str, *, what: str = "spec.path") -> str:
    """`path` as a tree path ('' for the root); RenderError if it leaves the repository."""
    clean = posixpath.normpath(path.strip() or ".")
    if path.strip().startswith("/") or clean == ".." or clean.startswith("../"):
        raise RenderError(f"{what} {path!r} leaves the repository")
    return "" if clean == "." else clean


def rules(tree: trees.Tree, base: str, spec_ignore: str | None, limits: Limits) -> ignore.Rules:
    """The ignore rules: defaults, .sourceignore at the root and at `base`, spec.ignore."""
    found = ignore.Rules()
    for directory in dict.fromkeys(("", base)):
        where = f"{directory}/{ignore.FILE}" if directory else ignore.FILE
        real = real_path(tree, where)
        if real is None or tree.kind(real) != "file":
            continue
        if tree.size(real) > limits.file_bytes:
            raise RenderError(f"{where}: over the limit of {limits.file_bytes} bytes per file")
        found.add(tree.read(real).decode("utf-8", "replace"), directory)
    if spec_ignore:
        found.add(spec_ignore)
    return found


def real_path(tree: trees.Tree, path: str, hops: int = 0) -> str | None:
    """The path without symbolic links that `path` names, following in-repo links on the
    way; None if nothing is there."""
    if not path:
        return ""
    real = ""
    for part in path.split("/"):
        candidate = f"{real}/{part}" if real else part
        kind = tree.kind(candidate)
        if kind is None:
            return None
        if kind == "link":
            if hops >= SYMLINK_HOPS:
                raise RenderError(f"{candidate}: too many levels of symbolic links")
            target = link_target(tree, candidate)
            resolved = real_path(tree, target, hops + 1) if target else ""
            if resolved is None:
                return None
            candidate = resolved
        real = candidate
    return real


def link_target(tree: trees.Tree, link_path: str) -> str:
    """The repository path a link points at ('' for the root); RenderError if outside."""
    target = tree.read(link_path).decode(errors="replace")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(link_path), target))
    if target.startswith("/") or joined == ".." or joined.startswith("../"):
        raise RenderError(f"{link_path}: symbolic link to {target!r} leaves the repository")
    return "" if joined == "." else joined


def files(
    tree: trees.Tree, real_dir: str, shown_dir: str, rules: ignore.Rules, *, visiting: frozenset[str] = frozenset()
) -> Iterator[tuple[str, str]]:
    """(path as seen from the root, path without links) of every file below a directory
    that the rules leave, in path order."""
    visiting = visiting | {real_dir}
    for name in sorted(tree.names(real_dir)):
        shown = f"{shown_dir}/{name}" if shown_dir else name
        real = f"{real_dir}/{name}" if real_dir else name
        kind = tree.kind(real)
        if kind == "link":
            if rules.ignored(shown) or rules.ignored(shown, directory=True):
                continue
            resolved = _follow(tree, real, shown)
            if resolved is None:
                continue
            real = resolved
            kind = tree.kind(real) if real else "dir"
        if kind == "dir":
            if real in visiting:
                raise RenderError(f"{shown}: symbolic link loop")
            if not rules.ignored(shown, directory=True):
                yield from files(tree, real, shown, rules, visiting=visiting)
        elif kind == "file" and not rules.ignored(shown):
            yield shown, real


def _follow(tree: trees.Tree, link: str, shown: str) -> str | None:
    """Where the link `link` leads inside the repository. A link that leads nowhere or out
    of the repository is an error, unless its name shows a file render never reads (a
    link that may be a directory could hold manifests: skipping it could prune them).
    Renderers never get such a link: the copy they read leaves it out."""
    try:
        resolved = real_path(tree, link_target(tree, link), 1)
        if resolved is None:
            raise RenderError(f"{shown}: symbolic link target does not exist")
    except RenderError as e:
        extension = posixpath.splitext(shown)[1]
        if extension and extension not in EXTENSIONS:
            return None
        raise RenderError(f"{e}; if render should not read it, {ignore_hint('it')}") from None
    return resolved
