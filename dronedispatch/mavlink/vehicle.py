"""One vehicle as the rest of dronedispatch sees it: state, link health and capabilities.

``Vehicle`` is a facade: ``.mission``, ``.command`` and ``.params`` each drive the sans-I/O
transactions of their protocol module through ``Vehicle.run``, which sends what a transaction
emits, feeds it the vehicle's replies (routed here by the link) and wakes it at its deadline.
Failures surface as the typed errors of :mod:`dronedispatch.mavlink.errors`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, Protocol

from dronedispatch.domain.mission_items import Cmd, Frame, MissionItem, MissionType
from dronedispatch.mavlink import px4_modes
from dronedispatch.mavlink.command_protocol import CommandTransaction
from dronedispatch.mavlink.errors import CommandDenied, LinkError, LinkFenced, UploadFailed
from dronedispatch.mavlink.mission_protocol import MissionClear, MissionDownload, MissionUpload, mission_checksum
from dronedispatch.mavlink.param_protocol import MAV_PARAM_TYPE_REAL32, ParamFetchAll, ParamRead, ParamSet
from dronedispatch.mavlink.state import LinkHealth, VehicleState
from dronedispatch.mavlink.transaction import Transaction

log = logging.getLogger(__name__)

MAV_RESULT_UNSUPPORTED = 3
MAV_RESULT_ACCEPTED = 0
ARM_FORCE_MAGIC = 21196
MAV_SEVERITY_WARNING = 4


class VehicleLink(Protocol):
    """What a vehicle needs from the link that found it (:class:`~.link.MavlinkLink` provides it).

    Stated here so that the vehicle does not import the link, which creates vehicles: no cycle.
    """

    source_system: int

    def send_to(self, vehicle: Vehicle, msg: Any) -> None: ...

    def sending_allowed(self) -> bool: ...

    def poll_for_reply(self) -> None: ...


class Vehicle:
    def __init__(self, link: VehicleLink, sysid: int, compid: int) -> None:
        self._link = link
        self.sysid = sysid
        self.compid = compid
        self.state = VehicleState(sysid=sysid, compid=compid)
        self.health = LinkHealth()
        self.mission = MissionCapability(self)
        self.command = CommandCapability(self)
        self.params = ParamCapability(self)
        self._active: set[Transaction] = set()
        self._mission_lock = asyncio.Lock()
        self._param_lock = asyncio.Lock()
        self._command_locks: dict[tuple[int, int], asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"<Vehicle {self.sysid} {self.state.mode} armed={self.state.armed}>"

    @property
    def is_px4(self) -> bool:
        return self.state.autopilot != px4_modes.MAV_AUTOPILOT_ARDUPILOTMEGA

    # -- transaction driver -------------------------------------------------------------------

    def send(self, msg: Any) -> None:
        self._link.send_to(self, msg)

    async def run(self, tx: Transaction) -> Any:
        """Drive ``tx`` to its end; returns its result or raises its error."""
        if not self._link.sending_allowed():
            raise LinkFenced(self.sysid)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        timer: asyncio.TimerHandle | None = None
        armed_for: float | None = None
        if isinstance(tx, CommandTransaction):
            tx.our_system = self._link.source_system

        def settle(out: list[Any]) -> None:
            nonlocal timer, armed_for
            for m in out:
                self.send(m)
            if out:
                tx.idle(loop.time())
                if tx.poll_for_reply and not tx.done:
                    self._link.poll_for_reply()
            if tx.done:
                if timer is not None:
                    timer.cancel()
                if not done.done():
                    done.set_result(None)
                return
            deadline = tx.deadline
            if deadline is None or armed_for is None or deadline < armed_for:
                # Re-arm only for an earlier deadline; a later one is picked up when the armed
                # timer fires (most messages push the deadline later: no timer churn per message).
                if timer is not None:
                    timer.cancel()
                    timer = None
                armed_for = deadline
                if deadline is not None:
                    timer = loop.call_at(deadline, fire)

        def fire() -> None:
            nonlocal timer, armed_for
            timer = None
            armed_for = None
            now = loop.time()
            if tx.deadline is not None and tx.deadline > now:
                settle([])  # the machine moved its deadline later meanwhile
                return
            settle(tx.on_timeout(now))

        tx._settle = settle  # type: ignore[attr-defined]
        self._active.add(tx)
        try:
            settle(tx.start(loop.time()))
            await done
        finally:
            self._active.discard(tx)
            if timer is not None:
                timer.cancel()
            self.health.unexpected += tx.unexpected
        if tx.error is not None:
            raise tx.error
        return tx.result

    def _dispatch(self, msg: Any, compid: int, now: float) -> None:
        """Called by the link with every decoded message from this vehicle."""
        if not self._active:
            return
        mtype = msg.get_type()
        for tx in list(self._active):
            if mtype == "STATUSTEXT":
                if msg.severity <= MAV_SEVERITY_WARNING and hasattr(tx, "status_text"):
                    tx.status_text = _text(msg)  # type: ignore[attr-defined]
                continue
            if tx.target_component not in (0, compid) and mtype != "MISSION_CURRENT":
                continue
            tx._settle(tx.receive(msg, now))  # type: ignore[attr-defined]

    def _cancel_command(self, command: int) -> bool:
        for tx in list(self._active):
            if isinstance(tx, CommandTransaction) and tx.command == command:
                tx._settle(tx.cancel())  # type: ignore[attr-defined]
                return True
        return False

    def _command_lock(self, compid: int, command: int) -> asyncio.Lock:
        return self._command_locks.setdefault((compid, command), asyncio.Lock())


def _text(msg: Any) -> str:
    t = msg.text
    return t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t)


class MissionCapability:
    def __init__(self, vehicle: Vehicle) -> None:
        self._v = vehicle

    async def upload(self, items: list[MissionItem], mission_type: MissionType = MissionType.MISSION) -> int:
        """Store ``items`` on the vehicle; returns the vehicle's opaque_id for the plan.

        Never reports failure for a plan the vehicle accepted: when the final ACK never came,
        the plan is read back and compared before giving up.
        """
        v = self._v
        async with v._mission_lock:
            tx = MissionUpload(v.sysid, v.compid, items, mission_type, rtt_s=v.health.rtt_s)
            try:
                opaque: int = await v.run(tx)
            except UploadFailed as exc:
                if tx.phase != "ack" or exc.ack_result is not None or not items:
                    raise
                log.info("vehicle %d: no ACK for the last item; reading the plan back", v.sysid)
                try:
                    stored, stored_id = await v.run(
                        MissionDownload(v.sysid, v.compid, mission_type, rtt_s=v.health.rtt_s)
                    )
                except LinkError:
                    raise exc from None
                if mission_checksum(stored) != tx.checksum:
                    raise
                opaque = stored_id or tx.checksum
            log.debug("vehicle %d: %d items stored (opaque_id %d, %d resends)", v.sysid, len(items), opaque, tx.resends)
            if mission_type == MissionType.MISSION:
                # a new plan starts at its first item (PX4 resets its current item); the cached current item
                # belonged to the old plan and, read against the new one, could put a drone "on scene" at take-off
                v.state.mission_seq = 0
            return opaque

    async def download(self, mission_type: MissionType = MissionType.MISSION) -> list[MissionItem]:
        v = self._v
        async with v._mission_lock:
            items, _ = await v.run(MissionDownload(v.sysid, v.compid, mission_type, rtt_s=v.health.rtt_s))
            return list(items)

    async def clear(self, mission_type: MissionType = MissionType.MISSION) -> None:
        v = self._v
        async with v._mission_lock:
            await v.run(MissionClear(v.sysid, v.compid, mission_type, rtt_s=v.health.rtt_s))


class CommandCapability:
    def __init__(self, vehicle: Vehicle) -> None:
        self._v = vehicle

    async def _run(self, tx: CommandTransaction) -> int:
        v = self._v
        async with v._command_lock(tx.target_component, tx.command):
            result: int = await v.run(tx)
            if tx.rtt_sample is not None:
                v.health.note_rtt(tx.rtt_sample)
            return result

    async def long(
        self,
        cmd: int,
        p1: float = 0.0,
        p2: float = 0.0,
        p3: float = 0.0,
        p4: float = 0.0,
        p5: float = 0.0,
        p6: float = 0.0,
        p7: float = 0.0,
        *,
        target_component: int = 1,
    ) -> int:
        """COMMAND_LONG; returns MAV_RESULT_ACCEPTED or raises CommandDenied / CommandTimeout."""
        v = self._v
        params = (p1, p2, p3, p4, p5, p6, p7)
        return await self._run(CommandTransaction(v.sysid, target_component, cmd, params, rtt_s=v.health.rtt_s))

    async def int_(
        self,
        cmd: int,
        frame: int,
        x: float,
        y: float,
        z: float,
        p1: float = 0.0,
        p2: float = 0.0,
        p3: float = 0.0,
        p4: float = 0.0,
        *,
        target_component: int = 1,
    ) -> int:
        """COMMAND_INT. ``x``/``y`` are latitude/longitude in degrees (sent as degrees * 1e7)."""
        v = self._v
        params = (p1, p2, p3, p4, x, y, z)
        return await self._run(
            CommandTransaction(v.sysid, target_component, cmd, params, use_int=True, frame=frame, rtt_s=v.health.rtt_s)
        )

    def cancel(self, cmd: int) -> bool:
        """Send COMMAND_CANCEL for an in-flight command; its caller gets CommandDenied(6)."""
        return self._v._cancel_command(int(cmd))

    # -- helpers ------------------------------------------------------------------------------

    async def arm(self, force: bool = False) -> int:
        return await self.long(Cmd.COMPONENT_ARM_DISARM, 1, ARM_FORCE_MAGIC if force else 0)

    async def disarm(self, force: bool = False) -> int:
        return await self.long(Cmd.COMPONENT_ARM_DISARM, 0, ARM_FORCE_MAGIC if force else 0)

    async def mission_start(self, first: int = 0, last: int = -1) -> int:
        """MAV_CMD_MISSION_START from item ``first``. PX4 switches to AUTO.MISSION and arms
        itself when disarmed and ready. ``last`` < 0 leaves the end of the plan (param2 = 0)."""
        return await self.long(Cmd.MISSION_START, first, max(last, 0))

    async def set_mode(self, mode: str) -> int:
        """Switch flight mode by name (PX4 names such as "AUTO.LOITER"; ArduPilot copter names
        on ArduPilot), with MAV_CMD_DO_SET_MODE."""
        v = self._v
        if v.is_px4:
            main, sub = px4_modes.encode_px4(mode)
            return await self.long(Cmd.DO_SET_MODE, px4_modes.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, main, sub)
        number = px4_modes.encode_ardupilot_copter(mode)
        return await self.long(Cmd.DO_SET_MODE, px4_modes.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, number)

    async def _or_mode(self, cmd: int, mode: str, *params: float) -> int:
        try:
            return await self.long(cmd, *params)
        except CommandDenied as exc:
            if exc.result != MAV_RESULT_UNSUPPORTED:
                raise
        return await self.set_mode(mode)

    async def return_to_launch(self) -> int:
        """MAV_CMD_NAV_RETURN_TO_LAUNCH (falls back to the AUTO.RTL mode if unsupported)."""
        return await self._or_mode(Cmd.NAV_RETURN_TO_LAUNCH, "AUTO.RTL" if self._v.is_px4 else "RTL")

    async def land(self) -> int:
        """MAV_CMD_NAV_LAND at the current position (falls back to the AUTO.LAND mode)."""
        nan = math.nan
        return await self._or_mode(Cmd.NAV_LAND, "AUTO.LAND" if self._v.is_px4 else "LAND", 0, 0, 0, nan, nan, nan, nan)

    async def pause(self) -> int:
        """Hold position. On PX4 this is the AUTO.LOITER mode (what QGroundControl and MAVSDK
        do; PX4 does not act on DO_PAUSE_CONTINUE); on ArduPilot DO_PAUSE_CONTINUE(0)."""
        if self._v.is_px4:
            return await self.set_mode("AUTO.LOITER")
        return await self.long(Cmd.DO_PAUSE_CONTINUE, 0)

    async def resume(self) -> int:
        """Continue the mission from the current item: AUTO.MISSION on PX4."""
        if self._v.is_px4:
            return await self.set_mode("AUTO.MISSION")
        return await self.long(Cmd.DO_PAUSE_CONTINUE, 1)

    async def reposition(
        self, lat: float, lon: float, alt: float, speed: float = -1.0, yaw_deg: float = math.nan
    ) -> int:
        """Fly to a point and hold there (DO_REPOSITION, switches mode). ``alt`` is AMSL."""
        return await self.int_(Cmd.DO_REPOSITION, Frame.GLOBAL_INT, lat, lon, alt, speed, 1, 0, yaw_deg)

    async def orbit(
        self,
        lat: float,
        lon: float,
        alt: float,
        radius_m: float,
        velocity_m_s: float = math.nan,
        yaw_behaviour: int = 0,
    ) -> int:
        """Circle a point (DO_ORBIT, PX4's orbit mode; radius 1–100 m). ``alt`` is AMSL."""
        return await self.int_(Cmd.DO_ORBIT, Frame.GLOBAL_INT, lat, lon, alt, radius_m, velocity_m_s, yaw_behaviour, 0)

    async def request_message(self, msg_id: int, p2: float = 0, p3: float = 0, *, target_component: int = 1) -> int:
        return await self.long(Cmd.REQUEST_MESSAGE, msg_id, p2, p3, target_component=target_component)

    async def set_message_interval(self, msg_id: int, rate_hz: float | None, *, target_component: int = 1) -> int:
        """Stream ``msg_id`` at ``rate_hz``; 0 stops it, None restores the vehicle's default."""
        if rate_hz is None:
            interval = 0.0
        elif rate_hz <= 0:
            interval = -1.0
        else:
            interval = 1e6 / rate_hz
        return await self.long(Cmd.SET_MESSAGE_INTERVAL, msg_id, interval, target_component=target_component)


class ParamCapability:
    def __init__(self, vehicle: Vehicle) -> None:
        self._v = vehicle
        self._types: dict[str, int] = {}
        self.cache: dict[str, float | int] = {}

    async def get(self, name: str) -> float | int:
        v = self._v
        async with v._param_lock:
            value, ptype = await v.run(ParamRead(v.sysid, v.compid, name, bytewise=v.is_px4))
        self._types[name] = ptype
        self.cache[name] = value
        return value  # type: ignore[no-any-return]

    async def set(self, name: str, value: float | int) -> float | int:
        """Set a parameter; returns the value the vehicle confirmed."""
        v = self._v
        if name not in self._types:
            await self.get(name)
        ptype = self._types.get(name, MAV_PARAM_TYPE_REAL32)
        async with v._param_lock:
            confirmed = await v.run(ParamSet(v.sysid, v.compid, name, value, ptype, bytewise=v.is_px4))
        self.cache[name] = confirmed
        return confirmed  # type: ignore[no-any-return]

    async def fetch_all(self) -> dict[str, float | int]:
        v = self._v
        async with v._param_lock:
            values: dict[str, float | int] = await v.run(ParamFetchAll(v.sysid, v.compid, bytewise=v.is_px4))
        self.cache.update(values)
        return values
