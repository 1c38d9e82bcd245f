"""One simulated vehicle as seen on the wire: its MAVLink links, streams, protocols and camera.

:class:`SimVehicle` wraps the pure :class:`VehicleModel`. It owns one :class:`Link` per MAVLink
channel (GCS link, API/offboard link); a link frames the model's telemetry at PX4's rates, answers
commands, parameters and mission transfers, and sends through a ``send`` callable the runner gives
it (the UDP shell applies loss, latency and link drops there). Nothing here opens sockets or
sleeps: :meth:`SimVehicle.tick` is called by the fleet's single ticker task.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

from pymavlink.dialects.v20 import common as mavlink

from dronedispatch.sim import commands, telemetry, wire
from dronedispatch.sim.camera_protocol import CameraComponent
from dronedispatch.sim.commands import ACCEPTED, DENIED, UNSUPPORTED, Command, as_int
from dronedispatch.sim.mission_server import MissionServer
from dronedispatch.sim.model import VehicleModel
from dronedispatch.sim.modes import MODE_BY_CUSTOM
from dronedispatch.sim.params import BY_NAME, SPECS, from_wire, wire_value

log = logging.getLogger(__name__)

Addr = tuple[str, int]
GCS_HEARD_S = 2.5  # STATUSTEXT goes only to links that heard a GCS heartbeat this recently
MAX_STEP_S = 0.05  # physics sub-step, simulated seconds
REACHED_REPEATS = 10
_SLOW_STREAMS = ("BATTERY_STATUS", "HOME_POSITION")
_SLOW_IDS = {147: "BATTERY_STATUS", 242: "HOME_POSITION"}
MAV_TYPE_GCS = 6


class Link:
    """One MAVLink channel of a vehicle: sequence numbers, peer address, streams, mission transfers."""

    def __init__(self, vehicle: SimVehicle, name: str, streams: dict[str, float], default_peer: Addr) -> None:
        self.vehicle = vehicle
        self.name = name
        self.enc = wire.LinkEncoder(vehicle.sysid)
        self.parser = mavlink.MAVLink(None)
        self.parser.robust_parsing = True
        self.server = MissionServer(vehicle.model.store, vehicle.sysid)
        self.peer: Addr = default_peer
        self.default_intervals = {n: 1.0 / r for n, r in streams.items()}
        self.intervals = dict(self.default_intervals)
        self.due: dict[str, float] = dict.fromkeys(self.intervals, 0.0)
        self.gcs_heard_wall = -math.inf
        self.bad_packets = 0
        self.received = 0
        self.sender: Callable[[bytes, Addr], None] | None = None  # set by the UDP shell

    def send(self, frames: list[bytes]) -> None:
        if frames and self.sender is not None:
            self.sender(b"".join(frames), self.peer)

    def encode(self, out: Any, compid: int = 1) -> bytes:
        if isinstance(out, tuple):
            return self.enc.fast(out[0], out[1], compid)
        return self.enc.encode(out, compid)

    def wants_text(self, wall_now: float) -> bool:
        return wall_now - self.gcs_heard_wall <= GCS_HEARD_S


class SimVehicle:
    """A simulated PX4 vehicle: model + links + camera. Instance ``i`` is usually system id ``i + 1``."""

    def __init__(
        self,
        instance: int,
        sysid: int,
        home: tuple[float, float, float],
        *,
        gcs_peer: Addr,
        api_peer: Addr | None,
        video_uri: str,
        cruise_speed: float = 5.0,
        climb_speed: float | None = None,
        endurance_min: float = 35.0,
        seed: int = 0,
        drone_id: str = "",
    ) -> None:
        self.instance = instance
        self.sysid = sysid
        self.drone_id = drone_id or f"sim-{sysid}"
        self.model = VehicleModel(sysid, home, cruise_speed=cruise_speed, climb_speed=climb_speed,
                                  endurance_min=endurance_min)
        self.rng = random.Random(seed + instance)
        self.links = [Link(self, "gcs", telemetry.GCS_STREAMS, gcs_peer)]
        if api_peer is not None:
            self.links.append(Link(self, "api", telemetry.API_STREAMS, api_peer))
        self.camera = CameraComponent(self.model, sysid=sysid, instance=instance, uri=video_uri)
        self.signing_key: bytes | None = None
        # fault injection (read by the UDP shell)
        self.loss = 0.0
        self.latency = 0.0
        self.link_dropped = False
        self.mission_item_delay = 0.0  # wall-clock seconds each received mission item waits before it is handled
        self.arm_refused_until = -math.inf  # time.monotonic() until which arming is refused as temporary
        self._reached: list[Any] | None = None  # [seq, repeats left, next due (sim s)] of the latest
        self._current_sent = -1  # the mission item MISSION_CURRENT last announced
        #: (simulated s, seq) of every mission item reached: when the vehicle itself got there (scenario reports)
        self.reached_log: list[tuple[float, int]] = []
        self._cache: dict[str, telemetry.Built] = {}

    # -- state for tests and scenarios -----------------------------------------------------------------
    @property
    def lat(self) -> float:
        return self.model.lat

    @property
    def lon(self) -> float:
        return self.model.lon

    @property
    def alt_rel(self) -> float:
        return self.model.alt_rel

    @property
    def armed(self) -> bool:
        return self.model.armed

    @property
    def mode(self) -> str:
        return self.model.mode

    @property
    def battery_pct(self) -> float:
        return self.model.battery * 100.0

    @property
    def landed_state(self) -> int:
        return self.model.landed_state

    @property
    def mission_items(self) -> list:
        return list(self.model.items)

    @property
    def time_s(self) -> float:
        return self.model.t

    # -- fault injection -------------------------------------------------------------------------------
    def set_link_loss(self, p: float) -> None:
        """Drop this fraction of datagrams in each direction on every link of the vehicle."""
        self.loss = min(max(p, 0.0), 1.0)

    def set_latency(self, seconds: float) -> None:
        """Delay every datagram by this many (wall-clock) seconds in each direction."""
        self.latency = max(seconds, 0.0)

    def drop_link(self, on: bool) -> None:
        """Cut (True) or restore (False) every link of the vehicle."""
        self.link_dropped = on

    def reboot(self, *, clear_mission: bool = False, silent_s: float = 3.0) -> None:
        """Restart the autopilot in flight: silent for ``silent_s`` wall-clock seconds, then heard again with its
        boot clock from zero, holding position, its plan kept or (``clear_mission``) gone."""
        self.model.reboot(clear_mission=clear_mission)
        self._reached = None
        self._current_sent = -1
        self.drop_link(True)
        asyncio.get_running_loop().call_later(silent_s, self.drop_link, False)

    def slow_mission_items(self, seconds: float) -> None:
        """Handle each mission item a ground station uploads ``seconds`` late (a slow, lossy radio link):
        an upload takes about ``seconds`` per item, a window in which a test can cut the ground station off."""
        self.mission_item_delay = max(seconds, 0.0)

    def refuse_arming(self, seconds: float) -> None:
        """Answer arming with TEMPORARILY_REJECTED for the next ``seconds`` wall-clock seconds (pre-arm
        checks still running), as PX4 does just after boot."""
        self.arm_refused_until = time.monotonic() + max(seconds, 0.0)

    def transfer_counts(self) -> tuple[int, int]:
        """Mission uploads and downloads ground stations began with this vehicle, over all its links."""
        return (sum(link.server.uploads_started for link in self.links),
                sum(link.server.downloads_started for link in self.links))  # fmt: skip

    def gps_loss(self, on: bool) -> None:
        self.model.set_gps_loss(on)

    def battery_fault(self, remaining_pct: float) -> None:
        """Set the remaining charge at once (the failsafes react on the next step)."""
        self.model.set_battery(remaining_pct / 100.0)

    def motor_failure(self) -> None:
        self.model.motor_failure()

    def set_wind(self, speed: float, direction: float) -> None:
        """Wind of ``speed`` m/s blowing from ``direction`` degrees (meteorological convention)."""
        self.model.wind = (max(speed, 0.0), direction % 360.0)
        self.model.params.set("SIM_WIND_SPD", speed)
        self.model.params.set("SIM_WIND_DIR", direction % 360.0)

    def set_signing_key(self, key: bytes | None) -> None:
        """MAVLink 2 signing on every link: sign what is sent, drop unsigned or badly signed frames.

        ``None`` turns signing off. Link i signs with link_id i.
        """
        self.signing_key = key
        for i, link in enumerate(self.links):
            link.enc.set_signing(key, link_id=i)
            link.parser.signing.secret_key = key
            link.parser.signing.stream_timestamps.clear()
            link.parser.signing.timestamp = wire.signing_timestamp() if key is not None else 0

    # -- ticking ---------------------------------------------------------------------------------------
    def tick(self, sim_dt: float, wall_now: float) -> None:
        """Advance the model by ``sim_dt`` simulated seconds and send what is due."""
        m = self.model
        n = max(1, math.ceil(sim_dt / MAX_STEP_S - 1e-9))
        for _ in range(n):
            m.step(sim_dt / n)
        self._cache.clear()
        texts, m.texts = m.texts, []
        # PX4 sends MISSION_ITEM_REACHED once, then repeats only the latest reached item, 10 times at 1 Hz
        reached_now = list(m.reached)
        self.reached_log.extend((m.t, seq) for seq in reached_now)
        if reached_now:
            self._reached = [reached_now[-1], REACHED_REPEATS, m.t + 1.0]
        elif self._reached is not None and self._reached[2] <= m.t:
            reached_now = [self._reached[0]]
            self._reached[1] -= 1
            self._reached[2] = m.t + 1.0
            if self._reached[1] <= 0:
                self._reached = None
        m.reached.clear()
        # PX4 (MavlinkMissionManager::send) announces a new current item at once, not at the next 1 Hz stream
        # slot: a ground station learns "past the arrival point" when it happens
        current_changed = m.seq != self._current_sent and bool(m.items)
        self._current_sent = m.seq
        t = m.t
        for link in self.links:
            frames: list[bytes] = []
            if current_changed and "MISSION_CURRENT" in link.intervals:
                frames.append(self._frame(link, "MISSION_CURRENT"))
            due = link.due
            for name, interval in link.intervals.items():
                if t >= due[name]:
                    nxt = due[name] + interval
                    due[name] = nxt if nxt > t else t + interval
                    frames.append(self._frame(link, name))
            if t >= self.camera.heartbeat_due:
                frames.append(link.encode(telemetry.camera_heartbeat(m), self.camera.compid))
            for r in reached_now:
                frames.append(link.encode(link.enc.factory.mission_item_reached_encode(int(r))))
            for out in link.server.poll(wall_now):
                frames.append(link.encode(out))
            texts_here = texts + link.server.texts
            link.server.texts = []
            if texts_here and link.wants_text(wall_now):
                frames.extend(self._statustext(link, sev, text) for sev, text in texts_here)
            link.send(frames)
        if t >= self.camera.heartbeat_due:
            self.camera.heartbeat_due = t + 1.0
        self.camera.tick()

    def _frame(self, link: Link, name: str) -> bytes:
        built = self._cache.get(name)
        if built is None:
            builder = telemetry.BUILDERS.get(name)
            if builder is None:
                return link.encode(self.slow_message(name))
            built = self._cache[name] = builder(self.model)
        return link.enc.fast(built[0], built[1])

    def slow_message(self, name: str) -> mavlink.MAVLink_message:
        m = self.model
        if name == "BATTERY_STATUS":
            cell = round(m.voltage / 4 * 1000)
            b = m.battery
            p = m.params
            state = (4 if b <= p["BAT_EMERGEN_THR"] else 3 if b <= p["BAT_CRIT_THR"]
                     else 2 if b <= p["BAT_LOW_THR"] else 1)
            return mavlink.MAVLink_battery_status_message(
                id=0, battery_function=1, type=1, temperature=2500, voltages=[cell] * 4 + [65535] * 6,
                current_battery=round(m.current_a * 100), current_consumed=round((1 - b) * 5000),
                energy_consumed=-1, battery_remaining=round(b * 100),
                time_remaining=int(b * m.endurance_s), charge_state=state, voltages_ext=[0, 0, 0, 0], mode=0,
                fault_bitmask=0,
            )
        if name == "HOME_POSITION":
            h = m.home
            return mavlink.MAVLink_home_position_message(
                latitude=round(h[0] * 1e7), longitude=round(h[1] * 1e7), altitude=round(h[2] * 1000), x=0, y=0, z=0,
                q=[1, 0, 0, 0], approach_x=0, approach_y=0, approach_z=0, time_usec=int(m.t * 1e6),
            )
        if name == "AUTOPILOT_VERSION":
            caps = 1 | 2 | 4 | 8 | 16 | 256 | 8192 | 16384 | 32768  # mission/param float+int, command_int, ...
            return mavlink.MAVLink_autopilot_version_message(
                capabilities=caps, flight_sw_version=(1 << 24) | (15 << 16) | 255, middleware_sw_version=0,
                os_sw_version=0, board_version=0, flight_custom_version=[0] * 8, middleware_custom_version=[0] * 8,
                os_custom_version=[0] * 8, vendor_id=0, product_id=0, uid=self.sysid, uid2=[0] * 18,
            )
        raise KeyError(name)

    def _statustext(self, link: Link, severity: int, text: str) -> bytes:
        data = text.encode()[:50]
        return link.encode(link.enc.factory.statustext_encode(severity, data, 0, 0))

    # -- incoming --------------------------------------------------------------------------------------
    def on_datagram(self, link: Link, data: bytes, addr: Addr, wall_now: float) -> None:
        if link.parser.buf_index < len(link.parser.buf):
            # A frame cut short by the end of the last datagram never continues in this one (UDP):
            # left in the parser it would swallow this datagram's frames.
            link.bad_packets += 1
            _reset_parser(link.parser)
        try:
            msgs = link.parser.parse_buffer(data) or []
        except Exception as exc:  # a malformed datagram must never take the vehicle down
            link.bad_packets += 1
            _reset_parser(link.parser)
            log.debug("vehicle %d: unparsable datagram on %s link: %s", self.sysid, link.name, exc)
            return
        for msg in msgs:
            if msg.get_type() == "BAD_DATA":
                link.bad_packets += 1
                continue
            link.received += 1
            link.peer = addr
            try:
                self._handle(link, msg, wall_now)
            except Exception:
                link.bad_packets += 1
                log.exception("vehicle %d: error handling %s", self.sysid, msg.get_type())

    def _handle(self, link: Link, msg: mavlink.MAVLink_message, wall_now: float) -> None:
        kind = msg.get_type()
        if kind == "HEARTBEAT":
            if msg.type == MAV_TYPE_GCS:
                link.gcs_heard_wall = wall_now
                self.model.note_gcs_heartbeat()
            return
        target = getattr(msg, "target_system", 0)
        if target not in (0, self.sysid):
            return
        peer = (msg.get_srcSystem(), msg.get_srcComponent())
        out: list[Any] = []
        server = link.server
        if kind in ("COMMAND_LONG", "COMMAND_INT"):
            self._command(link, msg, wall_now)
            return
        if kind == "MISSION_COUNT":
            out = server.on_count(msg.count, msg.mission_type, peer, wall_now)
        elif kind in ("MISSION_ITEM_INT", "MISSION_ITEM") and self.mission_item_delay > 0:
            asyncio.get_running_loop().call_later(self.mission_item_delay, self._late_item, link, msg, peer)
            return
        elif kind in ("MISSION_ITEM_INT", "MISSION_ITEM"):
            out = server.on_item(msg, peer, wall_now)
        elif kind == "MISSION_REQUEST_LIST":
            out = server.on_request_list(msg.mission_type, peer)
        elif kind in ("MISSION_REQUEST_INT", "MISSION_REQUEST"):
            out = server.on_request(msg.seq, msg.mission_type, peer, kind == "MISSION_REQUEST_INT")
        elif kind == "MISSION_CLEAR_ALL":
            out = server.on_clear_all(msg.mission_type, peer)
        elif kind == "MISSION_SET_CURRENT":
            if self.model.set_current(msg.seq):
                out = [telemetry.mission_current(self.model)]
            else:
                self.model.say(3, f"Set current denied: item {msg.seq} out of range")
        elif kind in ("PARAM_REQUEST_LIST", "PARAM_REQUEST_READ", "PARAM_SET"):
            out = self._param(kind, msg)
        elif kind == "TIMESYNC":
            if msg.tc1 == 0:
                out = [(wire.TIMESYNC, (time.monotonic_ns(), msg.ts1, peer[0], peer[1]))]
        elif kind == "SET_MODE":
            name = MODE_BY_CUSTOM.get(msg.custom_mode)
            if name is not None:
                self.model.set_mode(name)
        frames = [link.encode(o) for o in out]
        texts, server.texts = server.texts, []
        if link.wants_text(wall_now):
            frames.extend(self._statustext(link, s, t) for s, t in texts)
        link.send(frames)

    def _late_item(self, link: Link, msg: mavlink.MAVLink_message, peer: tuple[int, int]) -> None:
        """A mission item held back by :meth:`slow_mission_items`, handled now."""
        out = link.server.on_item(msg, peer, time.monotonic())
        link.send([link.encode(o) for o in out])

    def _param(self, kind: str, msg: mavlink.MAVLink_message) -> list[Any]:
        f = self.links[0].enc.factory
        values = self.model.params.values
        count = len(SPECS)

        def value(i: int) -> Any:
            spec = SPECS[i]
            return f.param_value_encode(spec.name.encode(), wire_value(spec, values[spec.name]), spec.type, count, i)

        if kind == "PARAM_REQUEST_LIST":
            return [value(i) for i in range(count)]
        name = msg.param_id if isinstance(msg.param_id, str) else msg.param_id.decode(errors="replace")
        name = name.rstrip("\x00")
        if kind == "PARAM_REQUEST_READ":
            if 0 <= msg.param_index < count:
                return [value(msg.param_index)]
            if msg.param_index >= count:
                self.model.say(4, f"Parameter index {msg.param_index} out of range")
                return []
        spec = BY_NAME.get(name)
        if spec is None:
            self.model.say(4, f"Unknown parameter {name!r}")
            return []
        if kind == "PARAM_SET":
            ok = self.model.params.set(name, from_wire(spec, msg.param_value, msg.param_type))
            if not ok:
                self.model.say(4, f"Parameter {name} rejected: value not finite")
            if name in ("SIM_WIND_SPD", "SIM_WIND_DIR"):
                self.model.wind = (values["SIM_WIND_SPD"], values["SIM_WIND_DIR"])
        return [value([s.name for s in SPECS].index(name))]

    def _command(self, link: Link, msg: mavlink.MAVLink_message, wall_now: float) -> None:
        c = Command.from_int(msg) if msg.get_type() == "COMMAND_INT" else Command.from_long(msg)
        compid = msg.target_component
        peer = (msg.get_srcSystem(), msg.get_srcComponent())
        frames: list[bytes] = []
        if compid == self.camera.compid or (compid == 0 and self.camera.handles(c)):
            result, extra = self.camera.command(c)
            frames.append(link.encode(self._ack(c.command, result, peer), self.camera.compid))
            frames.extend(link.encode(e, self.camera.compid) for e in extra)
        elif compid not in (0, 1):
            return  # addressed to a component this vehicle does not have
        else:
            try:
                result, extra = self._autopilot_command(link, c)
            except Exception:  # bad parameters must get a clear answer, not silence
                log.exception("vehicle %d: command %d failed", self.sysid, c.command)
                result, extra = commands.FAILED, []
            frames.append(link.encode(self._ack(c.command, result, peer)))
            for e in extra:
                frames.append(link.encode(e[0], e[1]) if isinstance(e, list) else link.encode(e))
        texts, self.model.texts = self.model.texts, []
        if link.wants_text(wall_now):
            frames.extend(self._statustext(link, s, t) for s, t in texts)
        link.send(frames)

    @staticmethod
    def _ack(command: int, result: int, peer: tuple[int, int]) -> mavlink.MAVLink_message:
        return mavlink.MAVLink_command_ack_message(command, result, 0, 0, peer[0], peer[1])

    def _autopilot_command(self, link: Link, c: Command) -> tuple[int, list[Any]]:
        p = c.params
        if c.command == 512:  # REQUEST_MESSAGE
            msg_id = as_int(p[0])
            if self.camera.provides(msg_id):
                return ACCEPTED, [[m, self.camera.compid] for m in self.camera.message(msg_id)]
            out = self._message_by_id(msg_id)
            return (ACCEPTED, [out]) if out is not None else (UNSUPPORTED, [])
        if c.command == 511:  # SET_MESSAGE_INTERVAL
            name = telemetry.BUILDER_BY_ID.get(as_int(p[0])) or _SLOW_IDS.get(as_int(p[0]))
            if name is None:
                return UNSUPPORTED, []
            interval_us = p[1]
            if interval_us < 0:
                link.intervals.pop(name, None)
            elif interval_us == 0:
                if name in link.default_intervals:
                    link.intervals[name] = link.default_intervals[name]
                else:
                    link.intervals.pop(name, None)
            else:
                link.intervals[name] = max(interval_us / 1e6, 0.001)
                link.due.setdefault(name, 0.0)
            return ACCEPTED, []
        if c.command == 410:  # GET_HOME_POSITION
            return ACCEPTED, [self.slow_message("HOME_POSITION")]
        if c.command == 520:  # REQUEST_AUTOPILOT_CAPABILITIES
            return ACCEPTED, [self.slow_message("AUTOPILOT_VERSION")]
        if self.camera.handles(c):
            return DENIED, []  # camera commands go to the camera component
        if c.command == 400 and p[0] == 1 and time.monotonic() < self.arm_refused_until:  # ARM, refused for now
            return commands.TEMPORARILY_REJECTED, []
        return commands.handle(self.model, c), []

    def _message_by_id(self, msg_id: int) -> Any:
        name = telemetry.BUILDER_BY_ID.get(msg_id)
        if name is not None:
            return telemetry.BUILDERS[name](self.model)
        if msg_id in _SLOW_IDS:
            return self.slow_message(_SLOW_IDS[msg_id])
        if msg_id == 148:
            return self.slow_message("AUTOPILOT_VERSION")
        return None

    async def stop(self) -> None:
        await self.camera.stop()


def _reset_parser(parser: mavlink.MAVLink) -> None:
    """Forget a partly read frame (pymavlink keeps it for the next bytes, as on a serial line)."""
    parser.buf = bytearray()
    parser.buf_index = 0
    parser.expected_length = mavlink.HEADER_LEN_V1 + 2
    parser.have_prefix_error = False
