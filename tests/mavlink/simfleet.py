"""Start the simulator and our link on per-test ports (never the demo's 14550/18570+)."""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import AsyncIterator

from dronedispatch.domain.fleet import Dock, FleetConfig
from dronedispatch.mavlink.link import MavlinkLink
from dronedispatch.sim.runner import SimFleet
from tests.fixtures.services import free_udp_port

DOCK = Dock(id="t", name_ko="시험", name_en="Test", lat=37.3918, lon=126.6393, alt=5.0)


def free_udp_range(n: int) -> int:
    """First of ``n`` consecutive UDP ports on 127.0.0.1 that were all free a moment ago."""
    for _ in range(200):
        base = random.randint(20000, 60000 - n)
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError("no free UDP port range")


@contextlib.asynccontextmanager
async def sim_and_link(
    n: int, *, speed_factor: float = 1.0, **link_kwargs: object
) -> AsyncIterator[tuple[SimFleet, MavlinkLink]]:
    gcs_port = free_udp_port()
    fleet = FleetConfig(city="t", docks=[DOCK]).sized(n)
    sim = SimFleet(
        fleet, speed_factor=speed_factor, gcs_port=gcs_port, vehicle_port_base=free_udp_range(n), api_port_base=None
    )
    link = MavlinkLink(f"udpin:127.0.0.1:{gcs_port}", **link_kwargs)  # type: ignore[arg-type]
    async with link, sim:
        yield sim, link
