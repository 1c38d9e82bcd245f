"""Whole-system fixtures: `dronedispatch sitl` and `dronedispatch serve` as real processes on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from dronedispatch import cityfiles
from tests.fixtures.services import free_tcp_port, free_udp_port

PASSWORD = "e2e-password-1"
ROLES = ("operator", "pilot", "tester", "admin")
DD = [sys.executable, "-m", "dronedispatch.cli"]


def _port_block(n: int) -> int:
    """The first of ``n`` consecutive UDP ports that were free a moment ago."""
    for _ in range(50):
        base = free_udp_port()
        if base + n < 65000 and all(_udp_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no block of free UDP ports")


def _udp_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class System:
    url: str
    fleet_file: Path
    sitl: subprocess.Popen[bytes]
    serve: subprocess.Popen[bytes]
    logs: Path
    serve_cmd: list[str]
    env: dict[str, str]

    def restart_serve(self) -> None:
        """Stop the service (SIGTERM, as an operator or systemd would) and start it again on the same store."""
        self.serve.terminate()
        self.serve.wait(timeout=30)
        log = open(self.logs / "serve.log", "ab")
        self.serve = subprocess.Popen(self.serve_cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self.healthy, 60, "the restarted service to answer /healthz", self)

    def healthy(self) -> bool:
        if self.serve.poll() is not None or self.sitl.poll() is not None:
            raise AssertionError("a process exited early\n" + self.log_tail())
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def client(self, role: str) -> httpx.Client:
        c = httpx.Client(base_url=self.url, timeout=30)
        r = c.post("/api/v1/auth/token", data={"username": role, "password": PASSWORD})
        r.raise_for_status()
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        return c

    def log_tail(self) -> str:
        out = []
        for name in ("sitl.log", "serve.log"):
            text = (self.logs / name).read_text(errors="replace").splitlines()
            lines = [line for line in text if '" 200 OK' not in line and '" 201 Created' not in line][-60:]
            out.append(f"--- {name}\n" + "\n".join(lines))
        return "\n".join(out)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, system: System | None = None) -> object:
    """Poll ``predicate`` until it returns something truthy (a remote process offers no event to await)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.2)
    detail = system.log_tail() if system else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last value {last!r}\n{detail}")


def start_system(
    tmp_path: Path,
    *,
    vehicles: int = 2,
    speed_factor: float = 10.0,
    extra_env: dict | None = None,
    video: bool = False,
) -> Iterator[System]:
    gcs_port = free_udp_port()
    vehicle_base = _port_block(vehicles)
    http_port = free_tcp_port()
    fleet = cityfiles.load_fleet().sized(vehicles)
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(fleet.model_dump(), allow_unicode=True), encoding="utf-8")
    env = {
        **os.environ,
        "DD_DATABASE_URL": f"sqlite:///{tmp_path / 'dd.db'}",
        "DD_MAVLINK": f"udpin:127.0.0.1:{gcs_port}",
        "DD_FLEET": str(fleet_file),
        "DD_SECRET_KEY": "e2e-secret-key-e2e-secret-key-e2e-secret",
        "DD_INGEST_API_KEYS": '["e2e-key"]',
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    for role in ROLES:
        subprocess.run(
            [*DD, "users", "add", role, "--role", role],
            input=f"{PASSWORD}\n".encode(),
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
    logs = tmp_path
    sitl_log = open(logs / "sitl.log", "wb")
    serve_log = open(logs / "serve.log", "wb")
    sitl = subprocess.Popen(
        [
            *DD,
            "sitl",
            "--vehicles",
            str(vehicles),
            "--fleet",
            str(fleet_file),
            "--speed-factor",
            str(speed_factor),
            *(["--video-port-base", str(_port_block(vehicles))] if video else ["--no-video"]),
            "--gcs-port",
            str(gcs_port),
            "--vehicle-port-base",
            str(vehicle_base),
            "--api-port-base",
            "0",
        ],
        env=env,
        stdout=sitl_log,
        stderr=subprocess.STDOUT,
    )
    serve_cmd = [*DD, "serve", "--port", str(http_port)]
    serve = subprocess.Popen(serve_cmd, env=env, stdout=serve_log, stderr=subprocess.STDOUT)
    system = System(f"http://127.0.0.1:{http_port}", fleet_file, sitl, serve, logs, serve_cmd, env)
    try:
        wait_for(system.healthy, 60, "the service to answer /healthz", system)
        yield system
    finally:
        for proc in (system.serve, sitl):
            proc.terminate()
        for proc in (system.serve, sitl):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        sitl_log.close()
        serve_log.close()


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    yield from start_system(tmp_path)
