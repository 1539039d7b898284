"""Render: the manifests under a Sync's path at one commit, read straight from git.

No checkout: the tree is read from the object database, so nothing can escape through
the filesystem. Every `*.yaml`, `*.yml` and `*.json` under the path is read in path
order; multi-document files are split, empty documents skipped, `List` kinds expanded.
Symlinks are followed only while they stay inside the repository. Limits bound file
size, total size, object count, YAML aliases and nesting depth; they are checked on
the YAML event stream before anything is built. Every error names the file and the
document (1-based), and never quotes file content.
"""

import dataclasses
import io
import posixpath
import re
from collections.abc import Iterator
from typing import Any

import pygit2
from ruamel.yaml import YAML
from ruamel.yaml import events as yaml_events
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from pullsync import api

try:  # libyaml (the ruamel.yaml[libyaml] extra) parses about ten times faster
    from ruamel.yaml import cyaml

    LIBYAML = True
except ImportError:  # the pure-Python parser gives the same results, slower
    LIBYAML = False

EXTENSIONS = (".yaml", ".yml", ".json")
SYMLINK_HOPS = 8


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


@dataclasses.dataclass
class Document:
    """One object from git, with where it came from."""

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


def render(repo: pygit2.Repository, commit: str, path: str, *, sync_name: str, sync_namespace: str,
           limits: Limits = Limits()) -> list[Document]:  # fmt: skip
    """Every object under `path` at `commit`, with pullsync's owner labels added."""
    root = repo[commit].peel(pygit2.Tree)
    base = normalise_path(path)
    start = _lookup(repo, root, base) if base else root
    if start is None:
        raise RenderError(f"path {path!r} not found in the repository")
    if not isinstance(start, pygit2.Tree):
        raise RenderError(f"path {path!r} is a file, not a directory")
    documents: list[Document] = []
    total = 0
    for file_path, blob in _files(repo, root, start, base):
        if blob.size > limits.file_bytes:  # checked before the content is read
            raise RenderError(f"{file_path}: {blob.size} bytes is over the limit of {limits.file_bytes} per file")
        total += blob.size
        if total > limits.total_bytes:
            raise RenderError(f"{file_path}: the manifests exceed the limit of {limits.total_bytes} bytes in total")
        for doc in _documents(file_path, blob.data, limits):
            documents.append(doc)
            if len(documents) > limits.objects:
                raise RenderError(f"{doc.where}: more than {limits.objects} objects")
    labels = api.owner_labels(sync_name, sync_namespace)
    for doc in documents:
        doc.obj["metadata"].setdefault("labels", {}).update(labels)
    return documents


def _lookup(repo: pygit2.Repository, root: pygit2.Tree, path: str, hops: int = 0) -> pygit2.Object | None:
    """The object at `path`, following in-repo symlinks on the way."""
    node: pygit2.Object = root
    walked: list[str] = []
    for part in path.split("/"):
        if not isinstance(node, pygit2.Tree) or part not in node:
            return None
        entry = node[part]
        walked.append(part)
        if entry.filemode == pygit2.enums.FileMode.LINK:
            target = _link_target(repo, entry, "/".join(walked))
            if hops >= SYMLINK_HOPS:
                raise RenderError(f"{'/'.join(walked)}: too many levels of symbolic links")
            resolved = _lookup(repo, root, target, hops + 1) if target else root
            if resolved is None:
                return None
            node = resolved
            walked = target.split("/") if target else []
        else:
            node = repo[entry.id]
    return node


def _link_target(repo: pygit2.Repository, entry: pygit2.Object, link_path: str) -> str:
    blob = repo[entry.id]
    target = blob.data.decode(errors="replace") if isinstance(blob, pygit2.Blob) else ""
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(link_path), target))
    if target.startswith("/") or joined == ".." or joined.startswith("../"):
        raise RenderError(f"{link_path}: symbolic link to {target!r} leaves the repository")
    return "" if joined == "." else joined


def _files(
    repo: pygit2.Repository, root: pygit2.Tree, tree: pygit2.Tree, prefix: str
) -> Iterator[tuple[str, pygit2.Blob]]:
    """(path, blob) of every manifest file below `tree`, in path order."""
    for entry in sorted(tree, key=lambda e: e.name or ""):
        name = entry.name or ""
        path = f"{prefix}/{name}" if prefix else name
        obj: pygit2.Object | None = repo[entry.id]
        if entry.filemode == pygit2.enums.FileMode.LINK:
            obj = _lookup(repo, root, _link_target(repo, entry, path), 1)
            if obj is None:
                raise RenderError(f"{path}: symbolic link target does not exist")
        if isinstance(obj, pygit2.Tree):
            yield from _files(repo, root, obj, path)
        elif isinstance(obj, pygit2.Blob) and name.endswith(EXTENSIONS):
            yield path, obj


def _documents(path: str, data: bytes, limits: Limits) -> Iterator[Document]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RenderError(f"{path}: not UTF-8 text") from None
    _check_events(path, text, limits)
    index = 0
    try:
        for index, obj in enumerate(_load_all(text), start=1):
            if obj is None:
                continue
            for item in _expand(path, index, obj):
                yield Document(path, index, item)
    except (YAMLError, ValueError, TypeError, RecursionError) as e:
        raise RenderError(f"{path} (document {index + 1}): {_describe(e)}") from None


def _check_events(path: str, text: str, limits: Limits) -> None:
    """Check depth, alias count and expanded size on the event stream, before any object
    is built (a "billion laughs" file has few aliases but expands exponentially)."""
    index = 1
    aliases = 0
    anchors: dict[str, int] = {}  # anchor -> expanded node count
    stack: list[list[Any]] = [[None, 0]]  # [anchor, nodes] of each open collection; [0] is the document

    def add(nodes: int) -> None:
        stack[-1][1] += nodes
        if stack[0][1] + sum(frame[1] for frame in stack[1:]) > limits.nodes:
            raise RenderError(f"{path} (document {index}): YAML aliases expand to more than {limits.nodes} nodes")

    try:
        for event in _events(text):
            if isinstance(event, (yaml_events.MappingStartEvent, yaml_events.SequenceStartEvent)):
                stack.append([event.anchor, 1])
                if len(stack) - 1 > limits.depth:
                    raise RenderError(f"{path} (document {index}): nesting deeper than {limits.depth} levels")
            elif isinstance(event, (yaml_events.MappingEndEvent, yaml_events.SequenceEndEvent)):
                anchor, nodes = stack.pop()
                if anchor:
                    anchors[anchor] = nodes
                add(nodes)
            elif isinstance(event, yaml_events.ScalarEvent):
                if event.anchor:
                    anchors[event.anchor] = 1
                add(1)
            elif isinstance(event, yaml_events.AliasEvent):
                aliases += 1
                if aliases > limits.aliases:
                    raise RenderError(f"{path} (document {index}): more than {limits.aliases} YAML aliases")
                add(anchors.get(event.anchor or "", 1))
            elif isinstance(event, yaml_events.DocumentEndEvent):
                index += 1
                stack = [[None, 0]]
                if index > limits.objects + 1:
                    raise RenderError(f"{path}: more than {limits.objects} objects")
    except YAMLError as e:
        raise RenderError(f"{path} (document {index}): {_describe(e)}") from None


def _load_all(text: str) -> Iterator[Any]:
    """Every document, built by the safe constructor (no python tags; duplicate keys refused)."""
    if not LIBYAML:
        yield from YAML(typ="safe").load_all(text)
        return
    loader = cyaml.CSafeLoader(text)
    try:
        while loader.check_data():
            yield loader.get_data()
    finally:
        loader.dispose()


def _events(text: str) -> Iterator[yaml_events.Event]:
    if not LIBYAML:
        yield from YAML(typ="safe").parse(io.StringIO(text))
        return
    parser = cyaml.CParser(text)  # type: ignore[attr-defined]  # defined in the C extension
    try:
        while parser.check_event():
            yield parser.get_event()
    finally:
        parser.dispose()


def _describe(error: Exception) -> str:
    """A YAML error as problem and position, without quoting the file (it may hold secrets)."""
    if isinstance(error, MarkedYAMLError):
        problem = str(error.problem or error.context or "invalid YAML")
        key = re.match(r'found duplicate key "([^"]*)"', problem)
        problem = f'duplicate key "{key[1]}"' if key else problem
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"invalid YAML: {problem}{where}"
    if isinstance(error, RecursionError):
        return "nesting too deep"
    return f"invalid YAML: {type(error).__name__}"


def _expand(path: str, index: int, obj: Any) -> Iterator[dict[str, Any]]:
    where = f"{path} (document {index})"
    if not isinstance(obj, dict):
        raise RenderError(f"{where}: expected a Kubernetes object (a mapping), got {type(obj).__name__}")
    kind = obj.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list):
        for item in obj["items"]:
            yield from _expand(path, index, item)
        return
    for field in ("apiVersion", "kind"):
        if not isinstance(obj.get(field), str) or not obj[field]:
            raise RenderError(f"{where}: missing {field}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise RenderError(f"{where}: {obj['kind']} has no metadata.name")
    if not isinstance(meta.get("labels", {}), dict) or not isinstance(meta.get("annotations", {}), dict):
        raise RenderError(f"{where}: metadata.labels and metadata.annotations must be mappings")
    yield obj
