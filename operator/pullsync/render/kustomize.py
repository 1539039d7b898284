"""Kustomize: the build of the kustomization at spec.path by a real kustomize (kubectl's
built-in `kubectl kustomize`, installed with pullsync), on a private copy of the
repository files it may read (see `sandbox`).

Before anything runs, every kustomization reachable from spec.path is read and every
path it names is checked (`scan`): nothing outside the repository (a `../` base, an
absolute path, a symbolic link out), no remote base or resource unless the operator runs
with --allow-remote-bases, no Helm inflation. Exec and container (KRM function) plugins
are refused by kustomize itself: pullsync never enables them. Only the directories of
the kustomizations reached are copied, and kustomize's own load restrictor keeps every
other file it reads inside them.
"""

import posixpath
import re
from typing import Any

from pullsync.render import ignore, manifests, paths, sandbox, trees
from pullsync.render.documents import Document, Limits, RenderError, config, parse

REFERENCES = ("resources", "bases", "components")  # kustomizations or manifests, local or remote
FILE_LISTS = ("crds", "configurations", "generators", "transformers", "validators", "patchesStrategicMerge")
PATH_ENTRIES = ("patches", "patchesJson6902", "replacements")  # mappings with a `path`
GENERATORS = ("configMapGenerator", "secretGenerator")  # files (key=path), envs, env
HELM_FIELDS = ("helmCharts", "helmChartInflationGenerator", "helmGlobals")
REMOTE_HINT = "remote bases and resources are refused unless the operator runs with --allow-remote-bases"
# What kustomize reads as remote without a scheme: a host name first, or a ?ref= / // of go-getter.
_SCHEMELESS_REMOTE = re.compile(r"^[\w-]+(\.[\w-]+)+/[^.]*$|\?ref=|[^:]//")


def build(tree: trees.Tree, start: str, rules: ignore.Rules, limits: Limits, *, allow_remote: bool) -> list[Document]:
    """The objects kustomize builds from the kustomization in the directory `start`."""
    directories, files = scan(tree, start, limits, allow_remote=allow_remote)
    with sandbox.Workspace(tree, rules, limits) as workspace:
        for directory in directories:
            workspace.add_dir(directory)
        for file in files:  # kustomize decides whether it may load them
            workspace.add_file(file)
        output = workspace.run(
            "kubectl",
            ["kustomize", start or ".", "--load-restrictor=LoadRestrictionsRootOnly"],
            what="kustomize build",
            network=allow_remote,
        )
    shown = kustomization(tree, start) or start
    return list(parse(shown, output, limits, via="kustomize build"))


def kustomization(tree: trees.Tree, directory: str) -> str | None:
    """The path of the kustomization file in `directory`, if it has one."""
    names = set(tree.names(directory))
    name = next((n for n in manifests.KUSTOMIZE_FILES if n in names), None)
    return None if name is None else posixpath.join(directory, name)


def scan(tree: trees.Tree, start: str, limits: Limits, *, allow_remote: bool) -> tuple[list[str], set[str]]:
    """The directories of every kustomization reached from `start`, and the other files
    they name (paths without links); RenderError naming the file and the entry for
    anything refused."""
    found: list[str] = []
    files: set[str] = set()
    pending = [start]
    while pending:
        directory = pending.pop()
        if directory in found:
            continue
        found.append(directory)
        path = kustomization(tree, directory)
        if path is None:  # kustomize says what it expected there
            continue
        real = paths.real_path(tree, path)
        if real is None or tree.size(real) > limits.file_bytes:
            raise RenderError(f"{path}: missing, or over the limit of {limits.file_bytes} bytes per file")
        content = config(path, tree.read(real), limits)
        if isinstance(content, dict):
            for real in _references(tree, path, content, allow_remote=allow_remote):
                kind = tree.kind(real)
                if kind == "dir":
                    pending.append(real)
                elif kind == "file":
                    files.add(real)
    return found, files


def _references(tree: trees.Tree, path: str, content: dict[str, Any], *, allow_remote: bool) -> list[str]:
    """Check every path the kustomization at `path` names; return those in the repository."""
    for field in HELM_FIELDS:
        if content.get(field):
            raise RenderError(
                f"{path}: {field}: kustomize's Helm inflation never runs in pullsync; point a Sync at the "
                "chart's directory instead (spec.path and spec.helm)"
            )
    found = []
    for field, entry in _entries(content):
        real = _resolve(tree, path, field, entry, allow_remote=allow_remote)
        if real is not None:
            found.append(real)
    return found


def _entries(content: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, path) for every path-like entry of a kustomization."""
    found: list[tuple[str, str]] = []
    for field in REFERENCES + FILE_LISTS:
        found += [(field, e) for e in _list(content.get(field)) if isinstance(e, str) and "\n" not in e]
    for field in PATH_ENTRIES:
        found += [(field, e["path"]) for e in _list(content.get(field)) if isinstance(e, dict) and "path" in e]
    for field in GENERATORS:
        for generator in _list(content.get(field)):
            if not isinstance(generator, dict):
                continue
            files = [str(f).split("=", 1)[-1] for f in _list(generator.get("files"))]
            envs = [str(e) for e in [*_list(generator.get("envs")), generator.get("env")] if e]
            found += [(f"{field}.files", f) for f in files] + [(f"{field}.envs", e) for e in envs]
    openapi = content.get("openapi")
    if isinstance(openapi, dict) and "path" in openapi:
        found.append(("openapi", str(openapi["path"])))
    return found


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _resolve(tree: trees.Tree, path: str, field: str, entry: str, *, allow_remote: bool) -> str | None:
    """The repository path (without links) an entry names, None if it names nothing
    there; RenderError if it is outside the repository, or remote and not allowed."""
    where = f"{path}: {field} entry {entry!r}"
    remote = "://" in entry or entry.startswith("git@")
    if remote and field in REFERENCES:
        if allow_remote:
            return None
        raise RenderError(f"{where} is remote; {REMOTE_HINT}")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), entry))
    if entry.startswith("/") or joined == ".." or joined.startswith("../"):
        raise RenderError(f"{where} is outside the repository")
    try:
        real = paths.real_path(tree, "" if joined == "." else joined)
    except RenderError as e:  # a symbolic link out of the repository on the way
        raise RenderError(f"{where}: {e}") from None
    if real is None and field in REFERENCES and not allow_remote:
        if _SCHEMELESS_REMOTE.search(entry):  # github.com/org/repo//dir?ref=v1
            raise RenderError(f"{where} is not in the repository; {REMOTE_HINT}")
        raise RenderError(f"{where} does not exist in the repository")
    return real
