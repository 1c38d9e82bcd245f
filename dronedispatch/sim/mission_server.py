"""The vehicle side of the MAVLink mission protocol, sans I/O.

Theory of operation: one :class:`MissionServer` per link. Messages from the ground station come in
through ``on_*`` methods with the current time; each returns the messages to send back (pymavlink
message objects, or ``(FastMessage, values)`` pairs for the messages whose opaque_id extension
pymavlink's dialect lacks). Timers are not run here: :attr:`deadline` says when :meth:`poll` must
be called next. Accepted plans go into the vehicle's :class:`MissionStore`, shared by all links.

Behaviour copies PX4 as measured (``px4-wire-facts.md``): items are requested with
MISSION_REQUEST_INT (MISSION_REQUEST once the client answers with float MISSION_ITEM), the expected
item is re-requested every 250 ms, 5 s of silence ends the transfer with "Operation timeout" and no
ACK, out-of-order items are ignored (but, as in PX4, count as a sign of life), a repeated COUNT
before any item re-requests seq 0, a COUNT after items arrived is refused as busy, and re-sending
the last item of a finished upload gets ACCEPTED again with the same opaque_id. A refused or
abandoned upload leaves the old plan in place.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from pymavlink.dialects.v20 import common as mavlink

from dronedispatch.domain.mission_items import Cmd, Frame, MissionItem, MissionType
from dronedispatch.sim import wire

Out: TypeAlias = mavlink.MAVLink_message | tuple[wire.FastMessage, tuple]

REREQUEST_S = 0.25
TRANSFER_TIMEOUT_S = 5.0
MAX_ITEMS = 10000

# MAV_MISSION_RESULT
ACCEPTED, ERROR, UNSUPPORTED_FRAME, UNSUPPORTED, NO_SPACE = 0, 1, 2, 3, 4
INVALID_PARAM5_X, INVALID_PARAM6_Y, INVALID_PARAM7, INVALID_SEQUENCE = 13, 14, 15, 16

FENCE_RETURN_POINT = 5000
FENCE_POLYGON_INCLUSION = 5001
FENCE_POLYGON_EXCLUSION = 5002
FENCE_CIRCLE_INCLUSION = 5003
FENCE_CIRCLE_EXCLUSION = 5004
RALLY_POINT = 5100

#: Commands the vehicle runs, per mission type (anything else is refused as UNSUPPORTED).
MISSION_COMMANDS = frozenset(
    {
        Cmd.NAV_WAYPOINT, Cmd.NAV_LOITER_UNLIM, Cmd.NAV_LOITER_TURNS, Cmd.NAV_LOITER_TIME,
        Cmd.NAV_RETURN_TO_LAUNCH, Cmd.NAV_LAND, Cmd.NAV_TAKEOFF, Cmd.NAV_LOITER_TO_ALT, Cmd.NAV_DELAY,
        Cmd.DO_JUMP, Cmd.DO_CHANGE_SPEED, Cmd.DO_SET_HOME, Cmd.DO_SET_ROI_LOCATION, Cmd.DO_SET_ROI_NONE,
        Cmd.DO_SET_ROI, Cmd.DO_DIGICAM_CONTROL, Cmd.DO_MOUNT_CONTROL, Cmd.DO_SET_CAM_TRIGG_DIST,
        Cmd.DO_GIMBAL_MANAGER_PITCHYAW, Cmd.IMAGE_START_CAPTURE, Cmd.IMAGE_STOP_CAPTURE,
        Cmd.VIDEO_START_CAPTURE, Cmd.VIDEO_STOP_CAPTURE, Cmd.VIDEO_START_STREAMING, Cmd.VIDEO_STOP_STREAMING,
        Cmd.DO_SET_MODE, 112, 530, 2004,  # CONDITION_DELAY, SET_CAMERA_MODE, CAMERA_TRACK_POINT
    }
)
FENCE_COMMANDS = frozenset(
    {FENCE_RETURN_POINT, FENCE_POLYGON_INCLUSION, FENCE_POLYGON_EXCLUSION, FENCE_CIRCLE_INCLUSION,
     FENCE_CIRCLE_EXCLUSION}
)
RALLY_COMMANDS = frozenset({RALLY_POINT})
_COMMANDS: dict[int, frozenset[int]] = {MissionType.MISSION: MISSION_COMMANDS, MissionType.FENCE: FENCE_COMMANDS,
             MissionType.RALLY: RALLY_COMMANDS}
GLOBAL_FRAMES = frozenset({Frame.GLOBAL, Frame.GLOBAL_RELATIVE_ALT, Frame.GLOBAL_INT,
                           Frame.GLOBAL_RELATIVE_ALT_INT, Frame.GLOBAL_TERRAIN_ALT_INT, 10})
_POSITION_COMMANDS = frozenset(
    {Cmd.NAV_WAYPOINT, Cmd.NAV_LOITER_UNLIM, Cmd.NAV_LOITER_TURNS, Cmd.NAV_LOITER_TIME, Cmd.NAV_TAKEOFF,
     Cmd.NAV_LOITER_TO_ALT, Cmd.DO_SET_ROI_LOCATION}
) | FENCE_COMMANDS | RALLY_COMMANDS

_ITEM_CRC = struct.Struct("<BHB4fiif")


def opaque_id(items: Sequence[MissionItem]) -> int:
    """PX4's plan checksum: CRC-32 (reflected, init 0, no final xor) chained over the items."""
    crc = 0xFFFFFFFF  # zlib's register is inverted on entry and exit; this cancels both
    for it in items:
        crc = zlib.crc32(
            _ITEM_CRC.pack(it.frame, it.command, int(it.autocontinue), it.param1, it.param2, it.param3,
                           it.param4, it.x, it.y, it.alt),
            crc,
        )
    return crc ^ 0xFFFFFFFF if items else 0


@dataclass
class MissionStore:
    """The plans a vehicle holds, per mission type, with their opaque ids."""

    plans: dict[int, list[MissionItem]] = field(default_factory=lambda: {0: [], 1: [], 2: []})
    ids: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0, 2: 0})
    on_change: Callable[[int], None] | None = None  # called with the mission type replaced

    def replace(self, mission_type: int, items: list[MissionItem]) -> int:
        self.plans[mission_type] = items
        self.ids[mission_type] = opaque_id(items)
        if self.on_change is not None:
            self.on_change(mission_type)
        return self.ids[mission_type]


def validate_item(mission_type: int, item: MissionItem) -> int:
    """MAV_MISSION_RESULT for one received item (ACCEPTED if the vehicle can store it)."""
    if item.command not in _COMMANDS[mission_type]:
        return UNSUPPORTED
    if item.command == Cmd.DO_JUMP and not (math.isfinite(item.param1) and math.isfinite(item.param2)):
        return INVALID_SEQUENCE
    if item.command == Cmd.DO_SET_HOME and item.param1 == 1:
        return ACCEPTED  # "use the current position": coordinates unused
    if item.command in _POSITION_COMMANDS or item.command in (Cmd.NAV_LAND, Cmd.DO_SET_HOME):
        if item.frame not in GLOBAL_FRAMES:
            return UNSUPPORTED_FRAME
        if item.command == Cmd.NAV_LAND and item.x == 0 and item.y == 0:
            return ACCEPTED  # land here
        if not -90.0 <= item.lat <= 90.0:
            return INVALID_PARAM5_X
        if not -180.0 <= item.lon <= 180.0:
            return INVALID_PARAM6_Y
        if not math.isfinite(item.alt) or abs(item.alt) > 10000:
            return INVALID_PARAM7
    return ACCEPTED


def validate_plan(mission_type: int, items: Sequence[MissionItem]) -> int:
    """Whole-plan checks done once every item has arrived."""
    if mission_type != MissionType.MISSION:
        return ACCEPTED
    for it in items:
        if it.command == Cmd.DO_JUMP and not 0 <= int(it.param1) < len(items):
            return INVALID_SEQUENCE
    return ACCEPTED


class MissionServer:
    """Mission, fence and rally transfers on one link. See the module docstring."""

    def __init__(self, store: MissionStore, sysid: int, compid: int = 1) -> None:
        self.store = store
        self._f = mavlink.MAVLink(None, srcSystem=sysid, srcComponent=compid)
        self._state = "idle"  # idle | receiving
        self._type = 0
        self._count = 0
        self._items: list[MissionItem] = []
        self._peer = (0, 0)
        self._use_int = True
        self._next_request = math.inf
        self._timeout = math.inf
        self._last_done: tuple[int, int, int] | None = None  # (type, count, opaque_id) of last upload
        self.texts: list[tuple[int, str]] = []  # STATUSTEXT (severity, text) for the link to send
        # transfers of the mission (type 0) begun by a ground station, for fault tests ("never uploaded twice")
        self.uploads_started = 0
        self.downloads_started = 0

    @property
    def receiving(self) -> bool:
        return self._state == "receiving"

    @property
    def deadline(self) -> float:
        return min(self._next_request, self._timeout)

    # -- helpers ---------------------------------------------------------------------------------------
    def _ack(self, result: int, mission_type: int, peer: tuple[int, int], opaque: int = 0) -> Out:
        return (wire.MISSION_ACK, (peer[0], peer[1], result, mission_type, opaque))

    def _request(self) -> Out:
        if self._use_int:
            return self._f.mission_request_int_encode(self._peer[0], self._peer[1], len(self._items), self._type)
        return self._f.mission_request_encode(self._peer[0], self._peer[1], len(self._items), self._type)

    def _idle(self) -> None:
        self._state = "idle"
        self._items = []
        self._next_request = self._timeout = math.inf

    def _text(self, severity: int, text: str) -> None:
        self.texts.append((severity, text))

    # -- upload ----------------------------------------------------------------------------------------
    def on_count(self, count: int, mission_type: int, peer: tuple[int, int], now: float) -> list[Out]:
        if mission_type not in _COMMANDS:
            self._text(3, f"WPM: unsupported mission type {mission_type}")
            return [self._ack(ERROR, mission_type, peer)]
        if self._state == "receiving":
            if self._items:
                self._text(3, "WPM: REJ. CMD: Busy")
                return [self._ack(ERROR, mission_type, peer)]
            # The client did not hear our first request: ask again, keep the original count.
            self._next_request = now + REREQUEST_S
            self._timeout = now + TRANSFER_TIMEOUT_S
            return [self._request()]
        if count > MAX_ITEMS:
            return [self._ack(NO_SPACE, mission_type, peer)]
        if count == 0:
            self.store.replace(mission_type, [])
            self._last_done = None
            return [self._ack(ACCEPTED, mission_type, peer, 0)]
        self._state = "receiving"
        if mission_type == MissionType.MISSION:
            self.uploads_started += 1
        self._type, self._count, self._peer = mission_type, count, peer
        self._items = []
        self._use_int = True
        self._next_request = now + REREQUEST_S
        self._timeout = now + TRANSFER_TIMEOUT_S
        return [self._request()]

    def on_item(self, msg: mavlink.MAVLink_message, peer: tuple[int, int], now: float) -> list[Out]:
        """MISSION_ITEM_INT, or the float MISSION_ITEM (after which requests switch to MISSION_REQUEST)."""
        is_int = msg.get_type() == "MISSION_ITEM_INT"
        mission_type = getattr(msg, "mission_type", 0)
        if self._state != "receiving":
            done = self._last_done
            if (
                done is not None
                and done[0] == mission_type
                and msg.seq == done[1] - 1
                and self.store.ids.get(mission_type) == done[2]
            ):
                return [self._ack(ACCEPTED, mission_type, peer, done[2])]  # our final ACK was lost
            self._text(4, "IGN MISSION_ITEM: No transfer")
            return [self._ack(ERROR, mission_type, peer)]
        if mission_type != self._type:
            self._text(4, "IGN MISSION_ITEM: Mission type mismatch")
            return [self._ack(ERROR, mission_type, peer)]
        if msg.seq != len(self._items):
            # Out of order: ignored, the re-request timer asks again. PX4 still takes it as a sign of
            # life (MavlinkMissionManager sets _time_last_recv for any item while receiving), so a
            # client answering re-requests late is not timed out.
            self._timeout = now + TRANSFER_TIMEOUT_S
            return []
        if not is_int:
            self._use_int = False
        if is_int:
            item = MissionItem.from_int_fields(
                command=msg.command, frame=msg.frame, x=msg.x, y=msg.y, z=msg.z, param1=msg.param1,
                param2=msg.param2, param3=msg.param3, param4=msg.param4, autocontinue=msg.autocontinue,
            )
        else:
            item = MissionItem(
                command=msg.command, lat=msg.x, lon=msg.y, alt=msg.z, param1=msg.param1, param2=msg.param2,
                param3=msg.param3, param4=msg.param4, frame=msg.frame, autocontinue=bool(msg.autocontinue),
            )
        result = validate_item(self._type, item)
        if result != ACCEPTED:
            self._text(3, f"Mission item {msg.seq} rejected (result {result})")
            self._idle()
            return [self._ack(result, mission_type, peer)]
        self._items.append(item)
        if len(self._items) < self._count:
            self._next_request = now + REREQUEST_S
            self._timeout = now + TRANSFER_TIMEOUT_S
            return [self._request()]
        items, mission_type = self._items, self._type
        self._idle()
        result = validate_plan(mission_type, items)
        if result != ACCEPTED:
            self._text(3, "Mission rejected: invalid jump target")
            return [self._ack(result, mission_type, peer)]
        opaque = self.store.replace(mission_type, items)
        self._last_done = (mission_type, len(items), opaque)
        return [self._ack(ACCEPTED, mission_type, peer, opaque)]

    def poll(self, now: float) -> list[Out]:
        if self._state != "receiving":
            return []
        if now >= self._timeout:
            self._text(2, "Operation timeout")
            self._idle()
            return []
        if now >= self._next_request:
            self._next_request = now + REREQUEST_S
            return [self._request()]
        return []

    # -- download and clear ----------------------------------------------------------------------------
    def on_request_list(self, mission_type: int, peer: tuple[int, int]) -> list[Out]:
        if mission_type not in _COMMANDS:
            return [self._ack(ERROR, mission_type, peer)]
        items = self.store.plans[mission_type]
        if mission_type == MissionType.MISSION:
            self.downloads_started += 1
        return [(wire.MISSION_COUNT, (len(items), peer[0], peer[1], mission_type, self.store.ids[mission_type]))]

    def on_request(self, seq: int, mission_type: int, peer: tuple[int, int], as_int: bool) -> list[Out]:
        items = self.store.plans.get(mission_type)
        if items is None or not 0 <= seq < len(items):
            self._text(4, f"WPM: request for item {seq} past the end")
            return [self._ack(ERROR, mission_type, peer)]
        it = items[seq]
        p4 = it.param4
        if as_int:
            return [self._f.mission_item_int_encode(
                peer[0], peer[1], seq, it.frame, it.command, 0, int(it.autocontinue), it.param1, it.param2,
                it.param3, p4, it.x, it.y, it.alt, mission_type)]
        return [self._f.mission_item_encode(
            peer[0], peer[1], seq, it.frame, it.command, 0, int(it.autocontinue), it.param1, it.param2,
            it.param3, p4, it.lat, it.lon, it.alt, mission_type)]

    def on_clear_all(self, mission_type: int, peer: tuple[int, int]) -> list[Out]:
        if mission_type == MissionType.ALL:
            for t in (0, 1, 2):
                self.store.replace(t, [])
        elif mission_type in _COMMANDS:
            self.store.replace(mission_type, [])
        else:
            return [self._ack(ERROR, mission_type, peer)]
        self._last_done = None
        if self._state == "receiving":
            self._idle()
        return [self._ack(ACCEPTED, mission_type, peer, 0)]
