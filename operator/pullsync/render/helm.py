"""Helm: `helm template` of the chart at spec.path (helm installed with pullsync), with
the Sync's release name and target namespace, `spec.helm.valuesFiles` then
`spec.helm.values`, the chart's CRDs included and its test hooks left out, on a private
copy of the chart and the values files (see `sandbox`). Other hooks are rendered as
ordinary objects. Nothing is downloaded, ever: dependencies must be vendored under the
chart's `charts/` (helm names a missing one), and helm runs without network.
"""

import posixpath
import re

from pullsync import api
from pullsync.render import ignore, paths, sandbox, trees
from pullsync.render.documents import Document, Limits, RenderError, parse

SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
SOURCE = re.compile(r"^# Source: (\S+)[ \t]*$", re.MULTILINE)


def template(
    tree: trees.Tree,
    start: str,
    base: str,
    rules: ignore.Rules,
    limits: Limits,
    *,
    helm: api.HelmSpec,
    release: str,
    namespace: str,
) -> list[Document]:
    """The objects of the chart in the directory `start` (`base` as spec.path names it)."""
    values = [_values_file(tree, base, f) for f in helm.values_files]
    with sandbox.Workspace(tree, rules, limits) as workspace:
        workspace.add_dir(start)
        for real in values:
            workspace.add_file(real)
        inline = workspace.dir / "values.json"  # JSON is YAML; outside the copy of the repository
        inline.write_text(helm.values)
        arguments = ["template", release, start or ".", "--namespace", namespace, "--include-crds", "--skip-tests"]
        for real in values:
            arguments += ["--values", real]
        output = workspace.run("helm", [*arguments, "--values", str(inline)], what="helm template", network=False)
    return _documents(output.decode("utf-8", "replace"), start, limits)


def _values_file(tree: trees.Tree, base: str, name: str) -> str:
    """The repository path (without links) of a values file named relative to spec.path."""
    where = f"spec.helm.valuesFiles entry {name!r}"
    try:
        real = paths.real_path(tree, paths.normalise(posixpath.join(base, name)))
    except RenderError:
        raise RenderError(f"{where} leaves the repository") from None
    if real is None or tree.kind(real) != "file":
        raise RenderError(f"{where}: no such file in the repository (values files are relative to spec.path)")
    return real


def _documents(output: str, start: str, limits: Limits) -> list[Document]:
    """helm's output as documents, each named by the chart file it came from (helm's
    `# Source:` comment, with the chart's name replaced by its directory)."""
    documents: list[Document] = []
    counts: dict[str, int] = {}
    for chunk in SEPARATOR.split(output):
        source = SOURCE.search(chunk)
        path = posixpath.join(start, source.group(1).split("/", 1)[-1]) if source else start or "."
        for doc in parse(path, chunk.encode(), limits, via="helm template"):
            counts[path] = counts.get(path, 0) + 1
            doc.index = counts[path]
            documents.append(doc)
    return documents
