"""Render's entry point: what a Sync's path holds, as objects. A kustomization file at
the path is built by kustomize (`kustomize`), a Chart.yaml is templated by helm
(`helm`), anything else is read as plain manifests (`manifests`); then pullsync's owner
labels are added to every object. The operator renders a commit straight from the git
object database, `pullsync build` a directory on disk, both through this function.
"""

from pullsync import api
from pullsync.render import helm, kustomize, manifests, paths, trees
from pullsync.render.documents import DEFAULT_LIMITS, Document, Limits, RenderError, within


def render(
    tree: trees.Tree,
    path: str,
    *,
    sync_name: str,
    sync_namespace: str,
    target_namespace: str | None = None,
    ignore_rules: str | None = None,
    helm_spec: api.HelmSpec | None = None,
    allow_remote_bases: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Document]:
    """Every object `path` renders to, with pullsync's owner labels added.

    `ignore_rules` is the GitRepository's spec.ignore (gitignore syntax); the namespace
    given to helm is `target_namespace`, default the Sync's."""
    base = paths.normalise(path)
    start = paths.real_path(tree, base)
    if start is None:
        raise RenderError(f"path {path!r} not found in the repository")
    if tree.kind(start) != "dir":
        raise RenderError(f"path {path!r} is a file, not a directory")
    rules = paths.rules(tree, base, ignore_rules, limits)
    names = {n for n in tree.names(start) if not rules.ignored(f"{base}/{n}" if base else n)}
    if helm_spec is not None and manifests.HELM_FILE not in names:
        raise RenderError(f"spec.helm is set, but path {path!r} holds no {manifests.HELM_FILE}")
    if names & set(manifests.KUSTOMIZE_FILES):
        docs = kustomize.build(tree, start, rules, limits, allow_remote=allow_remote_bases)
    elif manifests.HELM_FILE in names:
        docs = helm.template(
            tree,
            start,
            base,
            rules,
            limits,
            helm=helm_spec or api.HelmSpec(),
            release=(helm_spec and helm_spec.release_name) or sync_name,
            namespace=target_namespace or sync_namespace,
        )
    else:
        docs = manifests.read(tree, start, base, rules, limits)
    labels = api.owner_labels(sync_name, sync_namespace)
    for doc in within(docs, limits):
        meta = doc.obj["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
    return docs
