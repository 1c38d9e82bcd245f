"""`dronedispatch demo` (one process): its simulated docks are live over a mosquitto the demo starts on
127.0.0.1 (here on the port DD_DEMO_MQTT_PORT names), and the broker stops with the demo."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import wait_for
from tests.fixtures.services import free_tcp_port
from tests.test_demo_nodes import _alive, _descendants

pytestmark = pytest.mark.e2e

PASSWORD = "demo-docks-password-1"


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dd-demo-docks-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_demo_runs_its_docks_on_its_own_broker_and_stops_it(workdir: Path) -> None:
    port, mqtt_port = free_tcp_port(), free_tcp_port()
    url = f"http://127.0.0.1:{port}"
    out = workdir / "demo.out"
    env = {**os.environ, "DD_DEMO_PASSWORD": PASSWORD, "DD_DEMO_MQTT_PORT": str(mqtt_port), "PYTHONUNBUFFERED": "1"}
    for name in ("DD_DATABASE_URL", "DD_MAVLINK", "DD_SECRET_KEY", "DD_MQTT_URL", "DD_FLEET"):
        env.pop(name, None)
    with open(out, "wb") as log:
        demo = subprocess.Popen(
            [sys.executable, "-m", "dronedispatch.cli", "demo", "--vehicles", "2", "--no-generator",
             "--port", str(port)],
            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def tail() -> str:
        return out.read_text(errors="replace")[-4000:]

    try:
        wait_for(lambda: "stop with Ctrl-C" in out.read_text(errors="replace") or demo.poll() is not None, 120,
                 "the banner")  # fmt: skip
        assert demo.poll() is None, tail()
        assert f"docks (MQTT)    : mqtt://127.0.0.1:{mqtt_port}" in out.read_text(errors="replace"), tail()
        broker = [pid for pid, cmd in _descendants(demo.pid).items() if "mosquitto" in cmd]
        assert broker, _descendants(demo.pid)

        admin = httpx.Client(base_url=url, timeout=30)
        r = admin.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD})
        assert r.status_code == 200, r.text
        admin.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

        def live() -> dict[str, dict] | None:
            docks = {d["id"]: d for d in admin.get("/api/v1/docks").json()}
            wanted = {k: docks[k] for k in ("gtower", "songdo-south")}  # dd-01's and dd-02's
            return wanted if all(d["state"] is not None for d in wanted.values()) else None

        docks = wait_for(live, 60, "the demo's docks to report their state")
        assert isinstance(docks, dict)
        for d in docks.values():
            assert d["state"]["door"] == "closed" and d["state"]["drone_present"] is True, d
            assert d["state"]["fault"] is None and d["state"]["door_open_s"] is not None, d
        admin.close()

        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0, tail()
        wait_for(lambda: not any(_alive(pid) for pid in broker), 30, "the broker to stop with the demo")
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=30)
