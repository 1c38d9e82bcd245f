"""Whole-system fixtures: `dronedispatch sitl` and `dronedispatch serve` as real processes on loopback.

The store is SQLite unless a test asks for more: ``@on_both_databases`` runs it once on SQLite and once
on a fresh database of the session's real PostgreSQL server, because some faults (column ranges,
transaction semantics) exist only on PostgreSQL. Only the flights are run twice, to keep the suite short.
"""

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
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.repo import Store
from dronedispatch.store.users import hash_password
from tests.fixtures.services import PostgresServer, free_tcp_port, free_udp_port

PASSWORD = "e2e-password-1"
DATABASES = ("sqlite", "postgresql")
#: Run a test that takes ``system`` on each store (overrides the ``database`` fixture by direct parametrisation).
on_both_databases = pytest.mark.parametrize("database", DATABASES)
#: The longest a mission may sit in a state that a healthy service leaves within seconds (upload and launch are
#: a few round trips over loopback, arming waits at most a few seconds); longer means the service is stuck.
STALL_LIMIT_S = {"planned": 30.0, "uploading": 30.0, "launching": 60.0}
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


@dataclass(frozen=True)
class Database:
    """Where the service keeps its state for one test."""

    kind: str  # one of DATABASES
    url: str
    server_log: Path | None = None  # PostgreSQL's own log: it names the statement the server refused


@dataclass
class System:
    url: str
    fleet_file: Path
    sitl: subprocess.Popen[bytes]
    serve: subprocess.Popen[bytes]
    logs: Path
    serve_cmd: list[str]
    env: dict[str, str]
    database: Database
    server_log_offset: int = 0  # the server log is shared by the session: only what was written since start

    def restart_serve(self) -> None:
        """Stop the service (SIGTERM, as an operator or systemd would) and start it again on the same store."""
        self.serve.terminate()
        self.serve.wait(timeout=30)
        log = open(self.logs / "serve.log", "ab")
        self.serve = subprocess.Popen(self.serve_cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self.healthy, 60, "the restarted service to answer /healthz", self)

    def check_running(self) -> None:
        """Fail, with the logs, if the service or the simulator has exited."""
        for name, proc in (("serve", self.serve), ("sitl", self.sitl)):
            if proc.poll() is not None:
                raise AssertionError(f"`dronedispatch {name}` exited (code {proc.returncode})\n{self.log_tail()}")

    def healthy(self) -> bool:
        self.check_running()
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
        log = self.database.server_log
        if log is not None and log.exists():
            with open(log, "rb") as f:
                f.seek(self.server_log_offset)
                lines = f.read().decode(errors="replace").splitlines()[-40:]
            out.append(f"--- {self.database.kind} server log since start\n" + "\n".join(lines))
        return "\n".join(out)

    def watch(self, client: httpx.Client, mission_id: int) -> MissionWatch:
        return MissionWatch(self, client, mission_id)


class MissionWatch:
    """Follows one mission over the API and fails fast, with the logs, when it cannot end well.

    Failing fast matters: a mission stuck in ``uploading`` would otherwise only show up as a timeout
    minutes later; a dead service as a connection error without its traceback.
    """

    def __init__(self, system: System, client: httpx.Client, mission_id: int) -> None:
        self.system, self.client, self.mission_id = system, client, mission_id
        self.seen: list[str] = []  # each state once, in the order observed
        self._since = time.monotonic()

    def state(self) -> str:
        try:
            r = self.client.get(f"/api/v1/missions/{self.mission_id}")
        except httpx.HTTPError as exc:
            self.system.check_running()
            raise AssertionError(f"the service did not answer: {exc!r}\n{self.system.log_tail()}") from exc
        assert r.status_code == 200, (
            f"GET mission {self.mission_id}: {r.status_code} {r.text}\n{self.system.log_tail()}"
        )
        m = r.json()
        now = time.monotonic()
        if not self.seen or self.seen[-1] != m["state"]:
            self.seen.append(m["state"])
            self._since = now
        if m["state"] in ("failed", "aborted"):
            raise AssertionError(f"mission ended {m['state']}: {m['reason']}\n{self.system.log_tail()}")
        limit = STALL_LIMIT_S.get(m["state"])
        if limit is not None and now - self._since > limit:
            raise AssertionError(
                f"mission {self.mission_id} stuck in {m['state']!r} for {now - self._since:.0f} s "
                f"(states seen: {self.seen})\n{self.system.log_tail()}"
            )
        self.system.check_running()
        return m["state"]

    def wait(self, *wanted: str, timeout: float) -> str:
        """Poll until the mission is in one of ``wanted``; returns that state."""
        found = wait_for(lambda: (s := self.state()) in wanted and s, timeout, f"mission in {wanted}", self.system)
        assert isinstance(found, str)
        return found


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
    database: Database | None = None,
    vehicles: int = 2,
    speed_factor: float = 10.0,
    extra_env: dict | None = None,
    video: bool = False,
    sitl_args: tuple[str, ...] = (),
    serve_wrapper: tuple[str, ...] = (),
) -> Iterator[System]:
    gcs_port = free_udp_port()
    vehicle_base = _port_block(vehicles)
    http_port = free_tcp_port()
    fleet = cityfiles.load_fleet().sized(vehicles)
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(fleet.model_dump(), allow_unicode=True), encoding="utf-8")
    database = database or sqlite_database(tmp_path)
    server_log_offset = database.server_log.stat().st_size if database.server_log else 0
    env = {
        **os.environ,
        "DD_DATABASE_URL": database.url,
        "DD_MAVLINK": f"udpin:127.0.0.1:{gcs_port}",
        "DD_FLEET": str(fleet_file),
        "DD_SECRET_KEY": "e2e-secret-key-e2e-secret-key-e2e-secret",
        "DD_INGEST_API_KEYS": '["e2e-key"]',
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    logs = tmp_path
    sitl_log = open(logs / "sitl.log", "wb")
    serve_log = open(logs / "serve.log", "wb")
    # the simulator needs no store: it boots while the schema and the first account are created (in this process,
    # as `dronedispatch users add` does: a process start per system would cost seconds; tests/api and tests/cluster
    # run that command line itself)
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
            *sitl_args,
        ],
        env=env,
        stdout=sitl_log,
        stderr=subprocess.STDOUT,
    )
    serve: subprocess.Popen[bytes] | None = None
    system: System | None = None
    try:
        add_admin(database.url)
        serve_cmd = [*serve_wrapper, *DD, "serve", "--port", str(http_port)]  # a wrapper may set limits first
        serve = subprocess.Popen(serve_cmd, env=env, stdout=serve_log, stderr=subprocess.STDOUT)
        system = System(
            f"http://127.0.0.1:{http_port}", fleet_file, sitl, serve, logs, serve_cmd, env, database, server_log_offset
        )
        wait_for(system.healthy, 60, "the service to answer /healthz", system)
        # the other roles through the API: one process start per account would cost seconds per test
        admin = system.client("admin")
        try:
            for role in ROLES:
                if role != "admin":
                    r = admin.post("/api/v1/admin/users", json={"username": role, "role": role, "password": PASSWORD})
                    assert r.status_code == 201, f"adding {role}: {r.status_code} {r.text}\n{system.log_tail()}"
        finally:
            admin.close()
        yield system
    finally:
        # the system's own handle: a test may have restarted the service
        procs = [p for p in (system.serve if system else serve, sitl) if p is not None]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        sitl_log.close()
        serve_log.close()


def add_admin(url: str) -> None:
    """The schema and the admin account, with the store's own code (what `dronedispatch users add` runs)."""
    engine = make_engine(url)
    try:
        migrate(engine)
        Store(engine).upsert_user("admin", hash_password(PASSWORD), "admin")
    finally:
        engine.dispose()


def sqlite_database(tmp_path: Path) -> Database:
    return Database("sqlite", f"sqlite:///{tmp_path / 'dd.db'}")


@pytest.fixture
def database() -> str:
    """The kind of store under ``system``: SQLite unless the test is marked ``@on_both_databases``."""
    return "sqlite"


@pytest.fixture
def store(database: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    """A new, empty store of the kind ``database`` names (PostgreSQL: a fresh database on the real server)."""
    if database == "sqlite":
        return sqlite_database(tmp_path)
    if database == "postgresql":
        # looked up only here, so SQLite-only runs never start the PostgreSQL server
        url = request.getfixturevalue("fresh_postgres_db")
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return Database("postgresql", url, server.log_path)
    raise ValueError(f"unknown database {database!r}; expected one of {DATABASES}")


@pytest.fixture
def system(tmp_path: Path, store: Database) -> Iterator[System]:
    yield from start_system(tmp_path, database=store)
