"""Render: the objects under a Sync's path, read as kubectl reads them.

The operator renders a commit straight from the git object database (no checkout:
nothing can escape through the filesystem); `pullsync build` renders a directory on
disk through the same code (see `trees`). Every `*.yaml`, `*.yml` and `*.json` under
the path that the ignore rules leave (see `ignore`) is read in path order, YAML as
kubectl reads it (see `kubeyaml`); multi-document files are split, empty documents
skipped, `List` kinds expanded, and pullsync's owner labels added to each object.
Symlinks are followed only while they stay inside the repository. Limits bound file
size, total size, object count, YAML aliases and nesting depth. Every error names the
file and the document (1-based), and never quotes file content.
"""

import dataclasses
import posixpath
from collections.abc import Iterator
from typing import Any

from pullsync import api
from pullsync.render import ignore, kubeyaml, trees

EXTENSIONS = (".yaml", ".yml", ".json")
SYMLINK_HOPS = 8
KUSTOMIZE_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
HELM_FILE = "Chart.yaml"


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what one Sync may render."""

    file_bytes: int = 4 * 1024 * 1024
    total_bytes: int = 32 * 1024 * 1024
    objects: int = 5000
    aliases: int = 100
    depth: int = 100
    nodes: int = 1_000_000  # per document, after expanding aliases


class RenderError(Exception):
    """The manifests cannot be rendered; the message names the file and document."""

    reason = api.BUILD_FAILED


@dataclasses.dataclass
class Document:
    """One object read, with where it came from."""

    path: str  # path in the repository
    index: int  # 1-based document number in the file
    obj: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.path} (document {self.index})"


def normalise_path(path: str) -> str:
    """`spec.path` as a tree path ('' for the root); RenderError if it leaves the repo."""
    clean = posixpath.normpath(path.strip() or ".")
    if path.strip().startswith("/") or clean == ".." or clean.startswith("../"):
        raise RenderError(f"spec.path {path!r} leaves the repository")
    return "" if clean == "." else clean


def render(
    tree: trees.Tree,
    path: str,
    *,
    sync_name: str,
    sync_namespace: str,
    ignore_rules: str | None = None,
    limits: Limits = Limits(),
) -> list[Document]:
    """Every object under `path`, with pullsync's owner labels added.

    `ignore_rules` is the GitRepository's spec.ignore (gitignore syntax)."""
    base = normalise_path(path)
    start = _real_path(tree, base) if base else ""
    if start is None:
        raise RenderError(f"path {path!r} not found in the repository")
    if tree.kind(start) != "dir":
        raise RenderError(f"path {path!r} is a file, not a directory")
    rules = _rules(tree, base, ignore_rules, limits)
    files = list(_files(tree, start, base, rules, visiting=set()))
    _refuse_renderer_files(files)
    documents: list[Document] = []
    total = 0
    for shown, real in files:
        if not shown.endswith(EXTENSIONS):
            continue
        size = tree.size(real)
        if size > limits.file_bytes:  # checked before the content is read
            raise RenderError(f"{shown}: {size} bytes is over the limit of {limits.file_bytes} per file")
        total += size
        if total > limits.total_bytes:
            raise RenderError(f"{shown}: the manifests exceed the limit of {limits.total_bytes} bytes in total")
        for doc in _documents(shown, tree.read(real), limits):
            documents.append(doc)
            if len(documents) > limits.objects:
                raise RenderError(f"{doc.where}: more than {limits.objects} objects")
    labels = api.owner_labels(sync_name, sync_namespace)
    for doc in documents:
        meta = doc.obj["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
    return documents


def _rules(tree: trees.Tree, base: str, spec_ignore: str | None, limits: Limits) -> ignore.Rules:
    """The ignore rules: defaults, .sourceignore at the root and at `path`, spec.ignore."""
    rules = ignore.Rules()
    for directory in dict.fromkeys(("", base)):
        where = f"{directory}/{ignore.FILE}" if directory else ignore.FILE
        real = _real_path(tree, where)
        if real is None or tree.kind(real) != "file":
            continue
        if tree.size(real) > limits.file_bytes:
            raise RenderError(f"{where}: over the limit of {limits.file_bytes} bytes per file")
        rules.add(tree.read(real).decode("utf-8", "replace"), directory)
    if spec_ignore:
        rules.add(spec_ignore)
    return rules


def _real_path(tree: trees.Tree, path: str, hops: int = 0) -> str | None:
    """The path without symbolic links that `path` names, following in-repo links on the
    way; None if nothing is there."""
    real = ""
    for part in path.split("/"):
        candidate = f"{real}/{part}" if real else part
        kind = tree.kind(candidate)
        if kind is None:
            return None
        if kind == "link":
            if hops >= SYMLINK_HOPS:
                raise RenderError(f"{candidate}: too many levels of symbolic links")
            target = _link_target(tree, candidate)
            resolved = _real_path(tree, target, hops + 1) if target else ""
            if resolved is None:
                return None
            candidate = resolved
        real = candidate
    return real


def _link_target(tree: trees.Tree, link_path: str) -> str:
    """The repository path a link points at ('' for the root); RenderError if outside."""
    target = tree.read(link_path).decode(errors="replace")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(link_path), target))
    if target.startswith("/") or joined == ".." or joined.startswith("../"):
        raise RenderError(f"{link_path}: symbolic link to {target!r} leaves the repository")
    return "" if joined == "." else joined


def _files(
    tree: trees.Tree, real_dir: str, shown_dir: str, rules: ignore.Rules, *, visiting: set[str]
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
                yield from _files(tree, real, shown, rules, visiting=visiting)
        elif kind == "file" and not rules.ignored(shown):
            yield shown, real


def _follow(tree: trees.Tree, link: str, shown: str) -> str | None:
    """Where the link `link` leads inside the repository. A link that leads nowhere or out
    of the repository is an error, unless its name shows a file render never reads (a
    link that may be a directory could hold manifests: skipping it could prune them)."""
    try:
        resolved = _real_path(tree, _link_target(tree, link), 1)
        if resolved is None:
            raise RenderError(f"{shown}: symbolic link target does not exist")
    except RenderError as e:
        extension = posixpath.splitext(shown)[1]
        if extension and extension not in EXTENSIONS:
            return None
        raise RenderError(f"{e}; if render should not read it, {_ignore_hint('it')}") from None
    return resolved


def _refuse_renderer_files(files: list[tuple[str, str]]) -> None:
    """A kustomization or a chart is not plain manifests: say so before reading them."""
    for shown, _ in files:
        name = posixpath.basename(shown)
        if name in KUSTOMIZE_FILES:
            raise RenderError(
                f"{shown}: a Kustomize file; pullsync does not build Kustomize overlays yet. Point spec.path at "
                f"plain manifests, or, to apply the plain manifests beside it, {_ignore_hint('it')}"
            )
        if name == HELM_FILE:
            raise RenderError(
                f"{shown}: a Helm chart; pullsync does not render Helm charts yet. Point spec.path at plain "
                f"manifests, or, to apply the plain manifests beside it, {_ignore_hint('its directory')}"
            )


def _documents(path: str, data: bytes, limits: Limits) -> Iterator[Document]:
    """The objects of one file, as kubectl reads them."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RenderError(f"{path}: not UTF-8 text") from None
    read_limits = kubeyaml.ReadLimits(
        aliases=limits.aliases, depth=limits.depth, nodes=limits.nodes, documents=limits.objects
    )
    try:
        for index, value in kubeyaml.documents(text, read_limits):
            for obj in _expand(f"{path} (document {index})", value):
                yield Document(path, index, obj)
    except kubeyaml.ReadError as e:
        raise RenderError(f"{path} (document {e.index}): {e}") from None


def _expand(where: str, obj: Any) -> Iterator[dict[str, Any]]:
    """`obj` as Kubernetes objects (a List's items), each checked for what render needs."""
    if not isinstance(obj, dict):
        what = f"a {_type_name(obj)}, not a mapping"
        raise RenderError(f"{where}: not a Kubernetes object ({what}); {_not_for_cluster()}")
    kind = obj.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list):
        for item in obj["items"]:
            yield from _expand(where, item)
        return
    if "apiVersion" not in obj and "kind" not in obj:
        raise RenderError(f"{where}: not a Kubernetes object (no apiVersion and kind); {_not_for_cluster()}")
    for field in ("apiVersion", "kind"):
        if not isinstance(obj.get(field), str) or not obj[field]:
            raise RenderError(f"{where}: missing {field}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise RenderError(f"{where}: {obj['kind']} has no metadata.name")
    for field in ("labels", "annotations"):
        if not isinstance(meta.get(field) or {}, dict):
            raise RenderError(f"{where}: metadata.{field} must be a mapping")
    _check_data(where, obj)
    yield obj


def _check_data(where: str, obj: dict[str, Any]) -> None:
    """ConfigMap and Secret values must be strings; YAML 1.1 makes `on` and `0644` other
    things (kubectl refuses them too, less clearly)."""
    if obj["apiVersion"] != "v1" or obj["kind"] not in ("ConfigMap", "Secret"):
        return
    for field in ("data", "stringData", "binaryData"):
        values = obj.get(field)
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                raise RenderError(
                    f"{where}: {field}.{key} is a {_type_name(value)}, not a string: YAML reads unquoted "
                    "yes/no/on/off/y/n/true/false as booleans and 0644 or 1e3 as numbers; quote the value"
                )


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dict):
        return "mapping"
    return "list" if isinstance(value, list) else "string"


def _not_for_cluster() -> str:
    return f"if the file is not meant for the cluster, {_ignore_hint('it')}"


def _ignore_hint(what: str) -> str:
    where = f"{ignore.FILE} (at the repository root or at spec.path) or in the GitRepository's spec.ignore"
    return f"list {what} in {where}"
