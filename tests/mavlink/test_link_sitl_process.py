"""The link against ``dronedispatch sitl`` run as its own process, as a tester starts it.

The simulator's state is out of reach here, so what the vehicle stored is read from what it
says on its own: MISSION_CURRENT carries the opaque_id (CRC-32 of the plan) it holds, at 1 Hz.
A vehicle that stops answering is a simulator process stopped with SIGSTOP: nothing it sends
or answers, as when a radio link dies, and it resumes where it was with SIGCONT.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dronedispatch.mavlink.errors import CommandTimeout, UploadFailed
from dronedispatch.mavlink.events import VehicleEvent, VehicleLost, VehicleRecovered
from dronedispatch.mavlink.link import MavlinkLink
from dronedispatch.mavlink.mission_protocol import ITEM_TIMEOUT_S, MAX_RETRIES, MissionUpload, mission_checksum
from dronedispatch.mavlink.vehicle import Vehicle
from tests.fixtures.services import free_udp_port
from tests.mavlink.simfleet import DOCK, free_udp_range
from tests.mavlink.test_link_sim import plan, until

KEY = bytes(range(50, 82))
#: The upload's own budget when the vehicle goes silent mid-transfer: each retry waits
#: ITEM_TIMEOUT_S (the MAVLink default), MAX_RETRIES of them in a row, plus room for a busy machine.
SILENT_UPLOAD_BUDGET_S = (MAX_RETRIES + 1) * ITEM_TIMEOUT_S + 10.0


@contextlib.asynccontextmanager
async def sitl(
    tmp_path: Path, vehicles: int, *options: str, **link_kwargs: object
) -> AsyncIterator[tuple[asyncio.subprocess.Process, MavlinkLink]]:
    """``dronedispatch sitl`` on free ports (no API link, no video) and our link on its GCS port."""
    gcs_port = free_udp_port()
    cmd = [
        sys.executable, "-m", "dronedispatch.cli", "sitl", "--vehicles", str(vehicles),
        "--home", f"{DOCK.lat},{DOCK.lon},{DOCK.alt}", "--no-video", "--gcs-port", str(gcs_port),
        "--vehicle-port-base", str(free_udp_range(vehicles)), "--api-port-base", "0", *options,
    ]  # fmt: skip
    log_path = tmp_path / "sitl.log"
    async with MavlinkLink(f"udpin:127.0.0.1:{gcs_port}", **link_kwargs) as link:  # type: ignore[arg-type]
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(*cmd, stdout=log, stderr=log)
        try:
            yield proc, link
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
                    proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            sys.stderr.write(log_path.read_text(errors="replace")[-3000:])


async def holds(vehicle: Vehicle, opaque_id: int) -> None:
    """The vehicle itself reports ``opaque_id`` as its plan (MISSION_CURRENT.mission_id)."""
    await until(lambda: vehicle.state.mission_id == opaque_id, 15)


async def test_five_vehicles_on_one_endpoint_upload_at_once(tmp_path: Path) -> None:
    async with sitl(tmp_path, 5) as (_proc, link):
        vehicles = await asyncio.gather(*(link.wait_vehicle(i, 30) for i in range(1, 6)))
        assert sorted(link.vehicles) == [1, 2, 3, 4, 5] and len(link.endpoints) == 1
        plans = [plan(50 + i) for i in range(5)]
        ids = await asyncio.gather(*(v.mission.upload(p) for v, p in zip(vehicles, plans, strict=True)))
        assert ids == [mission_checksum(p) for p in plans]
        for v, opaque in zip(vehicles, ids, strict=True):
            await holds(v, opaque)
        # Downloads from all at once give each vehicle's own plan back.
        back = await asyncio.gather(*(v.mission.download() for v in vehicles))
        assert [mission_checksum(b) for b in back] == ids


async def test_hundred_items_under_ten_percent_loss_and_100_ms_latency(tmp_path: Path) -> None:
    async with sitl(tmp_path, 2, "--loss", "0.1", "--latency", "100", "--seed", "5") as (_proc, link):
        vehicles = await asyncio.gather(link.wait_vehicle(1, 30), link.wait_vehicle(2, 30))
        plans = [plan(100), plan(100)[::-1]]
        async with asyncio.timeout(120):
            ids = await asyncio.gather(*(v.mission.upload(p) for v, p in zip(vehicles, plans, strict=True)))
        assert ids == [mission_checksum(p) for p in plans]
        for v, opaque in zip(vehicles, ids, strict=True):
            await holds(v, opaque)
        assert all(v.health.packets_lost > 0 for v in vehicles)  # the loss was real and was counted


async def test_vehicle_that_stops_answering_mid_upload_fails_clearly_and_is_reread_on_return(
    tmp_path: Path,
) -> None:
    events: list[VehicleEvent] = []
    async with sitl(tmp_path, 1, "--latency", "5") as (proc, link):
        link.add_listener(events.append)
        v = await link.wait_vehicle(1, 30)
        old = plan(5)
        await holds(v, await v.mission.upload(old))
        task = asyncio.create_task(v.mission.upload(plan(300)))

        def mid_transfer() -> bool:
            txs = [t for t in v._active if isinstance(t, MissionUpload)]
            return bool(txs) and txs[0].highest_requested >= 20

        await until(mid_transfer)
        proc.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            with pytest.raises(UploadFailed) as failed:
                async with asyncio.timeout(SILENT_UPLOAD_BUDGET_S):
                    await task
            took = time.monotonic() - stopped_at
            assert failed.value.ack_result is None
            assert "stopped requesting items after item" in str(failed.value)
            assert took >= ITEM_TIMEOUT_S  # the spec's timeout was waited out, not cut short
            await until(lambda: v.health.lost)
            assert any(isinstance(e, VehicleLost) for e in events)
        finally:
            proc.send_signal(signal.SIGCONT)
        await until(lambda: not v.health.lost)
        assert any(isinstance(e, VehicleRecovered) for e in events)
        # What the vehicle holds is read from it again: the abandoned upload left the old plan.
        await holds(v, mission_checksum(old))


async def test_signed_vehicle_ignores_unsigned_commands(tmp_path: Path) -> None:
    async with sitl(tmp_path, 1, "--signing-key", KEY.hex()) as (_proc, link):
        v = await link.wait_vehicle(1, 30)  # heard (its frames are signed), but it will not listen
        with pytest.raises(CommandTimeout):
            await v.command.request_message(242)
        with pytest.raises(UploadFailed, match="no MISSION_REQUEST"):
            await v.mission.upload(plan(3))
        assert not v.state.armed
    async with sitl(tmp_path, 1, "--signing-key", f"1:{KEY.hex()}", signing_keys={1: KEY}) as (_proc, link):
        v = await link.wait_vehicle(1, 30)
        assert await v.command.request_message(242) == 0
        items = plan(10)
        await holds(v, await v.mission.upload(items))
        assert v.health.rejected_signature == 0


def test_sitl_refuses_a_bad_signing_key() -> None:
    import subprocess

    for bad in ("abc", "1:" + "00" * 31, "0:" + KEY.hex(), "x:" + KEY.hex()):
        r = subprocess.run(
            [sys.executable, "-m", "dronedispatch.cli", "sitl", "--signing-key", bad],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        assert r.returncode == 2 and "--signing-key" in r.stderr, (bad, r.stderr)
