"""The door term of a launch: the opening time the dock reports (its last opening, measured), else the
fleet file's launch_delay_s. From the payload and the simulated dock through to the planner's ETA."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from dronedispatch import cityfiles
from dronedispatch.app.dispatch import DispatchService
from dronedispatch.app.fleet import DroneRegistry, Fleet
from dronedispatch.bus import LocalEventBus
from dronedispatch.domain import launch, planning
from dronedispatch.domain.docks import DockCommand, DockPayloadError, DockState, DoorState, parse_state
from dronedispatch.sim.docks import SimDock


def _state(dock_id: str, **fields: Any) -> DockState:
    return DockState(dock_id=dock_id, door=DoorState.CLOSED, drone_present=True, charging=False,
                     updated_at=datetime.now(UTC), **fields)  # fmt: skip


def test_the_payload_carries_the_door_opening_time() -> None:
    payload = _state("gtower", door_open_s=7.5).to_json()
    assert parse_state(payload, dock_id="gtower").door_open_s == 7.5
    assert parse_state(_state("gtower").to_json()).door_open_s is None  # optional: older bridges omit it
    with pytest.raises(DockPayloadError, match="door_open_s"):
        parse_state(payload.replace('"door_open_s":7.5', '"door_open_s":-1'))
    assert launch.door_s(7.5, 10.0) == 7.5 and launch.door_s(None, 10.0) == 10.0 and launch.door_s(0.0, 10.0) == 0.0


def test_the_simulated_dock_reports_its_rated_time_then_the_opening_it_measured() -> None:
    dock = SimDock(cityfiles.load_fleet().docks[0], door_time_s=6.0)
    assert dock.door_open_s == 6.0
    dock.door_time_s = 9.0  # a slower door (worn, iced): the next opening is measured as it happens
    dock.command(DockCommand.OPEN, "r1")
    while not dock.step(0.5):
        pass
    assert dock.door is DoorState.OPEN and dock.door_open_s == 9.0
    # closing is not an opening: the measure stays
    dock.command(DockCommand.CLOSE, "r2")
    while not dock.step(0.5):
        pass
    assert dock.door_open_s == 9.0


class _Docks:
    def __init__(self, states: dict[str, DockState]) -> None:
        self.states = states

    def state(self, dock_id: str) -> DockState | None:
        return self.states.get(dock_id)


def test_the_planner_counts_the_reported_door_time_else_the_fleet_files_delay() -> None:
    config = cityfiles.load_fleet().sized(2)  # dd-01 at gtower, dd-02 at songdo-south
    bus = LocalEventBus()
    unused = cast(Any, None)  # drone_statuses reads the fleet and the docks only
    docks = _Docks({"gtower": _state("gtower", door_open_s=3.0), "songdo-south": _state("songdo-south")})
    dispatcher = DispatchService(
        unused, bus, Fleet(DroneRegistry(config), unused, bus), unused, airspace=unused, cameras=unused,
        mission_templates={}, max_auto_eta_s=600.0, docks=docks,
    )  # fmt: skip
    statuses = {s.drone_id: s for s in dispatcher.drone_statuses()}
    fleet_delay = {d.id: d.launch_delay_s for d in config.drones}
    assert statuses["dd-01"].launch_delay_s == 3.0 != fleet_delay["dd-01"]
    assert statuses["dd-02"].launch_delay_s == fleet_delay["dd-02"]  # its dock reported no door time
    # the ETA's door term follows: everything else equal, it differs by exactly the door times
    eta = planning.eta_s(statuses["dd-01"], 1500.0)
    assert eta - planning.eta_s(replace(statuses["dd-01"], launch_delay_s=fleet_delay["dd-01"]), 1500.0) == (
        pytest.approx(3.0 - fleet_delay["dd-01"])
    )
    # a dock never heard: the fleet file's delay, as before docks were devices
    docks.states.clear()
    assert {s.drone_id: s.launch_delay_s for s in dispatcher.drone_statuses()} == fleet_delay
