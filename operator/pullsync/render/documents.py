"""What render produces and how it fails: `Document` (an object and where it came from),
`Limits`, `RenderError`, and `parse`, which reads YAML text (a manifest file, or what
kustomize or helm printed) into documents as kubectl reads it (see `kubeyaml`): empty
documents skipped, `List` kinds expanded, each object checked for what apply needs.
Errors name the file and the document (1-based), and never quote file content.
"""

import dataclasses
from collections.abc import Iterator
from typing import Any

from pullsync import api
from pullsync.render import ignore, kubeyaml


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what one Sync may render."""

    file_bytes: int = 4 * 1024 * 1024
    total_bytes: int = 32 * 1024 * 1024  # of manifests read, of files given to a renderer, of its output
    objects: int = 5000
    aliases: int = 100
    depth: int = 100
    nodes: int = 1_000_000  # per document, after expanding aliases
    render_seconds: float = 60.0  # one kustomize or helm run
    render_memory: int = 512 * 1024 * 1024  # a renderer's data segment (RLIMIT_DATA)


DEFAULT_LIMITS = Limits()


class RenderError(Exception):
    """The manifests cannot be rendered; the message names the file and document."""

    reason = api.BUILD_FAILED


@dataclasses.dataclass
class Document:
    """One object read, with where it came from."""

    path: str  # path in the repository (for rendered output: the kustomization or template)
    index: int  # 1-based document number in the file (in rendered output: in the output)
    obj: dict[str, Any]
    via: str = ""  # what produced it, when not a file in git: "kustomize build", "helm template"

    @property
    def where(self) -> str:
        return f"{self.path} ({self.via + ', ' if self.via else ''}document {self.index})"


def parse(path: str, data: bytes, limits: Limits, *, via: str = "") -> Iterator[Document]:
    """The objects of one file (or one renderer's output), as kubectl reads them."""
    try:
        for index, value in kubeyaml.documents(_text(path, data), _read_limits(limits)):
            where = Document(path, index, {}, via).where
            for obj in _expand(where, value):
                yield Document(path, index, obj, via)
    except kubeyaml.ReadError as e:
        raise RenderError(f"{Document(path, e.index, {}, via).where}: {e}") from None


def within(documents: list[Document], limits: Limits) -> list[Document]:
    """`documents`, or RenderError naming the first one over the object limit."""
    if len(documents) > limits.objects:
        raise RenderError(f"{documents[limits.objects].where}: more than {limits.objects} objects")
    return documents


def config(path: str, data: bytes, limits: Limits) -> Any:
    """The first document of a YAML file that is not a manifest (a kustomization)."""
    try:
        return next((value for _, value in kubeyaml.documents(_text(path, data), _read_limits(limits))), None)
    except kubeyaml.ReadError as e:
        raise RenderError(f"{path}: {e}") from None


def _text(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RenderError(f"{path}: not UTF-8 text") from None


def _read_limits(limits: Limits) -> kubeyaml.ReadLimits:
    return kubeyaml.ReadLimits(aliases=limits.aliases, depth=limits.depth, nodes=limits.nodes, documents=limits.objects)


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
    return f"if the file is not meant for the cluster, {ignore_hint('it')}"


def ignore_hint(what: str) -> str:
    """How to make render leave `what` out."""
    where = f"{ignore.FILE} (at the repository root or at spec.path) or in the GitRepository's spec.ignore"
    return f"list {what} in {where}"
