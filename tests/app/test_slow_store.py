"""A slow database holds up neither telemetry nor the flight.

Every SQL statement is delayed by 200 ms (a statement hook on the service's engine, on a real
PostgreSQL server), the service runs in this process behind a real HTTP server, the simulator in
its own process over loopback UDP. A WebSocket client follows the drone while it flies a whole
mission. What must hold: no statement ever runs on the event loop's thread (the MAVLink listener
never waits for a commit), the drone's telemetry keeps arriving at its rate, and the mission
passes through every state to ``completed``, each transition written in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
import yaml
from sqlalchemy import event

from dronedispatch import cityfiles
from dronedispatch.runtime import Runtime
from dronedispatch.service import create_app
from dronedispatch.settings import Settings
from dronedispatch.store.users import hash_password
from tests.e2e.conftest import DD, _port_block
from tests.fixtures.services import free_tcp_port, free_udp_port

pytestmark = pytest.mark.e2e

STATEMENT_DELAY_S = 0.2
PASSWORD = "slow-store-password"
SCENE = {"lat": 37.3927, "lon": 126.6378}  # Songdo Central Park, next to dd-01's dock
#: Telemetry is sent at 4 Hz per drone; a loop stalled by even one transition's statements (several
#: times the delay) would leave a gap well beyond this.
MAX_TELEMETRY_GAP_S = 1.0
ORDER = ["uploading", "launching", "enroute", "on_scene", "returning", "completed"]


class SlowStatements:
    """Delays every statement and notes the ones that ran on the event loop's thread."""

    def __init__(self, loop_thread: int) -> None:
        self.loop_thread = loop_thread
        self.enabled = False
        self.on_loop: list[str] = []
        self.delayed = 0

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.enabled:
            return
        if threading.get_ident() == self.loop_thread:
            self.on_loop.append(statement.split("\n")[0][:120])
        self.delayed += 1
        time.sleep(STATEMENT_DELAY_S)


@contextlib.asynccontextmanager
async def service(
    tmp_path: Path, database_url: str, gcs_port: int, fleet_file: Path
) -> AsyncIterator[tuple[str, Runtime]]:
    settings = Settings(
        database_url=database_url,
        mavlink=f"udpin:127.0.0.1:{gcs_port}",
        fleet=fleet_file,
        secret_key="slow-store-secret-key-slow-store-secret-key",
        recordings_dir=tmp_path / "recordings",
    )
    runtime = Runtime(settings)
    port = free_tcp_port()
    config = uvicorn.Config(
        create_app(settings, runtime), host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(300):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.1)
        assert server.started, "the service did not start"
        yield f"127.0.0.1:{port}", runtime
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 60)


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """One simulated vehicle (``dronedispatch sitl`` as its own process): its GCS port and fleet file."""
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(cityfiles.load_fleet().sized(1).model_dump(), allow_unicode=True))
    gcs_port = free_udp_port()
    with open(tmp_path / "sitl.log", "wb") as log:
        sitl = subprocess.Popen(
            [*DD, "sitl", "--vehicles", "1", "--fleet", str(fleet_file), "--speed-factor", "10", "--no-video",
             "--gcs-port", str(gcs_port), "--vehicle-port-base", str(_port_block(1)), "--api-port-base", "0"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield gcs_port, fleet_file
        finally:
            sitl.terminate()
            sitl.wait(15)


async def test_a_slow_database_holds_up_neither_telemetry_nor_the_flight(
    tmp_path: Path, fresh_postgres_db: str, simulator: tuple[int, Path]
) -> None:
    gcs_port, fleet_file = simulator
    async with service(tmp_path, fresh_postgres_db, gcs_port, fleet_file) as (address, runtime):
        for role in ("operator", "pilot"):
            await asyncio.to_thread(runtime.store.upsert_user, role, hash_password(PASSWORD), role)
        slow = SlowStatements(threading.get_ident())
        event.listen(runtime.engine, "before_cursor_execute", slow)
        slow.enabled = True
        await fly_one_mission(address, runtime, slow)


async def fly_one_mission(address: str, runtime: Runtime, slow: SlowStatements) -> None:
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=60) as http:
        tokens = {}
        for role in ("operator", "pilot"):
            r = await http.post("/api/v1/auth/token", data={"username": role, "password": PASSWORD})
            assert r.status_code == 200, r.text
            tokens[role] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        token = tokens["operator"]["Authorization"].removeprefix("Bearer ")
        telemetry: list[tuple[float, dict[str, Any]]] = []
        states: list[str] = []
        changed = asyncio.Event()

        async def follow() -> None:
            async with websockets.connect(f"ws://{address}/api/v1/events?token={token}", max_size=None) as ws:
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg["type"] == "drone" and msg["data"]["id"] == "dd-01":
                        telemetry.append((time.monotonic(), msg["data"]))
                    elif msg["type"] == "mission" and (not states or states[-1] != msg["data"]["state"]):
                        states.append(msg["data"]["state"])
                    changed.set()

        follower = asyncio.create_task(follow())

        async def until(predicate: Any, within_s: float, what: str) -> None:
            deadline = time.monotonic() + within_s
            while not predicate():
                if follower.done():
                    follower.result()
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"timed out waiting for {what}; states {states}"
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)

        try:
            await until(lambda: telemetry and telemetry[-1][1]["state"] == "ready", 60, "dd-01 ready")
            r = await http.post("/api/v1/incidents", headers=tokens["operator"],
                                json={"category": "traffic_accident", "severity": 3, "location": SCENE})  # fmt: skip
            assert r.status_code == 201, r.text
            flight_from = time.monotonic()
            r = await http.post(f"/api/v1/incidents/{r.json()['id']}/dispatch", headers=tokens["operator"], json={})
            assert r.status_code == 201, r.text
            mission_id = r.json()["id"]
            await until(lambda: "on_scene" in states or "failed" in states, 120, "on scene")
            r = await http.post(f"/api/v1/missions/{mission_id}/commands", headers=tokens["pilot"],
                                json={"command": "rtl"})  # fmt: skip
            assert r.status_code == 200, r.text
            await until(lambda: "completed" in states or "failed" in states, 180, "completed")
            flight_to = time.monotonic()
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

    assert slow.delayed > 20, "the hook slowed the service's statements"
    assert slow.on_loop == [], f"statements ran on the event loop: {slow.on_loop[:5]}"
    assert [s for s in states if s in ORDER] == ORDER, states
    # telemetry kept flowing at its rate from dispatch to landing, while the store crawled
    times = [t for t, _ in telemetry if flight_from <= t <= flight_to]
    assert len(times) > 10
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < MAX_TELEMETRY_GAP_S, f"telemetry stalled for {max(gaps):.2f} s"
    # the store has every transition, in order, with its audit entry
    await runtime.missions.settle()
    slow.enabled = False
    mission = await asyncio.to_thread(runtime.store.get_mission, mission_id)
    assert mission.state == "completed"
    audit = await asyncio.to_thread(runtime.store.audit_log, target_type="mission", target_id=str(mission_id))
    transitions = [(e.detail["old"], e.detail["new"]) for e in reversed(audit) if e.action == "mission.state"]
    assert [new for _, new in transitions] == ORDER
    assert all(a[1] == b[0] for a, b in itertools.pairwise(transitions)), transitions
