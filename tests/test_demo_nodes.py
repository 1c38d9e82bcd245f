"""`dronedispatch demo --nodes 2`: servers, simulator and two nodes as processes, all gone after Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import wait_for
from tests.fixtures.services import free_tcp_port

pytestmark = pytest.mark.e2e

PASSWORD = "demo-nodes-password-1"


def _two_free_ports() -> int:
    """The first of two consecutive TCP ports that were free a moment ago."""
    for _ in range(50):
        base = free_tcp_port()
        try:
            with socket.create_server(("127.0.0.1", base + 1)):
                return base
        except OSError:
            continue
    raise RuntimeError("no two consecutive free TCP ports")


def _descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid``, with its command line (from /proc: no library needed)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                try:
                    found[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                frontier.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def workdir() -> Iterator[Path]:
    # not pytest's tmp_path: PostgreSQL runs as its own OS user when we are root and must reach var/
    path = Path(tempfile.mkdtemp(prefix="dd-demo-nodes-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_demo_with_two_nodes_spreads_the_links_and_stops_everything(workdir: Path) -> None:
    base = _two_free_ports()
    urls = [f"http://127.0.0.1:{base + i}" for i in range(2)]
    out = workdir / "demo.out"
    env = {**os.environ, "DD_DEMO_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
    for name in ("DD_DATABASE_URL", "DD_BUS_URL", "DD_MAVLINK", "DD_SECRET_KEY", "DD_NODE_ID", "DD_MQTT_URL"):
        env.pop(name, None)
    with open(out, "wb") as log:
        demo = subprocess.Popen(
            [sys.executable, "-m", "dronedispatch.cli", "demo", "--nodes", "2", "--vehicles", "2", "--no-generator",
             "--port", str(base)],
            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def tail() -> str:
        return out.read_text(errors="replace")[-4000:]

    try:

        def healthy(url: str) -> bool:
            assert demo.poll() is None, tail()
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        for url in urls:
            wait_for(lambda url=url: healthy(url), 180, f"{url}/healthz")
        wait_for(lambda: "stop with Ctrl-C" in out.read_text(errors="replace"), 30, "the banner")
        banner = out.read_text(errors="replace")
        assert all(url in banner for url in urls) and f"password: {PASSWORD}" in banner and "kill -9 " in banner

        admin = httpx.Client(base_url=urls[0], timeout=30)
        r = admin.post("/api/v1/auth/token", data={"username": "admin", "password": PASSWORD})
        assert r.status_code == 200, r.text
        admin.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

        def spread() -> dict[str, list[str]] | None:
            nodes = admin.get("/api/v1/cluster").json()["nodes"]
            held = {n["node_id"]: n["links"] for n in nodes}
            return held if len(held) == 2 and all(len(links) == 1 for links in held.values()) else None

        held = wait_for(spread, 60, "two nodes holding one link each")
        assert isinstance(held, dict) and set(held) == {"node-0", "node-1"}
        links = [link for node_links in held.values() for link in node_links]
        assert len(set(links)) == 2 and all(link.startswith("udpout:127.0.0.1:") for link in links)

        started = _descendants(demo.pid)
        commands = list(started.values())
        assert sum(" serve " in c for c in commands) == 2, commands
        assert any(" sitl " in c and " --mqtt-url mqtt://127.0.0.1:" in c for c in commands), commands
        assert any("mosquitto" in c for c in commands), commands  # the docks' broker
        wait_for(lambda: all(d["state"] is not None for d in (admin.get("/api/v1/docks").json())
                             if d["id"] in ("gtower", "songdo-south")), 30, "the simulated docks' states")  # fmt: skip
        assert any("nats-server" in c for c in commands), commands
        assert any("postgres" in c and "var/cluster/postgres" in c for c in commands), commands
        assert (workdir / "var" / "cluster" / "postgres" / "data" / "PG_VERSION").exists()
        assert (workdir / "var" / "cluster" / "nats" / "js").is_dir()

        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=90) == 0, tail()
        wait_for(lambda: not any(_alive(pid) for pid in started), 30, "every process of the demo to exit")
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=30)
