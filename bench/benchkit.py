"""Helpers shared by the benchmarks: free loopback ports, a simulator child, a MAVSDK connection
(the peer) and a throwaway PostgreSQL server.

(`make bench` runs every other file in bench/ as a benchmark, so shared code lives here.)
"""

from __future__ import annotations

import asyncio
import glob
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dronedispatch.scenario.broker import (
    LOOPBACK,
    ServiceStartError,
    free_tcp_port,
    log_tail,
    supervised,
    terminate,
    wait_ready,
)


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive UDP ports on 127.0.0.1 that were all free a moment ago."""
    for _ in range(500):
        base = random.randint(20000, 60000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


async def sim_child(script: str, spec: str) -> asyncio.subprocess.Process:
    """``script --serve-sim spec`` in its own process (as PX4 instances run): it serves until its
    standard input closes, then may print a last line of statistics on standard output."""
    return await asyncio.create_subprocess_exec(
        sys.executable, script, "--serve-sim", spec, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )


async def connect_mavsdk(port: int, timeout_s: float = 15.0) -> tuple[Any, Any]:
    """MAVSDK as a ground station listening on 127.0.0.1:``port``; returns (mavsdk, first autopilot).

    The blocking calls run in worker threads, as MAVSDK's own asyncio wrapper does.
    """
    from mavsdk import ComponentType, Configuration, LogLevel, Mavsdk, log_subscribe

    # MAVSDK's debug and info lines ("Mission changed" after every upload) would bury the results;
    # warnings and errors still print.
    log_subscribe(lambda level, _message, _file, _line: level < LogLevel.WARN)
    loop = asyncio.get_running_loop()
    drone = Mavsdk(Configuration.create_with_component_type(ComponentType.GROUND_STATION))
    await loop.run_in_executor(None, drone.add_any_connection, f"udpin://127.0.0.1:{port}")
    system = await loop.run_in_executor(None, drone.first_autopilot, timeout_s)
    if system is None:
        drone.destroy()
        raise RuntimeError("MAVSDK did not see the simulated vehicle")
    return drone, system


PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
PG_OS_USER = "postgres"  # PostgreSQL refuses to run as root; Debian's package creates this account
PG_SUPERUSER = "postgres"


def find_pg_bindir() -> Path:
    """The newest installed PostgreSQL bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        (Path(p) for p in glob.glob(PG_BIN_GLOB) if (Path(p) / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ServiceStartError(
        "PostgreSQL server binaries not found (initdb in /usr/lib/postgresql/*/bin or PATH); "
        "install the Debian package: apt-get install postgresql (make test does this)"
    )


class PostgresServer:
    """A new PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1, trust auth.

    Server settings are PostgreSQL's defaults (fsync and synchronous_commit on): the figure is
    that of a durable server, as a deployment would run it. Stopped (fast shutdown) and removed
    by :meth:`stop`; it also dies with this process (setpriv's parent-death signal).
    """

    def __init__(self, database: str = "dronedispatch") -> None:
        self.bindir = find_pg_bindir()
        self.database = database
        self.workdir = Path(tempfile.mkdtemp(prefix="dd-bench-pg-"))
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def version(self) -> str:
        return self.bindir.parent.name

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{PG_SUPERUSER}@{LOOPBACK}:{self.port}/{self.database}"

    def _dsn(self, db: str) -> str:
        return f"host={LOOPBACK} port={self.port} user={PG_SUPERUSER} dbname={db} connect_timeout=5"

    def _argv(self, argv: list[str]) -> list[str]:
        return supervised(argv, run_as=PG_OS_USER, deathsig="INT", workdir=self.workdir)  # SIGINT: fast shutdown

    def start(self) -> PostgresServer:
        datadir, log_path = self.workdir / "data", self.workdir / "postgres.log"
        initdb = [str(self.bindir / "initdb"), "-D", str(datadir), "-U", PG_SUPERUSER, "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync"]  # fmt: skip
        done = subprocess.run(self._argv(initdb), cwd=self.workdir, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise ServiceStartError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

        def connectable() -> bool:
            try:
                with psycopg.connect(self._dsn("postgres")):
                    return True
            except psycopg.OperationalError:
                return False

        for attempt in range(3):  # the free port may be taken between choosing and binding it
            self.port = free_tcp_port()
            argv = [str(self.bindir / "postgres"), "-D", str(datadir), "-p", str(self.port),
                    "-c", f"listen_addresses={LOOPBACK}", "-c", f"unix_socket_directories={self.workdir}"]  # fmt: skip
            with open(log_path, "ab") as log:
                self.proc = subprocess.Popen(self._argv(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             cwd=self.workdir)  # fmt: skip
            try:
                wait_ready(self.proc, connectable, "postgres", log_path)
                break
            except ServiceStartError:
                if attempt == 2:
                    raise
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        return self

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.workdir / "postgres.log", lines)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, signal.SIGINT)
            self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)
