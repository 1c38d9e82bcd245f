"""The command line: a bad setting or option ends with exit status 2 and one line that says which."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import uvloop

from dronedispatch import cli
from tests.fixtures.services import free_tcp_port, free_udp_port


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the settings pass after all, fail instead of starting a server."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the service was started with settings that should have been refused")

    monkeypatch.setattr("dronedispatch.service.serve", refuse)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("DD_SIGNING_KEYS", '{"1": "00"}', "bad setting DD_SIGNING_KEYS: the key for system 1 has 2 hex characters"),
        ("DD_SIGNING_KEYS", "not json", "bad setting DD_SIGNING_KEYS: not valid JSON"),
        ("DD_MAVLINK", "udpin:127.0.0.1", "bad setting DD_MAVLINK: bad MAVLink connection string"),
        ("DD_TELEMETRY_RATE_HZ", "-1", "bad setting DD_TELEMETRY_RATE_HZ: Input should be greater than 0"),
    ],
)
def test_serve_refuses_a_bad_setting(
    no_server: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    says: str,
) -> None:
    monkeypatch.setenv(name, value)
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (["--signing-key", "abc"], "--signing-key wants HEX or SYSID:HEX"),
        (["--signing-key", "7:" + "00" * 16], "32-byte key"),
        (["--latency", "-5"], "must be zero or more"),
        (["--loss", "1.5"], "--loss is a fraction"),
    ],
)
def test_sitl_refuses_a_bad_option(capsys: pytest.CaptureFixture[str], option: list[str], says: str) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["sitl", *option])
    assert exited.value.code == 2 and says in capsys.readouterr().err


def test_sitl_signing_keys_for_every_vehicle_or_one() -> None:
    fleet = cli._sitl_fleet(cli.build_parser().parse_args(["sitl", "--vehicles", "3", "--home", "37.39,126.64"]))
    every, one = bytes(32), bytes(range(32))
    assert cli._signing_keys(fleet, [(None, every), (2, one)]) == {1: every, 2: one, 3: every}


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_port_in_use_is_named_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], loop: str
) -> None:
    if loop == "uvloop":  # demo and serve run on uvloop, whose bind error wraps the system's
        monkeypatch.setattr("dronedispatch.cli.asyncio.run", uvloop.run)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        args = ["sitl", "--no-video", "--api-port-base", "0", "--vehicle-port-base", str(port)]
        assert cli.main([*args, "--gcs-port", str(free_udp_port())]) == 2
    err = capsys.readouterr().err
    assert "cannot listen: Address already in use" in err and "Traceback" not in err


def test_serve_on_a_shared_database_without_a_secret_key_says_so(tmp_path: Path) -> None:
    # the real command in its own process: nothing listens on port 1, and nothing should try to
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env["DD_DATABASE_URL"] = "postgresql+psycopg://x@127.0.0.1:1/x"
    done = subprocess.run(
        [sys.executable, "-m", "dronedispatch.cli", "serve", "--port", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(
        "dronedispatch: bad setting DD_SECRET_KEY: DD_SECRET_KEY is required when DD_DATABASE_URL"
    )
    assert done.stdout == ""


def test_serve_refuses_a_weak_secret_key(
    no_server: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DD_SECRET_KEY", "secret")
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "bad setting DD_SECRET_KEY: 6 characters is too weak" in err and "secret\n" not in err


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"DD_DATABASE_URL": "postgresql+psycopg://x@127.0.0.1:{port}/x"},
         "dronedispatch: the database in DD_DATABASE_URL cannot be reached: "),
        ({"DD_BUS_URL": "nats://127.0.0.1:{port}"},
         "dronedispatch: the NATS server in DD_BUS_URL (nats://127.0.0.1:{port}) cannot be reached: "),
        ({"DD_BUS_URL": "nats:/127.0.0.1"}, "dronedispatch: bad setting DD_BUS_URL: give nats://HOST:PORT"),
    ],
)  # fmt: skip
def test_a_node_whose_database_or_bus_cannot_be_reached_says_so_in_one_line(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    closed = free_tcp_port()  # nothing listens there
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    environ["DD_SECRET_KEY"] = "cli-test-secret-key-cli-test-secret-key-0"
    environ.update({k: v.format(port=closed) for k, v in env.items()})
    done = subprocess.run([sys.executable, "-m", "dronedispatch.cli", "serve", "--port", str(free_tcp_port())],
                          env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(says.format(port=closed)), lines[0]
