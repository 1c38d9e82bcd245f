"""MavlinkLink: every vehicle on every endpoint, in one asyncio shell.

Bytes from each endpoint are cut into frames (per peer, so stream transports reassemble);
each frame is checked against its vehicle's signing key, counted for loss, and decoded only when
someone reads that message type. Decoded messages update the vehicle's state (pure rules in
:mod:`state`), feed its running transactions, and become events for listeners. Outgoing messages
are packed by a per-vehicle encoder, so each vehicle has its own sequence and signing key, and
go back to the endpoint and address the vehicle was last heard from.

A 4 Hz tick sends the GCS heartbeat every second (to each known vehicle and to every endpoint
that has a fixed peer) and notices silent vehicles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from pymavlink.dialects.v20 import common as mav

from dronedispatch.mavlink import wire
from dronedispatch.mavlink.errors import VehicleNotFound
from dronedispatch.mavlink.events import (
    StateChanged,
    StatusText,
    Telemetry,
    VehicleDiscovered,
    VehicleEvent,
    VehicleLost,
    VehicleRecovered,
)
from dronedispatch.mavlink.frames import Frame, FrameSplitter, SignatureGate, split_datagram
from dronedispatch.mavlink.state import SequenceTracker, StateTracker, StatusTextAssembler
from dronedispatch.mavlink.transport import Endpoint, Peer, connection_strings, make_endpoint, parse_url
from dronedispatch.mavlink.vehicle import Vehicle

log = logging.getLogger(__name__)

MAV_TYPE_GCS = 6
MAV_AUTOPILOT_INVALID = 8
MAV_STATE_ACTIVE = 4
TICK_S = 0.25
#: A held-back position goes out after this many throttle periods if no newer one came.
FALLBACK_PERIODS = 2.0
#: Fields re-read from the vehicle after a link recovery (never assumed unchanged).
MISSION_FIELDS = ("mission_seq", "mission_total", "mission_state", "mission_id")


class _VehicleLink:
    """Per-vehicle plumbing the facade does not show: route, encoder, trackers."""

    __slots__ = (
        "encoder",
        "endpoint",
        "gate",
        "last_telemetry",
        "peer",
        "pending_position",
        "seq",
        "telemetry_dirty",
        "telemetry_pending",
        "texts",
        "tracker",
    )

    def __init__(self, vehicle: Vehicle, encoder: Any, gate: SignatureGate | None) -> None:
        self.encoder = encoder
        self.gate = gate
        self.tracker = StateTracker(vehicle.state)
        # One per route: a vehicle heard on two links (GCS and API) numbers each separately.
        self.seq: dict[tuple[int, Peer], SequenceTracker] = {}
        self.endpoint: Endpoint | None = None
        self.peer: Peer | None = None
        self.last_telemetry = 0.0
        self.telemetry_pending = False
        self.telemetry_dirty = False
        self.pending_position: Frame | None = None
        self.texts = StatusTextAssembler()


class MavlinkLink:
    def __init__(
        self,
        urls: list[str] | str,
        *,
        source_system: int = 255,
        source_component: int = 190,
        signing_keys: dict[int, bytes] | None = None,
        lost_after_s: float = 3.0,
        telemetry_rate_hz: float = 4.0,
        busy_poll_s: float = 0.001,
        may_send: Callable[[], bool] | None = None,
    ) -> None:
        """``may_send``, when given, is asked before every datagram leaves: while it says no, nothing
        is sent (not even a heartbeat) and new transactions fail with :class:`LinkFenced`. A node
        that holds this link under a lease passes its lease's fence, so a node that lost the lease
        (paused, cut off) never sends another byte to the vehicle."""
        if isinstance(urls, str):
            urls = connection_strings(urls)
        self.specs = [parse_url(u) for u in urls]
        self.source_system = source_system
        self.source_component = source_component
        self.signing_keys = dict(signing_keys or {})
        for sysid, key in self.signing_keys.items():
            if len(key) != 32:
                raise ValueError(f"signing key for vehicle {sysid} must be 32 bytes, got {len(key)}")
        self.lost_after_s = lost_after_s
        self.telemetry_period = 1.0 / telemetry_rate_hz if telemetry_rate_hz > 0 else 0.0
        self.vehicles: dict[int, Vehicle] = {}
        self.endpoints: list[Endpoint] = []
        self.malformed = 0
        self.unknown_sysid_frames = 0
        self._links: dict[int, _VehicleLink] = {}
        self._splitters: dict[tuple[int, Peer], FrameSplitter] = {}
        self._listeners: list[Callable[[VehicleEvent], None]] = []
        self._decoder = wire.MAVLink(None)
        self._plain_encoder = wire.new_encoder(source_system, source_component)
        self._waiters: dict[int, list[asyncio.Future[Vehicle]]] = {}
        self._tick_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._boot = time.monotonic()
        self.busy_poll_s = busy_poll_s
        self.may_send = may_send
        self.fenced_sends = 0
        self._poll_deadline = 0.0
        self._polling = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            for spec in self.specs:
                ep = make_endpoint(spec, self._on_data)
                await ep.open()
                self.endpoints.append(ep)
        except BaseException:
            await self.stop()
            raise
        self._tick_task = asyncio.create_task(self._tick(), name="mavlink link tick")

    async def stop(self) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
            self._tick_task = None
        for ep in self.endpoints:
            await ep.close()
        self.endpoints.clear()

    async def __aenter__(self) -> MavlinkLink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- public -------------------------------------------------------------------------------

    def add_listener(self, callback: Callable[[VehicleEvent], None]) -> Callable[[], None]:
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    async def wait_vehicle(self, sysid: int, timeout: float) -> Vehicle:  # noqa: ASYNC109 (public interface)
        """The vehicle with ``sysid`` once its first heartbeat arrived; VehicleNotFound after ``timeout``."""
        if sysid in self.vehicles:
            return self.vehicles[sysid]
        fut: asyncio.Future[Vehicle] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(sysid, []).append(fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise VehicleNotFound(sysid) from None
        finally:
            waiters = self._waiters.get(sysid, [])
            if fut in waiters:
                waiters.remove(fut)

    def poll_for_reply(self) -> None:
        """Keep the event loop polling the sockets, not sleeping, for the next ``busy_poll_s``.

        For a transfer waiting on a vehicle's reply: waking from sleep and running cold costs
        more than the vehicle's own turnaround, once per item. Each loop pass with a callback
        ready polls without blocking, so the reply is read as soon as it lands.
        """
        if self.busy_poll_s <= 0 or self._loop is None:
            return
        self._poll_deadline = self._loop.time() + self.busy_poll_s
        if not self._polling:
            self._polling = True
            self._loop.call_soon(self._poll)

    def _poll(self) -> None:
        if self._loop is not None and self._loop.time() < self._poll_deadline:
            self._loop.call_soon(self._poll)
        else:
            self._polling = False

    def sending_allowed(self) -> bool:
        return self.may_send is None or self.may_send()

    def _send(self, endpoint: Endpoint, data: bytes, peer: Peer) -> None:
        """Every byte to a vehicle leaves here, checked against the fence first."""
        if self.may_send is not None and not self.may_send():
            if self.fenced_sends == 0:
                log.warning("link %s is fenced: sending nothing more to its vehicles", self.specs)
            self.fenced_sends += 1
            return
        endpoint.send(data, peer)

    def send_to(self, vehicle: Vehicle, msg: Any) -> None:
        vl = self._links[vehicle.sysid]
        if vl.endpoint is None:
            return
        self._send(vl.endpoint, wire.pack(vl.encoder, msg), vl.peer)

    # -- receive path -------------------------------------------------------------------------

    def _emit(self, event: VehicleEvent) -> None:
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception:
                log.exception("link listener failed on %s", type(event).__name__)

    def _on_data(self, endpoint: Endpoint, data: bytes, peer: Peer) -> None:
        if endpoint.datagram:
            frames, garbage = split_datagram(data, wire.crc_matches)
        else:
            key = (id(endpoint), peer)
            splitter = self._splitters.get(key)
            if splitter is None:
                # A stream has one peer at a time, a new one per connection: the splitter of the
                # old connection goes, with any frame the drop cut short.
                for old in [k for k in self._splitters if k[0] == key[0]]:
                    del self._splitters[old]
                splitter = self._splitters[key] = FrameSplitter(wire.crc_matches)
            before = splitter.garbage_bytes
            frames = splitter.feed(data)
            garbage = splitter.garbage_bytes - before
        if garbage:
            self.malformed += 1
            log.debug("%s %s: %d bytes outside MAVLink frames", endpoint.spec.url, peer, garbage)
        for frame in frames:
            try:
                self._on_frame(frame, endpoint, peer)
            except Exception:
                # Nothing a peer sends may take the link down: count it and move on.
                self.malformed += 1
                log.exception("frame from %d/%d (msg %d) failed", frame.sysid, frame.compid, frame.msgid)

    def _on_frame(self, frame: Frame, endpoint: Endpoint, peer: Peer) -> None:
        sysid = frame.sysid
        if sysid == self.source_system:
            return  # our own traffic, or another ground station sharing our id
        vehicle = self.vehicles.get(sysid)
        vl = self._links.get(sysid)
        gate = vl.gate if vl is not None else None
        if gate is None and sysid in self.signing_keys:
            gate = SignatureGate(self.signing_keys[sysid])
        if gate is not None and not gate.check(frame):
            if vehicle is not None:
                vehicle.health.rejected_signature += 1
            else:
                self.unknown_sysid_frames += 1
            kind = "badly signed" if frame.signed else "unsigned"
            log.debug("vehicle %d: dropped %s frame (msg %d)", sysid, kind, frame.msgid)
            return
        msg = None
        if frame.msgid == wire.MSG_GLOBAL_POSITION_INT and vl is not None and self._defer_position(vl, frame):
            pass  # decoded later, when the telemetry throttle lets the next update out
        elif frame.msgid in wire.INTERESTING:
            try:
                msg = wire.decode(frame, self._decoder)
            except (wire.MAVError, ValueError, IndexError) as exc:
                if vehicle is not None:
                    vehicle.health.malformed += 1
                self.malformed += 1
                log.debug("vehicle %d: malformed msg %d: %s", sysid, frame.msgid, exc)
                return
            wire.add_extensions(frame, msg)
        if vehicle is None:
            if msg is None or frame.msgid != wire.MSG_HEARTBEAT or not self._is_vehicle_heartbeat(msg):
                self.unknown_sysid_frames += 1
                return
            vehicle, vl = self._discover(frame, gate)
            new = True
        else:
            new = False
        assert vl is not None
        now = self._loop.time() if self._loop is not None else time.monotonic()
        if msg is not None and not new and vehicle._active:
            # A transfer in progress answers first: the vehicle waits on the reply, while the
            # bookkeeping below can run as it travels.
            vehicle._dispatch(msg, frame.compid, now)
        h = vehicle.health
        h.packets_received += 1
        route = (id(endpoint), peer)
        tracker = vl.seq.get(route)
        if tracker is None:
            tracker = vl.seq[route] = SequenceTracker()
        h.packets_lost += tracker.observe(frame.compid, frame.seq)
        h.last_heard = now
        vl.endpoint, vl.peer = endpoint, peer
        if h.lost:
            self._recover(vehicle, vl)
        if msg is None:
            return
        if new:
            vl.tracker.apply(msg, now)  # quietly: listeners hear of it first as VehicleDiscovered
            self._announce(vehicle)
            return
        self._on_message(vehicle, vl, msg, frame.compid, now)

    @staticmethod
    def _is_vehicle_heartbeat(msg: Any) -> bool:
        return bool(msg.type != MAV_TYPE_GCS and msg.autopilot != MAV_AUTOPILOT_INVALID)

    def _discover(self, frame: Frame, gate: SignatureGate | None) -> tuple[Vehicle, _VehicleLink]:
        vehicle = Vehicle(self, frame.sysid, frame.compid)
        encoder = wire.new_encoder(self.source_system, self.source_component, self.signing_keys.get(frame.sysid))
        vl = _VehicleLink(vehicle, encoder, gate)
        self.vehicles[frame.sysid] = vehicle
        self._links[frame.sysid] = vl
        log.info("vehicle %d discovered (component %d)", frame.sysid, frame.compid)
        return vehicle, vl

    def _announce(self, vehicle: Vehicle) -> None:
        """VehicleDiscovered once the first heartbeat is in the state (mode, type, armed)."""
        self._emit(VehicleDiscovered(vehicle))
        for fut in self._waiters.pop(vehicle.sysid, []):
            if not fut.done():
                fut.set_result(vehicle)

    def _on_message(self, vehicle: Vehicle, vl: _VehicleLink, msg: Any, compid: int, now: float) -> None:
        mtype = msg.get_type()
        if compid == vehicle.compid or mtype == "STATUSTEXT":
            changed, moved = vl.tracker.apply(msg, now)
            if mtype == "HEARTBEAT":
                # Every heartbeat from the autopilot proves it is there, whatever else it said.
                vehicle.state.last_heard = now
            if changed:
                self._emit(StateChanged(vehicle, frozenset(changed)))
            if moved:
                self._telemetry(vehicle, vl, now, fix=mtype == "GLOBAL_POSITION_INT")
        if mtype == "STATUSTEXT":
            raw = msg.text.decode("utf-8", "replace") if isinstance(msg.text, bytes) else str(msg.text)
            text = vl.texts.feed(raw, getattr(msg, "id", 0), getattr(msg, "chunk_seq", 0))
            if text is not None:
                self._emit(StatusText(vehicle, msg.severity, text))
        elif mtype == "TIMESYNC":
            self._on_timesync(vehicle, msg)

    def _defer_position(self, vl: _VehicleLink, frame: Frame) -> bool:
        """Keep a position frame undecoded while the throttle holds telemetry back.

        PX4 streams GLOBAL_POSITION_INT at ~50 Hz and listeners get at most telemetry_rate_hz.
        The first position after each throttle period goes out at once, so an event's fix is
        only as old as its processing; the ones in between are only kept, newest first, for a
        fallback flush should the stream stop.
        """
        if self._loop is None or self._loop.time() - vl.last_telemetry >= self.telemetry_period:
            vl.pending_position = None  # superseded by the one decoded now
            return False
        vl.pending_position = frame
        self._schedule_flush(vl)
        return True

    def _telemetry(self, vehicle: Vehicle, vl: _VehicleLink, now: float, *, fix: bool) -> None:
        if fix and now - vl.last_telemetry >= self.telemetry_period:
            self._emit_telemetry(vehicle, vl, now)
            return
        # A change without a new fix (the battery) rides on the next fix, which streams at
        # tens of hertz, rather than going out with an older one; the flush covers a silent stream.
        vl.telemetry_dirty = True
        self._schedule_flush(vl)

    def _emit_telemetry(self, vehicle: Vehicle, vl: _VehicleLink, now: float) -> None:
        frame, vl.pending_position = vl.pending_position, None
        if frame is not None:
            try:
                msg = wire.decode(frame, self._decoder)
            except (wire.MAVError, ValueError, IndexError):
                vehicle.health.malformed += 1
                self.malformed += 1
            else:
                vl.tracker.apply(msg, now)
                vehicle._dispatch(msg, frame.compid, now)
        vl.last_telemetry = now
        vl.telemetry_dirty = False
        self._emit(Telemetry(vehicle))

    def _flush_due(self, vl: _VehicleLink) -> float:
        return vl.last_telemetry + FALLBACK_PERIODS * self.telemetry_period

    def _schedule_flush(self, vl: _VehicleLink) -> None:
        if vl.telemetry_pending or self._loop is None:
            return
        vl.telemetry_pending = True
        self._loop.call_at(self._flush_due(vl), self._flush_telemetry, vl)

    def _flush_telemetry(self, vl: _VehicleLink) -> None:
        """Fallback: what is held back goes out when no fix carried it for FALLBACK_PERIODS."""
        vl.telemetry_pending = False
        vehicle = self.vehicles.get(vl.tracker.state.sysid)
        if vehicle is None or self._loop is None or (vl.pending_position is None and not vl.telemetry_dirty):
            return
        now = self._loop.time()
        if now < self._flush_due(vl) - 0.005:  # (timers may fire a little early)
            self._schedule_flush(vl)  # an event went out meanwhile: the fallback moves with it
            return
        self._emit_telemetry(vehicle, vl, now)

    def _on_timesync(self, vehicle: Vehicle, msg: Any) -> None:
        now_ns = int((time.monotonic() - self._boot) * 1e9)
        if msg.tc1 == 0:
            # The vehicle asks for our clock: answer so it can estimate the offset.
            self.send_to(vehicle, mav.MAVLink_timesync_message(now_ns, msg.ts1))
        elif 0 < msg.ts1 <= now_ns and now_ns - msg.ts1 < 10_000_000_000:
            vehicle.health.note_rtt((now_ns - msg.ts1) / 1e9)

    def _recover(self, vehicle: Vehicle, vl: _VehicleLink) -> None:
        vehicle.health.lost = False
        log.info("vehicle %d: link recovered", vehicle.sysid)
        # The mission may have changed while we could not hear it: forget, then ask.
        s = vehicle.state
        s.mission_seq = s.mission_total = s.mission_id = None
        s.mission_state = 0
        self._emit(VehicleRecovered(vehicle))
        self.send_to(
            vehicle,
            mav.MAVLink_command_long_message(
                vehicle.sysid,
                vehicle.compid,
                mav.MAV_CMD_REQUEST_MESSAGE,
                0,
                wire.MSG_MISSION_CURRENT,
                0,
                0,
                0,
                0,
                0,
                0,
            ),
        )

    # -- periodic -----------------------------------------------------------------------------

    def _heartbeat(self) -> Any:
        return mav.MAVLink_heartbeat_message(MAV_TYPE_GCS, MAV_AUTOPILOT_INVALID, 0, 0, MAV_STATE_ACTIVE, 3)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        n = 0
        next_at = loop.time()
        while True:  # periodic timer; each pass sleeps until the next tick
            if n % round(1 / TICK_S) == 0:
                self._send_heartbeats()
                self._send_timesync()
            self._check_lost(loop.time())
            n += 1
            next_at += TICK_S
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    def _send_heartbeats(self) -> None:
        served: set[tuple[int, Any]] = set()
        for sysid, vl in self._links.items():
            if vl.endpoint is None:
                continue
            self._send(vl.endpoint, wire.pack(vl.encoder, self._heartbeat()), vl.peer)
            if sysid not in self.signing_keys:
                served.add((id(vl.endpoint), vl.peer))
        # Endpoints with a fixed peer get one too, so a vehicle there learns we exist.
        for ep in self.endpoints:
            if ep.default_peer is not None and (id(ep), ep.default_peer) not in served:
                self._send(ep, wire.pack(self._plain_encoder, self._heartbeat()), ep.default_peer)

    def _send_timesync(self) -> None:
        now_ns = int((time.monotonic() - self._boot) * 1e9)
        for vehicle in self.vehicles.values():
            if not vehicle.health.lost:
                self.send_to(vehicle, mav.MAVLink_timesync_message(0, now_ns))

    def _check_lost(self, now: float) -> None:
        for vehicle in self.vehicles.values():
            h = vehicle.health
            if not h.lost and now - h.last_heard > self.lost_after_s:
                h.lost = True
                log.warning("vehicle %d: link lost (silent %.1f s)", vehicle.sysid, now - h.last_heard)
                self._emit(VehicleLost(vehicle))
