"""The mission state machine: explicit events and vehicle observations in, transitions out.

Theory of operation
-------------------
A mission lives through::

    planned ─► uploading ─► launching ─► enroute ─► on_scene ─► returning ─► completed
        │          │            │           │           │           │
        └──────────┴────────────┴───────────┴───────────┴───────────┴──► aborted | failed

Two kinds of input move it:

* **Events** the service itself causes or learns about from the link layer: the upload started,
  was accepted or failed; arming failed; a pilot command (rtl, land, abort, resume). Each is a
  function here (:func:`upload_started`, :func:`command`, ...). An event that makes no sense in
  the current state raises :class:`InvalidTransition` (the API maps it to HTTP 409).
* **Observations** of the vehicle (:class:`VehicleObservation`, built from HEARTBEAT,
  EXTENDED_SYS_STATE, MISSION_CURRENT, SYS_STATUS): :func:`advance` folds one into the state.
  Observations only ever move a mission *forward* along the flight (launching → enroute →
  on_scene → returning → completed). They never move it back: a stale HEARTBEAT still showing
  AUTO.MISSION just after the pilot's RTL must not undo ``returning``. Going back to the mission
  after a return is the explicit :func:`resumed` event.

Time is an argument, never read here: the caller passes ``now`` and the time the state was
entered when it wants the launch timeout checked.

Abort ends the *mission* at once, wherever the drone is; the drone's own state
(:class:`~dronedispatch.domain.fleet.DroneState`) keeps tracking the flight home. The shell
that handles the abort command decides what to send the vehicle (RTL in the air, disarm on the
ground); :data:`ABORT_VEHICLE_ACTION` says what we recommend.

Every transition into ``failed`` or ``aborted`` carries a reason a person can read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class MissionState(StrEnum):
    PLANNED = "planned"
    UPLOADING = "uploading"
    LAUNCHING = "launching"
    ENROUTE = "enroute"
    ON_SCENE = "on_scene"
    RETURNING = "returning"
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"


class LandedState(IntEnum):
    """MAV_LANDED_STATE."""

    UNDEFINED = 0
    ON_GROUND = 1
    IN_AIR = 2
    TAKEOFF = 3
    LANDING = 4


S = MissionState

TERMINAL: frozenset[MissionState] = frozenset({S.COMPLETED, S.ABORTED, S.FAILED})
FLYING: frozenset[MissionState] = frozenset({S.LAUNCHING, S.ENROUTE, S.ON_SCENE, S.RETURNING})

#: Every transition the machine may make, in one place. Anything else is a bug or a bad request.
ALLOWED: dict[MissionState, frozenset[MissionState]] = {
    S.PLANNED: frozenset({S.UPLOADING, S.ABORTED, S.FAILED}),
    S.UPLOADING: frozenset({S.LAUNCHING, S.ABORTED, S.FAILED}),
    S.LAUNCHING: frozenset({S.ENROUTE, S.ON_SCENE, S.RETURNING, S.ABORTED, S.FAILED}),
    S.ENROUTE: frozenset({S.ON_SCENE, S.RETURNING, S.ABORTED, S.FAILED}),
    S.ON_SCENE: frozenset({S.RETURNING, S.ABORTED, S.FAILED}),
    S.RETURNING: frozenset({S.ENROUTE, S.ON_SCENE, S.COMPLETED, S.ABORTED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.ABORTED: frozenset(),
    S.FAILED: frozenset(),
}

#: PX4 modes (as "MAIN.SUB" names) in which the vehicle is heading home or down.
RETURN_MODES = frozenset({"AUTO.RTL", "AUTO.LAND", "RTL", "LAND"})
#: Landing where it is. Commanded by the pilot, the mission is already returning; chosen by the
#: vehicle itself mid-mission it is a failsafe (motor failure, GPS loss, critical battery).
LAND_MODES = frozenset({"AUTO.LAND", "LAND"})
MISSION_MODE = "AUTO.MISSION"

#: What the shell should send the vehicle when a mission is aborted, by whether it is airborne.
ABORT_VEHICLE_ACTION = {True: "rtl", False: "disarm"}


class InvalidTransition(ValueError):
    """An event arrived that the mission's current state does not allow."""

    def __init__(self, state: MissionState, event: str) -> None:
        super().__init__(f"cannot {event} a mission that is {state.value}")
        self.state = state
        self.event = event


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of one input: the new state and, when it changed or failed, why."""

    old_state: MissionState
    new_state: MissionState
    reason: str | None = None

    @property
    def changed(self) -> bool:
        return self.old_state != self.new_state

    @property
    def terminal(self) -> bool:
        return self.new_state in TERMINAL


@dataclass(frozen=True, slots=True)
class VehicleObservation:
    """What the vehicle last told us, reduced to what the mission state needs."""

    armed: bool
    mode: str  # PX4 "MAIN.SUB" name, e.g. "AUTO.MISSION", "AUTO.RTL", "POSCTL"
    landed_state: int = LandedState.UNDEFINED
    mission_seq: int = 0  # MISSION_CURRENT.seq
    mission_total: int = 0  # MISSION_CURRENT.total (0 when unknown)
    on_scene_seq: int = 0  # CompiledMission.on_scene_seq of the uploaded mission (0 = unknown: never on scene)
    link_lost: bool = False
    battery_pct: float | None = None
    return_seq: int | None = None  # index of the mission's own return item (time on scene over), if any

    @property
    def airborne(self) -> bool:
        if self.landed_state in (LandedState.IN_AIR, LandedState.TAKEOFF, LandedState.LANDING):
            return True
        if self.landed_state == LandedState.ON_GROUND:
            return False
        return self.armed  # no EXTENDED_SYS_STATE: armed is the best guess

    @property
    def on_ground_disarmed(self) -> bool:
        return not self.armed and not self.airborne


def _go(old: MissionState, new: MissionState, reason: str | None, event: str) -> Transition:
    if new != old and new not in ALLOWED[old]:
        raise InvalidTransition(old, event)
    return Transition(old, new, reason)


def _stay(state: MissionState) -> Transition:
    return Transition(state, state, None)


# --- events -----------------------------------------------------------------------------------


def upload_started(state: MissionState) -> Transition:
    if state != S.PLANNED:
        raise InvalidTransition(state, "start uploading")
    return _go(state, S.UPLOADING, None, "start uploading")


def upload_accepted(state: MissionState) -> Transition:
    if state != S.UPLOADING:
        raise InvalidTransition(state, "accept the upload of")
    return _go(state, S.LAUNCHING, None, "accept the upload of")


def upload_failed(state: MissionState, reason: str) -> Transition:
    if state != S.UPLOADING:
        raise InvalidTransition(state, "fail the upload of")
    return _go(state, S.FAILED, f"mission upload failed: {reason}", "fail the upload of")


def armed(state: MissionState) -> Transition:
    """The vehicle accepted the arm command: still launching until telemetry shows it airborne."""
    if state != S.LAUNCHING:
        raise InvalidTransition(state, "arm for")
    return _stay(state)


def launch_failed(state: MissionState, reason: str) -> Transition:
    """Arming or starting the mission was refused (e.g. COMMAND_ACK denied)."""
    if state != S.LAUNCHING:
        raise InvalidTransition(state, "fail the launch of")
    return _go(state, S.FAILED, f"launch failed: {reason}", "fail the launch of")


def failed(state: MissionState, reason: str) -> Transition:
    """Any other failure the shell detects (link lost for good, vehicle rebooted, ...)."""
    if state in TERMINAL:
        raise InvalidTransition(state, "fail")
    return _go(state, S.FAILED, reason, "fail")


class PilotCommand(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    RTL = "rtl"
    LAND = "land"
    ABORT = "abort"


def command(state: MissionState, cmd: PilotCommand | str, *, by: str = "pilot", note: str = "") -> Transition:
    """The state change a pilot command causes once the vehicle accepted it.

    pause and resume change no mission state (the vehicle's mode shows the pause); a resume
    after a return is :func:`resumed`, which needs to know where in the mission the vehicle is.
    """
    cmd = PilotCommand(cmd)
    suffix = f": {note}" if note else ""
    if state in TERMINAL:
        raise InvalidTransition(state, cmd.value)
    if cmd is PilotCommand.ABORT:
        return _go(state, S.ABORTED, f"aborted by {by}{suffix}", "abort")
    if cmd in (PilotCommand.PAUSE, PilotCommand.RESUME):
        if state not in FLYING:
            raise InvalidTransition(state, cmd.value)
        return _stay(state)
    # rtl / land
    if state not in FLYING:
        raise InvalidTransition(state, cmd.value)
    if state == S.RETURNING:
        return _stay(state)
    what = "return to launch" if cmd is PilotCommand.RTL else "land in place"
    return _go(state, S.RETURNING, f"{what} commanded by {by}{suffix}", cmd.value)


def resumed(state: MissionState, *, mission_seq: int, on_scene_seq: int) -> Transition:
    """The pilot put a returning vehicle back on its mission (AUTO.MISSION accepted)."""
    if state != S.RETURNING:
        raise InvalidTransition(state, "resume")
    new = S.ON_SCENE if mission_seq >= on_scene_seq else S.ENROUTE
    return _go(state, new, "mission resumed by pilot", "resume")


# --- observations -----------------------------------------------------------------------------


def advance(
    state: MissionState,
    obs: VehicleObservation,
    *,
    now: float | None = None,
    entered_at: float | None = None,
    launch_timeout_s: float = 60.0,
) -> Transition:
    """Fold one vehicle observation into the mission state.

    ``now`` and ``entered_at`` (seconds on any one clock) enable the launch timeout: a mission
    still on the ground ``launch_timeout_s`` after its upload was accepted has failed.
    A lost link changes nothing here; how long to wait is the shell's policy (see :func:`failed`).
    """
    if state in TERMINAL or state in (S.PLANNED, S.UPLOADING) or obs.link_lost:
        return _stay(state)

    in_return_mode = obs.mode in RETURN_MODES
    # on_scene_seq 0 means "not known" (a compiled mission's item 0 is always the takeoff)
    at_scene = 0 < obs.on_scene_seq <= obs.mission_seq and obs.mode == MISSION_MODE
    batt = f" (battery {obs.battery_pct:.0f}%)" if obs.battery_pct is not None else ""

    if state in (S.LAUNCHING, S.ENROUTE, S.ON_SCENE) and obs.mode in LAND_MODES and obs.airborne:
        return _go(
            state, S.FAILED, f"vehicle began landing on its own where it is (mode {obs.mode}){batt}: "
            "a failsafe or fault; recover it from there", "observe",
        )

    if state == S.LAUNCHING:
        if obs.airborne and in_return_mode:
            return _go(state, S.RETURNING, f"vehicle switched to {obs.mode} during launch{batt}", "observe")
        if obs.airborne and obs.mode == MISSION_MODE:
            # a mission already past its scene item was on scene first: a late observation must not skip it
            if at_scene:
                return _go(state, S.ON_SCENE, None, "observe")
            if obs.return_seq is not None and obs.mission_seq >= obs.return_seq:
                return _go(state, S.RETURNING, "time on scene over: mission returns to launch", "observe")
            return _go(state, S.ENROUTE, None, "observe")
        if now is not None and entered_at is not None and now - entered_at > launch_timeout_s and not obs.airborne:
            why = "armed but never left the ground" if obs.armed else "vehicle did not arm"
            return _go(state, S.FAILED, f"no takeoff within {launch_timeout_s:.0f} s: {why}", "observe")
        return _stay(state)

    if state in (S.ENROUTE, S.ON_SCENE):
        if obs.on_ground_disarmed:
            where = "before reaching the scene" if state == S.ENROUTE else "at the scene"
            return _go(state, S.FAILED, f"vehicle landed and disarmed {where} (mode {obs.mode}){batt}", "observe")
        if in_return_mode:
            return _go(state, S.RETURNING, f"vehicle switched to {obs.mode}{batt}", "observe")
        if state == S.ENROUTE and at_scene:  # before the return check, for the same reason as above
            return _go(state, S.ON_SCENE, None, "observe")
        if obs.mode == MISSION_MODE and obs.return_seq is not None and obs.mission_seq >= obs.return_seq:
            return _go(state, S.RETURNING, "time on scene over: mission returns to launch", "observe")
        return _stay(state)  # paused (AUTO.LOITER) or manual control: still the same mission

    # RETURNING
    if obs.on_ground_disarmed:
        return _go(state, S.COMPLETED, None, "observe")
    return _stay(state)
