"""`dronedispatch demo`: service + simulated fleet + incident generator, one process, embedded defaults."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
import uvloop
import yaml

from dronedispatch import cityfiles
from dronedispatch.domain.incidents import Category, Report, Severity
from dronedispatch.runtime import Runtime
from dronedispatch.service import create_app
from dronedispatch.settings import MIN_SECRET_KEY_CHARS, Settings
from dronedispatch.sim.runner import SimFleet
from dronedispatch.store.db import migrate
from dronedispatch.store.users import ROLES, hash_password

log = logging.getLogger(__name__)

VAR = Path("var")

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


def run_demo(*, vehicles: int, sitl: bool, generator: bool, host: str, port: int, speed_factor: float) -> int:
    settings = demo_settings(vehicles, sitl)
    password = os.environ.get("DD_DEMO_PASSWORD") or secrets.token_urlsafe(9)
    try:
        # uvloop, as `dronedispatch serve` gets from uvicorn: the same loop in the demo as deployed
        uvloop.run(_demo(settings, password, vehicles, sitl, generator, host, port, speed_factor))
    except KeyboardInterrupt:
        pass
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
    runtime = Runtime(settings)
    fleet_sim = None
    if sitl:
        fleet_sim = SimFleet(runtime.fleet_config, speed_factor=speed_factor, video=True)
        await fleet_sim.start()
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
        if fleet_sim is not None:
            await fleet_sim.stop()


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
    store = runtime.store
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
