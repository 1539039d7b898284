"""The `pullsync` command line: `pullsync run` starts the operator (`cli.run`); `build`
and `health` run the operator's render and health code on local files (`cli.local`);
`get`, `tree`, `reconcile`, `suspend` and `resume` show and steer pullsync's objects
with the current kubeconfig (`cli.objects`, on `cli.cluster` and `cli.output`); `diff`
plans a local directory as a Sync's next revision, as a Preview does (`cli.diff`).

Each command module has `add_parser(sub)`, which adds its subcommands and sets their
`handler` (args -> exit code); a new command is one more module in COMMANDS.
"""

import argparse
import sys
from types import ModuleType

from pullsync import __version__
from pullsync.cli import diff, local, objects, output, run

COMMANDS: tuple[ModuleType, ...] = (run, local, diff, objects)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pullsync",
        description="A pull-based GitOps operator for Kubernetes, and its command line for people and CI.",
        epilog="exit codes:\n  0  done\n  1  a result to act on: build, the directory does not render; health, an "
        "object is not Current; diff, changes; reconcile --wait (or --with-source), the object failed; run, it "
        "lost its leader Lease\n  2  error\n\n"
        "`pullsync COMMAND --help` says more (each command's exit codes); `build` and `health` need no cluster; "
        "the others use the current kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config, else the pod's "
        "ServiceAccount).",
        formatter_class=output.HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"pullsync {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    for command in sub.choices.values():
        command.formatter_class = output.HelpFormatter
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.handler(args)
    sys.stdout.flush()
    return code
