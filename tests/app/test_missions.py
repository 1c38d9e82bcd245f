"""The mission supervisor through its ports: a real store (SQLite), a real bus, a stand-in vehicle.

The vehicle is the one thing replaced here (the whole-system tests fly the simulator): a small
object with the gateway's interface that accepts every upload and command, so a test can make
the store fail or crawl and see what the supervisor does about it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import DataError

from dronedispatch import cityfiles
from dronedispatch.app.alerts import Alerts
from dronedispatch.app.fleet import DroneRegistry, Fleet
from dronedispatch.app.missions import MissionSupervisor
from dronedispatch.app.writes import OrderedWrites
from dronedispatch.bus import LocalEventBus
from dronedispatch.domain.airspace import Airspace
from dronedispatch.domain.incidents import Category, Report, Severity
from dronedispatch.domain.mission_items import MissionItem, takeoff, waypoint
from dronedispatch.events import AlertRaised, MissionChanged
from dronedispatch.mavlink.state import LinkHealth, VehicleState
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.models import Mission
from dronedispatch.store.repo import Store

PARK = (37.3926, 126.6378)


class StandInVehicle:
    """Accepts every upload (PX4's checksum is an unsigned 32-bit number) and every command."""

    def __init__(self, sysid: int) -> None:
        self.sysid = sysid
        self.state = VehicleState(sysid=sysid, mode="AUTO.LOITER", landed_state=1)
        self.health = LinkHealth(last_heard=time.monotonic())
        self.mission = self
        self.command = self
        self.sent: list[str] = []
        self.held: list[MissionItem] = []  # the plan the vehicle holds, as a download reads it

    async def upload(self, items: list[MissionItem]) -> int:
        self.sent.append(f"upload {len(items)}")
        self.held = list(items)
        return 3_000_000_000

    async def download(self) -> list[MissionItem]:
        self.sent.append("download")
        return list(self.held)

    async def _ok(self, what: str) -> int:
        self.sent.append(what)
        return 0

    async def arm(self, force: bool = False) -> int:
        return await self._ok("arm")

    async def disarm(self, force: bool = False) -> int:
        return await self._ok("disarm")

    async def mission_start(self, first: int = 0, last: int = -1) -> int:
        return await self._ok("mission_start")

    async def return_to_launch(self) -> int:
        return await self._ok("rtl")

    async def land(self) -> int:
        return await self._ok("land")

    async def pause(self) -> int:
        return await self._ok("pause")

    async def resume(self) -> int:
        return await self._ok("resume")

    async def reposition(self, lat: float, lon: float, alt: float) -> int:
        return await self._ok("reposition")


class StandInGateway:
    def __init__(self, *vehicles: StandInVehicle) -> None:
        self._by_sysid = {v.sysid: v for v in vehicles}

    def vehicle(self, sysid: int) -> StandInVehicle | None:
        return self._by_sysid.get(sysid)

    def camera(self, sysid: int) -> Any:
        return None

    def vehicles(self) -> list[StandInVehicle]:
        return list(self._by_sysid.values())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    engine = make_engine(f"sqlite:///{tmp_path / 'dd.db'}")
    migrate(engine)
    yield Store(engine)
    engine.dispose()


def _supervisor(store: Store, bus: LocalEventBus, vehicle: StandInVehicle) -> MissionSupervisor:
    registry = DroneRegistry(cityfiles.load_fleet().sized(2))
    fleet = Fleet(registry, store, bus)
    airspace = Airspace.from_geojson(cityfiles.read_structured(cityfiles.DEFAULT_AIRSPACE))
    return MissionSupervisor(store, bus, fleet, StandInGateway(vehicle), airspace, Alerts(bus))


def _planned(store: Store) -> Mission:
    report = Report(source="operator", category=Category.FIRE, severity=Severity.SEVERE, lat=PARK[0], lon=PARK[1],
                    observed_at=datetime.now(UTC))  # fmt: skip
    incident = store.create_incident(report, *PARK)
    items = [takeoff(37.3918, 126.6393, 40), waypoint(*PARK, 40)]
    mission = Mission(incident_id=incident.id, drone_id="dd-01", sysid=1, template="t", created_by="test",
                      items=[it.to_dict(i) for i, it in enumerate(items)], on_scene_seq=1)  # fmt: skip
    recorded, _ = store.dispatch_mission(mission, actor="test", audit_detail={})
    return recorded


async def _until(predicate: Any, what: str, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_a_store_that_refuses_a_write_fails_the_mission_with_the_reason_and_a_log_line(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bus = LocalEventBus()
    bus.bind(asyncio.get_running_loop())
    seen: list[Any] = []

    async def collect() -> None:
        async for e in bus.subscribe():
            seen.append(e)

    collector = asyncio.create_task(collect())
    vehicle = StandInVehicle(1)
    supervisor = _supervisor(store, bus, vehicle)
    mission = _planned(store)
    assert mission.id is not None

    def narrow_column(mission_id: int, fields: dict[str, Any], **kwargs: Any) -> Mission:
        if "opaque_id" in fields:  # what PostgreSQL said to a 32-bit column
            raise DataError("UPDATE missions SET opaque_id", {}, Exception("integer out of range"))
        return Store.record_transition(store, mission_id, fields, **kwargs)

    monkeypatch.setattr(store, "record_transition", narrow_column)
    with caplog.at_level(logging.ERROR, logger="dronedispatch.app.missions"):
        supervisor.launch(mission, return_seq=None)
        await _until(lambda: store.get_mission(mission.id).state == "failed", "the mission to fail")  # type: ignore[arg-type]
        await supervisor.settle()

    failed = store.get_mission(mission.id)
    assert "integer out of range" in (failed.reason or ""), failed.reason
    assert any("launch failed unexpectedly" in r.getMessage() for r in caplog.records)
    assert store.get_incident(failed.incident_id).status == "open", "the incident went back to the queue"
    await asyncio.sleep(0.05)  # the last events on their way to the subscriber
    collector.cancel()
    assert any(isinstance(e, AlertRaised) and e.data.code == "mission_failed" for e in seen)
    assert [e.data.state for e in seen if isinstance(e, MissionChanged)][-1] == "failed"
    await supervisor.stop()


async def test_transitions_reach_the_store_in_order_while_the_loop_keeps_running(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = LocalEventBus()
    bus.bind(asyncio.get_running_loop())
    vehicle = StandInVehicle(1)
    supervisor = _supervisor(store, bus, vehicle)
    mission = _planned(store)
    assert mission.id is not None
    loop_thread = threading.get_ident()
    on_loop: list[str] = []
    original = Store.record_transition

    def slow_transition(*args: Any, **kwargs: Any) -> Mission:
        if threading.get_ident() == loop_thread:
            on_loop.append("record_transition")
        time.sleep(0.05)
        return original(store, *args, **kwargs)

    monkeypatch.setattr(store, "record_transition", slow_transition)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    tick = asyncio.create_task(ticker())
    supervisor.launch(mission, return_seq=None)
    await _until(lambda: "mission_start" in vehicle.sent, "the launch")
    # the vehicle climbs away, flies to the scene: each report is judged at once, written later
    vehicle.state.armed, vehicle.state.mode, vehicle.state.landed_state = True, "AUTO.MISSION", 3
    vehicle.state.mission_seq, vehicle.state.mission_total = 1, 2
    supervisor.observe(vehicle)
    vehicle.state.mission_seq = 2
    supervisor.observe(vehicle)
    ticks_before = ticks
    await supervisor.settle()
    tick.cancel()
    assert ticks > ticks_before, "the loop ran while the store wrote"
    assert on_loop == []
    audit = [e for e in reversed(store.audit_log(target_type="mission", target_id=str(mission.id)))
             if e.action == "mission.state"]  # fmt: skip
    steps = [(e.detail["old"], e.detail["new"]) for e in audit]
    assert steps[0] == ("planned", "uploading")
    assert all(a[1] == b[0] for a, b in itertools.pairwise(steps)), steps
    assert store.get_mission(mission.id).state == steps[-1][1] == "on_scene"
    assert store.get_mission(mission.id).opaque_id == 3_000_000_000
    await supervisor.stop()


async def test_ordered_writes_keep_order_per_key_and_run_keys_side_by_side() -> None:
    writes = OrderedWrites()
    done: list[tuple[str, int]] = []

    def job(key: str, n: int, pause: float) -> Any:
        async def run() -> int:
            await asyncio.sleep(pause)
            done.append((key, n))
            return n

        return run

    a = [writes.submit("a", job("a", n, 0.03 if n == 0 else 0.0)) for n in range(3)]
    b = writes.submit("b", job("b", 0, 0.0))
    assert await b == 0
    assert done == [("b", 0)], "key b did not wait behind key a's slow first job"
    assert [await t for t in a] == [0, 1, 2]
    assert [n for k, n in done if k == "a"] == [0, 1, 2]


async def test_a_failed_write_does_not_stop_the_writes_after_it() -> None:
    writes = OrderedWrites()

    async def boom() -> None:
        raise RuntimeError("disk full")

    async def fine() -> str:
        return "written"

    first = writes.submit("m", boom)
    second = writes.submit("m", fine)
    with pytest.raises(RuntimeError):
        await first
    assert await second == "written"
    await writes.drain()


async def test_a_vehicle_heard_with_a_flight_in_the_store_is_supervised_from_what_it_reports(store: Store) -> None:
    """After a restart, or when this node takes the link over: the mission is taken up, never assumed."""
    bus = LocalEventBus()
    bus.bind(asyncio.get_running_loop())
    vehicle = StandInVehicle(1)
    supervisor = _supervisor(store, bus, vehicle)
    mission = _planned(store)
    assert mission.id is not None
    store.record_transition(mission.id, {"state": "enroute"}, actor="other-node", action="mission.state", detail={})
    # the vehicle, as this node first hears it: flying the mission, already past the scene's item
    vehicle.state.armed, vehicle.state.mode, vehicle.state.landed_state = True, "AUTO.MISSION", 2
    vehicle.state.mission_seq, vehicle.state.mission_total = 1, 2

    supervisor.vehicle_appeared(1)
    supervisor.vehicle_appeared(1)  # heard twice at once: taken up once
    await _until(lambda: store.get_mission(mission.id).state == "on_scene", "the mission on scene")  # type: ignore[arg-type]
    await supervisor.settle()
    actions = [e.action for e in store.audit_log(target_type="mission", target_id=str(mission.id))]
    assert actions.count("mission.supervise") == 1
    assert not [s for s in vehicle.sent if s.startswith("upload")], "nothing was uploaded again"
    await supervisor.stop()


async def test_a_launch_cut_off_before_the_vehicle_accepted_it_fails_rather_than_upload_blindly(store: Store) -> None:
    bus = LocalEventBus()
    bus.bind(asyncio.get_running_loop())
    vehicle = StandInVehicle(1)
    supervisor = _supervisor(store, bus, vehicle)
    mission = _planned(store)
    assert mission.id is not None
    store.record_transition(mission.id, {"state": "uploading"}, actor="system", action="mission.state", detail={})

    supervisor.vehicle_appeared(1)
    await _until(lambda: store.get_mission(mission.id).state == "failed", "the cut-off launch to fail")  # type: ignore[arg-type]
    await supervisor.settle()
    failed = store.get_mission(mission.id)
    assert "cut off" in (failed.reason or "") and "holds no mission" in (failed.reason or "")
    assert vehicle.sent == ["download"], "the plan was read back, nothing sent"
    assert store.get_incident(failed.incident_id).status == "open"
    await supervisor.stop()


async def test_a_launch_cut_off_after_the_vehicle_took_the_plan_goes_on_without_a_second_upload(store: Store) -> None:
    """Killed between the upload and the take-off: the plan read back is ours, so the vehicle is armed and
    started; had it held anything else the launch would fail (above)."""
    bus = LocalEventBus()
    bus.bind(asyncio.get_running_loop())
    vehicle = StandInVehicle(1)
    supervisor = _supervisor(store, bus, vehicle)
    mission = _planned(store)
    assert mission.id is not None
    store.record_transition(mission.id, {"state": "uploading"}, actor="system", action="mission.state", detail={})
    vehicle.held = [MissionItem.from_dict(d) for d in mission.items]

    supervisor.vehicle_appeared(1)
    await _until(lambda: store.get_mission(mission.id).state == "launching", "the launch to go on")  # type: ignore[arg-type]
    await _until(lambda: "mission_start" in " ".join(vehicle.sent), "the mission started")
    await supervisor.settle()
    assert vehicle.sent[0] == "download" and not [s for s in vehicle.sent if s.startswith("upload")], vehicle.sent
    checked = [e for e in store.audit_log(target_type="mission", target_id=str(mission.id))
               if e.action == "mission.supervise"]  # fmt: skip
    assert len(checked) == 1 and checked[0].detail["plan_matches"] is True and checked[0].detail["resumes_launch"]
    await supervisor.stop()
