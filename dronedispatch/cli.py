"""The ``dronedispatch`` command: demo, serve, sitl, scenario, users."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError

from dronedispatch import cityfiles
from dronedispatch.domain.assets import AssetFileError, load_assets
from dronedispatch.domain.docks import Weather, parse_weather_spec
from dronedispatch.domain.fleet import Dock, FleetConfig
from dronedispatch.reports.evidence_package import verify_package
from dronedispatch.settings import Settings, StartupError, signing_key_from_hex


def _parse_home(text: str) -> Dock:
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--home wants LAT,LON[,ALT], got {text!r}") from None
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"--home wants LAT,LON[,ALT], got {text!r}")
    alt = parts[2] if len(parts) == 3 else 0.0
    return Dock(id="home", name_ko="홈", name_en="Home", lat=parts[0], lon=parts[1], alt=alt)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError("--loss is a fraction in [0, 1), e.g. 0.1 for 10%")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _node_count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("--nodes must be at least 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be zero or more")
    return value


def _frame_size(text: str) -> tuple[int, int]:
    """``WxH`` with even sides (4:2:0 video), e.g. 1920x1080."""
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit()) or int(w) % 2 or int(h) % 2:
        raise argparse.ArgumentTypeError("expected WxH with even sides, e.g. 640x360 or 1920x1080")
    if not (256 <= int(w) <= 3840 and 144 <= int(h) <= 2160):  # room for the pixel timestamp and the text
        raise argparse.ArgumentTypeError("from 256x144 to 3840x2160")
    return int(w), int(h)


def _sitl_fleet(args: argparse.Namespace) -> FleetConfig:
    if args.home is not None:
        return FleetConfig(city="custom", docks=[args.home]).sized(args.vehicles)
    return cityfiles.load_fleet(args.fleet).sized(args.vehicles)


def _signing_key(text: str) -> tuple[int | None, bytes]:
    """``HEX`` (every vehicle) or ``SYSID:HEX`` (one vehicle); 32-byte keys as 64 hex characters."""
    sysid_s, sep, hex_s = text.rpartition(":")
    try:
        sysid = int(sysid_s) if sep else None
        return sysid, signing_key_from_hex(1 if sysid is None else sysid, hex_s)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--signing-key wants HEX or SYSID:HEX, a 32-byte key: {exc}") from None


def _signing_keys(fleet: FleetConfig, given: list[tuple[int | None, bytes]]) -> dict[int, bytes]:
    keys: dict[int, bytes] = {}
    for sysid, key in given:
        if sysid is None:
            keys.update(dict.fromkeys((d.sysid for d in fleet.drones), key))
        else:
            keys[sysid] = key
    return keys


def _weather(text: str) -> Weather:
    try:
        return parse_weather_spec(text, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--weather wants wind=M/S,gust=M/S,rain=MM/H,temp=C: {exc}") from None


def _cmd_sitl(args: argparse.Namespace) -> int:
    from dronedispatch.sim.runner import SimDocks, SimFleet, run_sitl

    fleet = _sitl_fleet(args)
    sim = SimFleet(
        fleet,
        speed_factor=args.speed_factor,
        loss=args.loss,
        latency=args.latency / 1000,
        video=not args.no_video,
        seed=args.seed,
        gcs_port=args.gcs_port,
        vehicle_port_base=args.vehicle_port_base,
        api_port_base=args.api_port_base or None,
        api_target_base=args.api_target_base,
        video_port_base=args.video_port_base,
        signing_keys=_signing_keys(fleet, args.signing_key),
    )
    docks: SimDocks | None = None
    if args.mqtt_url:
        interlock = args.dock_door_interlock is not False  # on by default with simulated docks
        docks = SimDocks(
            fleet, sim.vehicles, args.mqtt_url, speed_factor=args.speed_factor, weather=args.weather,
            door_time_s=args.dock_door_s, interlock=interlock,
        )  # fmt: skip
    elif args.weather is not None or args.dock_door_interlock:
        print("dronedispatch: --weather and --dock-door-interlock need --mqtt-url (simulated docks)", file=sys.stderr)
        return 2
    if args.cameras is None:
        asyncio.run(run_sitl(sim, docks, fault_port=args.fault_port))
        return 0
    try:
        assets = load_assets(args.cameras).cameras
    except AssetFileError as exc:
        print(f"dronedispatch: {exc}", file=sys.stderr)
        return 2
    from dronedispatch.sim.cctv_site import CctvSite, serve_during

    width, height = args.camera_size
    site = CctvSite(
        assets, rtsp_port=args.rtsp_port, width=width, height=height, fps=args.camera_fps,
        onvif_base_port=args.onvif_port_base,
    )  # fmt: skip
    asyncio.run(serve_during(site, run_sitl(sim, docks)))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = Settings()  # a bad setting is told before the service's heavy imports load
    from dronedispatch.service import serve

    if bool(args.tls_cert) != bool(args.tls_key):
        print("dronedispatch: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    for given in (args.tls_cert, args.tls_key):
        if given is not None and not given.is_file():
            print(f"dronedispatch: no such file: {given}", file=sys.stderr)
            return 2
    serve(settings, host=args.host, port=args.port,
          tls_cert=str(args.tls_cert) if args.tls_cert else None,
          tls_key=str(args.tls_key) if args.tls_key else None)  # fmt: skip
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from dronedispatch.demo import run_cluster_demo, run_demo

    if args.nodes > 1:
        return run_cluster_demo(
            nodes=args.nodes,
            vehicles=args.vehicles,
            sitl=not args.no_sitl,
            generator=not args.no_generator,
            host=args.host,
            port=args.port,
            speed_factor=args.speed_factor,
        )
    return run_demo(
        vehicles=args.vehicles,
        sitl=not args.no_sitl,
        generator=not args.no_generator,
        host=args.host,
        port=args.port,
        speed_factor=args.speed_factor,
    )


def _cmd_users_add(args: argparse.Namespace) -> int:
    from dronedispatch.store.users import add_user_cli

    return add_user_cli(args.name, args.role, args.district)


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from dronedispatch.security_cli import audit_verify_cli

    return audit_verify_cli(args.database_url)


def _cmd_ingest_keys(args: argparse.Namespace) -> int:
    from dronedispatch.security_cli import ingest_keys_add_cli, ingest_keys_list_cli, ingest_keys_revoke_cli

    if args.keys_cmd == "add":
        return ingest_keys_add_cli(args.database_url, args.source, args.by)
    if args.keys_cmd == "revoke":
        return ingest_keys_revoke_cli(args.database_url, args.key_id, args.by)
    return ingest_keys_list_cli(args.database_url)


def _cmd_scenario_run(args: argparse.Namespace) -> int:
    from dronedispatch.scenario.cli import run_scenario_cli

    return run_scenario_cli(args.file, report_dir=args.report, px4=args.px4)


def _cmd_evidence_verify(args: argparse.Namespace) -> int:
    problems = verify_package(args.package)
    for p in problems:
        print(f"CHANGED {p}")
    if problems:
        print(f"{args.package}: {len(problems)} file(s) do not match the manifest")
        return 1
    print(f"{args.package}: every hash holds")
    return 0


def _cmd_seed_history(args: argparse.Namespace) -> int:
    settings = Settings()
    from dronedispatch.seed_history import SeedOptions, seed_history

    opts = SeedOptions(
        days=args.days, incidents_per_day=args.incidents_per_day, samples_per_mission=args.samples_per_mission,
        seed=args.seed, until=args.until,
    )  # fmt: skip
    result = seed_history(settings, opts)
    print(
        f"seeded {result.incidents} incidents, {result.missions} missions and {result.samples} telemetry samples"
        f" from {result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC"
    )
    return 0


def _cmd_stats_rebuild(args: argparse.Namespace) -> int:
    settings = Settings()
    from dronedispatch.seed_history import rebuild_statistics

    print(f"statistics summary rebuilt from {rebuild_statistics(settings)} incidents")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dronedispatch", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="service + simulated fleet + incident generator on embedded defaults")
    demo.add_argument("--vehicles", type=int, default=8, help="size of the simulated fleet (default 8)")
    demo.add_argument("--no-sitl", action="store_true", help="start no simulator; serve vehicles on DD_MAVLINK")
    demo.add_argument("--no-generator", action="store_true", help="do not generate incidents")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--speed-factor", type=_positive, default=1.0, help="simulated time runs K× faster")
    demo.add_argument(
        "--nodes",
        type=_node_count,
        default=1,
        metavar="N",
        help="N > 1: a cluster instead, nats-server and PostgreSQL in ./var/cluster and N `serve` processes "
        "on --port, --port + 1, … (see fail-over by killing one)",
    )
    demo.set_defaults(func=_cmd_demo)

    serve = sub.add_parser("serve", help="the service alone; settings from DD_* environment variables")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--tls-cert", type=Path, default=None, metavar="FILE",
                       help="PEM certificate (chain): serve HTTPS and WSS instead of HTTP and WS")  # fmt: skip
    serve.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="the certificate's PEM private key")
    serve.set_defaults(func=_cmd_serve)

    sitl = sub.add_parser("sitl", help="N simulated PX4 vehicles in one process, PX4 SITL port layout")
    sitl.add_argument("--vehicles", type=int, default=1)
    where = sitl.add_mutually_exclusive_group()
    where.add_argument("--fleet", type=Path, default=cityfiles.DEFAULT_FLEET, help="fleet file (docks, drones)")
    where.add_argument("--home", type=_parse_home, default=None, help="LAT,LON[,ALT]: every vehicle starts here")
    sitl.add_argument("--speed-factor", type=_positive, default=1.0, help="simulated time runs K× faster")
    sitl.add_argument("--loss", type=_fraction, default=0.0, help="fraction of datagrams dropped each way")
    sitl.add_argument(
        "--latency", type=_non_negative, default=0.0, metavar="MS", help="one-way delay added to every datagram (ms)"
    )
    sitl.add_argument(
        "--signing-key",
        type=_signing_key,
        action="append",
        default=[],
        metavar="[SYSID:]HEX",
        help="MAVLink 2 signing: the vehicle (every vehicle without SYSID) signs with this 32-byte key and drops "
        "unsigned or badly signed messages; repeat for several vehicles",
    )
    sitl.add_argument("--no-video", action="store_true", help="no camera streams")
    sitl.add_argument("--seed", type=int, default=0, help="seed for loss and faults (deterministic runs)")
    sitl.add_argument("--fault-port", type=int, default=None, metavar="PORT",
                      help="take fault commands (vehicle_reboot SYSID [clear]) on this UDP port")  # fmt: skip
    dock = sitl.add_argument_group("docks (door, charging, weather as JSON over MQTT: docs/docks-mqtt.md)")
    dock.add_argument("--mqtt-url", default=None, metavar="URL", help="simulate each fleet dock on this broker")
    dock.add_argument(
        "--weather", type=_weather, default=None, metavar="SPEC",
        help='weather at every dock, e.g. "wind=5,gust=8,rain=0,temp=12" (m/s, m/s, mm/h, °C)',
    )  # fmt: skip
    dock.add_argument("--dock-door-s", type=_positive, default=6.0, help="simulated seconds a door takes (default 6)")
    dock.add_argument(
        "--dock-door-interlock", action=argparse.BooleanOptionalAction, default=None,
        help="a docked vehicle refuses to arm while its dock door is not open (default: on with --mqtt-url)",
    )  # fmt: skip
    cctv = sitl.add_argument_group("fixed cameras (RTSP video, ONVIF devices)")
    cctv.add_argument("--cameras", type=Path, default=None, help="cameras file: serve each camera over RTSP and ONVIF")
    cctv.add_argument("--rtsp-port", type=int, default=8554, help="camera ID at rtsp://127.0.0.1:PORT/ID")
    cctv.add_argument("--camera-size", type=_frame_size, default=(640, 360), metavar="WxH", help="default 640x360")
    cctv.add_argument("--camera-fps", type=int, choices=range(1, 61), default=25, metavar="N", help="default 25")
    cctv.add_argument("--onvif-port-base", type=int, default=18080, help="entry k's ONVIF device listens on this + k")
    ports = sitl.add_argument_group("ports (PX4 SITL layout by default; change them to run beside another fleet)")
    ports.add_argument("--gcs-port", type=int, default=14550, help="where GCS traffic goes (default 14550)")
    ports.add_argument("--vehicle-port-base", type=int, default=18570, help="vehicle i binds this + i")
    ports.add_argument("--api-port-base", type=int, default=14580, help="API link binds this + i; 0: no API link")
    ports.add_argument("--api-target-base", type=int, default=14540, help="API link sends to this + i")
    ports.add_argument("--video-port-base", type=int, default=5600, help="RTP video goes to this + i")
    sitl.set_defaults(func=_cmd_sitl)

    scenario = sub.add_parser("scenario", help="SITL scenarios").add_subparsers(dest="scenario_cmd", required=True)
    run = scenario.add_parser("run", help="run a scenario file and report a verdict")
    run.add_argument("file", type=Path)
    run.add_argument("--report", type=Path, default=None, help="directory for the JUnit XML and HTML report")
    run.add_argument(
        "--px4",
        type=Path,
        default=None,
        metavar="PATH",
        help="run against real PX4 SIH instances from this PX4 build (sitl/px4_sih.sh)",
    )
    run.set_defaults(func=_cmd_scenario_run)

    users = sub.add_parser("users", help="manage accounts").add_subparsers(dest="users_cmd", required=True)
    add = users.add_parser("add", help="add a user; the password is read once from standard input")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["operator", "pilot", "tester", "admin"])
    add.add_argument(
        "--district", default=None, help="the one district an operator or pilot works for (default: the whole city)"
    )
    add.set_defaults(func=_cmd_users_add)

    seed = sub.add_parser(
        "seed-history", help="fill DD_DATABASE_URL with a realistic past: incidents, missions, tracks, outcomes"
    )
    seed.add_argument("--days", type=_positive_int, default=365, help="days of history, ending yesterday")
    seed.add_argument("--incidents-per-day", type=_positive, default=30.0, help="mean incidents a day")
    seed.add_argument(
        "--samples-per-mission", type=_positive_int, default=None, help="telemetry samples per track (default: 1 Hz)"
    )
    seed.add_argument("--seed", type=int, default=1, help="random seed: the same seed and --until, the same history")
    seed.add_argument("--until", type=date.fromisoformat, default=None, help="day after the last (default today)")
    seed.set_defaults(func=_cmd_seed_history)

    stats = sub.add_parser("stats", help="statistics upkeep").add_subparsers(dest="stats_cmd", required=True)
    rebuild = stats.add_parser("rebuild", help="build the statistics summary again from every incident and mission")
    rebuild.set_defaults(func=_cmd_stats_rebuild)

    evidence = sub.add_parser("evidence", help="evidence packages").add_subparsers(dest="evidence_cmd", required=True)
    verify = evidence.add_parser("verify", help="check every hash of an evidence package: exit 0 when all hold")
    verify.add_argument("package", type=Path)
    verify.set_defaults(func=_cmd_evidence_verify)

    db_help = "the database (default: DD_DATABASE_URL, else the service's default)"
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_cmd", required=True)
    audit_verify = audit.add_parser(
        "verify", help="check the audit log's hash chain: exit 0 when it holds, else 1 naming the first bad entry"
    )
    audit_verify.add_argument("--database-url", default=None, help=db_help)
    audit_verify.set_defaults(func=_cmd_audit_verify)

    keys = sub.add_parser("ingest-keys", help="API keys of ingest sources (X-API-Key)").add_subparsers(
        dest="keys_cmd", required=True
    )
    keys_add = keys.add_parser("add", help="add a key for SOURCE (webhook or cap); prints the key once")
    keys_add.add_argument("source")
    keys_list = keys.add_parser("list", help="every key, revoked ones too (no secrets)")
    keys_revoke = keys.add_parser("revoke", help="revoke key KEY_ID: it stops working on every node at once")
    keys_revoke.add_argument("key_id", type=int)
    for p in (keys_add, keys_list, keys_revoke):
        p.add_argument("--database-url", default=None, help=db_help)
        p.add_argument("--by", default="cli", help="who to name in the audit log (default: cli)")
        p.set_defaults(func=_cmd_ingest_keys)
    return parser


def settings_problems(exc: ValidationError) -> list[str]:
    """One line per bad DD_* setting, naming the variable as the user wrote it."""
    lines = []
    for err in exc.errors():
        name = "DD_" + str(err["loc"][0]).upper() if err["loc"] else "settings"
        detail = err["msg"].removeprefix("Value error, ")
        lines.append(f"bad setting {name}: {detail}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if getattr(args, "vehicles", 1) < 1:
        parser.error("--vehicles must be at least 1")
    try:
        return int(args.func(args))
    except cityfiles.CityFileError as exc:
        print(f"dronedispatch: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        for line in settings_problems(exc):
            print(f"dronedispatch: {line}", file=sys.stderr)
        return 2
    except SettingsError as exc:  # a DD_* list or map that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = "DD_" + field.group(1).upper() if field else "a DD_* variable"
        print(
            f"dronedispatch: bad setting {name}: not valid JSON (lists and maps are written as JSON)", file=sys.stderr
        )
        return 2
    except StartupError as exc:
        print(f"dronedispatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        # uvloop raises its own OSError ("could not bind to local_addr (…)") from the system's
        cause = exc if exc.errno is not None or not isinstance(exc.__cause__, OSError) else exc.__cause__
        if cause.errno in (errno.EADDRINUSE, errno.EACCES):
            where = f" ({exc})" if cause is not exc else ""
            print(
                f"dronedispatch: cannot listen: {cause.strerror}{where}. Is another demo, `dronedispatch sitl` or "
                "PX4 SITL already using these ports? Stop it, or choose other ports.",
                file=sys.stderr,
            )
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
