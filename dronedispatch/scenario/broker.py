"""Local servers on loopback: free ports and a throwaway mosquitto broker.

Used by scenario runs that feed incidents over MQTT, and by the test suite's fixtures
(``tests/fixtures/services.py`` builds its mosquitto and PostgreSQL fixtures on these helpers).
Every server runs from the Debian binary in its own temporary directory, on a free port of
127.0.0.1, wrapped in ``setpriv --pdeathsig`` so it dies with the process that started it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0  # generous: two shared cores, other suites starting servers at the same time
STOP_TIMEOUT = 15.0
MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


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
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def _write_config(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
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
