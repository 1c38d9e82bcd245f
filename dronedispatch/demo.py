"""`dronedispatch demo`: service + simulated fleet + incident generator, one process, embedded defaults.

``--nodes N`` (N > 1) runs the same city as a cluster of separate processes instead: a nats-server
with JetStream and a PostgreSQL kept under ``var/cluster/`` (so a restart of the demo finds its data
again), the simulated fleet on ``udpout:`` links, and N ``dronedispatch serve`` nodes on consecutive
ports. Every process started dies with the demo, even when the demo itself is killed.

With the simulated fleet, the docks are devices too: unless ``DD_MQTT_URL`` names a broker, the demo
starts its own mosquitto on 127.0.0.1 (``DD_DEMO_MQTT_PORT``, else a free port) and simulates every
fleet dock on it (door, charging, weather; docs/docks-mqtt.md), as ``dronedispatch sitl --mqtt-url``
does; the broker stops with the demo.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import httpx
import psycopg
import uvicorn
import uvloop
import yaml

from dronedispatch import cityfiles
from dronedispatch.domain.assets import Camera, load_assets
from dronedispatch.domain.incidents import Category, Report, Severity
from dronedispatch.runtime import Runtime
from dronedispatch.scenario.broker import (
    MosquittoServer,
    NatsServer,
    PostgresServer,
    ServiceStartError,
    find_mosquitto,
    find_nats_server,
    find_pg_bindir,
    free_udp_block,
    free_udp_port,
    log_tail,
    supervised,
    terminate,
)
from dronedispatch.service import create_app
from dronedispatch.settings import MIN_SECRET_KEY_CHARS, Settings
from dronedispatch.sim.cctv_site import CctvSite
from dronedispatch.sim.docks import SimDocks
from dronedispatch.sim.runner import SimFleet
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.repo import Store
from dronedispatch.store.users import ROLES, hash_password

log = logging.getLogger(__name__)

VAR = Path("var")
#: The port of the demo's own MQTT broker (its docks' topics); a free one when unset.
MQTT_PORT_ENV = "DD_DEMO_MQTT_PORT"

#: What the generator reports, with the weight of each kind (traffic and environment are the
#: operations centre's everyday work; fire and missing persons are rarer).
_KINDS: list[tuple[Category, Severity, str, int]] = [
    (Category.TRAFFIC_ACCIDENT, Severity.SEVERE, "차량 충돌 감지 / vehicle collision detected", 4),
    (Category.FIRE, Severity.EXTREME, "연기 감지 / smoke detected", 2),
    (Category.CRIME, Severity.SEVERE, "이상 행동 감지 / suspicious behaviour", 2),
    (Category.ENVIRONMENT, Severity.MODERATE, "미세먼지 센서 경보 / air quality sensor alarm", 2),
    (Category.MISSING_PERSON, Severity.SEVERE, "실종자 신고 / missing person reported", 1),
    (Category.FACILITY, Severity.MINOR, "시설물 이상 / facility fault", 1),
]


def demo_settings(vehicles: int, sitl: bool) -> Settings:
    """Settings for the demo: env wins, else embedded defaults under ./var."""
    VAR.mkdir(exist_ok=True)
    # an explicit DD_SECRET_KEY wins; else the one kept under ./var, so a restart keeps browser logins
    settings = Settings() if os.environ.get("DD_SECRET_KEY") else Settings(secret_key=demo_secret_key(VAR))
    if sitl:
        fleet = cityfiles.load_fleet(settings.fleet).sized(vehicles)
        path = VAR / "demo-fleet.yaml"
        path.write_text(yaml.safe_dump(fleet.model_dump(), allow_unicode=True, sort_keys=False), encoding="utf-8")
        settings = settings.model_copy(update={"fleet": path})
    if not settings.ingest_api_keys:
        settings = settings.model_copy(update={"ingest_api_keys": ["demo-" + secrets.token_urlsafe(12)]})
    return settings


def demo_secret_key(var: Path) -> str:
    """The token-signing key kept in ``var/secret_key``, made (mode 0600) on first use.

    The file appears whole or not at all: the key is written to a private temporary file that is then
    hard-linked into place, so a second demo starting at the same moment reads the first one's key
    rather than a half-written file or a key of its own.
    """
    path = var / "secret_key"
    try:
        kept: str | None = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        kept = None
    if kept is not None and len(kept) >= MIN_SECRET_KEY_CHARS:
        return kept
    if kept is not None:
        log.warning("%s holds no usable key; writing a new one (browser logins made with the old one end)", path)
    key = secrets.token_urlsafe(32)
    fd, tmp = tempfile.mkstemp(dir=var, prefix=".secret_key.")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())
        if kept is not None:  # the unusable key goes
            os.replace(tmp, path)
            return key
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process made it first: use that one
            return path.read_text(encoding="utf-8").strip()
        return key
    finally:
        Path(tmp).unlink(missing_ok=True)


def start_broker() -> MosquittoServer | None:
    """The demo's mosquitto on 127.0.0.1 for its simulated docks, or None (with a warning) when the
    binary is missing: the demo then runs as before, its docks without a state."""
    try:
        binary = find_mosquitto()
    except ServiceStartError as exc:
        log.warning("the docks run without a state: %s (make demo installs it)", exc)
        return None
    port = int(os.environ.get(MQTT_PORT_ENV) or 0)
    # its own directory, outside ./var: the broker may run as its own user
    return MosquittoServer(workdir=Path(tempfile.mkdtemp(prefix="dd-demo-mqtt-")), binary=binary, port=port).start()


def stop_broker(broker: MosquittoServer | None) -> None:
    if broker is not None:
        broker.stop()
        shutil.rmtree(broker.workdir, ignore_errors=True)


def run_demo(*, vehicles: int, sitl: bool, generator: bool, host: str, port: int, speed_factor: float) -> int:
    settings = demo_settings(vehicles, sitl)
    password = os.environ.get("DD_DEMO_PASSWORD") or secrets.token_urlsafe(9)
    try:
        # uvloop, as `dronedispatch serve` gets from uvicorn: the same loop in the demo as deployed
        uvloop.run(_demo(settings, password, vehicles, sitl, generator, host, port, speed_factor))
    except KeyboardInterrupt:
        pass
    except ServiceStartError as exc:  # the docks' broker did not start (DD_DEMO_MQTT_PORT taken)
        print(f"dronedispatch demo: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


async def _demo(
    settings: Settings,
    password: str,
    vehicles: int,
    sitl: bool,
    generator: bool,
    host: str,
    port: int,
    speed_factor: float,
) -> None:
    broker = await asyncio.to_thread(start_broker) if sitl and settings.mqtt_url is None else None
    if broker is not None:
        settings = settings.model_copy(update={"mqtt_url": broker.url})  # the runtime's dock adapter listens there
    runtime = Runtime(settings)
    fleet_sim = None
    docks: SimDocks | None = None
    cctv: CctvSite | None = None
    if sitl:
        try:
            fleet_sim = SimFleet(runtime.fleet_config, speed_factor=speed_factor, video=True)
            await fleet_sim.start()
            if settings.mqtt_url:
                docks = SimDocks(runtime.fleet_config, fleet_sim.vehicles, settings.mqtt_url, speed_factor=speed_factor)
                await docks.start()
            # the demo's fixed cameras: RTSP at 127.0.0.1:8554/<id>, ONVIF at 18080+k, as its cameras file says
            cctv = CctvSite(runtime.cameras.cameras)
            await cctv.start()
        except BaseException:
            if docks is not None:
                await docks.stop()
            if fleet_sim is not None:
                await fleet_sim.stop()
            await asyncio.to_thread(stop_broker, broker)
            raise
    app = create_app(settings, runtime)
    tasks: list[asyncio.Task[None]] = []

    def started() -> None:
        _banner(host, port, password, settings, vehicles if sitl else 0)
        if generator:
            tasks.append(asyncio.create_task(_generate_incidents(runtime)))

    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", ws="websockets-sansio"), started)
    try:
        await asyncio.to_thread(migrate, runtime.engine)
        await asyncio.to_thread(_seed_users, runtime, password)
        await server.serve()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if docks is not None:
            await docks.stop()
        if fleet_sim is not None:
            await fleet_sim.stop()
        if cctv is not None:
            await cctv.stop()
        await asyncio.to_thread(stop_broker, broker)


class _Server(uvicorn.Server):
    """uvicorn's server, telling us once it listens (so the banner never lies about the URL)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self._on_started()


def _seed_users(runtime: Runtime, password: str) -> None:
    _seed_store_users(runtime.store, password)


def _seed_store_users(store: Store, password: str) -> None:
    hashed = hash_password(password)
    for role in ROLES:
        store.upsert_user(role, hashed, role)


def _banner(host: str, port: int, password: str, settings: Settings, vehicles: int) -> None:
    lines = [
        "",
        "dronedispatch demo is running",
        f"  operations view : http://{host}:{port}/",
        f"  API docs        : http://{host}:{port}/docs",
        f"  logins          : operator / pilot / tester / admin, password: {password}",
        f"  ingest API key  : {settings.ingest_api_keys[0]}",
        f"  simulated fleet : {vehicles} vehicles" if vehicles else f"  MAVLink         : {settings.mavlink}",
        *([f"  docks (MQTT)    : {settings.mqtt_url}"] if vehicles and settings.mqtt_url else []),
        "  stop with Ctrl-C",
        "",
    ]
    print("\n".join(lines), flush=True)


async def _generate_incidents(runtime: Runtime, *, first_after_s: float = 5.0, mean_gap_s: float = 60.0) -> None:
    """An incident now and then, at a fixed camera (as the centre's CCTV would raise it)."""
    rng = random.Random()
    await asyncio.sleep(first_after_s)
    while True:
        cameras = [c for c in runtime.cameras.cameras if c.is_camera]
        category, severity, text, _ = rng.choices(_KINDS, weights=[k[3] for k in _KINDS])[0]
        camera = rng.choice(cameras) if cameras else None
        report = Report(
            source="generator",
            category=category,
            severity=severity,
            camera_id=camera.id if camera else None,
            lat=camera.lat if camera else None,
            lon=camera.lon if camera else None,
            observed_at=datetime.now(UTC),
            description=f"{text} ({camera.name_ko if camera else ''})",
        )
        try:
            await asyncio.to_thread(runtime.dispatcher.ingest_report, report, actor="generator")
        except Exception:  # the demo keeps going whatever one report does
            log.exception("incident generator: report rejected")
        await asyncio.sleep(rng.expovariate(1.0 / mean_gap_s))


# -- several nodes ----------------------------------------------------------------------------

CLUSTER_DIR = VAR / "cluster"
NODE_READY_TIMEOUT_S = 120.0  # generous: N nodes import the service at once on a small machine
NODE_STOP_TIMEOUT_S = 20.0


@dataclass
class _Child:
    """One process of the cluster demo that we started (a node or the simulator)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    reported_exit: bool = False


@dataclass
class _ClusterDemo:
    settings: Settings
    password: str
    nodes: int
    vehicles: int
    sitl: bool
    host: str
    port: int
    speed_factor: float
    nats: NatsServer | None = None
    postgres: PostgresServer | None = None
    broker: MosquittoServer | None = None
    mqtt_url: str | None = None  # the docks' broker (the demo's own unless DD_MQTT_URL names one)
    children: list[_Child] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return CLUSTER_DIR / "logs"

    @property
    def node_children(self) -> list[_Child]:
        return [c for c in self.children if c.url]

    def start(self) -> None:
        """The servers, the store (migrated, logins seeded), the simulator and the nodes; returns once all answer."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.nats = _start_nats(CLUSTER_DIR / "nats")
        self.postgres = _start_postgres(CLUSTER_DIR / "postgres")
        database_url = self.postgres.url()
        engine = make_engine(database_url)
        try:
            migrate(engine)  # once, here: the nodes then start on a store that is ready
            _seed_store_users(Store(engine), self.password)
        finally:
            engine.dispose()
        self.mqtt_url = self.settings.mqtt_url
        if self.sitl and self.mqtt_url is None:
            self.broker = start_broker()
            self.mqtt_url = self.broker.url if self.broker is not None else None
        if self.sitl:
            links = self._start_sitl()
        else:
            links = self.settings.mavlink
        env = {
            **os.environ,
            "DD_BUS_URL": self.nats.url,
            "DD_DATABASE_URL": database_url,
            "DD_SECRET_KEY": self.settings.secret_key,
            "DD_MAVLINK": links,
            "DD_FLEET": str(Path(self.settings.fleet).resolve()),
            "DD_INGEST_API_KEYS": json.dumps(self.settings.ingest_api_keys),
            "PYTHONUNBUFFERED": "1",
            **({"DD_MQTT_URL": self.mqtt_url} if self.mqtt_url else {}),
        }
        for i in range(self.nodes):
            name, port = f"node-{i}", self.port + i
            env_i = {**env, "DD_NODE_ID": name}
            argv = [sys.executable, "-m", "dronedispatch.cli", "serve", "--host", self.host, "--port", str(port)]
            child = self._spawn(name, argv, env_i)
            child.url = f"http://{self.host}:{port}"
        for child in self.node_children:
            self._wait_healthy(child)

    def _start_sitl(self) -> str:
        """The simulated fleet as its own process; each vehicle listens on a port its link writes to."""
        base = free_udp_block(self.vehicles)
        argv = [sys.executable, "-m", "dronedispatch.cli", "sitl", "--vehicles", str(self.vehicles),
                "--fleet", str(Path(self.settings.fleet).resolve()), "--speed-factor", str(self.speed_factor),
                # every node would bind the same RTP ports: the cluster demo flies without camera streams
                "--no-video", "--gcs-port", str(free_udp_port()), "--vehicle-port-base", str(base),
                "--api-port-base", "0", *(["--mqtt-url", self.mqtt_url] if self.mqtt_url else [])]  # fmt: skip
        self._spawn("sitl", argv, dict(os.environ))
        return ",".join(f"udpout:127.0.0.1:{base + i}" for i in range(self.vehicles))

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> _Child:
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                supervised(argv, run_as=None, deathsig="TERM", workdir=self.logs),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,  # Ctrl-C reaches the demo alone, which stops the nodes in order
            )
        child = _Child(name, proc, log)
        self.children.append(child)
        return child

    def _wait_healthy(self, child: _Child) -> None:
        # a process start offers no event to await: poll its health route
        deadline = time.monotonic() + NODE_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise ServiceStartError(
                    f"{child.name} exited with code {child.proc.returncode}:\n{log_tail(child.log)}"
                )
            try:
                if httpx.get(f"{child.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise ServiceStartError(f"{child.name} did not answer on {child.url} within {NODE_READY_TIMEOUT_S:.0f} s")

    def banner(self) -> None:
        assert self.nats is not None and self.postgres is not None
        nodes = self.node_children
        sim = next((c for c in self.children if c.name == "sitl"), None)
        lines = ["", f"dronedispatch demo is running: {len(nodes)} nodes on one PostgreSQL and one NATS server"]
        lines += [f"  {c.name:<16}: {c.url}/  (pid {c.proc.pid})" for c in nodes]
        lines += [
            f"  logins          : operator / pilot / tester / admin, password: {self.password}",
            f"  ingest API key  : {self.settings.ingest_api_keys[0]}",
            f"  simulated fleet : {self.vehicles} vehicles on udpout links (pid {sim.proc.pid})"
            if sim
            else f"  MAVLink         : {self.settings.mavlink}",
            f"  PostgreSQL      : {self.postgres.url(driver='postgresql')}  (data in {CLUSTER_DIR / 'postgres'})",
            f"  NATS            : {self.nats.url}  (JetStream store in {CLUSTER_DIR / 'nats'})",
            *([f"  docks (MQTT)    : {self.mqtt_url}"] if sim and self.mqtt_url else []),
            f"  logs            : {self.logs}/",
            f"  who holds what  : {nodes[0].url}/api/v1/cluster  (as admin or tester)",
            f"  see fail-over   : kill -9 {nodes[-1].proc.pid}   ({nodes[-1].name}: its links and flights move to "
            "another node within a few seconds)",
            "  stop with Ctrl-C",
            "",
        ]
        print("\n".join(lines), flush=True)

    def watch(self, generator: bool) -> None:
        """Until interrupted: tell of a process that ended, and raise an incident now and then."""
        rng = random.Random()
        cameras = [c for c in load_assets(self.settings.cameras).cameras if c.is_camera]
        next_incident = time.monotonic() + 5.0
        while True:
            for child in self.children:
                if child.proc.poll() is not None and not child.reported_exit:
                    child.reported_exit = True
                    print(f"{child.name} (pid {child.proc.pid}) exited with code {child.proc.returncode}", flush=True)
            if generator and time.monotonic() >= next_incident:
                live = [c for c in self.node_children if c.proc.poll() is None]
                if live:
                    self._report_incident(rng.choice(live), rng, cameras)
                next_incident = time.monotonic() + rng.expovariate(1.0 / 60.0)
            time.sleep(0.5)

    def _report_incident(self, node: _Child, rng: random.Random, cameras: list[Camera]) -> None:
        """An incident at a fixed camera, sent to one node's webhook as the centre's CCTV would."""
        category, severity, text, _ = rng.choices(_KINDS, weights=[k[3] for k in _KINDS])[0]
        camera = rng.choice(cameras)
        body = {"category": category.value, "severity": int(severity), "camera_id": camera.id,
                "description": f"{text} ({camera.name_ko})"}  # fmt: skip
        try:
            httpx.post(f"{node.url}/api/v1/ingest/webhook", json=body, timeout=10,
                       headers={"X-API-Key": self.settings.ingest_api_keys[0]})  # fmt: skip
        except httpx.HTTPError as exc:  # the demo keeps going whatever one report does
            log.warning("incident generator: %s did not take the report: %s", node.name, exc)

    def stop(self) -> None:
        """Nodes first (they hand their leases back), then the simulator, NATS and PostgreSQL."""
        nodes = self.node_children
        for child in nodes:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in nodes:
            try:
                child.proc.wait(timeout=NODE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(timeout=NODE_STOP_TIMEOUT_S)
        for child in self.children:
            terminate(child.proc, signal.SIGTERM)
        stop_broker(self.broker)
        if self.nats is not None:
            self.nats.stop()
        if self.postgres is not None:
            self.postgres.stop()


def _start_nats(workdir: Path) -> NatsServer:
    workdir = workdir.resolve()  # the server runs in its work directory: relative paths would miss
    workdir.mkdir(parents=True, exist_ok=True)
    return NatsServer(workdir, find_nats_server()).start()


def _start_postgres(workdir: Path) -> PostgresServer:
    """The demo's PostgreSQL with durable settings, made on first use and found again on the next run."""
    workdir = workdir.resolve()  # the server runs in its work directory: relative paths would miss
    workdir.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(workdir, find_pg_bindir(), durable=True)
    if not (server.datadir / "PG_VERSION").exists():
        server.init()
    try:
        server.start()
    except psycopg.errors.DuplicateDatabase:  # a later run: the server is up and its database is there
        pass
    return server


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_cluster_demo(
    *, nodes: int, vehicles: int, sitl: bool, generator: bool, host: str, port: int, speed_factor: float
) -> int:
    """``dronedispatch demo --nodes N``: the servers, the simulator and N nodes as processes, until Ctrl-C."""
    settings = demo_settings(vehicles, sitl)
    password = os.environ.get("DD_DEMO_PASSWORD") or secrets.token_urlsafe(9)
    demo = _ClusterDemo(settings, password, nodes, vehicles, sitl, host, port, speed_factor)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per health check and report
    signal.signal(signal.SIGTERM, _raise_interrupt)  # stopped by a service manager: clean up as for Ctrl-C
    try:
        demo.start()
        demo.banner()
        demo.watch(generator)
    except KeyboardInterrupt:
        pass
    except ServiceStartError as exc:
        print(f"dronedispatch demo: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("stopping the nodes, the simulator, NATS and PostgreSQL…", flush=True)
        demo.stop()
    return 0
