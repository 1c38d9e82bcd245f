"""Launch through the dock door and weather go/no-go in flight, through the supervisor's ports.

The docks are the real :class:`DockService` fed by a stand-in adapter that answers door commands
at once (or with a fault); the vehicle is the stand-in of ``test_missions``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dronedispatch import cityfiles
from dronedispatch.app.alerts import Alerts
from dronedispatch.app.docks import DockService
from dronedispatch.app.fleet import DroneRegistry, Fleet
from dronedispatch.app.missions import MissionSupervisor
from dronedispatch.bus import LocalEventBus
from dronedispatch.domain.airspace import Airspace
from dronedispatch.domain.docks import CommandOutcome, DockState, DoorState, Weather
from dronedispatch.events import AlertRaised
from dronedispatch.store.db import make_engine, migrate
from dronedispatch.store.repo import Store

from .test_missions import StandInGateway, StandInVehicle, _planned, _until

GTOWER = (37.3918, 126.6393)


class StandInDockAdapter:
    """A dock bridge that moves its door at once, or reports ``door_fault`` when one is set."""

    def __init__(self) -> None:
        self.on_state: Callable[[DockState], None] | None = None
        self.sent: list[tuple[str, str]] = []
        self.door_fault: str | None = None
        self.states: dict[str, DockState] = {}

    async def start(self, on_state: Callable[[DockState], None]) -> None:
        self.on_state = on_state

    async def stop(self) -> None:
        pass

    def publish(self, dock_id: str, **fields: Any) -> None:
        base: dict[str, Any] = dict(dock_id=dock_id, door=DoorState.CLOSED, drone_present=True, charging=False,
                                    charge_pct=95.0, weather=_weather())  # fmt: skip
        if dock_id in self.states:
            base = self.states[dock_id].model_dump()
        base.update(fields, updated_at=datetime.now(UTC))
        state = DockState.model_validate(base)
        self.states[dock_id] = state
        assert self.on_state is not None
        self.on_state(state)

    async def send(self, dock_id: str, command: str, request_id: str) -> None:
        self.sent.append((dock_id, command))

        def answer() -> None:
            if self.door_fault is not None:
                outcome = CommandOutcome(request_id=request_id, result="fault", reason=self.door_fault)
                self.publish(dock_id, door=DoorState.FAULT, fault=self.door_fault, last_command=outcome)
            else:
                outcome = CommandOutcome(request_id=request_id, result="ok")
                door = DoorState.OPEN if command == "open" else DoorState.CLOSED
                self.publish(dock_id, door=door, last_command=outcome)

        asyncio.get_running_loop().call_later(0.02, answer)


def _weather(gust: float = 5.0) -> Weather:
    return Weather(wind_mean_ms=min(gust, 4.0), gust_ms=gust, rain_mm_h=0, temperature_c=15, at=datetime.now(UTC))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    engine = make_engine(f"sqlite:///{tmp_path / 'dd.db'}")
    migrate(engine)
    yield Store(engine)
    engine.dispose()


class Rig:
    def __init__(self, store: Store, *, docks_live: bool = True) -> None:
        self.bus = LocalEventBus()
        self.bus.bind(asyncio.get_running_loop())
        self.vehicle = StandInVehicle(1)
        fleet_config = cityfiles.load_fleet().sized(2)
        fleet = Fleet(DroneRegistry(fleet_config), store, self.bus)
        airspace = Airspace.from_geojson(cityfiles.read_structured(cityfiles.DEFAULT_AIRSPACE))
        self.adapter = StandInDockAdapter()
        self.docks = DockService(self.bus, fleet_config.docks)
        self.docks_live = docks_live
        self.alerts: list[AlertRaised] = []
        self.store = store
        self.door_at_arm: list[DoorState | None] = []
        arm = self.vehicle.arm

        async def arm_noting_the_door(force: bool = False) -> int:
            state = self.docks.state("gtower")
            self.door_at_arm.append(state.door if state else None)
            return await arm(force)

        self.vehicle.arm = arm_noting_the_door  # type: ignore[method-assign]
        self.supervisor = MissionSupervisor(store, self.bus, fleet, StandInGateway(self.vehicle), airspace,
                                            Alerts(self.bus), docks=self.docks)  # fmt: skip

    async def __aenter__(self) -> Rig:
        await self.docks.start(self.adapter)
        if self.docks_live:
            self.adapter.publish("gtower")
        sub = self.bus.subscribe()

        async def collect() -> None:
            async for e in sub:
                if isinstance(e, AlertRaised):
                    self.alerts.append(e)
                if e.type == "dock":
                    self.supervisor.dock_changed(e.data)  # type: ignore[attr-defined]

        self._collector = asyncio.create_task(collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.supervisor.stop()
        self._collector.cancel()

    async def launched(self) -> int:
        mission = _planned(self.store)
        assert mission.id is not None
        self.supervisor.launch(mission, return_seq=None)
        await _until(lambda: "mission_start" in self.vehicle.sent or self.state(mission.id) == "failed", "the launch")
        return mission.id

    def state(self, mission_id: int | None) -> str:
        assert mission_id is not None
        return self.store.get_mission(mission_id).state

    def fly(self, *, alt: float, at: tuple[float, float] = GTOWER, seq: int = 1) -> None:
        s = self.vehicle.state
        s.armed, s.mode, s.landed_state, s.alt_rel = True, "AUTO.MISSION", 2, alt
        s.lat, s.lon, s.mission_seq, s.mission_total = at[0], at[1], seq, 2
        self.supervisor.observe(self.vehicle)


async def test_the_door_opens_before_arming_closes_after_take_off_and_opens_for_the_landing(store: Store) -> None:
    async with Rig(store) as rig:
        mission_id = await rig.launched()
        assert rig.adapter.sent == [("gtower", "open")]
        assert rig.door_at_arm == [DoorState.OPEN], "armed only once the door was open"
        rig.fly(alt=3)  # still lifting out of the dock: the door stays open
        await asyncio.sleep(0.1)
        assert rig.adapter.sent == [("gtower", "open")]
        rig.fly(alt=25, at=(37.3922, 126.6385))
        await _until(lambda: rig.docks.state("gtower").door is DoorState.CLOSED, "the door to close")  # type: ignore[union-attr]
        assert rig.adapter.sent[-1] == ("gtower", "close")
        await rig.supervisor.command(mission_id, "rtl", "pilot")
        rig.vehicle.state.mode = "AUTO.RTL"
        rig.fly(alt=40, at=(37.3960, 126.6350), seq=1)  # far from the dock: nothing
        await asyncio.sleep(0.1)
        assert rig.adapter.sent[-1] == ("gtower", "close")
        rig.vehicle.state.mode = "AUTO.RTL"
        rig.fly(alt=30, at=(37.3922, 126.6390))  # ~50 m from the dock
        await _until(lambda: rig.docks.state("gtower").door is DoorState.OPEN, "the door to open for the landing")  # type: ignore[union-attr]
        assert [c for _, c in rig.adapter.sent] == ["open", "close", "open"]
        s = rig.vehicle.state
        s.landed_state, s.alt_rel, s.lat, s.lon = 1, 0.0, *GTOWER
        rig.supervisor.observe(rig.vehicle)
        s.armed = False
        rig.supervisor.observe(rig.vehicle)
        await _until(lambda: rig.docks.state("gtower").door is DoorState.CLOSED, "the door to close after landing")  # type: ignore[union-attr]
        assert [c for _, c in rig.adapter.sent] == ["open", "close", "open", "close"]


async def test_a_door_fault_fails_the_launch_with_the_reason_and_requeues_the_incident(store: Store) -> None:
    async with Rig(store) as rig:
        rig.adapter.door_fault = "door motor stalled"
        mission_id = await rig.launched()
        await _until(lambda: rig.state(mission_id) == "failed", "the mission to fail")
        await rig.supervisor.settle()
        m = store.get_mission(mission_id)
        assert m.reason == "dock door fault: dock gtower: door motor stalled"
        assert "arm" not in rig.vehicle.sent
        assert store.get_incident(m.incident_id).status == "open", "the incident is dispatchable again"
        audit = store.audit_log(target_type="mission", target_id=str(mission_id))
        fault = [e for e in audit if e.action == "mission.door_fault"]
        assert fault and fault[0].detail["dock_id"] == "gtower"


async def test_without_a_live_dock_the_launch_goes_on_as_before(store: Store) -> None:
    async with Rig(store, docks_live=False) as rig:
        mission_id = await rig.launched()
        assert rig.adapter.sent == []
        assert "arm" in rig.vehicle.sent and rig.door_at_arm == [None]
        rig.fly(alt=40, at=(37.3922, 126.6390))
        await asyncio.sleep(0.05)
        assert rig.adapter.sent == []
        # the dock is heard while the drone is out: its door opens for the landing all the same
        rig.adapter.publish("gtower", drone_present=False, charge_pct=None)
        await rig.supervisor.command(mission_id, "rtl", "pilot")
        rig.vehicle.state.mode = "AUTO.RTL"
        rig.fly(alt=30, at=(37.3922, 126.6390))
        await _until(lambda: rig.adapter.sent == [("gtower", "open")], "the door to open for the landing")


async def test_gusts_in_flight_warn_once_per_episode_and_past_the_hard_limit_bring_the_drone_home(
    store: Store,
) -> None:
    async with Rig(store) as rig:  # dd-01's defaults: max_gust 15, gust_hard_limit 18
        mission_id = await rig.launched()
        rig.fly(alt=40, at=(37.3924, 126.6380))
        await _until(lambda: rig.state(mission_id) in ("enroute", "on_scene"), "in flight")
        rig.adapter.publish("gtower", weather=_weather(16))
        rig.adapter.publish("gtower", weather=_weather(17))
        await _until(lambda: any(a.data.code == "weather_gust" for a in rig.alerts), "the gust warning")
        await asyncio.sleep(0.05)
        assert [a.data.code for a in rig.alerts].count("weather_gust") == 1, "once per episode"
        assert "rtl" not in rig.vehicle.sent
        warn = next(a for a in rig.alerts if a.data.code == "weather_gust")
        assert warn.data.level == "warning" and "gust 16 m/s at the dock above the limit 15 m/s" in warn.data.message
        rig.adapter.publish("gtower", weather=_weather(10))  # calm again: the next gust is news
        rig.adapter.publish("gtower", weather=_weather(16))
        await _until(lambda: [a.data.code for a in rig.alerts].count("weather_gust") == 2, "a second warning")
        rig.adapter.publish("gtower", weather=_weather(19))
        await _until(lambda: rig.state(mission_id) == "returning", "the weather RTL")
        assert rig.vehicle.sent.count("rtl") == 1
        m = store.get_mission(mission_id)
        assert "weather: gust 19 m/s at the dock above the hard limit 18 m/s" in (m.reason or ""), m.reason
        audit = store.audit_log(target_type="mission", target_id=str(mission_id))
        assert any(e.action == "mission.weather_rtl" and e.detail["gust_ms"] == 19 for e in audit)
        rig.adapter.publish("gtower", weather=_weather(20))
        await asyncio.sleep(0.05)
        assert rig.vehicle.sent.count("rtl") == 1, "sent home once"


async def test_a_hard_gust_that_blew_up_during_the_launch_sends_the_drone_home_as_it_leaves(store: Store) -> None:
    async with Rig(store) as rig:
        rig.adapter.publish("gtower", weather=_weather(19))  # no further change comes: the check is on leaving
        mission_id = await rig.launched()
        await asyncio.sleep(0.05)
        assert "rtl" not in rig.vehicle.sent, "not while it is still launching"
        rig.fly(alt=40, at=(37.3924, 126.6380))
        await _until(lambda: rig.state(mission_id) == "returning", "the weather RTL")
        assert rig.vehicle.sent.count("rtl") == 1
        assert "gust 19 m/s at the dock above the hard limit 18 m/s" in (store.get_mission(mission_id).reason or "")
