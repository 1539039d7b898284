"""`pullsync run`: an error that stops Kopf does not stop the process; what cannot work
(a port in use, no kubeconfig) stops it at once with exit code 2."""

import asyncio
import socket
from pathlib import Path
from typing import Any

import kopf
import pytest

from pullsync import cli
from pullsync.cli import run
from pullsync.runtime import config


def test_kopf_stopped_by_an_error_starts_again_in_the_same_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    memos: list[Any] = []

    async def operator(**kwargs: Any) -> None:
        """Kopf, whose first run fails as a watch does on a 404 from an API server that is
        still starting (after its cleanup), and whose second run ends on a signal."""
        memos.append(kwargs["memo"])
        kwargs["memo"].ready.set()
        if len(memos) == 1:
            raise RuntimeError("404 page not found")

    monkeypatch.setattr(kopf, "operator", operator)
    monkeypatch.setattr(run, "RESTART_MAX_DELAY", 0.01)
    kubeconfig = tmp_path / "kubeconfig"  # never contacted: Kopf is a stand-in
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {token: t}}]\n"
    )
    cfg = config.Config(
        kubeconfig=str(kubeconfig), health_addr="127.0.0.1:0", metrics_addr="127.0.0.1:0", webhook_addr="127.0.0.1:0"
    )
    assert asyncio.run(run._run(cfg)) == 0
    assert len(memos) == 2
    assert memos[0] is not memos[1]  # each run starts its services afresh
    assert "Kopf stopped on an error (cleaned up); starting it again in 0s" in caplog.text
    assert "404 page not found" in caplog.text


def test_a_port_in_use_or_a_missing_kubeconfig_stops_it_at_once_saying_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        flags = ["--metrics-addr", "127.0.0.1:0", "--webhook-addr", "127.0.0.1:0", "--kubeconfig"]
        assert cli.main(["run", "--health-addr", f"127.0.0.1:{port}", *flags, str(kubeconfig)]) == 2
    assert f"pullsync run: cannot listen on 127.0.0.1:{port}: Address already in use" in capsys.readouterr().err

    assert cli.main(["run", "--health-addr", "127.0.0.1:0", *flags, str(tmp_path / "missing")]) == 2
    assert f"pullsync run: the kubeconfig {tmp_path / 'missing'} does not exist" in capsys.readouterr().err
