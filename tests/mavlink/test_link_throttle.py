"""The link's telemetry throttle: events at most telemetry_rate_hz, each with the freshest fix.

Frames go straight into the link's receive path (what a socket would hand it), so the test
controls exactly which message arrives when; only the throttle's own timers run in real time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymavlink.dialects.v20 import common as mav

from dronedispatch.mavlink.events import Telemetry, VehicleEvent
from dronedispatch.mavlink.link import MavlinkLink
from dronedispatch.mavlink.transport import Endpoint, EndpointSpec

PEER = ("127.0.0.1", 14580)
PERIOD_S = 0.1  # telemetry_rate_hz=10


class _Socketless(Endpoint):
    def __init__(self) -> None:
        super().__init__(EndpointSpec("udpin", "127.0.0.1", 1), lambda *_: None)

    def send(self, data: bytes, peer: Any = None) -> None:
        pass


class _Vehicle:
    def __init__(self, link: MavlinkLink) -> None:
        self.link, self.ep = link, _Socketless()
        self.enc = mav.MAVLink(None, srcSystem=1, srcComponent=1)
        self.clock_ms = 1000

    def send(self, msg: Any) -> None:
        self.link._on_data(self.ep, bytes(msg.pack(self.enc)), PEER)

    def fix(self) -> int:
        self.clock_ms += 20
        self.send(mav.MAVLink_global_position_int_message(self.clock_ms, 373918000, 1266393000, 5000, 0, 0, 0, 0, 0))
        return self.clock_ms

    def battery(self, pct: int) -> None:
        self.send(mav.MAVLink_sys_status_message(0, 0, 0, 0, 16000, -1, pct, 0, 0, 0, 0, 0, 0))


async def test_events_carry_the_newest_fix_and_changes_wait_for_one() -> None:
    async with MavlinkLink([], telemetry_rate_hz=1 / PERIOD_S) as link:
        veh = _Vehicle(link)
        veh.send(mav.MAVLink_heartbeat_message(2, 12, 29, 0x04040000, 3, 3))
        state = link.vehicles[1].state
        seen: list[tuple[int | None, float | None]] = []  # (fix clock, battery) of each Telemetry event

        def on_event(ev: VehicleEvent) -> None:
            if isinstance(ev, Telemetry):
                seen.append((state.time_boot_ms, state.battery_pct))

        link.add_listener(on_event)
        first = veh.fix()
        assert seen == [(first, None)]  # the first fix goes out at once
        veh.battery(80)
        veh.fix()  # inside the period: held back
        await asyncio.sleep(PERIOD_S * 1.2)
        veh.battery(79)  # the period is over, but there is no new fix yet: the change waits for one
        assert len(seen) == 1
        fresh = veh.fix()
        assert seen[-1] == (fresh, 79.0)  # the fix that just arrived, carrying the battery

        held = veh.fix()  # inside the next period, and then the stream stops
        await asyncio.sleep(PERIOD_S * 3)
        assert seen[-1] == (held, 79.0)  # the fallback sends the newest fix it kept
        veh.battery(78)  # no fixes at all now: the change still goes out, by the fallback
        await asyncio.sleep(PERIOD_S * 3)
        assert seen[-1] == (held, 78.0) and len(seen) == 4
