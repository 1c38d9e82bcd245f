"""Per-vehicle state as reported by the vehicle, and the pure rules that update it.

``StateTracker.apply(msg, now)`` folds one decoded MAVLink message into a ``VehicleState`` and
says what changed: a set of "discrete" field names (armed, mode, ...) the link reports promptly
as StateChanged, and whether position/battery telemetry moved (reported throttled). No I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dronedispatch.mavlink.px4_modes import MAV_MODE_FLAG_SAFETY_ARMED, decode_mode

MAV_STATE_CRITICAL = 5
MAV_STATE_EMERGENCY = 6
LOW_BATTERY_PCT = 15.0
#: SYS_STATUS sensor bit: the autopilot's pre-arm checks pass (PX4 sets it when it could arm now).
MAV_SYS_STATUS_PREARM_CHECK = 0x10000000


@dataclass
class VehicleState:
    sysid: int
    compid: int = 1
    autopilot: int = 0
    vehicle_type: int = 0
    armed: bool = False
    base_mode: int = 0
    custom_mode: int = 0
    mode: str = "UNKNOWN"
    system_status: int = 0
    landed_state: int = 0  # MAV_LANDED_STATE; 0 = undefined (never reported)
    lat: float | None = None
    lon: float | None = None
    alt_msl: float | None = None
    alt_rel: float | None = None
    heading_deg: float | None = None
    groundspeed: float | None = None
    climb_rate: float | None = None
    vx: float | None = None
    vy: float | None = None
    battery_pct: float | None = None
    voltage: float | None = None
    home_lat: float | None = None
    home_lon: float | None = None
    home_alt: float | None = None
    mission_seq: int | None = None
    mission_total: int | None = None  # None when the vehicle holds no mission
    mission_state: int = 0  # MISSION_STATE: 0 unknown, 1 none, 2 not started, 3 active, 4 paused, 5 complete
    mission_id: int | None = None
    last_reached_seq: int | None = None
    gps_fix: int = 0
    satellites: int | None = None
    failsafe: set[str] = field(default_factory=set)
    #: SYS_STATUS pre-arm check bit: None while the vehicle has not reported it
    prearm_ok: bool | None = None
    time_boot_ms: int | None = None  # from the last GLOBAL_POSITION_INT
    #: Autopilot restarts seen since discovery: its boot clock (time_boot_ms) went backwards
    reboots: int = 0
    last_heard: float = 0.0


@dataclass
class LinkHealth:
    last_heard: float = 0.0
    packets_received: int = 0
    packets_lost: int = 0
    rtt_s: float | None = None
    lost: bool = False
    rejected_signature: int = 0
    malformed: int = 0
    unexpected: int = 0

    @property
    def loss_ratio(self) -> float:
        total = self.packets_received + self.packets_lost
        return self.packets_lost / total if total else 0.0

    def note_rtt(self, sample: float) -> None:
        # Smoothed like TCP's SRTT so one slow reply does not swing the estimate.
        self.rtt_s = sample if self.rtt_s is None else 0.875 * self.rtt_s + 0.125 * sample


class SequenceTracker:
    """Counts packets lost from gaps in the 8-bit MAVLink sequence of one vehicle.

    Components of a vehicle may share one sequence counter (PX4's camera and autopilot on the
    same link) or count separately (a companion computer). Frames from other components heard
    between two frames of one component are subtracted from its gap, which is exact for a
    shared counter and, for separate ones, errs towards reporting less loss, never more.
    """

    __slots__ = ("_last", "_last_any", "_total")

    def __init__(self) -> None:
        self._last: dict[int, tuple[int, int]] = {}  # compid -> (seq, frames heard so far)
        self._last_any: int | None = None
        self._total = 0

    @staticmethod
    def _gap(seq: int, last: int) -> int:
        gap = (seq - last - 1) & 0xFF
        # A large "gap" is really a late or repeated packet, or a sender restart.
        return gap if gap < 128 else 0

    def observe(self, compid: int, seq: int) -> int:
        """Packets missing before this one (0 for duplicates and reordered packets)."""
        total = self._total = self._total + 1
        prev = self._last.get(compid)
        last_any = self._last_any
        self._last[compid] = (seq, total)
        self._last_any = seq
        if prev is None or last_any is None or seq == (last_any + 1) & 0xFF:
            return 0  # the first from this sender, or the very next one: nothing lost
        last_seq, heard_at = prev
        others = self._total - heard_at - 1
        # With a shared counter the gap since the last frame of any component is the loss, and
        # counting it here keeps one lost packet from being counted again by each component.
        return min(max(0, self._gap(seq, last_seq) - others), self._gap(seq, last_any))


def _set(state: VehicleState, name: str, value: Any, changed: set[str]) -> None:
    if getattr(state, name) != value:
        setattr(state, name, value)
        changed.add(name)


#: A boot clock this far behind the last one is a restart, not a datagram that arrived late over UDP.
REBOOT_BACKWARDS_MS = 2_000
#: ... unless the last one was this close to the 32-bit wrap (after 49.7 days of uptime).
BOOT_CLOCK_WRAP_MS = 0xFFFFFFFF - 60_000


def _rebooted(last_ms: int | None, now_ms: int) -> bool:
    """Whether the autopilot restarted between two position reports (its time since boot went backwards)."""
    return last_ms is not None and now_ms + REBOOT_BACKWARDS_MS < last_ms and last_ms < BOOT_CLOCK_WRAP_MS


class StateTracker:
    """Applies messages from one vehicle to its state."""

    def __init__(self, state: VehicleState) -> None:
        self.state = state

    def apply(self, msg: Any, now: float) -> tuple[set[str], bool]:
        """Returns (discrete fields changed, telemetry moved)."""
        s = self.state
        changed: set[str] = set()
        handler = getattr(self, "_on_" + msg.get_type(), None)
        telemetry = False
        if handler is not None:
            telemetry = bool(handler(s, msg, changed))
        s.last_heard = now
        return changed, telemetry

    @staticmethod
    def _on_HEARTBEAT(s: VehicleState, m: Any, changed: set[str]) -> bool:
        s.autopilot = m.autopilot
        s.vehicle_type = m.type
        _set(s, "base_mode", m.base_mode, changed)
        _set(s, "custom_mode", m.custom_mode, changed)
        _set(s, "armed", bool(m.base_mode & MAV_MODE_FLAG_SAFETY_ARMED), changed)
        _set(s, "mode", decode_mode(m.autopilot, m.base_mode, m.custom_mode), changed)
        _set(s, "system_status", m.system_status, changed)
        fs = set(s.failsafe)
        fs.discard("system_critical")
        fs.discard("system_emergency")
        if m.system_status == MAV_STATE_CRITICAL:
            fs.add("system_critical")
        elif m.system_status == MAV_STATE_EMERGENCY:
            fs.add("system_emergency")
        _set(s, "failsafe", fs, changed)
        changed.discard("base_mode")
        changed.discard("custom_mode")
        return False

    @staticmethod
    def _on_GLOBAL_POSITION_INT(s: VehicleState, m: Any, changed: set[str]) -> bool:
        s.lat = m.lat / 1e7
        s.lon = m.lon / 1e7
        s.alt_msl = m.alt / 1000.0
        s.alt_rel = m.relative_alt / 1000.0
        s.vx, s.vy = m.vx / 100.0, m.vy / 100.0
        s.groundspeed = math.hypot(s.vx, s.vy)
        s.climb_rate = -m.vz / 100.0
        if m.hdg != 65535:
            s.heading_deg = m.hdg / 100.0
        if _rebooted(s.time_boot_ms, m.time_boot_ms):
            s.reboots += 1
            changed.add("reboots")
        s.time_boot_ms = m.time_boot_ms
        return True

    @staticmethod
    def _on_VFR_HUD(s: VehicleState, m: Any, changed: set[str]) -> bool:
        s.groundspeed = m.groundspeed
        s.climb_rate = m.climb
        s.heading_deg = float(m.heading)
        return False

    @staticmethod
    def _set_battery(s: VehicleState, pct: int, changed: set[str]) -> bool:
        if pct < 0:
            return False
        s.battery_pct = float(pct)
        fs = set(s.failsafe)
        if pct < LOW_BATTERY_PCT:
            fs.add("battery_low")
        else:
            fs.discard("battery_low")
        _set(s, "failsafe", fs, changed)
        return True

    @classmethod
    def _on_SYS_STATUS(cls, s: VehicleState, m: Any, changed: set[str]) -> bool:
        if m.onboard_control_sensors_present & MAV_SYS_STATUS_PREARM_CHECK:
            _set(s, "prearm_ok", bool(m.onboard_control_sensors_health & MAV_SYS_STATUS_PREARM_CHECK), changed)
        if m.voltage_battery != 65535:
            s.voltage = m.voltage_battery / 1000.0
        return cls._set_battery(s, m.battery_remaining, changed)

    @classmethod
    def _on_BATTERY_STATUS(cls, s: VehicleState, m: Any, changed: set[str]) -> bool:
        if m.id != 0:
            return False
        cells = [v for v in m.voltages if v != 65535]
        if cells:
            s.voltage = sum(cells) / 1000.0
        return cls._set_battery(s, m.battery_remaining, changed)

    @staticmethod
    def _on_EXTENDED_SYS_STATE(s: VehicleState, m: Any, changed: set[str]) -> bool:
        _set(s, "landed_state", m.landed_state, changed)
        return False

    @staticmethod
    def _on_HOME_POSITION(s: VehicleState, m: Any, changed: set[str]) -> bool:
        home = (m.latitude / 1e7, m.longitude / 1e7, m.altitude / 1000.0)
        if (s.home_lat, s.home_lon, s.home_alt) != home:
            s.home_lat, s.home_lon, s.home_alt = home
            changed.add("home")
        return False

    @staticmethod
    def _on_MISSION_CURRENT(s: VehicleState, m: Any, changed: set[str]) -> bool:
        total = getattr(m, "total", 65535)
        _set(s, "mission_seq", m.seq, changed)
        _set(s, "mission_total", None if total == 65535 else total, changed)
        _set(s, "mission_state", getattr(m, "mission_state", 0), changed)
        _set(s, "mission_id", getattr(m, "mission_id", 0), changed)
        return False

    @staticmethod
    def _on_MISSION_ITEM_REACHED(s: VehicleState, m: Any, changed: set[str]) -> bool:
        _set(s, "last_reached_seq", m.seq, changed)
        return False

    @staticmethod
    def _on_GPS_RAW_INT(s: VehicleState, m: Any, changed: set[str]) -> bool:
        s.satellites = None if m.satellites_visible == 255 else m.satellites_visible
        had_fix = s.gps_fix >= 3
        s.gps_fix = m.fix_type
        fs = set(s.failsafe)
        if had_fix and m.fix_type < 3:
            fs.add("gps_lost")
        elif m.fix_type >= 3:
            fs.discard("gps_lost")
        _set(s, "failsafe", fs, changed)
        return False


class StatusTextAssembler:
    """Joins STATUSTEXT chunks (MAVLink 2: a non-zero ``id``, numbered by ``chunk_seq``; the
    last chunk is shorter than the 50-character field). Single messages pass straight through."""

    FIELD = 50
    MAX_PENDING = 8

    def __init__(self) -> None:
        self._pending: dict[int, dict[int, str]] = {}

    def feed(self, text: str, msg_id: int, chunk_seq: int) -> str | None:
        if msg_id == 0:
            return text
        chunks = self._pending.setdefault(msg_id, {})
        chunks[chunk_seq] = text
        if len(text) >= self.FIELD:
            if len(self._pending) > self.MAX_PENDING:  # a lost last chunk must not pile up
                self._pending.pop(next(iter(self._pending)))
            return None
        del self._pending[msg_id]
        return "".join(chunks[k] for k in sorted(chunks))
