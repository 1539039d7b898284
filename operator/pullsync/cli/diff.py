"""`pullsync diff PATH --sync NAME`: what a Sync would do if its next revision were the
directory PATH, against the live cluster, without writing anything.

The Preview controller's plan code (`preview.planner`) on a local directory: rendered as
the operator renders the Sync's path (its helm values and targetNamespace, owner labels),
server-side dry-runs as the Sync's identity (its serviceAccountName, impersonated: your
kubeconfig needs the right to impersonate it), JSON patches from live to the dry-run's
result, and what its prune would delete. Exit codes as `kubectl diff`: 0 no change, 1
changes, 2 an error (the revision would fail, or the plan could not be made).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pullsync import api, kube
from pullsync.cli import cluster, local, output
from pullsync.preview import planner, report
from pullsync.render import build, documents, trees
from pullsync.sync import inventory

EXIT_CODES = """exit codes:
  0  no change: the cluster already is what PATH says
  1  changes: the plan is printed
  2  error: the revision would fail (file and document printed), or no plan could be made"""
SIGNS = {report.CREATE: ("+", "green"), report.CHANGE: ("~", "yellow"), report.RECREATE: ("±", "yellow")}
SIGNS[report.PRUNE] = ("-", "red")


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """`pullsync diff`."""
    p = sub.add_parser(
        "diff",
        help="the plan of a local directory as a Sync's next revision, against the live cluster (no writes)",
        description="Plan the directory PATH (what the Sync's spec.path points at, e.g. ./deploy of a checkout "
        "of a pull request) as the next revision of the Sync NAME: rendered as the operator renders it, "
        "server-side dry-run as the Sync's identity, a JSON patch per changed object, the objects created and "
        "those its prune would delete. The same plan a Preview posts to a pull request. Nothing is written.",
    )
    p.set_defaults(handler=cluster.handler(diff))
    p.add_argument("path", metavar="PATH", type=Path, help="the directory to plan")
    p.add_argument("--sync", required=True, metavar="NAME", help="the Sync whose next revision PATH would be")
    p.add_argument("-o", "--output", choices=("text", "json", "yaml"), default="text", help="text, or the plan")
    p.add_argument(
        "--allow-remote-bases",
        action="store_true",
        help="let kustomizations use remote bases (as the operator's flag; the operator may refuse them)",
    )
    cluster.add_flags(p)
    p.epilog = EXIT_CODES


async def diff(client: kube.Client, args: argparse.Namespace) -> int:
    namespace = cluster.namespace(args)
    sync = await client.get(kube.SYNCS, namespace, args.sync)
    if sync is None:
        raise cluster.CliError(
            f"Sync {namespace}/{args.sync} not found: `pullsync get syncs -n {namespace}` lists them"
        )
    try:
        spec = api.SyncSpec.parse(sync.get("spec") or {})
    except ValueError as e:
        raise cluster.CliError(f"Sync {namespace}/{args.sync}: {e}") from None
    ignore = await _ignore_rules(client, spec, namespace)
    try:
        docs = _render(
            args.path, name=args.sync, namespace=namespace, spec=spec, ignore=ignore, remote=args.allow_remote_bases
        )
    except (documents.RenderError, OSError) as e:
        plan = report.Report(namespace, args.sync, str(args.path), [], 0, [str(e)])
    else:
        acting = client
        if spec.service_account_name:
            acting = client.impersonating(f"system:serviceaccount:{namespace}:{spec.service_account_name}")
        planning = planner.plan_revision(
            acting,
            docs,
            operator=client,
            sync_namespace=namespace,
            sync_name=args.sync,
            spec=spec,
            old_inventory=inventory.load(sync.get("status")),
            revision=str(args.path),
            concurrency=16,
        )
        try:
            plan = await planning
        except planner.Unavailable as e:
            raise cluster.CliError(f"the API server cannot answer now ({e}); try again") from None
    if args.output == "text":
        _print(plan, identity=spec.service_account_name)
    else:
        sys.stdout.write(output.document(plan.as_json(), args.output))
    if not plan.ok:
        return 2
    return 1 if plan.changes else 0


async def _ignore_rules(client: kube.Client, spec: api.SyncSpec, namespace: str) -> str | None:
    """The Sync's GitRepository's spec.ignore, as the operator applies it (None if unreadable)."""
    try:
        repo = await client.get(kube.GITREPOSITORIES, spec.source_namespace or namespace, spec.source_name)
    except kube.ApiError:
        return None
    return ((repo or {}).get("spec") or {}).get("ignore") or None


def _render(
    path: Path, *, name: str, namespace: str, spec: api.SyncSpec, ignore: str | None, remote: bool
) -> list[documents.Document]:
    """The documents of `path`, rendered as the Sync would render its spec.path there."""
    directory = path.resolve()
    if not directory.is_dir():
        raise OSError(f"{path} is not a directory")
    root, inside = local.checkout(directory)
    return build.render(
        trees.DirTree(root),
        inside,
        sync_name=name,
        sync_namespace=namespace,
        target_namespace=spec.target_namespace,
        ignore_rules=ignore,
        helm_spec=spec.helm,
        allow_remote_bases=remote,
    )


def _print(plan: report.Report, *, identity: str | None) -> None:
    """The plan as a person reads it: one line per object, its patch below it."""
    colour = output.colour_enabled(sys.stdout)
    who = f"as ServiceAccount {identity}" if identity else "as you"
    print(f"Sync {plan.sync_namespace}/{plan.sync_name}: {plan.revision} against the live cluster ({who})")
    for error in plan.errors:
        print(output.paint(f"✗ {error}", "red", colour), file=sys.stderr)
    for change in plan.changes:
        sign, hue = SIGNS[change.action]
        where = f"   {change.where}" if change.where else ""
        print(output.paint(f"{sign} {change.describe}", hue, colour) + f"   {change.action}{where}")
        for op in change.patch:
            print("    " + _operation(op))
    if plan.ok:
        print(plan.summary() if not plan.changes else f"{plan.summary()}, {plan.unchanged} unchanged")


def _operation(op: dict[str, Any]) -> str:
    """One JSON patch operation on one line: `replace /data/value: "b"`."""
    value = f": {json.dumps(op['value'])}" if "value" in op else ""
    source = f" from {op['from']}" if "from" in op else ""
    text = f"{op['op']} {op['path'] or '/'}{source}{value}"
    return text if len(text) <= 200 else text[:199] + output.ELLIPSIS
