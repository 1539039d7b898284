"""The operator, run in the test process (a thread with its own event loop), logs captured."""

import asyncio
import dataclasses
import logging
import tempfile
import threading
from pathlib import Path

import kopf

from pullsync import config
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
        from pullsync import handlers  # noqa: F401 - registers the handlers

        asyncio.run(
            kopf.operator(
                clusterwide=not self.config.namespaces,
                namespaces=list(self.config.namespaces),
                standalone=True,
                memo=self.memo,
                stop_flag=self.stop_flag,
                ready_flag=self.ready_flag,
            )
        )

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
