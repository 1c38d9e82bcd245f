"""Flying missions: upload → arm → start, then follow the vehicle until the mission ends.

The pure state machine (:mod:`dronedispatch.domain.mission_state`) decides; this shell feeds it
what the vehicles report, persists every transition (the store is the truth: a restarted service
picks up flying missions from it) and publishes them. Pilot commands go through here too, so a
mission never changes state without the vehicle having accepted the command.

Theory of operation: :meth:`MissionSupervisor.observe` runs on the event loop for every change a
vehicle reports and must never wait for the database. It moves the mission's state in memory at
once and hands the write to :class:`~dronedispatch.app.writes.OrderedWrites`, which commits the
transitions of one mission in order from a worker thread; publishing, requeueing and alerts
follow each commit. Callers that answer a person (a pilot command, a pre-emption) await the write.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from dronedispatch.app.alerts import Alerts
from dronedispatch.app.errors import (
    CommandRejected,
    DockDoorFault,
    ImpossibleMission,
    VehicleTimeout,
    VehicleUnavailable,
)
from dronedispatch.app.fleet import Fleet
from dronedispatch.app.ports import MissionStore, NoPeers, PeerNodes, VehicleGateway, VehicleHandle
from dronedispatch.app.writes import OrderedWrites
from dronedispatch.bus import Publisher
from dronedispatch.domain import mission_state as ms
from dronedispatch.domain import readiness
from dronedispatch.domain.airspace import Airspace, NoRoute
from dronedispatch.domain.docks import DockState, DoorState
from dronedispatch.domain.geo import distance_m
from dronedispatch.domain.mission_items import Cmd, MissionItem
from dronedispatch.domain.mission_state import MissionState, PilotCommand, Transition, VehicleObservation
from dronedispatch.domain.templates import CEILING_M, return_mission
from dronedispatch.events import IncidentChanged, MissionChanged
from dronedispatch.mavlink.errors import CommandDenied, LinkError
from dronedispatch.mavlink.mission_protocol import mission_checksum
from dronedispatch.schemas import IncidentPublic, MissionPublic
from dronedispatch.store.availability import database_unavailable
from dronedispatch.store.models import Mission

log = logging.getLogger(__name__)

#: Lowest height for a routed return (clear of buildings in the demo area), metres above home.
RETURN_ALT_MIN_M = 40.0

#: How long a launch keeps asking a vehicle that answers "temporarily rejected" to arm.
ARM_GRACE_S = 5.0
ARM_RETRY_S = 0.5
MAV_RESULT_TEMPORARILY_REJECTED = 1

#: A vehicle silent this long during a flying mission fails the mission (the vehicle's own
#: data-link-loss failsafe is already bringing it home by then).
LINK_LOSS_FAIL_AFTER_S = 60.0

#: How long a launch cut off by a restart waits for its vehicle to be heard before it fails.
ADOPT_GRACE_S = 30.0

#: How long a launch waits for its dock's door to open (the door itself takes a few seconds).
DOOR_OPEN_TIMEOUT_S = 30.0
#: Best-effort door moves after take-off and before landing wait this long for the dock's answer.
DOOR_FOLLOW_TIMEOUT_S = 60.0
#: Height above the dock from which the door closes behind a drone that took off, metres.
DOOR_CLEAR_ALT_M = 10.0
#: A returning drone this close to its dock has the door opened for its landing, metres.
DOOR_LANDING_RANGE_M = 100.0


class DockDoors(Protocol):
    """The docks as devices (:class:`dronedispatch.app.docks.DockService`): live states and doors."""

    def state(self, dock_id: str) -> DockState | None: ...
    async def open_door(self, dock_id: str, timeout_s: float = ...) -> None: ...
    async def close_door(self, dock_id: str, timeout_s: float = ...) -> None: ...


class DoorPhase:
    """Where a launch that went through a dock door is with that door."""

    OPENED = "opened"  # opened for the launch; closes once the drone is clear
    CLOSED = "closed"  # closed behind it; opens again for the landing
    LANDING = "landing"  # opened for the landing; closes once it is down
    DONE = "done"


class MissionListener(Protocol):
    """Told of a mission's launch and of each state it reaches, after the store has it (live video)."""

    def mission_launched(self, mission: Mission) -> None: ...
    def mission_state(self, mission: Mission, state: MissionState) -> None: ...


@dataclass
class Tracked:
    mission_id: int
    drone_id: str
    sysid: int
    incident_id: int
    state: MissionState
    on_scene_seq: int
    return_seq: int | None
    entered_at: float
    task: asyncio.Task[None] | None = None
    lost_since: float | None = None
    #: The vehicle showed it was on scene: a return afterwards is the mission done.
    reached_scene: bool = False
    #: A pilot sent it home or down: however far it got, the return was meant.
    sent_home: bool = False
    #: A pilot command is on its way: its mode change must not be judged as the vehicle's own.
    commanding: bool = False
    #: Why the mission went to returning, for the record if it never got to the scene.
    return_reason: str | None = None
    #: The dock whose door this launch opened, and where it is with it (:class:`DoorPhase`).
    door_dock: str | None = None
    door_phase: str | None = None
    #: The docks whose weather matters: the drone's own and the one nearest the scene.
    weather_docks: tuple[str, ...] = ()
    #: A gust above the airframe's limit was announced (once per episode) / sent the drone home.
    gust_warned: bool = False
    gust_sent_home: bool = False
    #: The vehicle's restart count (``VehicleState.reboots``) already dealt with.
    reboots_seen: int = 0


class MissionSupervisor:
    def __init__(
        self,
        store: MissionStore,
        publisher: Publisher,
        fleet: Fleet,
        vehicles: VehicleGateway,
        airspace: Airspace,
        alerts: Alerts,
        *,
        node_id: str = "",
        peers: PeerNodes | None = None,
        docks: DockDoors | None = None,
    ) -> None:
        self._store = store
        self._peers: PeerNodes = peers or NoPeers()
        self._publisher = publisher
        self._fleet = fleet
        self._vehicles = vehicles
        self._airspace = airspace
        self._alerts = alerts
        self._listeners: list[MissionListener] = []
        self._tracked: dict[int, Tracked] = {}  # by sysid: one active mission per vehicle
        # a transition decided while the database is down is written when it returns, in order
        self._writes = OrderedWrites(retry_if=database_unavailable)
        self._node_id = node_id
        self._adopting: set[int] = set()
        self._background: set[asyncio.Task[None]] = set()  # adoptions, launches handed to other nodes
        self._docks = docks  # None: docks are not devices (doors always open, weather unknown)

    def add_listener(self, listener: MissionListener) -> None:
        self._listeners.append(listener)

    # -- lifecycle -----------------------------------------------------------------------------
    async def fail_cut_off_launches(self) -> None:
        """At start, when this process is the only one that launches: a mission still planned was cut off
        by the restart before anything reached its vehicle; it fails, and its incident goes back to the
        queue. One cut off while uploading or launching waits for its vehicle to be heard: the plan the
        vehicle holds decides (:meth:`_adopt`); not heard within :data:`ADOPT_GRACE_S`, it fails."""
        active = await asyncio.to_thread(self._store.list_missions, active=True, limit=10_000)
        waiting: list[int] = []
        for m in active:
            state = MissionState(m.state)
            if state == MissionState.PLANNED:
                await self._persist(m, ms.failed(state, "service restarted before the upload began; dispatch again"))
            elif state in (MissionState.UPLOADING, MissionState.LAUNCHING) and m.id is not None:
                waiting.append(m.id)
        if waiting:
            self._spawn(self._fail_unheard_launches(waiting), "unheard-launches")

    async def _fail_unheard_launches(self, mission_ids: list[int]) -> None:
        """Launches cut off by a restart whose vehicle was not heard since: failed, with the reason."""
        await asyncio.sleep(ADOPT_GRACE_S)
        tracked = {t.mission_id for t in self._tracked.values()}
        for mission_id in mission_ids:
            if mission_id in tracked:
                continue
            m = await asyncio.to_thread(self._store.get_mission, mission_id)
            state = MissionState(m.state)
            if state in (MissionState.UPLOADING, MissionState.LAUNCHING) and m.sysid not in self._tracked:
                why = f"the launch was cut off by a restart and {m.drone_id} was not heard within {ADOPT_GRACE_S:.0f} s"
                await self._persist(m, ms.failed(state, f"{why}; dispatch again"))

    def vehicle_appeared(self, sysid: int) -> None:
        """A vehicle was discovered on a link this node holds: supervise its active mission, if any
        (after a restart, or when this node has just taken the link over from another)."""
        if sysid in self._tracked or sysid in self._adopting:
            return
        self._adopting.add(sysid)
        self._spawn(self._adopt(sysid), f"adopt-{sysid}")

    def vehicle_gone(self, sysid: int) -> None:
        """This node no longer holds the vehicle's link: stop supervising its mission, changing
        nothing in the store (the node that takes the link over takes the mission up)."""
        tracked = self._tracked.pop(sysid, None)
        if tracked is None:
            return
        if tracked.task is not None and not tracked.task.done():
            tracked.task.cancel()
        log.info("node %s hands mission %s (%s) over with the link", self._node_id, tracked.mission_id,
                 tracked.state)  # fmt: skip

    async def _adopt(self, sysid: int) -> None:
        """Take up the vehicle's active mission after reading back the plan it holds (never assumed, never
        uploaded again): a launch cut off on the ground goes on when the vehicle holds our plan and fails
        (its incident back in the queue) when it does not; a flight is supervised, flagged on a mismatch."""
        try:
            m = await asyncio.to_thread(self._store.active_mission_for_sysid, sysid)
            if m is None or sysid in self._tracked:
                return
            assert m.id is not None
            state = MissionState(m.state)
            if state == MissionState.PLANNED:
                # whoever launched it is gone before anything reached the vehicle: a person dispatches anew
                await self._persist(m, ms.failed(state, "the launch was cut off before the upload began; "
                                                        "dispatch again"))  # fmt: skip
                return
            vehicle = self._vehicles.vehicle(sysid)
            check = await self._check_plan(m, vehicle)
            if sysid in self._tracked:
                return
            matches = check["plan_matches"] is True
            on_ground = vehicle is not None and not vehicle.state.armed
            launch = state in (MissionState.UPLOADING, MissionState.LAUNCHING)
            if launch and not (matches and on_ground):
                if not matches:
                    what = check.get("reason") or (
                        "no mission" if not check.get("held_items") else f"another plan ({check['held_items']} items)"
                    )
                    why = f"the launch was cut off by a restart and {m.drone_id} holds {what}, not this mission"
                else:
                    why = f"the launch was cut off by a restart while {m.drone_id} was already armed"
                await asyncio.to_thread(self._store.audit, "system", "mission.plan_checked", "mission", m.id,
                                        node=self._node_id, state=state.value, **check)  # fmt: skip
                await self._persist(m, ms.failed(state, f"{why}; dispatch again"))
                return
            tracked = self._track(m, state, return_seq=_return_seq(m))
            tracked.reached_scene = m.on_scene_at is not None
            tracked.sent_home = state == MissionState.RETURNING and m.reason is not None and "commanded by" in m.reason
            await asyncio.to_thread(
                self._store.audit, "system", "mission.supervise", "mission", m.id, node=self._node_id,
                state=state.value, resumes_launch=launch, **check,
            )  # fmt: skip
            log.info("node %s supervises mission %s (%s) on %s; plan %s", self._node_id, m.id, state, m.drone_id,
                     "checked" if matches else "NOT matching")  # fmt: skip
            if not matches:
                self._alerts.raise_(
                    "critical", "mission_mismatch",
                    f"{m.drone_id} is flying mission {m.id} but holds "
                    f"{check.get('reason') or 'a different plan'}: send it home or dispatch again",
                    drone_id=m.drone_id, mission_id=m.id,
                )  # fmt: skip
            if launch and vehicle is not None:
                opaque_id = m.opaque_id if m.opaque_id is not None else check.get("held_checksum")
                tracked.task = asyncio.create_task(self._resume_launch(tracked, vehicle, opaque_id),
                                                   name=f"mission-{m.id}")  # fmt: skip
            elif vehicle is not None:
                self.observe(vehicle)  # its mode, mission and progress as the vehicle reports them now
        except Exception:
            log.exception("vehicle %s: could not take up its mission", sysid)
        finally:
            self._adopting.discard(sysid)

    async def _check_plan(self, m: Mission, vehicle: VehicleHandle | None) -> dict[str, Any]:
        """The plan the vehicle holds, read back from it, against mission ``m``'s (for the audit entry)."""
        if vehicle is None:
            return {"plan_matches": None, "reason": "nothing we could read (not connected)"}
        try:
            held = await vehicle.mission.download()
        except LinkError as exc:
            return {"plan_matches": None, "reason": f"a mission that could not be read ({exc})"}
        ours = mission_checksum([MissionItem.from_dict(d) for d in m.items])
        theirs = mission_checksum(held)
        # the vehicle's own checksum from the upload counts too (it is what PX4 reports for the same plan)
        return {"plan_matches": bool(held) and theirs in (ours, m.opaque_id), "held_items": len(held),
                "held_checksum": theirs, "uploaded_checksum": ours}  # fmt: skip

    async def _resume_launch(self, tracked: Tracked, vehicle: VehicleHandle, opaque_id: int | None) -> None:
        """Go on with a launch cut off by a restart whose plan the vehicle was found to hold: arm and start."""
        try:
            accepted = None
            if tracked.state == MissionState.UPLOADING:
                accepted = self._apply(tracked, ms.upload_accepted(tracked.state), opaque_id=opaque_id)
            dock_id = self._dock_to_open(tracked.drone_id)
            door = asyncio.create_task(self._open_door(dock_id), name=f"door-{dock_id}") if dock_id else None
            await self._lift_off(tracked, vehicle, opaque_id, accepted, door, dock_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("mission %s: resumed launch failed unexpectedly", tracked.mission_id)
            if tracked.state not in ms.TERMINAL:
                await self._commit(tracked, ms.failed(tracked.state, f"internal error during launch: {exc}"))

    async def stop(self) -> None:
        tasks = [t.task for t in self._tracked.values() if t.task] + list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._writes.stop_retrying()
        await self._writes.drain()

    async def settle(self) -> None:
        """Wait until every transition decided so far is in the store."""
        await self._writes.drain()

    def _track(self, m: Mission, state: MissionState, return_seq: int | None) -> Tracked:
        assert m.id is not None
        tracked = Tracked(m.id, m.drone_id, m.sysid, m.incident_id, state, m.on_scene_seq, return_seq, time.monotonic())
        tracked.weather_docks = self._weather_docks(m)
        vehicle = self._vehicles.vehicle(m.sysid)
        tracked.reboots_seen = vehicle.state.reboots if vehicle is not None else 0
        self._tracked[m.sysid] = tracked
        self._fleet.set_mission(m.drone_id, m.id)
        return tracked

    def progress(self, sysid: int) -> dict[str, int | None]:
        vehicle = self._vehicles.vehicle(sysid)
        if vehicle is None:
            return {}
        return {"seq": vehicle.state.mission_seq, "total": vehicle.state.mission_total}

    def public(self, mission: Mission) -> MissionPublic:
        return MissionPublic.of(mission, self.progress(mission.sysid))

    # -- launching -----------------------------------------------------------------------------
    def launch(self, mission: Mission, *, return_seq: int | None) -> None:
        """Fly ``mission`` (just recorded as planned): upload, arm and start it in the background.
        Never raises: whatever stops the flight fails the mission with the reason."""
        assert mission.id is not None
        if self._vehicles.vehicle(mission.sysid) is None:  # not heard here: another node may hold it
            self._spawn(self._launch_elsewhere(mission, return_seq), f"launch-{mission.id}")
            return
        self._launch_here(mission, return_seq)

    def _launch_here(self, mission: Mission, return_seq: int | None) -> None:
        assert mission.id is not None
        busy = self._tracked.get(mission.sysid)
        if busy is not None:  # the store allowed it, so the other mission is ending: never fly two at once
            reason = f"vehicle {mission.sysid} was still finishing mission {busy.mission_id}; dispatch again"
            self._persist_later(mission.id, mission.drone_id, mission.incident_id,
                                ms.failed(MissionState.PLANNED, reason))  # fmt: skip
            return
        tracked = self._track(mission, MissionState.PLANNED, return_seq)
        tracked.task = asyncio.create_task(self._launch(tracked, mission), name=f"mission-{mission.id}")

    async def _launch(self, tracked: Tracked, mission: Mission) -> None:
        """Run the launch; whatever goes wrong inside is logged and fails the mission with the reason,
        so a mission never stays in ``uploading`` because its task died unseen."""
        try:
            await self._execute(tracked, mission)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("mission %s: launch failed unexpectedly", tracked.mission_id)
            if tracked.state not in ms.TERMINAL:
                await self._commit(tracked, ms.failed(tracked.state, f"internal error during launch: {exc}"))

    async def _launch_elsewhere(self, mission: Mission, return_seq: int | None) -> None:
        """The holder from the last view, or from the heartbeats read now (a link may have just moved);
        with none, the launch here fails with the reason."""
        holder = self._peers.holder_of(mission.drone_id) or await self._peers.locate(mission.drone_id)
        if holder is not None:
            await self._launch_on(holder, mission, return_seq)
        else:
            self._launch_here(mission, return_seq)

    async def _launch_on(self, node: str, mission: Mission, return_seq: int | None) -> None:
        """The drone's link is held by ``node``: it flies the mission; a node that does not take it
        fails the mission here, with the reason, so it never waits in ``planned``."""
        assert mission.id is not None
        try:
            await self._peers.launch(node, mission.id, return_seq)
            log.info("mission %s: handed to node %s, which holds %s", mission.id, node, mission.drone_id)
        except Exception as exc:
            log.warning("mission %s: node %s did not take it: %s", mission.id, node, exc)
            await self._persist(mission, ms.failed(MissionState.PLANNED, f"node {node}, which holds "
                                                   f"{mission.drone_id}, did not take the mission: {exc}"))  # fmt: skip

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def take_launch(self, mission_id: int, return_seq: int | None) -> None:
        """Another node recorded a mission for a drone whose link this node holds: fly it."""
        mission = await asyncio.to_thread(self._store.get_mission, mission_id)
        if MissionState(mission.state) != MissionState.PLANNED:
            raise CommandRejected(f"mission {mission_id} is {mission.state}, not waiting to launch", "not_planned")
        if self._vehicles.vehicle(mission.sysid) is None:
            raise VehicleUnavailable(f"this node does not hold {mission.drone_id}'s link", "not_holder")
        self.launch(mission, return_seq=return_seq)

    async def _execute(self, tracked: Tracked, mission: Mission) -> None:
        vehicle = self._vehicles.vehicle(tracked.sysid)
        if vehicle is None or vehicle.health.lost:
            await self._commit(tracked, ms.failed(tracked.state, f"vehicle {tracked.sysid} is not connected"))
            return
        self._apply(tracked, ms.upload_started(tracked.state))
        items = [MissionItem.from_dict(d) for d in mission.items]
        # a drone in a dock that is a device leaves through its door: it opens while the mission uploads
        dock_id = self._dock_to_open(tracked.drone_id)
        door = asyncio.create_task(self._open_door(dock_id), name=f"door-{dock_id}") if dock_id else None
        t0 = time.perf_counter()
        try:
            opaque_id = await vehicle.mission.upload(items)
        except LinkError as exc:  # UploadFailed, VehicleNotFound, …: the reason says which
            if door is not None:
                door.cancel()
            await self._commit(tracked, ms.upload_failed(tracked.state, str(exc)))
            return
        except BaseException:
            if door is not None:
                door.cancel()
            raise
        log.debug("mission %s: %d items uploaded in %.0f ms", tracked.mission_id, len(items),
                  (time.perf_counter() - t0) * 1e3)  # fmt: skip
        # the plan the vehicle holds is written with the transition; the launch goes on meanwhile, and
        # a failed write still fails the mission (below) rather than vanishing
        accepted = self._apply(tracked, ms.upload_accepted(tracked.state), opaque_id=opaque_id)
        await self._lift_off(tracked, vehicle, opaque_id, accepted, door, dock_id)

    async def _lift_off(
        self,
        tracked: Tracked,
        vehicle: VehicleHandle,
        opaque_id: int | None,
        accepted: asyncio.Task[Mission | None] | None,
        door: asyncio.Task[None] | None,
        dock_id: str | None,
    ) -> None:
        """The vehicle holds the plan: wait for the dock door, arm, start the mission and record the launch."""
        if door is not None and dock_id is not None:
            try:
                await door
            except DockDoorFault as exc:
                await self._door_fault(tracked, dock_id, exc)
                return
            tracked.door_dock, tracked.door_phase = dock_id, DoorPhase.OPENED
        t_arm = time.perf_counter()
        try:
            await self._arm(vehicle)
            await vehicle.command.mission_start()
        except (CommandDenied, LinkError) as exc:
            await self._commit(tracked, ms.launch_failed(tracked.state, str(exc)))
            return
        if accepted is not None:
            await accepted
        log.debug("mission %s: armed and started in %.0f ms", tracked.mission_id, (time.perf_counter() - t_arm) * 1e3)
        launched_at = datetime.now(UTC)

        async def record_launch() -> Mission:
            launched = await asyncio.to_thread(
                self._store.record_transition,
                tracked.mission_id,
                {"launched_at": launched_at},
                actor="system",
                action="mission.launch",
                detail={"opaque_id": opaque_id},
            )
            self._publisher.publish(MissionChanged(data=self.public(launched)))
            for listener in self._listeners:
                listener.mission_launched(launched)
            return launched

        self._writes.submit(tracked.mission_id, record_launch)
        self.observe(vehicle)

    # -- docks -------------------------------------------------------------------------------------
    def _dock_to_open(self, drone_id: str) -> str | None:
        """The drone's dock when it is a device that reports the drone sitting in it; else None
        (no live dock state: the launch goes on as before docks were devices)."""
        entry = self._fleet.registry.get(drone_id)
        if self._docks is None or entry is None:
            return None
        state = self._docks.state(entry.dock.id)
        return entry.dock.id if state is not None and state.drone_present else None

    async def _open_door(self, dock_id: str) -> None:
        assert self._docks is not None
        await self._docks.open_door(dock_id, DOOR_OPEN_TIMEOUT_S)

    async def _door_fault(self, tracked: Tracked, dock_id: str, exc: DockDoorFault) -> None:
        """The door did not open: the mission fails with the reason (its incident goes back to the queue)."""
        await asyncio.to_thread(
            self._store.audit, "system", "mission.door_fault", "mission", tracked.mission_id, dock_id=dock_id,
            reason=exc.reason,
        )  # fmt: skip
        await self._commit(tracked, ms.failed(tracked.state, f"dock door fault: {exc.reason}"))

    def _follow_door(self, tracked: Tracked, vehicle: VehicleHandle) -> None:
        """Close the door behind a drone that took off; open it for its landing when it comes back
        within :data:`DOOR_LANDING_RANGE_M`; close it once it is down. Best effort: logged, never fatal."""
        entry = self._fleet.registry.get(tracked.drone_id)
        if entry is None or self._docks is None:
            return
        dock_id, s = tracked.door_dock or entry.dock.id, vehicle.state
        live = self._docks.state(dock_id)
        if live is None:  # not a device (or not heard yet): nothing to open
            return
        airborne = s.landed_state not in (0, 1) and s.landed_state is not None
        if tracked.door_phase == DoorPhase.OPENED and airborne and (s.alt_rel or 0.0) >= DOOR_CLEAR_ALT_M:
            tracked.door_phase = DoorPhase.CLOSED
            self._spawn(self._move_door(tracked.mission_id, dock_id, open_=False), f"door-close-{dock_id}")
        elif tracked.door_phase in (None, DoorPhase.CLOSED) and tracked.state == MissionState.RETURNING:
            # also a drone that left before its dock was heard, or whose mission this node took over
            if (
                s.lat is not None
                and s.lon is not None
                and (distance_m(s.lat, s.lon, entry.dock.lat, entry.dock.lon) <= DOOR_LANDING_RANGE_M)
            ):
                tracked.door_dock, tracked.door_phase = dock_id, DoorPhase.LANDING
                if live.door is not DoorState.OPEN:
                    self._spawn(self._move_door(tracked.mission_id, dock_id, open_=True), f"door-open-{dock_id}")
        elif tracked.door_phase == DoorPhase.LANDING and s.landed_state == 1 and not s.armed:
            tracked.door_phase = DoorPhase.DONE
            self._spawn(self._move_door(tracked.mission_id, dock_id, open_=False), f"door-close-{dock_id}")

    async def _move_door(self, mission_id: int, dock_id: str, *, open_: bool) -> None:
        assert self._docks is not None
        what = "open" if open_ else "close"
        try:
            if open_:
                await self._docks.open_door(dock_id, DOOR_FOLLOW_TIMEOUT_S)
            else:
                await self._docks.close_door(dock_id, DOOR_FOLLOW_TIMEOUT_S)
            log.info("mission %s: dock %s door %s", mission_id, dock_id, "opened" if open_ else "closed")
        except Exception as exc:  # best effort: the pilot sees the dock's state in the view
            log.warning("mission %s: could not %s the door of dock %s: %s", mission_id, what, dock_id, exc)

    def _weather_docks(self, m: Mission) -> tuple[str, ...]:
        """The drone's dock and the dock nearest the scene (whose station stands for the scene's weather)."""
        entry = self._fleet.registry.get(m.drone_id)
        docks = self._fleet.registry.fleet.docks
        out = [entry.dock.id] if entry is not None else []
        scene = next((d for d in m.items if d.get("seq") == m.on_scene_seq), None)
        if scene is not None and docks and scene.get("lat") is not None and scene.get("lon") is not None:
            lat, lon = float(scene["lat"]), float(scene["lon"])
            nearest = min(docks, key=lambda d: distance_m(d.lat, d.lon, lat, lon))
            if nearest.id not in out:
                out.append(nearest.id)
        return tuple(out)

    def dock_changed(self, state: DockState) -> None:
        """A dock's state changed: every flying mission whose dock or scene it stands for is checked
        against its airframe's gust limits (an alert above ``max_gust``, home above ``gust_hard_limit``)."""
        for tracked in list(self._tracked.values()):
            if state.dock_id in tracked.weather_docks:
                self._check_weather(tracked, state)

    def _check_weather(self, tracked: Tracked, latest: DockState | None = None) -> None:
        """The gust at the drone's dock and the scene's against its limits, once it is airborne (a launch
        was judged at dispatch; its first check is when it leaves, :meth:`_apply`)."""
        if self._docks is None or tracked.state not in (MissionState.ENROUTE, MissionState.ON_SCENE,
                                                         MissionState.RETURNING):  # fmt: skip
            return
        entry = self._fleet.registry.get(tracked.drone_id)
        if entry is None:
            return
        now = datetime.now(UTC)
        limits = readiness.Limits.of(entry.spec)
        checks = []
        for i, dock_id in enumerate(tracked.weather_docks):
            s = latest if latest is not None and dock_id == latest.dock_id else self._docks.state(dock_id)
            if s is not None and s.weather is not None and s.fresh(now):
                checks.append(readiness.gust_check(s.weather, limits, "dock" if i == 0 else "scene"))
        check = readiness.worst(checks)
        if check is None:
            return
        if check.level is readiness.GustLevel.OK:
            tracked.gust_warned = False  # the episode is over: the next gust is announced again
        elif check.level is readiness.GustLevel.HARD:
            if not tracked.gust_sent_home and tracked.state != MissionState.RETURNING:
                tracked.gust_sent_home = tracked.gust_warned = True
                self._spawn(self._weather_home(tracked, check), f"weather-rtl-{tracked.mission_id}")
        elif not tracked.gust_warned:
            tracked.gust_warned = True
            self._alerts.raise_(
                "warning", "weather_gust", f"{tracked.drone_id}: {check.text}",
                drone_id=tracked.drone_id, mission_id=tracked.mission_id,
            )  # fmt: skip

    async def _weather_home(self, tracked: Tracked, check: readiness.GustCheck) -> None:
        """A gust past the hard limit: the drone comes home (RTL the way a pilot's would), with the reason."""
        vehicle = self._vehicles.vehicle(tracked.sysid)
        if vehicle is None or self._tracked.get(tracked.sysid) is not tracked:
            return
        await asyncio.to_thread(
            self._store.audit, "system", "mission.weather_rtl", "mission", tracked.mission_id, gust_ms=check.gust_ms,
            limit_ms=check.limit_ms, where=check.where,
        )  # fmt: skip
        self._alerts.raise_(
            "critical", "weather_rtl", f"{tracked.drone_id} sent home: {check.text}",
            drone_id=tracked.drone_id, mission_id=tracked.mission_id,
        )  # fmt: skip
        tracked.commanding = True
        try:
            await self._send(vehicle, PilotCommand.RTL, True, self._route_home(tracked.drone_id, vehicle))
        except (CommandDenied, LinkError) as exc:
            log.warning("mission %s: the vehicle did not take the weather RTL: %s", tracked.mission_id, exc)
            tracked.gust_sent_home = False  # the next state tries again
            return
        finally:
            tracked.commanding = False
        tracked.sent_home = True
        if tracked.state in ms.FLYING:
            await self._commit(tracked, ms.command(tracked.state, PilotCommand.RTL, by="weather", note=check.text))

    @staticmethod
    async def _arm(vehicle: VehicleHandle) -> None:
        """Arm, waiting out a vehicle that is still finishing its pre-flight checks.

        PX4 answers TEMPORARILY_REJECTED while checks run (just after boot, or a moment after a
        landing); anything else, or still refused after the grace period, is a launch failure.
        """
        deadline = time.monotonic() + ARM_GRACE_S
        while True:
            try:
                await vehicle.command.arm()
                return
            except CommandDenied as exc:
                if exc.result != MAV_RESULT_TEMPORARILY_REJECTED or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(ARM_RETRY_S)

    # -- observing -----------------------------------------------------------------------------
    def observe(self, vehicle: VehicleHandle) -> None:
        """Fold the vehicle's latest state into its mission (on every state change; never blocks)."""
        tracked = self._tracked.get(vehicle.sysid)
        if tracked is None:
            return
        s = vehicle.state
        if s.reboots != tracked.reboots_seen:
            tracked.reboots_seen = s.reboots
            self._spawn(self._after_reboot(tracked, vehicle), f"reboot-{tracked.mission_id}")
        if s.mode == "UNKNOWN" or tracked.commanding:  # just rediscovered, or a pilot's mode change on its way
            return
        if self._docks is not None:
            self._follow_door(tracked, vehicle)
        now = time.monotonic()
        if vehicle.health.lost:
            tracked.lost_since = tracked.lost_since or now
            if tracked.state in ms.FLYING and now - tracked.lost_since > LINK_LOSS_FAIL_AFTER_S:
                self._apply(
                    tracked, ms.failed(tracked.state, f"no link to the vehicle for {LINK_LOSS_FAIL_AFTER_S:.0f} s")
                )
            return
        tracked.lost_since = None
        obs = VehicleObservation(
            armed=bool(s.armed),
            mode=s.mode,
            landed_state=s.landed_state,
            mission_seq=s.mission_seq or 0,
            mission_total=s.mission_total or 0,
            on_scene_seq=tracked.on_scene_seq,
            link_lost=False,
            battery_pct=s.battery_pct,
            return_seq=tracked.return_seq,
        )
        self._apply(tracked, ms.advance(tracked.state, obs, now=now, entered_at=tracked.entered_at))

    async def _after_reboot(self, tracked: Tracked, vehicle: VehicleHandle) -> None:
        """The vehicle's autopilot restarted during the mission: tell the pilot, read back the plan it holds
        now and flag it when it is not the one we uploaded (cleared, or another one). Nothing is sent to the
        vehicle: whether to resume, send it home or dispatch again is the pilot's call."""
        mission_id, drone_id = tracked.mission_id, tracked.drone_id
        self._alerts.raise_(
            "critical", "vehicle_rebooted",
            f"{drone_id}: the autopilot restarted during mission {mission_id}; checking the mission it holds",
            drone_id=drone_id, mission_id=mission_id,
        )  # fmt: skip
        try:
            held = await vehicle.mission.download()
        except LinkError as exc:
            self._alerts.raise_(
                "critical", "mission_mismatch",
                f"{drone_id}: after its restart the vehicle's mission could not be read ({exc}); treat it as unknown",
                drone_id=drone_id, mission_id=mission_id,
            )  # fmt: skip
            await asyncio.to_thread(self._store.audit, "system", "mission.vehicle_rebooted", "mission", mission_id,
                                    plan_matches=None, reason=str(exc))  # fmt: skip
            return
        mission = await asyncio.to_thread(self._store.get_mission, mission_id)
        ours = mission_checksum([MissionItem.from_dict(d) for d in mission.items])
        theirs = mission_checksum(held)
        # the vehicle's own checksum from the upload counts too (it is what PX4 reports for the same plan)
        matches = bool(held) and theirs in (ours, mission.opaque_id)
        await asyncio.to_thread(
            self._store.audit, "system", "mission.vehicle_rebooted", "mission", mission_id, plan_matches=matches,
            held_items=len(held), held_checksum=theirs, uploaded_items=len(mission.items), uploaded_checksum=ours,
        )  # fmt: skip
        if matches:
            log.info("mission %s: %s restarted and still holds the uploaded plan", mission_id, drone_id)
            return
        what = "no mission" if not held else f"a different mission ({len(held)} items)"
        self._alerts.raise_(
            "critical", "mission_mismatch",
            f"{drone_id} came back from a restart holding {what}, not mission {mission_id}'s "
            f"({len(mission.items)} items): send it home or dispatch again",
            drone_id=drone_id, mission_id=mission_id,
        )  # fmt: skip

    async def _commit(self, tracked: Tracked, t: Transition) -> None:
        """:meth:`_apply`, returning once the store has the new state."""
        written = self._apply(tracked, t)
        if written is not None:
            await written

    def _apply(self, tracked: Tracked, t: Transition, **also: Any) -> asyncio.Task[Mission | None] | None:
        """Move ``tracked`` to ``t``'s state now; the returned task finishes when the store has it
        (with the mission's fields ``also``, in the same transaction)."""
        if not t.changed:
            return None
        if t.new_state == MissionState.ON_SCENE:
            tracked.reached_scene = True
        elif t.new_state == MissionState.RETURNING:
            tracked.return_reason = t.reason
        elif t.new_state == MissionState.COMPLETED and not (tracked.reached_scene or tracked.sent_home):
            # home again, but the vehicle turned back by itself (a failsafe) before the scene
            t = ms.failed(t.old_state, f"came home without reaching the scene: {tracked.return_reason or 'unknown'}")
        tracked.state = t.new_state
        tracked.entered_at = time.monotonic()
        if t.old_state == MissionState.LAUNCHING and t.new_state in (MissionState.ENROUTE, MissionState.ON_SCENE):
            self._check_weather(tracked)  # airborne: the weather as it is now, without waiting for a change
        if t.terminal:
            if tracked.task and tracked.task is not asyncio.current_task():
                tracked.task.cancel()
            if self._tracked.get(tracked.sysid) is tracked:
                del self._tracked[tracked.sysid]
        return self._persist_later(tracked.mission_id, tracked.drone_id, tracked.incident_id, t, also)

    async def _persist(self, mission: Mission, t: Transition) -> Mission | None:
        assert mission.id is not None
        return await self._persist_later(mission.id, mission.drone_id, mission.incident_id, t)

    def _persist_later(
        self, mission_id: int, drone_id: str, incident_id: int, t: Transition, also: dict[str, Any] | None = None
    ) -> asyncio.Task[Mission | None]:
        decided_at = datetime.now(UTC)  # when it happened, not when the store took it (after an outage)

        async def write() -> Mission | None:
            if not t.changed:
                return None
            try:
                return await self._record(mission_id, drone_id, incident_id, t, also or {}, decided_at)
            except Exception as exc:
                if database_unavailable(exc):
                    raise  # retried by the writer until the database returns; no alert per attempt
                self._alerts.raise_(
                    "critical", "store_write_failed",
                    f"mission {mission_id}: {t.new_state.value} could not be recorded: {exc}",
                    drone_id=drone_id, mission_id=mission_id,
                )  # fmt: skip
                raise

        return self._writes.submit(mission_id, write)

    async def _record(
        self, mission_id: int, drone_id: str, incident_id: int, t: Transition, also: dict[str, Any], now: datetime
    ) -> Mission:
        """Commit one transition (decided at ``now``) with its audit entry, then tell everyone who follows missions."""
        fields: dict[str, object] = {**also, "state": t.new_state.value}
        if t.reason:
            fields["reason"] = t.reason
        if t.new_state == MissionState.ON_SCENE:
            fields["on_scene_at"] = now
        if t.terminal:
            fields["ended_at"] = now
        detail: dict[str, object] = {"old": t.old_state.value, "new": t.new_state.value, "reason": t.reason}
        late_s = (datetime.now(UTC) - now).total_seconds()
        if late_s > 1.0:  # written late (the database was down): the entry says when it happened
            detail["decided_at"] = now.isoformat()
        mission = await asyncio.to_thread(
            self._store.record_transition, mission_id, fields, actor="system", action="mission.state", detail=detail
        )
        log.info("mission %s: %s → %s%s", mission_id, t.old_state, t.new_state, f" ({t.reason})" if t.reason else "")
        self._publisher.publish(MissionChanged(data=self.public(mission)))
        for listener in self._listeners:
            listener.mission_state(mission, t.new_state)
        if t.terminal:
            self._fleet.release_mission(drone_id, mission_id)  # only now: the store no longer holds it active
        if t.new_state in (MissionState.ABORTED, MissionState.FAILED):
            incident = await asyncio.to_thread(self._requeue, incident_id)
            if incident is not None:
                self._publisher.publish(IncidentChanged(data=IncidentPublic.of(incident)))
        if t.new_state == MissionState.FAILED and t.reason:
            self._alerts.raise_(
                "critical", "mission_failed", f"mission {mission_id} failed: {t.reason}",
                drone_id=drone_id, mission_id=mission_id,
            )  # fmt: skip
        return mission

    def _requeue(self, incident_id: int) -> Any:
        """A mission that ended without finishing puts its incident back in the queue (blocking)."""
        incident = self._store.get_incident(incident_id)
        if incident.status == "dispatched" and not self._store.list_missions(active=True, incident_id=incident_id):
            return self._store.update_incident(incident_id, status="open")
        return None

    async def preempt(self, mission_id: int, for_incident: int, actor: str) -> None:
        """End a flying mission because a person gave its drone to a more urgent incident.

        Nothing is sent to the vehicle here: the new mission's upload replaces the old one in flight.
        Returns once the store has the mission ended, so the drone is free for the new one.
        """
        mission = await asyncio.to_thread(self._store.get_mission, mission_id)
        state = MissionState(mission.state)
        t = ms.command(state, PilotCommand.ABORT, by=actor, note=f"pre-empted for incident {for_incident}")
        await asyncio.to_thread(
            self._store.audit, actor, "mission.preempt", "mission", mission_id, for_incident=for_incident
        )
        tracked = self._tracked.get(mission.sysid)
        if tracked is not None and tracked.mission_id == mission_id:
            if tracked.task is not None and not tracked.task.done():
                tracked.task.cancel()
            await self._commit(tracked, t)
        else:
            await self._persist(mission, t)

    # -- pilot commands ------------------------------------------------------------------------
    async def command(
        self,
        mission_id: int,
        command: str,
        actor: str,
        *,
        position: tuple[float, float] | None = None,
        from_peer: bool = False,
    ) -> Mission:
        """A pilot's command; on the node that holds the vehicle, else carried there (never twice:
        ``from_peer`` marks a command another node handed over)."""
        if command == "reposition":
            return await self.reposition(mission_id, position, actor, from_peer=from_peer)
        mission = await asyncio.to_thread(self._store.get_mission, mission_id)
        state = MissionState(mission.state)
        if state in ms.TERMINAL:
            raise CommandRejected(f"mission {mission_id} is {mission.state}; it takes no commands", "mission_ended")
        cmd = PilotCommand(command)
        tracked = self._tracked.get(mission.sysid)
        holder = None
        if tracked is None and not from_peer and self._vehicles.vehicle(mission.sysid) is None:
            holder = self._peers.holder_of(mission.drone_id) or await self._peers.locate(mission.drone_id)
        if holder is not None:
            await self._peers.command(holder, mission_id, command, actor, None)
            return await asyncio.to_thread(self._store.get_mission, mission_id)
        if tracked is not None and tracked.mission_id == mission_id:
            state = tracked.state  # the store may be a transition behind the vehicle
        try:
            expected = ms.command(state, cmd, by=actor)
        except ms.InvalidTransition as exc:
            raise CommandRejected(str(exc), "invalid_command") from exc
        vehicle = self._vehicles.vehicle(mission.sysid)
        await asyncio.to_thread(
            self._store.audit, actor, f"mission.command.{cmd.value}", "mission", mission_id, state=state.value
        )
        launching = tracked is not None and tracked.task is not None and not tracked.task.done()
        if cmd is PilotCommand.ABORT and launching:
            # stop the launch first, so nothing it still had in flight (an arm, a MISSION_START) outlives the abort
            assert tracked is not None and tracked.task is not None
            tracked.task.cancel()
            await asyncio.gather(tracked.task, return_exceptions=True)
        airborne = vehicle is not None and vehicle.state.landed_state not in (0, 1)
        if vehicle is not None and (state not in (MissionState.PLANNED, MissionState.UPLOADING) or launching):
            if tracked is not None:
                tracked.commanding = True
            try:
                await self._send(vehicle, cmd, airborne, self._route_home(mission.drone_id, vehicle))
            except CommandDenied as exc:
                raise CommandRejected(f"the vehicle refused {cmd.value}: {exc}", "vehicle_refused") from exc
            except LinkError as exc:
                raise VehicleTimeout(f"the vehicle did not answer {cmd.value}: {exc}") from exc
            finally:
                if tracked is not None:
                    tracked.commanding = False
            if tracked is not None and cmd in (PilotCommand.RTL, PilotCommand.LAND):
                tracked.sent_home = True
        elif vehicle is None and cmd is not PilotCommand.ABORT:
            raise VehicleUnavailable(f"vehicle {mission.sysid} is not connected", "vehicle_offline")
        if tracked is not None and tracked.mission_id == mission_id:
            if cmd is PilotCommand.RESUME and tracked.state == MissionState.RETURNING and vehicle is not None:
                expected = ms.resumed(
                    tracked.state, mission_seq=vehicle.state.mission_seq or 0, on_scene_seq=tracked.on_scene_seq
                )
            await self._commit(tracked, expected)
        elif expected.changed:
            await self._persist(mission, expected)
        return await asyncio.to_thread(self._store.get_mission, mission_id)

    async def reposition(
        self, mission_id: int, position: tuple[float, float] | None, actor: str, *, from_peer: bool = False
    ) -> Mission:
        """Fly to (lat, lon) at the present altitude and hold there (PX4 DO_REPOSITION → AUTO.LOITER).

        Like pause it changes no mission state: the vehicle's mode shows the hold, and resume
        continues the mission from the item it was flying to.
        """
        if position is None:
            raise ImpossibleMission("reposition needs lat and lon", "bad_command")
        mission = await asyncio.to_thread(self._store.get_mission, mission_id)
        lat, lon = position
        state = MissionState(mission.state)
        if state not in ms.FLYING or state == MissionState.LAUNCHING:
            raise CommandRejected(
                f"mission {mission_id} is {mission.state}; only a flying mission can reposition", "invalid_command"
            )
        zone = self._airspace.prohibited_at(lat, lon)
        if zone is not None:
            raise ImpossibleMission(f"({lat:.5f}, {lon:.5f}) is inside the prohibited zone {zone.name_en}", "airspace")
        vehicle = self._vehicles.vehicle(mission.sysid)
        holder = None
        if vehicle is None and not from_peer:
            holder = self._peers.holder_of(mission.drone_id) or await self._peers.locate(mission.drone_id)
        if holder is not None:
            await self._peers.command(holder, mission_id, "reposition", actor, position)
            return mission
        if vehicle is None or vehicle.health.lost:
            raise VehicleUnavailable(f"vehicle {mission.sysid} is not connected", "vehicle_offline")
        await asyncio.to_thread(
            self._store.audit, actor, "mission.command.reposition", "mission", mission_id, lat=lat, lon=lon
        )
        try:
            await vehicle.command.reposition(lat, lon, math.nan)  # NaN altitude: keep the present one
        except CommandDenied as exc:
            raise CommandRejected(f"the vehicle refused reposition: {exc}", "vehicle_refused") from exc
        except LinkError as exc:
            raise VehicleTimeout(f"the vehicle did not answer reposition: {exc}") from exc
        return mission

    def _route_home(self, drone_id: str, vehicle: VehicleHandle) -> list[tuple[float, float]] | None:
        """The way home round prohibited zones, when the straight line would cross one."""
        entry = self._fleet.registry.get(drone_id)
        s = vehicle.state
        if entry is None or s.lat is None or s.lon is None:
            return None
        try:
            route = self._airspace.route((s.lat, s.lon), (entry.dock.lat, entry.dock.lon))
        except NoRoute:
            return None  # already inside a zone: the straight way out is the only way
        return route if len(route) > 2 else None

    @staticmethod
    async def _send(
        vehicle: VehicleHandle, cmd: PilotCommand, airborne: bool, route_home: list[tuple[float, float]] | None
    ) -> None:
        c = vehicle.command
        if cmd is PilotCommand.PAUSE:
            await c.pause()
        elif cmd is PilotCommand.RESUME:
            await c.resume()
        elif cmd is PilotCommand.LAND:
            await c.land()
        elif cmd is PilotCommand.RTL or (cmd is PilotCommand.ABORT and ms.ABORT_VEHICLE_ACTION[airborne] == "rtl"):
            if route_home is None:
                await c.return_to_launch()
            else:  # a plain RTL flies straight home, through the zone: fly the bends, then RTL
                alt = max(RETURN_ALT_MIN_M, vehicle.state.alt_rel or 0.0)
                await vehicle.mission.upload(list(return_mission(route_home, alt=min(alt, CEILING_M))))
                await c.mission_start()
        elif cmd is PilotCommand.ABORT:
            # on the ground: disarm even if it looks disarmed, as a MISSION_START just sent may arm it yet;
            # a vehicle already lifting off refuses that, and is brought back down by RTL instead
            try:
                await c.disarm()
            except CommandDenied:
                await c.return_to_launch()


def _return_seq(m: Mission) -> int | None:
    for d in m.items:
        if d["command"] == Cmd.NAV_RETURN_TO_LAUNCH:
            return int(d["seq"])
    return None
