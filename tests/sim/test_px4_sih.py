"""The same checks against real PX4 SIH, when the user has a PX4 build (PX4_BUILD_DIR); else skipped.

PX4's ports are fixed (GCS link to 14550), so this test needs those ports free: no demo running.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from dronedispatch.domain import mission_items as mi
from tests.sim.gcs import Gcs

SCRIPT = Path(__file__).resolve().parents[2] / "sitl" / "px4_sih.sh"
pytestmark = [
    pytest.mark.px4,
    pytest.mark.skipif(not os.environ.get("PX4_BUILD_DIR"), reason="PX4_BUILD_DIR not set (no PX4 build here)"),
]


@pytest.mark.timeout(120)
async def test_px4_sih_instance_accepts_a_mission(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        "bash", str(SCRIPT), "-n", "1", "--logdir", str(tmp_path), start_new_session=True
    )
    gcs = await Gcs.open(14550)
    try:
        hb = await gcs.wait("HEARTBEAT", within=60, sysid=1)
        assert hb.autopilot == 12
        gcs.start_heartbeats()
        items = [mi.takeoff(37.3918, 126.6393, 20), mi.waypoint(37.3925, 126.6393, 20), mi.land(37.3918, 126.6393)]
        ack = await gcs.upload(1, items, within=20)
        assert ack.type == 0
    finally:
        gcs.close()
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
