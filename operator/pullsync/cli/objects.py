"""`pullsync get`, `tree`, `reconcile`, `suspend` and `resume`: pullsync's own objects
(GitRepositories, Syncs, Previews) for people, with the current kubeconfig.

`get` prints what `kubectl get` would, plus health and short revisions; `tree` a
Sync's inventory; `reconcile` sets `pullsync.dev/requestedAt` and, with `--wait`,
follows the object until the operator echoes it in `status.lastHandledReconcileAt`;
`suspend`/`resume` flip `spec.suspend` (resume also asks for a reconcile, as Flux does).
The rows and the tree are built by plain functions of the objects (tested without a
cluster); only the `async` commands talk to the API server.
"""

import argparse
import asyncio
import dataclasses
import datetime
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from pullsync import api, kube
from pullsync.api import clock, conditions, durations
from pullsync.cli import cluster, output
from pullsync.runtime import redact
from pullsync.sync import healthcheck, inventory

POLL = 0.5  # seconds between two reads of an object `reconcile --wait` follows
MAX_DEPTH = 5  # Syncs that apply Syncs: how deep `tree` follows them


@dataclasses.dataclass(frozen=True)
class Kind:
    """One of pullsync's kinds as the command line names it."""

    name: str  # Sync
    command: str  # sync: what `pullsync reconcile|suspend|resume` take
    listing: str  # syncs: what `pullsync get` takes
    resource: kube.Resource


SYNC = Kind("Sync", "sync", "syncs", kube.SYNCS)
GITREPO = Kind("GitRepository", "gitrepo", "gitrepos", kube.GITREPOSITORIES)
PREVIEW = Kind("Preview", "preview", "previews", kube.PREVIEWS)
ALIASES = {
    **dict.fromkeys(("syncs", "sync"), SYNC),
    **dict.fromkeys(("gitrepos", "gitrepo", "gitrepository", "gitrepositories"), GITREPO),
    **dict.fromkeys(("previews", "preview"), PREVIEW),
}


def _kind(*allowed: Kind) -> Callable[[str], Kind]:
    """An argparse type: a kind name or alias among `allowed`."""
    names = [k.command for k in allowed]
    choices = " or ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " or " + names[-1]

    def parse(text: str) -> Kind:
        found = ALIASES.get(text.lower())
        if found is None or found not in allowed:
            raise argparse.ArgumentTypeError(f"{text!r}: use {choices}")
        return found

    parse.__name__ = "kind"
    return parse


def _duration(text: str) -> float:
    try:
        return durations.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """`get`, `tree`, `reconcile`, `suspend`, `resume`."""
    get = sub.add_parser(
        "get",
        help="list GitRepositories, Syncs or Previews, as kubectl get does",
        description="List pullsync's objects of one kind (syncs by default) with their Ready condition, "
        "revision and age. `-o json|yaml` prints the objects themselves.",
    )
    get.add_argument(
        "kind",
        nargs="?",
        default="syncs",
        metavar="{syncs,gitrepos,previews}",
        help="what to list (also: sync, gitrepo, gitrepository, gitrepositories, preview) [syncs]; "
        "`get NAME` alone is a Sync",
    )
    get.add_argument("name", nargs="?", metavar="NAME", help="only this one")
    get.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table", help="[table]")
    cluster.add_flags(get, all_namespaces=True)
    get.set_defaults(handler=cluster.handler(get_objects))
    tree = sub.add_parser(
        "tree",
        help="the objects a Sync applied (its inventory), with their health",
        description="Print a Sync's inventory as a tree: the Sync, then each object it applied as "
        "Kind/namespace/name with its kstatus health (Syncs it applied are followed).",
    )
    tree.add_argument("kind", type=_kind(SYNC), metavar="sync", help="a Sync (the only kind with an inventory)")
    tree.add_argument("name", metavar="NAME", help="its name")
    tree.add_argument("-o", "--output", choices=("table", "json"), default="table", help="[table]")
    cluster.add_flags(tree)
    tree.set_defaults(handler=cluster.handler(print_tree))
    reconcile = sub.add_parser(
        "reconcile",
        help="ask the operator to reconcile a Sync or GitRepository now",
        description=f"Set the annotation {api.ANNOTATION_REQUESTED_AT} to the current time: the operator "
        "reconciles the object at once and echoes the value in status.lastHandledReconcileAt. With --wait, "
        "follow it until then and until it is Ready (exit 0) or failed (exit 1, with its message).",
    )
    reconcile.add_argument("kind", type=_kind(SYNC, GITREPO), metavar="{sync,gitrepo}", help="what to reconcile")
    reconcile.add_argument("name", metavar="NAME", help="its name")
    reconcile.add_argument(
        "--with-source",
        action="store_true",
        help="a Sync: first make its GitRepository fetch (and wait for that), so the newest commit is applied",
    )
    reconcile.add_argument("--wait", action="store_true", help="follow the object until it is Ready or failed")
    reconcile.add_argument(
        "--timeout", type=_duration, default=300.0, metavar="DURATION", help="how long to wait, e.g. 90s [5m]"
    )
    cluster.add_flags(reconcile, waits=True)
    reconcile.set_defaults(handler=cluster.handler(request_reconcile))
    for verb, does in (("suspend", "stop reconciling"), ("resume", "reconcile again (and at once)")):
        p = sub.add_parser(
            verb,
            help=f"{does} a Sync or GitRepository (spec.suspend)",
            description=f"Set spec.suspend to {str(verb == 'suspend').lower()}"
            + (f" and request a reconcile ({api.ANNOTATION_REQUESTED_AT})." if verb == "resume" else "."),
        )
        p.add_argument("kind", type=_kind(SYNC, GITREPO), metavar="{sync,gitrepo}", help=f"what to {verb}")
        p.add_argument("name", metavar="NAME", help="its name")
        cluster.add_flags(p)
        p.set_defaults(handler=cluster.handler(set_suspend))


# Rows: plain functions of the objects.


def ready(obj: Mapping[str, Any]) -> tuple[str, str, bool]:
    """(Ready status — Unknown when there is none yet —, its message, whether Reconciling)."""
    found = (obj.get("status") or {}).get("conditions")
    status, message = conditions.ready_message(found)
    reconciling = any(c.get("type") == api.RECONCILING and c.get("status") == "True" for c in found or ())
    return status or "Unknown", message, reconciling


def ready_cell(obj: Mapping[str, Any]) -> output.Cell:
    status, _, reconciling = ready(obj)
    return output.Cell(status, "yellow" if reconciling else output.READY_COLOURS.get(status))


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def headers(kind: Kind, *, all_namespaces: bool) -> list[str]:
    columns = {
        SYNC: ["NAME", "READY", "REVISION", "OBJECTS", "HEALTH", "AGE", "STATUS"],
        GITREPO: ["NAME", "URL", "READY", "REVISION", "AGE", "STATUS"],
        PREVIEW: ["NAME", "SYNC", "REFS", "READY", "AGE", "STATUS"],
    }[kind]
    return ["NAMESPACE", *columns] if all_namespaces else columns


def row(kind: Kind, obj: Mapping[str, Any], now: datetime.datetime, *, all_namespaces: bool) -> list[str | output.Cell]:
    """One line of `pullsync get` for `obj`; missing values are `-`."""
    meta, status = _meta(obj), obj.get("status") or {}
    message = ready(obj)[1]
    created = output.age(meta.get("creationTimestamp"), now)
    if kind is SYNC:
        inv = status.get("inventory")
        count = inv.get("count", len(inv.get("entries") or [])) if isinstance(inv, dict) else None
        cells: list[str | output.Cell] = [
            meta.get("name", ""),
            ready_cell(obj),
            output.short_revision(status.get("lastAppliedRevision")) or "-",
            "-" if count is None else str(count),
            _health_cell(str((status.get("health") or {}).get("status") or "-")),
            created,
            message,
        ]
    elif kind is GITREPO:
        cells = [
            meta.get("name", ""),
            redact.urls(str((obj.get("spec") or {}).get("url") or "-")),  # one stored before the schema refused it
            ready_cell(obj),
            output.short_revision((status.get("artifact") or {}).get("revision")) or "-",
            created,
            message,
        ]
    else:
        cells = [
            meta.get("name", ""),
            str(((obj.get("spec") or {}).get("syncRef") or {}).get("name") or "-"),
            str(len(status.get("previews") or [])),
            ready_cell(obj),
            created,
            message,
        ]
    return [meta.get("namespace", ""), *cells] if all_namespaces else cells


def _health_cell(status: str) -> output.Cell:
    return output.Cell(status, output.HEALTH_COLOURS.get(status))


def sync_node(sync: Mapping[str, Any]) -> output.Node:
    """A Sync and its inventory as a tree: one child per object, `Kind/namespace/name`,
    with its health: as listed in status.health.unhealthy, else Current when the Sync's
    health says so (or lists every object that is not), else unknown (empty)."""
    meta, status = _meta(sync), sync.get("status") or {}
    health = status.get("health") or {}
    unhealthy = {str(u.get("id")): u for u in health.get("unhealthy") or [] if isinstance(u, dict)}
    complete = bool(health.get("status")) and len(unhealthy) < healthcheck.SHOWN
    children = []
    entries = sorted(inventory.load(status), key=lambda e: (e.namespace, e.group, e.kind, e.name))
    for entry in entries:
        listed = unhealthy.get(entry.id)
        if listed is not None:
            state, why = str(listed.get("status") or ""), str(listed.get("message") or "")
        else:
            state, why = ("Current" if complete or health.get("status") == "Current" else ""), ""
        children.append(output.Node(entry.describe(), state, why))
    revision = status.get("lastAppliedRevision") or ""
    root_status = str(health.get("status") or "")
    return output.Node(f"Sync/{meta.get('namespace')}/{meta.get('name')}", root_status, revision, children)


def _nested_sync(label: str) -> tuple[str, str] | None:
    """(namespace, name) when a tree label names a Sync (`Sync/ns/name`)."""
    kind, _, rest = label.partition("/")
    ns, _, name = rest.partition("/")
    return (ns, name) if kind == SYNC.name and name else None


# Commands.


async def get_objects(client: kube.Client, args: argparse.Namespace) -> int:
    """`pullsync get`."""
    kind = ALIASES.get(args.kind.lower())
    name: str | None = args.name
    if kind is None and name is None:  # `get NAME`: a Sync, the default kind
        kind, name = SYNC, args.kind
    elif kind is None:
        raise cluster.CliError(f"{args.kind!r}: use syncs, gitrepos or previews")
    ns = None if args.all_namespaces else cluster.namespace(args)
    if name:
        if ns is None:
            raise cluster.CliError("a name needs one namespace: use -n NAMESPACE instead of -A")
        items = [await fetch(client, kind, ns, name)]
    else:
        listing = await client.list(kind.resource, ns)
        items = sorted(listing.get("items") or [], key=lambda o: (_meta(o).get("namespace", ""), _meta(o)["name"]))
    if args.output != "table":
        items = [output.strip_managed_fields(o) for o in items]
        value = items[0] if name else output.as_list(items)
        sys.stdout.write(output.document(value, args.output))
        return 0
    if not items:
        where = f" in {ns} namespace" if ns else ""
        print(f"No resources found{where}.", file=sys.stderr)
        return 0
    now = datetime.datetime.now(datetime.UTC)
    rows = [row(kind, o, now, all_namespaces=ns is None) for o in items]
    sys.stdout.write(
        output.table(
            headers(kind, all_namespaces=ns is None),
            rows,
            colour=output.colour_enabled(sys.stdout),
            width=output.terminal_width(sys.stdout),
        )
    )
    return 0


async def print_tree(client: kube.Client, args: argparse.Namespace) -> int:
    """`pullsync tree sync NAME`."""
    ns = cluster.namespace(args)
    root = sync_node(await fetch(client, SYNC, ns, args.name))
    await _expand(client, root, seen={(ns, args.name)}, depth=1)
    if args.output == "json":
        sys.stdout.write(output.document(root.as_dict(), "json"))
    else:
        colour, width = output.colour_enabled(sys.stdout), output.terminal_width(sys.stdout)
        sys.stdout.write(output.tree(root, colour=colour, width=width))
    return 0


async def _expand(client: kube.Client, node: output.Node, *, seen: set[tuple[str, str]], depth: int) -> None:
    """Give each Sync among `node`'s children its own inventory (once each, MAX_DEPTH deep)."""
    for child in node.children:
        key = _nested_sync(child.label)
        if key is None or key in seen or depth >= MAX_DEPTH:
            continue
        seen.add(key)
        nested = await client.get(SYNC.resource, *key)
        if nested is not None:
            child.children = sync_node(nested).children
            await _expand(client, child, seen=seen, depth=depth + 1)


async def request_reconcile(client: kube.Client, args: argparse.Namespace) -> int:
    """`pullsync reconcile`."""
    kind: Kind = args.kind
    ns = cluster.namespace(args)
    deadline = time.monotonic() + args.timeout
    say = Say()
    obj = await fetch(client, kind, ns, args.name)
    _refuse_suspended(kind, obj)
    if args.with_source:
        if kind is not SYNC:
            raise cluster.CliError("--with-source is for a Sync (a GitRepository is the source)")
        ref = (obj.get("spec") or {}).get("sourceRef") or {}
        source_ns, source_name = ref.get("namespace") or ns, str(ref.get("name") or "")
        source = await fetch(client, GITREPO, source_ns, source_name, of=f"spec.sourceRef of Sync {ns}/{args.name}")
        _refuse_suspended(GITREPO, source)
        say.step(f"annotating GitRepository {source_ns}/{source_name}")
        stamp = await annotate(client, GITREPO, source_ns, source_name)
        code = await follow(client, GITREPO, source_ns, source_name, stamp, deadline=deadline, timeout=args.timeout)
        if code:
            return code
    say.step(f"annotating {kind.name} {ns}/{args.name}")
    stamp = await annotate(client, kind, ns, args.name)
    if not args.wait:
        say.done(
            f"{kind.name} {ns}/{args.name} annotated: the operator reconciles it now "
            f"(`pullsync get {kind.listing} -n {ns}` shows the result, --wait follows it)"
        )
        return 0
    return await follow(client, kind, ns, args.name, stamp, deadline=deadline, timeout=args.timeout)


async def set_suspend(client: kube.Client, args: argparse.Namespace) -> int:
    """`pullsync suspend` and `pullsync resume`."""
    kind: Kind = args.kind
    ns = cluster.namespace(args)
    suspend = args.command == "suspend"
    patch: dict[str, Any] = {"spec": {"suspend": suspend}}
    if not suspend:
        patch["metadata"] = {"annotations": {api.ANNOTATION_REQUESTED_AT: clock.now_micro()}}
    await _patch(client, kind, ns, args.name, patch)
    Say().done(f"{kind.name} {ns}/{args.name} " + ("suspended" if suspend else "resumed (reconcile requested)"))
    return 0


# Steps.


async def fetch(client: kube.Client, kind: Kind, ns: str, name: str, *, of: str = "") -> dict[str, Any]:
    """The object, or a CliError saying how to find the right name."""
    obj = await client.get(kind.resource, ns, name)
    if obj is None:
        raise not_found(kind, ns, name, of=of)
    return obj


def not_found(kind: Kind, ns: str, name: str, *, of: str = "") -> cluster.CliError:
    where = f" ({of})" if of else ""
    return cluster.CliError(
        f"{kind.name} {ns}/{name}{where} not found: `pullsync get {kind.listing} -n {ns}` lists them"
    )


def _refuse_suspended(kind: Kind, obj: Mapping[str, Any]) -> None:
    if (obj.get("spec") or {}).get("suspend"):
        meta = _meta(obj)
        raise cluster.CliError(
            f"{kind.name} {meta.get('namespace')}/{meta.get('name')} is suspended: "
            f"`pullsync resume {kind.command} {meta.get('name')} -n {meta.get('namespace')}` resumes it"
        )


async def annotate(client: kube.Client, kind: Kind, ns: str, name: str) -> str:
    """Set pullsync.dev/requestedAt to a new value; return it."""
    stamp = clock.now_micro()  # microseconds: two requests in one second still differ
    await _patch(client, kind, ns, name, {"metadata": {"annotations": {api.ANNOTATION_REQUESTED_AT: stamp}}})
    return stamp


async def _patch(client: kube.Client, kind: Kind, ns: str, name: str, patch: Mapping[str, Any]) -> None:
    try:
        await client.merge_patch(kind.resource, ns, name, patch)
    except kube.ApiError as e:
        if e.status == 404:
            raise not_found(kind, ns, name) from e
        raise


async def follow(
    client: kube.Client, kind: Kind, ns: str, name: str, stamp: str, *, deadline: float, timeout: float
) -> int:
    """Read the object until it echoes `stamp` and is Ready True (0) or False (1), saying
    what it is doing; a CliError when it is gone or the deadline passes."""
    say = Say()
    what = f"{kind.name} {ns}/{name}"
    say.wait(f"waiting for {what} to reconcile")
    shown = ""
    while True:
        obj = await client.get(kind.resource, ns, name)
        if obj is None:
            raise cluster.CliError(f"{what} was deleted while waiting for it")
        status = obj.get("status") or {}
        state, message, reconciling = ready(obj)
        handled = status.get("lastHandledReconcileAt") == stamp
        if handled and not reconciling and state in ("True", "False"):
            if state == "False":
                say.fail(f"{what} failed: {message}")
                return 1
            if kind is SYNC:
                say.done(f"applied revision {status.get('lastAppliedRevision') or '-'}")
            else:
                say.done(f"fetched revision {(status.get('artifact') or {}).get('revision') or '-'}")
            return 0
        progress = message if reconciling or (handled and state == "Unknown") else ""
        if progress and progress != shown:
            say.wait(f"waiting for {what}: {progress}")
            shown = progress
        if time.monotonic() > deadline:
            last = f"; Ready {state}: {message}" if message else ""
            raise cluster.CliError(f"timed out after {_seconds(timeout)} waiting for {what}{last}")
        await asyncio.sleep(POLL)


def _seconds(timeout: float) -> str:
    return output.human_duration(timeout) if timeout >= 1 else f"{timeout:g}s"


class Say:
    """Progress lines a person follows: `►` a step, `◎` waiting, `✔` done (stdout), `✗` failed (stderr)."""

    def step(self, text: str) -> None:
        self._print("►", None, text)

    def wait(self, text: str) -> None:
        self._print("◎", "yellow", text)

    def done(self, text: str) -> None:
        self._print("✔", "green", text)

    def fail(self, text: str) -> None:
        self._print("✗", "red", text, stream=sys.stderr)

    @staticmethod
    def _print(symbol: str, colour: str | None, text: str, *, stream: TextIO | None = None) -> None:
        out = stream or sys.stdout
        print(output.paint(symbol, colour, output.colour_enabled(out)), text, file=out, flush=True)
