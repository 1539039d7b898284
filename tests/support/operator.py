"""The operator, run in the test process (a thread with its own event loop), logs captured."""

import asyncio
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

import kopf

from pullsync import kube
from pullsync.runtime import config
from pullsync.web import webhook
from pullsync.web.endpoints import Servers
from support import wait
from support.git import free_port


class CapturingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class Operator:
    """`pullsync run` in a thread, against `kubeconfig`, on free loopback ports."""

    def __init__(self, kubeconfig: Path, **overrides: object) -> None:
        self.webhook_port = free_port()
        self.health_port = free_port()
        self.config = config.Config(
            kubeconfig=str(kubeconfig),
            cache_dir=Path(tempfile.mkdtemp(prefix="pullsync-cache-")),
            webhook_addr=f"127.0.0.1:{self.webhook_port}",
            metrics_addr=f"127.0.0.1:{free_port()}",
            health_addr=f"127.0.0.1:{self.health_port}",
            allow_insecure_http=True,  # the test git servers are plain HTTP on loopback
            allow_local_urls=True,
            **overrides,  # type: ignore[arg-type]
        )
        self.logs = CapturingHandler()
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pullsync-operator", daemon=True)
        self.memo = kopf.Memo(config=self.config)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        """As `pullsync run` does it: the webhook receiver for the whole run, then Kopf."""
        from pullsync import handlers  # noqa: F401 - registers the handlers

        client = await kube.Client.connect(self.config.kubeconfig)
        self.memo.receiver = webhook.Receiver(client, self.config)
        servers = Servers()
        await servers.start((self.config.webhook_addr, self.memo.receiver.app()))
        clusterwide, namespaces = config.kopf_scope(self.config.namespaces)
        try:
            await kopf.operator(
                clusterwide=clusterwide,
                namespaces=namespaces,
                standalone=True,
                memo=self.memo,
                stop_flag=self.stop_flag,
                ready_flag=self.ready_flag,
            )
        finally:
            await servers.stop()
            await client.close()

    def start(self) -> "Operator":
        logging.getLogger().addHandler(self.logs)
        logging.getLogger().setLevel(logging.DEBUG)
        self.thread.start()
        wait.until(lambda: self.ready_flag.is_set() or not self.thread.is_alive(), timeout=30, what="operator start")
        if not self.ready_flag.is_set():
            raise AssertionError("the operator thread died during start-up (see the warning above)")
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(30)
        logging.getLogger().removeHandler(self.logs)

    def reconfigure(self, **changes: object) -> None:
        """Change operator flags at run time (as a restart with other flags would)."""
        services = self.memo.services
        services.config = dataclasses.replace(services.config, **changes)  # type: ignore[arg-type]

    def log_text(self) -> str:
        return "\n".join(self.logs.lines)


class OperatorProcess:
    """`pullsync run` as a separate process, as a pod would run it."""

    def __init__(self, kubeconfig: Path, *args: str) -> None:
        self.health_port = free_port()
        self.webhook_port = free_port()
        self.metrics_port = free_port()
        self.log = Path(tempfile.mkstemp(prefix="pullsync-operator-", suffix=".log")[1])
        command = [
            sys.executable, "-m", "pullsync", "run", *args,
            "--kubeconfig", str(kubeconfig),
            "--health-addr", f"127.0.0.1:{self.health_port}",
            "--webhook-addr", f"127.0.0.1:{self.webhook_port}",
            "--metrics-addr", f"127.0.0.1:{self.metrics_port}",
            "--cache-dir", tempfile.mkdtemp(prefix="pullsync-cache-"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    def probe(self, path: str) -> int:
        """The HTTP status of a health endpoint, 0 when nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}", timeout=1) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except OSError:
            return 0

    def metrics(self) -> dict[str, float]:
        """The operator's Prometheus samples, by name with labels."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def peak_rss_mb(self) -> float:
        """The process's peak resident memory (VmHWM)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def wait_ready(self) -> None:
        wait.until(lambda: self.probe("/readyz") == 200, timeout=30, what="/readyz")

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def leader_of(replicas: list[OperatorProcess], *, timeout: float = 30) -> int:
    """The index of the replica that leads, once every replica is Ready (a standby is: it
    relays webhooks to the leader) and exactly one says it became the leader."""

    def one_leader() -> list[int]:
        assert [r.probe("/readyz") for r in replicas] == [200] * len(replicas), "a replica is not Ready"
        leaders = [i for i, r in enumerate(replicas) if "became the leader" in r.output()]
        assert len(leaders) == 1, f"leaders: {leaders}"
        return leaders

    return wait.until(one_leader, timeout=timeout, what="one leader and every replica Ready")[0]


def post_webhook(port: int, path: str, body: bytes, headers: dict[str, str]) -> int:
    """POST to an operator's webhook receiver; the HTTP status."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
