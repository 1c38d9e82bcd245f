from __future__ import annotations

import asyncio
import threading

from dronedispatch.events import Event, LocalEventBus


async def drain(sub, n: int) -> list[Event]:  # type: ignore[no-untyped-def]
    out: list[Event] = []
    async for ev in sub:
        out.append(ev)
        if len(out) == n:
            break
    return out


async def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = LocalEventBus()
    a, b = bus.subscribe(), bus.subscribe()
    for i in range(5):
        bus.publish(Event(type="incident", data={"id": i}))
    assert [e.data["id"] for e in await drain(a, 5)] == [0, 1, 2, 3, 4]
    assert [e.data["id"] for e in await drain(b, 5)] == [0, 1, 2, 3, 4]


async def test_slow_subscriber_keeps_latest_telemetry_per_key_and_never_slows_others() -> None:
    bus = LocalEventBus()
    slow = bus.subscribe(maxsize=3)
    fast = bus.subscribe(maxsize=1000)
    bus.publish(Event(type="incident", data={"id": 1}))
    for i in range(100):
        bus.publish(Event(type="drone", data={"id": "dd-01", "n": i}, key="drone:dd-01"))
        bus.publish(Event(type="drone", data={"id": "dd-02", "n": i}, key="drone:dd-02"))
    got = await drain(slow, 3)
    assert got[0].type == "incident"
    assert {(e.data["id"], e.data["n"]) for e in got[1:]} == {("dd-01", 99), ("dd-02", 99)}
    assert not slow.lagging
    assert len(await drain(fast, 201)) == 201


async def test_subscriber_that_falls_behind_on_unkeyed_events_is_closed_as_lagging() -> None:
    bus = LocalEventBus()
    sub = bus.subscribe(maxsize=2)
    for i in range(3):
        bus.publish(Event(type="incident", data={"id": i}))
    assert sub.lagging
    assert bus.subscriber_count == 0
    assert [e async for e in sub] == []  # closed: iteration ends at once


async def test_publishing_from_a_worker_thread_is_delivered_on_the_loop() -> None:
    bus = LocalEventBus()
    bus.bind(asyncio.get_running_loop())
    sub = bus.subscribe()
    delivered_on: list[str] = []

    def worker() -> None:
        bus.publish(Event(type="incident", data={"id": 42}))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    ev = (await asyncio.wait_for(drain(sub, 1), 5))[0]
    delivered_on.append(threading.current_thread().name)
    assert ev.data == {"id": 42}
    assert delivered_on == [threading.main_thread().name]
