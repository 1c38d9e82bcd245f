import pytest
from hypothesis import given
from hypothesis import strategies as st

from dronedispatch.domain import mission_state as ms
from dronedispatch.domain.mission_state import (
    ALLOWED,
    TERMINAL,
    InvalidTransition,
    LandedState,
    MissionState,
    PilotCommand,
    VehicleObservation,
    advance,
)

S = MissionState
ON_SCENE_SEQ = 4
RETURN_SEQ = 9


def obs(mode: str = "AUTO.MISSION", *, armed: bool = True, landed: int = LandedState.IN_AIR, seq: int = 1,
        link_lost: bool = False, battery: float | None = 80.0, return_seq: int | None = RETURN_SEQ
        ) -> VehicleObservation:
    return VehicleObservation(armed=armed, mode=mode, landed_state=landed, mission_seq=seq, mission_total=11,
                              on_scene_seq=ON_SCENE_SEQ, link_lost=link_lost, battery_pct=battery,
                              return_seq=return_seq)


ON_GROUND = {"armed": False, "landed": LandedState.ON_GROUND}


def test_happy_path_through_every_state() -> None:
    s = S.PLANNED
    s = ms.upload_started(s).new_state
    assert s == S.UPLOADING
    s = ms.upload_accepted(s).new_state
    assert s == S.LAUNCHING
    assert ms.armed(s).new_state == S.LAUNCHING and not ms.armed(s).changed
    # still on the ground, arming: nothing changes
    assert advance(s, obs("AUTO.TAKEOFF", landed=LandedState.ON_GROUND, seq=0)).new_state == S.LAUNCHING
    assert advance(s, obs("AUTO.MISSION", landed=LandedState.TAKEOFF, seq=0)).new_state == S.ENROUTE
    s = S.ENROUTE
    assert advance(s, obs(seq=3)).new_state == S.ENROUTE
    t = advance(s, obs(seq=ON_SCENE_SEQ))
    assert t.new_state == S.ON_SCENE and t.changed and t.reason is None
    s = t.new_state
    assert advance(s, obs(seq=7)).new_state == S.ON_SCENE
    t = advance(s, obs(seq=RETURN_SEQ))
    assert t.new_state == S.RETURNING and "time on scene" in (t.reason or "")
    s = t.new_state
    assert advance(s, obs("AUTO.RTL", landed=LandedState.LANDING, seq=10)).new_state == S.RETURNING
    t = advance(s, obs("AUTO.RTL", **ON_GROUND, seq=10))
    assert t.new_state == S.COMPLETED and t.terminal


def test_failsafe_rtl_while_enroute_returns_with_reason_naming_battery() -> None:
    t = advance(S.ENROUTE, obs("AUTO.RTL", battery=18))
    assert t.new_state == S.RETURNING
    assert "AUTO.RTL" in (t.reason or "") and "18%" in (t.reason or "")


def test_a_landing_the_vehicle_chose_itself_fails_the_mission_with_a_reason() -> None:
    for state in (S.LAUNCHING, S.ENROUTE, S.ON_SCENE):
        t = advance(state, obs("AUTO.LAND", seq=6, battery=9))
        assert t.new_state == S.FAILED and "AUTO.LAND" in (t.reason or "") and "9%" in (t.reason or "")


def test_a_landing_the_pilot_commanded_is_a_return() -> None:
    t = ms.command(S.ON_SCENE, "land", by="kim")
    assert t.new_state == S.RETURNING
    assert advance(S.RETURNING, obs("AUTO.LAND", seq=6)).new_state == S.RETURNING


def test_pause_and_manual_control_keep_the_state() -> None:
    for mode in ("AUTO.LOITER", "POSCTL", "ALTCTL"):
        assert advance(S.ENROUTE, obs(mode, seq=2)).new_state == S.ENROUTE
        assert advance(S.ON_SCENE, obs(mode, seq=6)).new_state == S.ON_SCENE


def test_stale_mission_heartbeat_does_not_undo_a_commanded_return() -> None:
    s = ms.command(S.ON_SCENE, "rtl").new_state
    assert s == S.RETURNING
    assert advance(s, obs("AUTO.MISSION", seq=6)).new_state == S.RETURNING


def test_landing_before_the_scene_fails_with_reason() -> None:
    t = advance(S.ENROUTE, obs("AUTO.LOITER", **ON_GROUND, seq=2))
    assert t.new_state == S.FAILED and "before reaching the scene" in (t.reason or "")
    t = advance(S.ON_SCENE, obs("AUTO.MISSION", **ON_GROUND, seq=6))
    assert t.new_state == S.FAILED and "at the scene" in (t.reason or "")


def test_launch_timeout_fails_with_reason() -> None:
    grounded = obs("AUTO.LOITER", armed=False, landed=LandedState.ON_GROUND, seq=0)
    assert advance(S.LAUNCHING, grounded, now=100.0, entered_at=50.0, launch_timeout_s=60).new_state == S.LAUNCHING
    t = advance(S.LAUNCHING, grounded, now=111.0, entered_at=50.0, launch_timeout_s=60)
    assert t.new_state == S.FAILED and "did not arm" in (t.reason or "")
    armed_on_ground = obs("AUTO.TAKEOFF", armed=True, landed=LandedState.ON_GROUND, seq=0)
    t = advance(S.LAUNCHING, armed_on_ground, now=111.0, entered_at=50.0, launch_timeout_s=60)
    assert t.new_state == S.FAILED and "never left the ground" in (t.reason or "")


def test_launch_straight_to_rtl_or_to_scene() -> None:
    assert advance(S.LAUNCHING, obs("AUTO.RTL", seq=0)).new_state == S.RETURNING
    assert advance(S.LAUNCHING, obs(seq=ON_SCENE_SEQ + 1)).new_state == S.ON_SCENE


def test_lost_link_changes_nothing() -> None:
    for s in (S.LAUNCHING, S.ENROUTE, S.ON_SCENE, S.RETURNING):
        assert advance(s, obs("AUTO.RTL", **ON_GROUND, link_lost=True)).new_state == s


def test_unknown_landed_state_falls_back_to_armed() -> None:
    o = VehicleObservation(armed=False, mode="AUTO.RTL", landed_state=LandedState.UNDEFINED)
    assert o.on_ground_disarmed
    assert advance(S.RETURNING, o).new_state == S.COMPLETED
    assert VehicleObservation(armed=True, mode="AUTO.MISSION").airborne


def test_upload_failure_and_launch_failure_carry_reasons() -> None:
    t = ms.upload_failed(S.UPLOADING, "vehicle replied MAV_MISSION_NO_SPACE")
    assert t.new_state == S.FAILED and "MAV_MISSION_NO_SPACE" in (t.reason or "")
    t = ms.launch_failed(S.LAUNCHING, "arming denied: preflight checks")
    assert t.new_state == S.FAILED and "preflight" in (t.reason or "")
    t = ms.failed(S.ENROUTE, "link lost for 60 s")
    assert t.new_state == S.FAILED and t.reason == "link lost for 60 s"


def test_commands() -> None:
    t = ms.command(S.ENROUTE, PilotCommand.RTL, by="pilot kim")
    assert t.new_state == S.RETURNING and "pilot kim" in (t.reason or "")
    assert ms.command(S.ON_SCENE, "land").new_state == S.RETURNING
    assert ms.command(S.RETURNING, "rtl").new_state == S.RETURNING
    assert ms.command(S.ENROUTE, "pause").new_state == S.ENROUTE
    assert ms.command(S.ON_SCENE, "resume").new_state == S.ON_SCENE
    for s in (S.PLANNED, S.UPLOADING, S.LAUNCHING, S.ENROUTE, S.ON_SCENE, S.RETURNING):
        t = ms.command(s, "abort", by="pilot kim", note="false alarm")
        assert t.new_state == S.ABORTED and t.reason == "aborted by pilot kim: false alarm"
    with pytest.raises(InvalidTransition, match="cannot rtl a mission that is planned"):
        ms.command(S.PLANNED, "rtl")
    with pytest.raises(ValueError):
        ms.command(S.ENROUTE, "dance")


def test_resume_after_return() -> None:
    assert ms.resumed(S.RETURNING, mission_seq=2, on_scene_seq=4).new_state == S.ENROUTE
    assert ms.resumed(S.RETURNING, mission_seq=5, on_scene_seq=4).new_state == S.ON_SCENE
    with pytest.raises(InvalidTransition):
        ms.resumed(S.ENROUTE, mission_seq=5, on_scene_seq=4)


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_accept_nothing(state: MissionState) -> None:
    assert not ALLOWED[state]
    assert advance(state, obs("AUTO.RTL", **ON_GROUND)).new_state == state
    for cmd in PilotCommand:
        with pytest.raises(InvalidTransition):
            ms.command(state, cmd)
    with pytest.raises(InvalidTransition):
        ms.failed(state, "x")


@pytest.mark.parametrize("event", [ms.upload_started, ms.upload_accepted, ms.armed])
def test_events_out_of_order_raise(event) -> None:
    with pytest.raises(InvalidTransition):
        event(S.ENROUTE)


def test_every_failure_and_abort_has_a_reason_and_table_covers_all_states() -> None:
    assert set(ALLOWED) == set(MissionState)
    for s in set(MissionState) - TERMINAL:
        assert S.FAILED in ALLOWED[s] and S.ABORTED in ALLOWED[s]


observations = st.builds(
    VehicleObservation,
    armed=st.booleans(),
    mode=st.sampled_from(["AUTO.MISSION", "AUTO.LOITER", "AUTO.RTL", "AUTO.LAND", "AUTO.TAKEOFF", "POSCTL"]),
    landed_state=st.integers(0, 4),
    mission_seq=st.integers(0, 12),
    mission_total=st.just(12),
    on_scene_seq=st.integers(1, 6),
    link_lost=st.booleans(),
    battery_pct=st.one_of(st.none(), st.floats(0, 100)),
    return_seq=st.one_of(st.none(), st.integers(6, 11)),
)


@given(st.sampled_from(list(MissionState)), st.lists(observations, max_size=30),
       st.floats(0, 1000), st.floats(0, 1000))
def test_observations_only_make_allowed_transitions(start, seq, now, entered) -> None:
    order = [S.LAUNCHING, S.ENROUTE, S.ON_SCENE, S.RETURNING, S.COMPLETED]
    s = start
    for o in seq:
        t = advance(s, o, now=now, entered_at=entered)
        assert t.old_state == s
        if t.changed:
            assert t.new_state in ALLOWED[s]
            if t.new_state in (S.FAILED, S.ABORTED):
                assert t.reason
            elif s in order:  # observations only move forward along the flight
                assert order.index(t.new_state) > order.index(s)
        s = t.new_state


def test_unknown_on_scene_seq_never_claims_the_scene() -> None:
    o = VehicleObservation(armed=True, mode="AUTO.MISSION", landed_state=LandedState.IN_AIR, mission_seq=5)
    assert advance(S.ENROUTE, o).new_state == S.ENROUTE
    assert advance(S.LAUNCHING, o).new_state == S.ENROUTE
