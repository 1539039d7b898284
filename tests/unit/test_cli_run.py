"""`pullsync run`'s supervision of Kopf: an error that stops Kopf does not stop the process."""

import asyncio
from typing import Any

import kopf
import pytest

from pullsync.cli import run
from pullsync.runtime import config


def test_kopf_stopped_by_an_error_starts_again_in_the_same_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
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
    cfg = config.Config(health_addr="127.0.0.1:0", metrics_addr="127.0.0.1:0")
    assert asyncio.run(run._run(cfg)) == 0
    assert len(memos) == 2
    assert memos[0] is not memos[1]  # each run starts its services afresh
    assert "Kopf stopped on an error (cleaned up); starting it again in 0s" in caplog.text
    assert "404 page not found" in caplog.text
