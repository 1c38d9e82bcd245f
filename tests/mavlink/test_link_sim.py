"""The link against the simulator over real loopback UDP, in this process (its state is checked
directly). The acceptance runs against ``dronedispatch sitl`` as a process are in
test_link_sitl_process.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dronedispatch.domain.mission_items import MissionItem, return_to_launch, takeoff, waypoint
from dronedispatch.mavlink.errors import CommandDenied, UploadFailed
from dronedispatch.mavlink.events import StateChanged, Telemetry, VehicleEvent
from dronedispatch.mavlink.mission_protocol import mission_checksum
from tests.mavlink.simfleet import DOCK, sim_and_link

LAND_MODES = {"AUTO.LAND", "AUTO.RTL"}


def plan(n: int) -> list[MissionItem]:
    items = [takeoff(DOCK.lat, DOCK.lon, 20.0)]
    items += [waypoint(DOCK.lat + i * 2e-5, DOCK.lon + i * 1e-5, 25.0) for i in range(1, n - 1)]
    return [*items, return_to_launch()][:n]


async def until(predicate: Callable[[], bool], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 (vehicle state has no single event to await)
            await asyncio.sleep(0.05)


async def test_one_vehicle_discover_upload_arm_start_rtl_land() -> None:
    events: list[VehicleEvent] = []
    async with sim_and_link(1, speed_factor=4.0) as (sim, link):
        link.add_listener(events.append)
        v = await link.wait_vehicle(1, 15)
        await until(lambda: v.state.home_lat is not None and v.state.lat is not None and v.state.landed_state == 1)
        assert v.state.autopilot == 12 and v.state.mode.startswith("AUTO")
        items = plan(10)
        opaque = await v.mission.upload(items)
        assert opaque == mission_checksum(items)
        assert mission_checksum(sim.vehicles[0].mission_items) == opaque
        await until(lambda: v.state.mission_id == opaque and v.state.mission_total == 10)
        # Arming can be refused for the first seconds after boot, as on PX4.
        async with asyncio.timeout(30):
            while True:  # retry until the vehicle is ready to arm
                try:
                    await v.command.arm()
                    break
                except CommandDenied:
                    await asyncio.sleep(0.5)
        await v.command.mission_start()
        await until(lambda: v.state.mode == "AUTO.MISSION" and v.state.armed)
        await until(lambda: (v.state.alt_rel or 0) > 2.0)
        assert any(isinstance(e, StateChanged) and "mode" in e.changed for e in events)
        assert any(isinstance(e, Telemetry) for e in events)
        await v.command.return_to_launch()
        await until(lambda: v.state.mode == "AUTO.RTL")
        await v.command.land()
        await until(lambda: v.state.mode == "AUTO.LAND")
        assert v.health.packets_received > 100 and not v.health.lost


async def test_five_vehicles_one_endpoint_uploads_at_once() -> None:
    async with sim_and_link(5) as (sim, link):
        vehicles = await asyncio.gather(*(link.wait_vehicle(i, 15) for i in range(1, 6)))
        plans = [plan(40 + i) for i in range(5)]
        ids = await asyncio.gather(*(v.mission.upload(p) for v, p in zip(vehicles, plans, strict=True)))
        for i, (opaque, p) in enumerate(zip(ids, plans, strict=True)):
            assert opaque == mission_checksum(p)
            assert mission_checksum(sim.vehicles[i].mission_items) == opaque
        downloaded = await asyncio.gather(*(v.mission.download() for v in vehicles))
        assert [len(d) for d in downloaded] == [len(p) for p in plans]


async def test_link_polls_for_replies_only_while_a_transfer_waits() -> None:
    async with sim_and_link(1, busy_poll_s=0.002) as (sim, link):
        v = await link.wait_vehicle(1, 15)
        passes = 0
        poll = link._poll

        def counted() -> None:
            nonlocal passes
            passes += 1
            poll()

        link._poll = counted  # type: ignore[method-assign]
        assert not link._polling
        items = plan(20)
        assert await v.mission.upload(items) == mission_checksum(items)
        assert passes > 20  # the loop kept polling while the vehicle answered
        await until(lambda: not link._polling, within=1.0)  # and stops on its own soon after
        idle = passes
        await asyncio.sleep(0.05)
        assert passes == idle
        link.busy_poll_s = 0.0  # turned off: uploads work the same, asleep between replies
        v.state.mission_seq = 17  # where the old plan was: meaningless for the new one
        assert await v.mission.upload(plan(5)) == mission_checksum(plan(5))
        assert v.state.mission_seq == 0  # a new plan starts at its first item
        assert passes == idle and mission_checksum(sim.vehicles[0].mission_items) == mission_checksum(plan(5))


async def test_parameters_and_message_interval() -> None:
    async with sim_and_link(1) as (_sim, link):
        v = await link.wait_vehicle(1, 15)
        cruise = await v.params.get("MPC_XY_CRUISE")
        assert isinstance(cruise, float) and cruise > 0
        assert await v.params.set("MPC_XY_CRUISE", 9.5) == 9.5
        assert await v.params.get("MPC_XY_CRUISE") == 9.5
        everything = await v.params.fetch_all()
        assert everything["MPC_XY_CRUISE"] == 9.5 and len(everything) >= 5
        assert await v.command.set_message_interval(33, 10.0) == 0
        assert await v.command.request_message(242) == 0  # HOME_POSITION


async def test_fence_and_rally_transfers_and_error_ack() -> None:
    from dronedispatch.domain.mission_items import Frame, MissionType

    square = [(DOCK.lat + dy, DOCK.lon + dx) for dy, dx in ((-0.01, -0.01), (-0.01, 0.01), (0.01, 0.01), (0.01, -0.01))]
    fence = [MissionItem(5001, lat, lon, 0.0, param1=4, frame=Frame.GLOBAL_INT) for lat, lon in square]
    rally = [MissionItem(5100, DOCK.lat + 0.001, DOCK.lon, 30.0, frame=Frame.GLOBAL_RELATIVE_ALT_INT)]
    async with sim_and_link(1) as (_sim, link):
        v = await link.wait_vehicle(1, 15)
        assert await v.mission.upload(fence, MissionType.FENCE) == mission_checksum(fence)
        assert await v.mission.upload(rally, MissionType.RALLY) == mission_checksum(rally)
        assert mission_checksum(await v.mission.download(MissionType.FENCE)) == mission_checksum(fence)
        assert len(await v.mission.download(MissionType.RALLY)) == 1
        await v.mission.clear(MissionType.FENCE)
        assert await v.mission.download(MissionType.FENCE) == []
        # A command the vehicle cannot run is refused with its meaning, and the plan stays.
        mission = plan(4)
        await v.mission.upload(mission)
        with pytest.raises(UploadFailed) as refused:
            await v.mission.upload([*plan(3), MissionItem(31337, DOCK.lat, DOCK.lon, 10.0)])
        assert refused.value.ack_result == 3 and "not supported" in str(refused.value)
        assert mission_checksum(await v.mission.download()) == mission_checksum(mission)


async def test_one_vehicle_heard_on_two_endpoints() -> None:
    """PX4's GCS and API links both into one MavlinkLink: one vehicle, no false loss."""
    from dronedispatch.domain.fleet import FleetConfig
    from dronedispatch.mavlink.link import MavlinkLink
    from dronedispatch.sim.runner import SimFleet
    from tests.fixtures.services import free_udp_port
    from tests.mavlink.simfleet import free_udp_range

    gcs_port, api_port = free_udp_port(), free_udp_port()
    base = free_udp_range(2)
    fleet = FleetConfig(city="t", docks=[DOCK]).sized(1)
    sim = SimFleet(fleet, gcs_port=gcs_port, vehicle_port_base=base, api_port_base=base + 1, api_target_base=api_port)
    async with sim, MavlinkLink([f"udpin:127.0.0.1:{gcs_port}", f"udpin:127.0.0.1:{api_port}"]) as link:
        v = await link.wait_vehicle(1, 15)
        await until(lambda: v.health.packets_received > 500)
        assert list(link.vehicles) == [1]
        assert v.health.loss_ratio < 0.01
        items = plan(20)
        assert await v.mission.upload(items) == mission_checksum(items)


async def test_upload_accepted_without_any_ack_or_mission_current_is_not_a_failure() -> None:
    """Every MISSION_ACK and MISSION_CURRENT from the vehicle is lost: the machine runs out of
    retries, then the link reads the plan back and finds the vehicle did store it."""
    from pymavlink.dialects.v20 import common as mav

    from dronedispatch.domain.fleet import FleetConfig
    from dronedispatch.mavlink.link import MavlinkLink
    from dronedispatch.sim.runner import SimFleet
    from tests.fixtures.services import free_udp_port
    from tests.mavlink.relay import UdpRelay
    from tests.mavlink.simfleet import free_udp_range

    link_port = free_udp_port()
    relay = UdpRelay(link_port)
    relay_port = await relay.start()
    fleet = FleetConfig(city="t", docks=[DOCK]).sized(1)
    sim = SimFleet(fleet, gcs_port=relay_port, vehicle_port_base=free_udp_range(1), api_port_base=None)
    try:
        async with sim, MavlinkLink(f"udpin:127.0.0.1:{link_port}") as link:
            v = await link.wait_vehicle(1, 15)
            relay.block_to_link = {mav.MAVLINK_MSG_ID_MISSION_ACK, mav.MAVLINK_MSG_ID_MISSION_CURRENT}
            items = plan(15)
            async with asyncio.timeout(60):
                opaque = await v.mission.upload(items)
            assert opaque == mission_checksum(items) == mission_checksum(sim.vehicles[0].mission_items)
    finally:
        relay.stop()


async def test_udpout_to_a_vehicle_beside_udpin_in_one_link() -> None:
    """Vehicle 1 sends to our udpin port (PX4's GCS layout); vehicle 2 sends to nobody until our
    udpout endpoint's heartbeat reaches it, then answers where that came from, as PX4 does."""
    from dronedispatch.domain.fleet import DroneSpec, FleetConfig
    from dronedispatch.mavlink.link import MavlinkLink
    from dronedispatch.sim.runner import SimFleet
    from tests.fixtures.services import free_udp_port
    from tests.mavlink.simfleet import free_udp_range

    gcs_port, nobody = free_udp_port(), free_udp_port()
    base = free_udp_range(2)
    first, second = (
        FleetConfig(city="t", docks=[DOCK], drones=[DroneSpec(id=f"d{i}", sysid=i, dock=DOCK.id)]) for i in (1, 2)
    )
    one = SimFleet(first, gcs_port=gcs_port, vehicle_port_base=base, api_port_base=None)
    two = SimFleet(second, gcs_port=nobody, vehicle_port_base=base + 1, api_port_base=None)
    urls = [f"udpin:127.0.0.1:{gcs_port}", f"udpout:127.0.0.1:{base + 1}"]
    async with one, two, MavlinkLink(urls) as link:
        v1, v2 = await asyncio.gather(link.wait_vehicle(1, 15), link.wait_vehicle(2, 15))
        plans = [plan(12), plan(13)]
        ids = await asyncio.gather(v1.mission.upload(plans[0]), v2.mission.upload(plans[1]))
        assert ids == [mission_checksum(p) for p in plans]
        assert mission_checksum(two.vehicles[0].mission_items) == ids[1]
        assert link._links[2].endpoint is link.endpoints[1]  # vehicle 2 is reached through udpout
