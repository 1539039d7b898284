"""`pullsync build` and `pullsync health`: the operator's own render and health code on
local files, no cluster needed. `build` shows what a Sync of a directory would apply;
`health` the kstatus health of objects in a file."""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from pullsync import api
from pullsync.health import status as kstatus
from pullsync.render import build, documents, kubeyaml, trees
from pullsync.sync import inventory

REMOTE_HELP = "let kustomizations use remote bases and resources (network access while rendering)"


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """`pullsync build` and `pullsync health`."""
    build_cmd = sub.add_parser(
        "build",
        help="print the objects a Sync of a directory would apply (no cluster needed)",
        description="Print the objects a Sync whose spec.path is PATH would apply, rendered by the operator's "
        "own code: YAML read as kubectl reads it, the .sourceignore files of the repository and the Sync's "
        "path honoured, and pullsync's owner labels (pullsync.dev/name, pullsync.dev/namespace) added. "
        "A kustomization at PATH is built with kustomize and a Chart.yaml templated with helm, in the operator's "
        "sandbox. Namespaced objects that set no namespace get the Sync's targetNamespace only when applied. "
        "Errors are reported as the Sync reports them (file and document).",
        epilog="exit codes:\n  0  done\n  1  the directory does not render (the Sync's message is printed)\n"
        "  2  PATH is not a directory, or bad usage",
    )
    build_cmd.set_defaults(handler=print_build)
    build_cmd.add_argument("path", metavar="PATH", type=Path, help="the directory (in a checkout, or anywhere)")
    build_cmd.add_argument(
        "-o", "--output", choices=("yaml", "json"), default="yaml", help="yaml documents or a JSON List"
    )
    build_cmd.add_argument("--sync", default="build", help="the Sync's name, for the owner labels [build]")
    build_cmd.add_argument("-n", "--namespace", default="default", help="the Sync's namespace, for the owner labels")
    build_cmd.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="PATTERN",
        help="also ignore files matching PATTERN, as the GitRepository's spec.ignore does (repeatable)",
    )
    build_cmd.add_argument(
        "--helm-values",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="for a chart: a values file in the same repository, as in spec.helm.valuesFiles (repeatable)",
    )
    build_cmd.add_argument("--allow-remote-bases", action="store_true", help=REMOTE_HELP)
    health = sub.add_parser(
        "health",
        help="the kstatus health of objects in a file (no cluster needed)",
        description="Print the health of each object in FILE (YAML documents, a JSON object or a List, as "
        "`kubectl get -o yaml|json` writes them), computed by the operator's own rules: Current, InProgress, "
        "Failed, Terminating, NotFound or Unknown, with why.",
        epilog="exit codes:\n  0  every object is Current\n  1  an object is not Current\n"
        "  2  FILE cannot be read or holds no objects (or one without metadata.name), or bad usage",
    )
    health.set_defaults(handler=_health)
    health.add_argument("-f", "--filename", required=True, type=Path, metavar="FILE", help="the objects ('-': stdin)")
    health.add_argument("-o", "--output", choices=("table", "json"), default="table", help="a table, or JSON")


def print_build(args: argparse.Namespace) -> int:
    """Print what a Sync of `args.path` would apply; 1 with the Sync's message if it cannot."""
    directory = args.path.resolve()
    if not directory.is_dir():
        print(f"pullsync build: {args.path} is not a directory", file=sys.stderr)
        return 2
    root, path = checkout(directory)
    values = tuple(os.path.relpath(f.resolve(), directory) for f in args.helm_values)
    try:
        docs = build.render(
            trees.DirTree(root),
            path,
            sync_name=args.sync,
            sync_namespace=args.namespace,
            ignore_rules="\n".join(args.ignore) or None,
            helm_spec=api.HelmSpec(values_files=values) if values else None,
            allow_remote_bases=args.allow_remote_bases,
        )
    except (documents.RenderError, OSError) as e:
        print(f"pullsync build: {e}", file=sys.stderr)
        return 1
    objects = [d.obj for d in docs]
    if args.output == "json":
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2))
    else:
        sys.stdout.write(kubeyaml.dump(objects))
    return 0


def checkout(directory: Path) -> tuple[Path, str]:
    """(the root of the git checkout holding `directory`, or `directory` itself outside
    one; `directory`'s path in it): what a Sync's spec.path would name there."""
    root = next((d for d in (directory, *directory.parents) if (d / ".git").exists()), directory)
    return root, str(directory.relative_to(root))


def _health(args: argparse.Namespace) -> int:
    return print_health(args.filename, args.output)


def print_health(path: Path, output: str) -> int:
    """Print the health of every object in the file `path`."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        objects = [o for _, value in kubeyaml.documents(text) for o in _items(value)]
    except (OSError, kubeyaml.ReadError) as e:
        print(f"pullsync health: {path}: {e}", file=sys.stderr)
        return 2
    unnamed = [o["kind"] for o in objects if not isinstance(o.get("metadata"), dict) or not o["metadata"].get("name")]
    if not objects or unnamed:
        what = f"a {unnamed[0]} without metadata.name" if unnamed else "no objects (documents with a kind)"
        print(f"pullsync health: {path}: {what}: give objects as `kubectl get -o yaml` prints them", file=sys.stderr)
        return 2
    rows = []
    for obj in objects:
        health = kstatus.of(obj)
        rows.append({"id": inventory.Entry.of(obj).id, "status": health.status, "message": health.message})
    if output == "json":
        print(json.dumps(rows, indent=2))
    else:
        width = max([len(r["id"]) for r in rows] + [2])
        print(f"{'ID':<{width}}  {'STATUS':<11}  MESSAGE")
        for r in rows:
            print(f"{r['id']:<{width}}  {r['status']:<11}  {r['message']}")
    return 0 if all(r["status"] == kstatus.CURRENT for r in rows) else 1


def _items(value: Any) -> list[dict[str, Any]]:
    """The objects of one document: itself, or a List's items."""
    if isinstance(value, dict) and isinstance(value.get("items"), list) and str(value.get("kind", "")).endswith("List"):
        return [i for i in value["items"] if isinstance(i, dict)]
    return [value] if isinstance(value, dict) and value.get("kind") else []
