from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pydantic
import pytest

from dronedispatch.bus import BusEvent, LocalEventBus
from dronedispatch.events import EVENT, AlertRaised, DroneChanged, IncidentChanged
from dronedispatch.schemas import Alert, DronePublic, LinkStatus


def incident(n: int) -> AlertRaised:
    """A small unkeyed event numbered ``n`` (an alert: no queue coalesces it)."""
    return AlertRaised(data=Alert(level="info", code="test", message=str(n), at=datetime.now(UTC)))


def drone(drone_id: str, battery: float) -> DroneChanged:
    return DroneChanged(
        data=DronePublic(
            id=drone_id, sysid=1, dock_id="d", state="ready", battery=battery, position=None,
            link=LinkStatus(ok=True, last_heard_s=0.1, loss=0.0), cruise_speed=10.0,
        )
    )  # fmt: skip


def number(ev: BusEvent) -> int:
    assert isinstance(ev, AlertRaised)
    return int(ev.data.message)


async def drain(sub, n: int) -> list[BusEvent]:  # type: ignore[no-untyped-def]
    out: list[BusEvent] = []
    async for ev in sub:
        out.append(ev)
        if len(out) == n:
            break
    return out


async def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = LocalEventBus()
    a, b = bus.subscribe(), bus.subscribe()
    for i in range(5):
        bus.publish(incident(i))
    assert [number(e) for e in await drain(a, 5)] == [0, 1, 2, 3, 4]
    assert [number(e) for e in await drain(b, 5)] == [0, 1, 2, 3, 4]


async def test_slow_subscriber_keeps_latest_telemetry_per_key_and_never_slows_others() -> None:
    bus = LocalEventBus()
    slow = bus.subscribe(maxsize=3)
    fast = bus.subscribe(maxsize=1000)
    bus.publish(incident(1))
    for i in range(100):
        bus.publish(drone("dd-01", i))
        bus.publish(drone("dd-02", i))
    got = await drain(slow, 3)
    assert got[0].type == "alert"
    assert {(e.data.id, e.data.battery) for e in got[1:] if isinstance(e, DroneChanged)} == {
        ("dd-01", 99),
        ("dd-02", 99),
    }
    assert not slow.lagging
    assert len(await drain(fast, 201)) == 201


async def test_subscriber_that_falls_behind_on_unkeyed_events_is_closed_as_lagging() -> None:
    bus = LocalEventBus()
    sub = bus.subscribe(maxsize=2)
    for i in range(3):
        bus.publish(incident(i))
    assert sub.lagging
    assert bus.stats().subscribers == 0
    assert [e async for e in sub] == []  # closed: iteration ends at once


async def test_publishing_from_a_worker_thread_is_delivered_on_the_loop() -> None:
    bus = LocalEventBus()
    bus.bind(asyncio.get_running_loop())
    sub = bus.subscribe()
    delivered_on: list[str] = []

    def worker() -> None:
        bus.publish(incident(42))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    ev = (await asyncio.wait_for(drain(sub, 1), 5))[0]
    delivered_on.append(threading.current_thread().name)
    assert number(ev) == 42
    assert delivered_on == [threading.main_thread().name]


def test_every_event_reads_back_from_its_json_as_the_same_typed_event() -> None:
    for ev in (incident(7), drone("dd-03", 55.5)):
        back = EVENT.validate_json(ev.json_text())
        assert type(back) is type(ev)
        assert back.model_dump() == ev.model_dump()
    assert drone("dd-03", 1).key == "drone:dd-03"
    assert incident(1).key is None  # alerts are a history: never coalesced


def test_a_message_that_is_no_event_is_refused_by_name() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"union_tag_invalid|does not match"):
        EVENT.validate_json('{"type": "take-off-now", "data": {}}')
    with pytest.raises(pydantic.ValidationError):
        EVENT.validate_json('{"type": "incident", "data": {"id": "x"}}')
    assert IncidentChanged.model_fields["type"].default == "incident"


async def test_a_resync_closes_every_subscriber_as_lagging_so_it_starts_again_from_a_snapshot() -> None:
    bus = LocalEventBus()
    a, b = bus.subscribe(), bus.subscribe()
    bus.publish(incident(1))
    bus.resync()
    assert a.lagging and b.lagging and bus.stats().subscribers == 0
    assert [e async for e in a] == [], "a closed subscription ends at once"
    fresh = bus.subscribe()
    bus.publish(incident(2))
    assert [number(e) for e in await drain(fresh, 1)] == [2]
