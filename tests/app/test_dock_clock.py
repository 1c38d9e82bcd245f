"""A dock's state ages on the monotonic clock once heard: a step of this host's wall clock neither makes
every dock look stale (drones held back) nor a silent dock look fresh."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from dronedispatch.app.docks import DockService
from dronedispatch.bus import BusEvent
from dronedispatch.domain.docks import FRESH_S, DockState, DoorState
from dronedispatch.domain.fleet import Dock

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clocks:
    """A wall clock a test steps and a monotonic clock it advances."""

    def __init__(self) -> None:
        self.wall, self.mono = T0, 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


class Adapter:
    async def start(self, on_state: Callable[[DockState], None]) -> None:
        self.on_state = on_state

    async def stop(self) -> None: ...
    async def send(self, dock_id: str, command: str, request_id: str) -> None: ...


class Nothing:
    def publish(self, event: BusEvent) -> None: ...


def state(at: datetime) -> DockState:
    return DockState(dock_id="dk", door=DoorState.CLOSED, drone_present=True, charging=False, updated_at=at)


async def test_a_wall_clock_step_neither_ages_nor_freshens_a_dock_state() -> None:
    clocks = Clocks()
    adapter = Adapter()
    service = DockService(Nothing(), [Dock(id="dk", name_ko="가", name_en="A", lat=37.39, lon=126.64)], adapter,  # type: ignore[arg-type]
                          clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)  # fmt: skip
    await service.start()
    adapter.on_state(state(T0 - timedelta(seconds=2)))  # two seconds old when heard
    clocks.wall += timedelta(hours=1)  # the host's clock steps an hour ahead
    assert service.healthy("dk") and service.problem("dk") is None
    s = service.state("dk")
    assert s is not None and abs(s.age_s(clocks.wall) - 2.0) < 1e-6 and s.fresh(clocks.wall)
    clocks.wall -= timedelta(minutes=70)  # and ten minutes behind where it started
    clocks.advance(FRESH_S)  # now the dock has really been silent too long
    assert not service.healthy("dk") and service.problem("dk") is not None
    s = service.state("dk")
    assert s is not None and not s.fresh(clocks.wall) and abs(s.age_s(clocks.wall) - (FRESH_S + 2.0)) < 1e-6
    assert service.snapshot()["dk"]["age_s"] == round(FRESH_S + 2.0, 1)
