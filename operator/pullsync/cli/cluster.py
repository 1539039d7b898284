"""What every command that talks to a cluster shares: the `--kubeconfig` and
`-n/--namespace` flags, the namespace of the current context, one `kube.Client` per
command (opened and closed around it in `asyncio.run`), and errors that say what to do.

A command is `async def command(client, args) -> int`, wrapped by `handler()`; it raises
`CliError` for anything a person must act on (exit code 2 unless it says otherwise).
"""

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from pullsync import kube
from pullsync.kube import kubeconfig as kubeconfigs

ERRORS = "2  error: not found, no kubeconfig, API server unreachable, forbidden, bad usage"
EXIT_CODES = f"exit codes:\n  0  done\n  {ERRORS}"
WAIT_EXIT_CODES = f"""exit codes:
  0  done (with --wait: the object is Ready)
  1  with --wait, or --with-source when the GitRepository fails: it reconciled and failed (Ready
     False); its message is printed
  {ERRORS}, --timeout passed"""

Command = Callable[[kube.Client, argparse.Namespace], Awaitable[int]]


class CliError(Exception):
    """Something a person must act on; the message says what, `code` is the exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def add_flags(parser: argparse.ArgumentParser, *, all_namespaces: bool = False, waits: bool = False) -> None:
    """`--kubeconfig`, `-n/--namespace` and, for listings, `-A/--all-namespaces`; the exit
    codes (those of a command that `waits` for the object too)."""
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, else the pod's ServiceAccount)"
    )
    if all_namespaces:
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("-n", "--namespace", help="the namespace (default: the current context's, or default)")
        scope.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    else:
        parser.add_argument("-n", "--namespace", help="the namespace (default: the current context's, or default)")
    parser.epilog = WAIT_EXIT_CODES if waits else EXIT_CODES


def kubeconfig(given: str | None) -> str | None:
    """The kubeconfig to use, as kubectl finds it: `given`, else $KUBECONFIG (a list of
    files), else ~/.kube/config when it exists; None in a pod (its ServiceAccount)."""
    value = given or os.environ.get("KUBECONFIG")
    if value:
        if not any(Path(p).expanduser().is_file() for p in value.split(os.pathsep) if p):
            raise CliError(f"the kubeconfig {value} does not exist: pass --kubeconfig FILE or set $KUBECONFIG")
        return value
    default = Path.home() / ".kube" / "config"
    if default.is_file():
        return str(default)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    raise CliError(
        "no kubeconfig: pass --kubeconfig FILE, set $KUBECONFIG or create ~/.kube/config "
        "(`oc login` or `kubectl config` writes it); in a pod, its ServiceAccount is used"
    )


def namespace(args: argparse.Namespace) -> str:
    """`-n`, else the namespace of the kubeconfig's current context, else the pod's, else
    `default` (as kubectl chooses)."""
    if args.namespace:
        return str(args.namespace)
    try:
        found = kubeconfigs.load(kubeconfig(args.kubeconfig)).namespace
    except kubeconfigs.ConfigError:  # an unusable kubeconfig: connecting says why
        found = None
    return found or "default"


def handler(command: Command) -> Callable[[argparse.Namespace], int]:
    """An argparse handler that runs `command` with a client of the current kubeconfig
    and prints a CliError (or an API error, explained) on stderr with its exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(_with_client(command, args))
        except CliError as e:
            print(f"pullsync {args.command}: {e}", file=sys.stderr)
            return e.code
        except KeyboardInterrupt:
            return 130
        except Exception:  # a bug: exit 2 (an error), never 1, which some commands use for "changes"
            traceback.print_exc()
            print(
                f"pullsync {args.command}: unexpected error (a bug in pullsync: the traceback is above)",
                file=sys.stderr,
            )
            return 2

    return run


async def _with_client(command: Command, args: argparse.Namespace) -> int:
    client = await connect(args.kubeconfig)
    try:
        return await command(client, args)
    except kube.ApiError as e:
        raise CliError(explain(e, client.server)) from e
    finally:
        await client.close()


async def connect(given: str | None) -> kube.Client:
    """A client of the kubeconfig (see `kubeconfig()`), or of the pod's ServiceAccount."""
    path = kubeconfig(given)
    try:
        return await kube.Client.connect(path)
    except Exception as e:  # a kubeconfig that is no YAML, lacks a key, names missing files...
        where = f"the kubeconfig {path}" if path else "the pod's ServiceAccount"
        raise CliError(f"cannot use {where}: {e}") from e


def explain(error: kube.ApiError, server: str) -> str:
    """An API error as a person reads it, with what to do."""
    where = _describe(error.path)
    if error.status == 0:
        detail = error.message.removeprefix("cannot reach the API server: ")
        return (
            f"cannot reach the API server at {server} ({detail}): is the cluster up? "
            "`kubectl cluster-info` tries the same kubeconfig"
        )
    if error.status == 401:
        return (
            f"the API server at {server} refused the credentials of your kubeconfig (401 Unauthorized): "
            "log in again (`oc login`, a fresh token) or check the user of the current context"
        )
    if error.status == 403:
        resource, ns = _resource_and_namespace(error.path)
        verb = "list" if error.verb == "get" and _is_collection(error.path) else error.verb
        scope = f" -n {ns}" if ns else " -A" if _is_collection(error.path) else ""
        check = f"kubectl auth can-i {verb.removeprefix('dry-run ')} {resource}{scope}"
        return (
            f"forbidden: you may not {verb} {where}; `{check}` checks it, "
            f"and a cluster admin can grant it with a Role ({error.message})"
        )
    if error.status == 404 and _is_collection(error.path):
        resource, _ = _resource_and_namespace(error.path)
        return (
            f"the API server does not serve {resource}: are pullsync's CRDs installed? (`kubectl get crd {resource}`)"
        )
    return f"{error.verb} {where}: {error.message}"


def _parts(path: str) -> list[str]:
    """/apis/<group>/<version>[/namespaces/<ns>]/<plural>[/<name>] as its segments after the version."""
    parts = path.strip("/").split("/")
    return parts[3:] if parts and parts[0] == "apis" else parts[2:]


def _resource_and_namespace(path: str) -> tuple[str, str | None]:
    """(`<plural>.<group>`, namespace) of an API path."""
    segments = path.strip("/").split("/")
    group = segments[1] if segments and segments[0] == "apis" and len(segments) > 1 else ""
    rest = _parts(path)
    ns = rest[1] if len(rest) > 2 and rest[0] == "namespaces" else None
    rest = rest[2:] if ns else rest
    plural = rest[0] if rest else "?"
    return (f"{plural}.{group}" if group else plural), ns


def _is_collection(path: str) -> bool:
    rest = _parts(path)
    if len(rest) > 2 and rest[0] == "namespaces":
        rest = rest[2:]
    return len(rest) == 1


def _describe(path: str) -> str:
    """`syncs.pullsync.dev "app" in namespace team-a` for an API path."""
    resource, ns = _resource_and_namespace(path)
    rest = _parts(path)
    rest = rest[2:] if ns else rest
    name = f' "{rest[1]}"' if len(rest) > 1 else ""
    return f"{resource}{name}" + (f" in namespace {ns}" if ns else " in every namespace" if not name else "")
