"""Plain manifests: every `*.yaml`, `*.yml` and `*.json` below a directory that the
ignore rules leave (see `ignore`), read in path order as kubectl reads them (see
`documents`). Symbolic links are followed only while they stay inside the repository
(see `paths`). Limits bound file size, total size and object count.
"""

import posixpath

from pullsync.render import ignore, paths, trees
from pullsync.render.documents import Document, Limits, RenderError, ignore_hint, parse

KUSTOMIZE_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
HELM_FILE = "Chart.yaml"


def read(tree: trees.Tree, start: str, base: str, rules: ignore.Rules, limits: Limits) -> list[Document]:
    """The objects of the files below the directory `start` (`base` as the user named it)."""
    files = list(paths.files(tree, start, base, rules))
    _refuse_renderer_files(files)
    documents: list[Document] = []
    total = 0
    for shown, real in files:
        if not shown.endswith(paths.EXTENSIONS):
            continue
        size = tree.size(real)
        if size > limits.file_bytes:  # checked before the content is read
            raise RenderError(f"{shown}: {size} bytes is over the limit of {limits.file_bytes} per file")
        total += size
        if total > limits.total_bytes:
            raise RenderError(f"{shown}: the manifests exceed the limit of {limits.total_bytes} bytes in total")
        for doc in parse(shown, tree.read(real), limits):
            documents.append(doc)
            if len(documents) > limits.objects:
                raise RenderError(f"{doc.where}: more than {limits.objects} objects")
    return documents


def _refuse_renderer_files(files: list[tuple[str, str]]) -> None:
    """A kustomization or a chart below spec.path is not plain manifests: say so before
    reading them (only one at spec.path itself is built)."""
    for shown, _ in files:
        name = posixpath.basename(shown)
        directory = posixpath.dirname(shown) or "."
        if name in KUSTOMIZE_FILES:
            raise RenderError(
                f"{shown}: a kustomization below spec.path; pullsync builds a kustomization only at spec.path "
                f"itself. Point spec.path at {directory!r} (one Sync per overlay), or, to apply the plain "
                f"manifests beside it, {ignore_hint('it')}"
            )
        if name == HELM_FILE:
            raise RenderError(
                f"{shown}: a Helm chart below spec.path; pullsync templates a chart only at spec.path itself. "
                f"Point spec.path at {directory!r}, or, to apply the plain manifests beside it, "
                f"{ignore_hint('its directory')}"
            )
