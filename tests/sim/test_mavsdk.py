"""Acceptance (issue 4): MAVSDK 4.x flies a 20-item mission on the simulator's API link.

MAVSDK binds the API link's target port (PX4's 14540+i layout; here a free per-test port so a
running demo is not disturbed) and talks to instance 0 while instance 1 also runs.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from dronedispatch.domain.fleet import Dock, FleetConfig
from dronedispatch.sim.runner import SimFleet
from tests.sim.gcs import eventually, free_port_block

mavsdk_asyncio = pytest.importorskip("mavsdk.asyncio")
from mavsdk.asyncio.plugins.action import ActionAsync  # noqa: E402
from mavsdk.asyncio.plugins.mission_raw import MissionRawAsync  # noqa: E402
from mavsdk.asyncio.plugins.telemetry import TelemetryAsync  # noqa: E402
from mavsdk.plugins.mission_raw import MissionItem  # noqa: E402

HOME = (37.3918, 126.6393)


def _mission() -> list[MissionItem]:
    items = [MissionItem(0, 6, 22, 1, 1, 0, 0, 0, math.nan, round(HOME[0] * 1e7), round(HOME[1] * 1e7), 20.0, 0)]
    # 18 waypoints on a 60 m square-ish loop
    for k in range(18):
        ang = 2 * math.pi * k / 18
        lat = HOME[0] + 0.0005 * math.cos(ang)
        lon = HOME[1] + 0.0006 * math.sin(ang)
        items.append(MissionItem(k + 1, 6, 16, 0, 1, 0, 2.0, 0, math.nan, round(lat * 1e7), round(lon * 1e7),
                                 20.0, 0))
    items.append(MissionItem(19, 6, 21, 0, 1, 0, 0, 0, math.nan, round(HOME[0] * 1e7), round(HOME[1] * 1e7), 0.0,
                             0))
    return items


@pytest.mark.timeout(180)
async def test_mavsdk_flies_mission_raw_on_instance_0() -> None:
    base = free_port_block(8)
    fleet = FleetConfig(
        city="t", docks=[Dock(id="a", name_ko="a", name_en="a", lat=HOME[0], lon=HOME[1], alt=5.0)]
    ).sized(2)
    sim = SimFleet(fleet, speed_factor=10.0, gcs_port=base, vehicle_port_base=base + 1, api_port_base=base + 3,
                   api_target_base=base + 5)
    config = mavsdk_asyncio.Configuration.create_with_component_type(mavsdk_asyncio.ComponentType.GROUND_STATION)
    async with sim, mavsdk_asyncio.Mavsdk(config) as drone:
        await drone.add_any_connection(f"udpin://127.0.0.1:{base + 5}")
        system = await drone.first_autopilot(timeout_s=20.0)
        assert system is not None
        assert await system.get_system_id() == 1  # instance 0, not its neighbour
        telemetry = TelemetryAsync(system)
        action = ActionAsync(system)
        mission = MissionRawAsync(system)

        position = await telemetry.position()
        for _ in range(100):  # the first GLOBAL_POSITION_INT may not have arrived yet
            if not math.isnan(position.latitude_deg):
                break
            await asyncio.sleep(0.05)
            position = await telemetry.position()
        assert abs(position.latitude_deg - HOME[0]) < 1e-4
        await mission.upload_mission(_mission())
        assert [round(it.y) for it in sim.vehicles[0].mission_items][:1] == [round(HOME[1] * 1e7)]
        assert len(sim.vehicles[0].mission_items) == 20
        assert sim.vehicles[1].mission_items == []

        for _ in range(100):  # pre-arm checks pass a few simulated seconds after boot
            try:
                await action.arm()
                break
            except Exception:
                await asyncio.sleep(0.2)
        assert sim.vehicles[0].armed
        await mission.start_mission()

        seen: list[int] = []

        async def follow() -> None:
            async for progress in mission.subscribe_mission_progress():
                seen.append(progress.current)
                if progress.total == 20 and progress.current == 20:
                    return

        await asyncio.wait_for(follow(), 120)
        assert seen == sorted(seen) and len(set(seen)) > 10  # item by item, never backwards
        await eventually(mission.is_mission_finished, 60, 0.2)
        progress = await mission.mission_progress()
        assert progress.total == 20 and progress.current == 20

        await eventually(lambda: not sim.vehicles[0].armed, 60)
        v = sim.vehicles[0]
        assert v.landed_state == 1
        assert abs(v.lat - HOME[0]) < 2e-5 and abs(v.lon - HOME[1]) < 2e-5
        assert sim.vehicles[1].landed_state == 1 and not sim.vehicles[1].armed


@pytest.mark.timeout(180)
async def test_mavsdk_actions_params_and_flight_modes() -> None:
    from mavsdk.asyncio.plugins.param import ParamAsync
    from mavsdk.plugins.telemetry import FlightMode

    base = free_port_block(8)
    fleet = FleetConfig(
        city="t", docks=[Dock(id="a", name_ko="a", name_en="a", lat=HOME[0], lon=HOME[1], alt=5.0)]
    ).sized(2)
    sim = SimFleet(fleet, speed_factor=10.0, gcs_port=base, vehicle_port_base=base + 1, api_port_base=base + 3,
                   api_target_base=base + 5)
    config = mavsdk_asyncio.Configuration.create_with_component_type(mavsdk_asyncio.ComponentType.GROUND_STATION)
    async with sim, mavsdk_asyncio.Mavsdk(config) as drone:
        await drone.add_any_connection(f"udpin://127.0.0.1:{base + 5}")
        system = await drone.first_autopilot(timeout_s=20.0)
        assert system is not None
        action, telemetry, param = ActionAsync(system), TelemetryAsync(system), ParamAsync(system)
        v = sim.vehicles[0]

        await param.set_param_float("MIS_TAKEOFF_ALT", 12.0)
        assert await param.get_param_float("MIS_TAKEOFF_ALT") == pytest.approx(12.0)
        await param.set_param_int("NAV_DLL_ACT", 2)
        assert v.model.params["NAV_DLL_ACT"] == 2
        await action.set_return_to_launch_altitude(25.0)
        assert v.model.params["RTL_RETURN_ALT"] == 25.0

        for _ in range(100):
            try:
                await action.arm()
                break
            except Exception:
                await asyncio.sleep(0.2)
        await action.takeoff()
        await eventually(lambda: v.mode == "AUTO.LOITER" and v.alt_rel > 11.5, 60)

        async def mode_is_hold() -> bool:
            return await telemetry.flight_mode() == FlightMode.HOLD

        await eventually(mode_is_hold, 10)
        await action.goto_location(HOME[0] + 0.001, HOME[1], 5.0 + 15.0, 0.0)  # AMSL, ~111 m north
        await eventually(lambda: abs(v.lat - (HOME[0] + 0.001)) < 2e-6 and v.model.groundspeed < 0.1, 60)
        assert abs(v.alt_rel - 15.0) < 0.5
        await action.return_to_launch()
        await eventually(lambda: v.mode == "AUTO.RTL", 10)
        await eventually(lambda: v.alt_rel > 24.5, 60)  # climbs to RTL_RETURN_ALT first
        await action.land()
        await eventually(lambda: not v.armed, 90)
        assert v.landed_state == 1
        assert not sim.vehicles[1].armed
