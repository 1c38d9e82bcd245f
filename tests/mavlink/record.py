"""Record mission-upload captures from the simulator into tests/data (run by hand).

    .venv/bin/python -m tests.mavlink.record

Each capture is what our link sent and received (MISSION_* only) while uploading a plan to a
simulated vehicle through ``UdpRelay``, once clean and once with loss, saved with the plan and
the opaque_id the vehicle reported. ``test_mission_protocol`` replays them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from pathlib import Path

from dronedispatch.domain.fleet import FleetConfig
from dronedispatch.mavlink.link import MavlinkLink
from dronedispatch.sim.runner import SimFleet
from tests.fixtures.services import free_udp_port
from tests.mavlink.relay import UdpRelay
from tests.mavlink.simfleet import DOCK, free_udp_range
from tests.mavlink.test_link_sim import plan

DATA = Path(__file__).parents[1] / "data"


def _clean(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


async def record(name: str, n_items: int, loss: float, seed: int) -> None:
    link_port = free_udp_port()
    relay = UdpRelay(link_port, loss=loss, seed=seed)
    relay_port = await relay.start()
    fleet = FleetConfig(city="t", docks=[DOCK]).sized(1)
    sim = SimFleet(fleet, gcs_port=relay_port, vehicle_port_base=free_udp_range(1), api_port_base=None)
    try:
        async with sim, MavlinkLink(f"udpin:127.0.0.1:{link_port}") as link:
            v = await link.wait_vehicle(1, 15)
            items = plan(n_items)
            relay.record = True
            opaque = await v.mission.upload(items)
            relay.record = False
    finally:
        relay.stop()
    capture = relay.capture
    t0 = capture[0]["t"]
    exchange = [
        {"t": round(c["t"] - t0, 6), "dir": c["dir"], "msg": {k: _clean(x) for k, x in c["msg"].items()}}
        for c in capture
    ]
    doc = {
        "description": f"{n_items}-item upload to the simulator, {loss:.0%} loss per direction at a relay",
        "items": [{k: _clean(x) for k, x in dataclasses.asdict(it).items()} for it in items],
        "opaque_id": opaque,
        "exchange": exchange,
    }
    (DATA / f"mission_upload_{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(name, len(exchange), "messages")


async def main() -> None:
    DATA.mkdir(exist_ok=True)
    await record("clean", 8, 0.0, 1)
    await record("lossy", 12, 0.25, 7)


if __name__ == "__main__":
    asyncio.run(main())
