"""Run a renderer (kustomize, helm) on a private copy of only the files it may read,
with no network, no credentials and bounded time, memory and output.

The copy is written from a `trees.Tree` (a commit, or a directory for `pullsync build`)
into a fresh private temporary directory through `paths.files`: ignored files stay out
and links that leave the repository are never copied, so the tool cannot reach the
host's files through them. The tool's environment is built from nothing: a private HOME
and tool configuration, no credentials, and, unless remote bases are allowed, no `git`
and proxies that lead nowhere. A launcher (this Python, isolated) sets the memory and
output limits before it becomes the tool; the tool runs in its own process group, which
is killed when it overruns its time. At most `SLOTS` renderers run at once.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from pullsync.render import ignore, paths, trees
from pullsync.render.documents import Limits, RenderError
from pullsync.runtime import redact

LAUNCHER = """\
import os, resource, sys
memory, output = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))
os.execv(sys.argv[3], sys.argv[3:])
"""
SLOTS = threading.BoundedSemaphore(2)  # renderers at once: each may take up to Limits.render_memory
NOWHERE = "http://127.0.0.1:9"  # the discard port: any proxied request fails at once
MESSAGE_CHARS = 1500


def find(name: str) -> str:
    """The tool installed with pullsync (in the scripts directory of its environment),
    else the one on PATH."""
    for where in (sysconfig.get_path("scripts"), None):
        found = shutil.which(name, path=where)
        if found:
            return found
    raise RenderError(f"{name} is not installed: pullsync needs it on PATH to render this path")


class Workspace:
    """A private copy of some files of a repository (at their paths without links)."""

    def __init__(self, tree: trees.Tree, rules: ignore.Rules, limits: Limits) -> None:
        self.tree = tree
        self.rules = rules
        self.limits = limits
        self.dir = Path(tempfile.mkdtemp(prefix="pullsync-render-"))
        self.repo = self.dir / "repo"
        self.repo.mkdir()
        self.copied = 0
        self.written: set[str] = set()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, real: str) -> Path:
        """Where the repository path `real` is in the copy."""
        return self.repo / real if real else self.repo

    def add_dir(self, real_dir: str) -> None:
        """Copy every file below `real_dir` that the ignore rules leave."""
        for shown, real in paths.files(self.tree, real_dir, real_dir, self.rules):
            self.add_file(real, shown)

    def add_file(self, real: str, shown: str | None = None) -> None:
        """Copy the file `real` to `shown` (default: the same path)."""
        shown = shown or real
        if shown in self.written:
            return
        self.copied += self.tree.size(real)
        if self.copied > self.limits.total_bytes:
            raise RenderError(f"{shown}: the files to render exceed the limit of {self.limits.total_bytes} bytes")
        target = self.path(shown)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.tree.read(real))
        self.written.add(shown)

    def run(self, name: str, args: list[str], *, what: str, network: bool) -> bytes:
        """The standard output of the tool `name`; RenderError saying `what` failed and
        the tool's message."""
        tool = find(name)
        cap = self.limits.total_bytes
        command = [sys.executable, "-I", "-S", "-c", LAUNCHER, str(self.limits.render_memory), str(cap + 1), tool]
        out, err = self.dir / "stdout", self.dir / "stderr"
        with SLOTS, out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [*command, *args],
                cwd=self.repo,
                env=self.environment(network),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            try:
                code: int | None = process.wait(timeout=self.limits.render_seconds)
            except BaseException as e:
                _kill_group(process)
                if not isinstance(e, subprocess.TimeoutExpired):
                    raise
                code = None
        if code is None:
            seconds = self.limits.render_seconds
            raise RenderError(f"{what} ran longer than the limit of {seconds:g}s and was stopped (--render-timeout)")
        if out.stat().st_size > cap or code == -signal.SIGXFSZ:
            raise RenderError(f"{what}: the output exceeds the limit of {cap} bytes (--max-total-bytes)")
        if code != 0:
            message = self.clean(err.read_bytes()[-16384:].decode("utf-8", "replace"))
            if "out of memory" in message or code in (-signal.SIGSEGV, -signal.SIGKILL):
                mib = self.limits.render_memory // (1024 * 1024)
                raise RenderError(f"{what} ran out of its memory limit of {mib} MiB and was stopped (--render-memory)")
            raise RenderError(f"{what} failed: {message or f'exit code {code}'}")
        return out.read_bytes()

    def environment(self, network: bool) -> dict[str, str]:
        """The tool's whole environment: nothing of the operator's (credentials, service
        account, kubeconfig) but, with network allowed, PATH and proxies."""
        home = self.dir / "home"
        env = {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_DATA_HOME": str(home / "data"),
            "TMPDIR": str(self.dir),
            "KUBECONFIG": str(home / "no-kubeconfig"),
            "LANG": "C.UTF-8",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
        }
        if network:
            proxies = ("PATH", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
            return env | {k: os.environ[k] for k in proxies if k in os.environ}
        env["PATH"] = str(self.dir / "no-tools")  # no git: kustomize cannot clone
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            env[key] = NOWHERE
        env["NO_PROXY"] = env["no_proxy"] = ""
        return env

    def clean(self, message: str) -> str:
        """A tool's error as the user should read it: repository paths, no temporary
        directory, no URL credentials, one line, bounded."""
        message = message.replace(f"{self.repo}/", "").replace(str(self.repo), ".").replace(str(self.dir), "<render>")
        message = re.sub(r"^(Error|error): ", "", message.strip())
        lines = (line.strip() for line in message.splitlines())
        message = "; ".join(line for line in lines if line and line != USE_DEBUG)  # no flag a Sync can pass
        message = redact.urls(message)
        return message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 3] + "..."


USE_DEBUG = "Use --debug flag to render out invalid YAML"  # helm's advice on a template error


def _kill_group(process: "subprocess.Popen[bytes]") -> None:
    """Stop the tool and anything it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
