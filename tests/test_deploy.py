"""deploy/: the Compose file, the proxy config, the service image and the systemd unit.

No Docker engine runs here, so the Compose file is checked by structure: the services and their
healthchecks, the nodes' DD_* settings (every name a real setting, the values accepted by Settings), the
start order. The nginx config runs for real when nginx is installed: in front of two stand-in nodes it must
spread requests round robin and carry the /api/v1/events WebSocket upgrade. The systemd unit goes through
`systemd-analyze verify` when that exists.
"""

from __future__ import annotations

import configparser
import itertools
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI, WebSocket
from websockets.sync.client import connect as ws_connect

from dronedispatch.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
NODES = ("node1", "node2")
SETTING_NAMES = {f"DD_{name.upper()}" for name in Settings.model_fields}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as Compose's .env and systemd's EnvironmentFile read them (no quotes used here)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: {line!r} is not KEY=VALUE"
            out[key.strip()] = value.strip()
    return out


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error} (the forms the file uses)."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg or ""
        raise AssertionError(f"{name} is required: {arg}")

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in [k for k in os.environ if k.startswith("DD_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


# --- Compose ---------------------------------------------------------------------------------------------


def test_compose_has_the_engines_the_nodes_and_the_proxy_each_with_a_healthcheck() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "nats", "mosquitto", *NODES, "proxy"}
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        assert service.get("restart") == "always", name
    assert services["postgres"]["image"].startswith("postgres:")
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "--jetstream" in services["nats"]["command"]  # the link leases live in JetStream's key-value store
    assert any("js-enabled-only" in part for part in services["nats"]["healthcheck"]["test"])


def test_compose_nodes_share_the_engines_and_differ_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = _compose()
    example = _env_file(DEPLOY / "compose.env.example") | {"DD_SECRET_KEY": secrets.token_urlsafe(32)}
    seen_ids = set()
    for name in NODES:
        node = compose["services"][name]
        assert node["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert (DEPLOY / node["build"]["context"] / node["build"]["dockerfile"]).is_file()
        assert node["command"][:2] == ["dronedispatch", "serve"] and "--port" in node["command"]
        env = {k: _interpolate(str(v), example) for k, v in node["environment"].items()}
        unknown = set(env) - SETTING_NAMES
        assert not unknown, f"{name}: not a setting of dronedispatch/settings.py: {unknown}"
        assert env["DD_BUS_URL"] == "nats://nats:4222"
        assert env["DD_DATABASE_URL"].startswith("postgresql+psycopg://dronedispatch:")
        assert env["DD_DATABASE_URL"].endswith("@postgres:5432/dronedispatch")
        assert env["DD_MQTT_URL"] == "mqtt://mosquitto:1883"
        seen_ids.add(env["DD_NODE_ID"])
        settings = _settings_from(env, monkeypatch)  # every value as the node itself would read it
        assert settings.node_id == name and len(settings.mavlink_urls) == 2
        for engine in ("postgres", "nats", "mosquitto"):
            assert node["depends_on"][engine] == {"condition": "service_healthy"}, (name, engine)
        assert node["healthcheck"]["test"][-1].count("/healthz") == 1
    assert seen_ids == set(NODES)
    # the first start migrates the schema once before the second node comes up
    assert compose["services"]["node2"]["depends_on"]["node1"] == {"condition": "service_healthy"}


def test_compose_refuses_to_start_without_the_secrets() -> None:
    node_env = _compose()["services"]["node1"]["environment"]
    with pytest.raises(AssertionError, match="DD_SECRET_KEY"):
        _interpolate(str(node_env["DD_SECRET_KEY"]), {})
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        _interpolate(str(node_env["DD_DATABASE_URL"]), {})


def test_compose_publishes_only_the_proxy_on_loopback_and_mounts_its_config() -> None:
    services = _compose()["services"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert published == {"proxy": ["127.0.0.1:8000:80"]}
    proxy = services["proxy"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert set(proxy["depends_on"]) == set(NODES)
    assert "./mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in services["mosquitto"]["volumes"]
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert used == set(_compose()["volumes"])


def test_dockerfile_builds_the_wheel_from_what_the_wheel_needs() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    copied = [part for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line
              for part in line.split()[1:-1]]  # fmt: skip
    assert {"setup.py", "MANIFEST.in", "pyproject.toml", "dronedispatch", "web", "mission_templates", "sitl"} <= set(
        copied
    )
    assert all((ROOT / p).exists() for p in copied), copied
    assert "pip wheel" in text and "pip install" in text and "USER dronedispatch" in text
    cmd = json.loads(next(line for line in text.splitlines() if line.startswith("CMD "))[4:])
    assert cmd[:2] == ["dronedispatch", "serve"]


# --- the proxy -------------------------------------------------------------------------------------------


def _nginx_conf() -> str:
    return (DEPLOY / "nginx.conf").read_text(encoding="utf-8")


def _block(text: str, opener: str) -> str:
    """The body of the `{ … }` block that starts at ``opener``."""
    start = text.index(opener)
    depth, i = 0, text.index("{", start)
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    raise AssertionError(f"unclosed block {opener}")


def test_proxy_config_routes_the_events_websocket_upgrade_and_round_robins_without_stickiness() -> None:
    text = re.sub(r"#[^\n]*", "", _nginx_conf())
    upstream = _block(text, "upstream dronedispatch_nodes")
    servers = re.findall(r"server\s+([\w.-]+):(\d+)", upstream)
    assert servers == [(n, "8000") for n in NODES]
    assert not re.search(r"\b(ip_hash|hash|sticky|least_conn|random)\b", upstream)  # plain round robin
    events = _block(text, "location = /api/v1/events")
    assert "proxy_pass http://dronedispatch_nodes;" in events
    assert "proxy_http_version 1.1;" in events
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", events)
    assert re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade;", events)
    assert re.search(r"map\s+\$http_upgrade\s+\$connection_upgrade", text)
    assert re.search(r"proxy_read_timeout\s+1h;", events)  # an idle event stream is not cut after 60 s
    assert "proxy_pass http://dronedispatch_nodes;" in _block(text, "location / ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stand_in_node(name: str) -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"node": name}

    @app.websocket("/api/v1/events")
    async def events(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json({"node": name})
        await ws.receive_text()  # until the client closes

    return app


@pytest.fixture
def proxied_nodes(tmp_path: Path) -> Iterator[str]:
    """deploy/nginx.conf run by nginx on loopback, its upstream pointed at two stand-in nodes."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.fail("nginx is not installed: apt-get install nginx (make test does this)", pytrace=False)
    servers = []
    conf = _nginx_conf()
    for name in NODES:
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(_stand_in_node(name), host="127.0.0.1", port=port, log_level="error"))
        threading.Thread(target=server.run, daemon=True).start()
        servers.append(server)
        conf = conf.replace(f"server {name}:8000", f"server 127.0.0.1:{port}")
    proxy_port = _free_port()
    temp = tmp_path / "temp"
    temp.mkdir()
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{proxy_port};")
    # one worker: round robin is kept per worker, so the order below is exact
    conf = conf.replace("worker_processes auto;", f"worker_processes 1;\npid {tmp_path}/nginx.pid;")
    conf = conf.replace("access_log /dev/stdout;", "access_log off;")
    paths = "".join(
        f"    {kind}_temp_path {temp}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = conf.replace("http {\n", "http {\n" + paths, 1)
    conf_file = tmp_path / "nginx.conf"
    conf_file.write_text(conf, encoding="utf-8")
    check = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf_file), "-e", "stderr"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(conf_file), "-e", "stderr", "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{proxy_port}"
    try:
        deadline = time.monotonic() + 10
        while not all(s.started for s in servers) or not _answers(base):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "nginx or the stand-in nodes never answered"
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for s in servers:
            s.should_exit = True


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_proxy_spreads_requests_and_websockets_over_the_nodes(proxied_nodes: str) -> None:
    with httpx.Client(base_url=proxied_nodes, timeout=5) as client:
        order = [client.get("/healthz").json()["node"] for _ in range(6)]
    assert sorted(order) == sorted(NODES * 3)  # each node as often: no stickiness
    assert all(a != b for a, b in itertools.pairwise(order))  # strict alternation

    ws_url = proxied_nodes.replace("http://", "ws://") + "/api/v1/events"
    reached = []
    for _ in range(4):
        with ws_connect(ws_url, open_timeout=5) as ws:
            reached.append(json.loads(ws.recv(timeout=5))["node"])
    assert sorted(reached) == sorted(NODES * 2)


# --- systemd ---------------------------------------------------------------------------------------------


def _unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / "dronedispatch@.service").read_text(encoding="utf-8"))
    return parser


def test_systemd_unit_runs_one_node_per_port_from_the_shared_env_file_and_always_restarts() -> None:
    service = _unit()["Service"]
    assert service["EnvironmentFile"] == "/etc/dronedispatch/env"
    assert service["Restart"] == "always"
    assert service["ExecStart"].split() == [
        "/opt/dronedispatch/bin/dronedispatch", "serve", "--host", "127.0.0.1", "--port", "%i",
    ]  # fmt: skip
    assert service["WorkingDirectory"] == "/var/lib/dronedispatch/%i"
    assert service["StateDirectory"] == "dronedispatch/%i"
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_env_example_holds_only_real_settings_that_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env_file(DEPLOY / "systemd" / "env.example")
    assert set(env) <= SETTING_NAMES, set(env) - SETTING_NAMES
    assert {"DD_DATABASE_URL", "DD_BUS_URL", "DD_SECRET_KEY", "DD_MAVLINK"} <= set(env)
    with pytest.raises(ValueError, match="DD_SECRET_KEY is required"):  # left empty on purpose: each site sets it
        _settings_from(env, monkeypatch)
    settings = _settings_from(env | {"DD_SECRET_KEY": secrets.token_urlsafe(32)}, monkeypatch)
    assert settings.bus_url == "nats://127.0.0.1:4222" and settings.database_url.startswith("postgresql+psycopg://")


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed (Debian package systemd)", pytrace=False)
    # verify wants ExecStart to exist: point it at this checkout's dronedispatch
    dronedispatch = shutil.which("dronedispatch") or str(ROOT / ".venv" / "bin" / "dronedispatch")
    text = (DEPLOY / "systemd" / "dronedispatch@.service").read_text(encoding="utf-8")
    (tmp_path / "dronedispatch@.service").write_text(
        text.replace("/opt/dronedispatch/bin/dronedispatch", dronedispatch), encoding="utf-8"
    )
    result = subprocess.run([analyze, "verify", "--man=no", "./dronedispatch@8000.service"],
                            cwd=tmp_path, capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0 and "dronedispatch@" not in result.stderr, result.stderr
