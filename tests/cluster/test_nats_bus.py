"""NatsEventBus against a real nats-server: two buses on one server stand for two nodes.

- An event published on one node reaches the subscribers of both nodes, typed, each node's events
  in the order it published them (also when published from a worker thread).
- A slow subscriber's telemetry is coalesced per drone as on the in-process bus; a full queue of
  unkeyed events marks it lagging.
- A malformed message on the subject is counted and skipped; the stream goes on.
- stop() sends what is still queued; a server that is not there fails start() in one line.
- The server stopped and started again on the same port while the buses run: they reconnect, what
  was published during the outage goes out afterwards (the newest ``buffer`` events, the rest counted
  as dropped), and what is published afterwards reaches every node.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import nats
import pytest

from dronedispatch.bus import BusEvent, Subscription
from dronedispatch.cluster.nats_bus import SUBJECT, BusConnectError, NatsEventBus
from dronedispatch.events import AlertRaised, DroneChanged, IncidentChanged
from dronedispatch.scenario.broker import NatsServer, free_tcp_port
from dronedispatch.schemas import Alert, DronePublic, IncidentPublic, LatLon, LinkStatus

WAIT = 15.0  # generous: a shared machine; only a hang reaches it


def drone(drone_id: str, seq: int) -> DroneChanged:
    """Telemetry of ``drone_id``; ``mission_seq`` carries the publisher's sequence number."""
    return DroneChanged(
        data=DronePublic(
            id=drone_id, sysid=1, dock_id="d", state="in_mission", battery=80.0, position=None,
            link=LinkStatus(ok=True, last_heard_s=0.1, loss=0.0), cruise_speed=10.0, mission_seq=seq,
        )
    )  # fmt: skip


def incident(n: int, source: str = "test") -> IncidentChanged:
    now = datetime.now(UTC)
    return IncidentChanged(
        data=IncidentPublic(
            id=n, category="fire", severity=3, status="open", location=LatLon(lat=52.5, lon=13.4),
            camera_id=None, source=source, description=f"incident {n}", approval_ref=None, outcome=None,
            report_count=1, created_at=now, updated_at=now, closed_at=None,
        )
    )  # fmt: skip


def alert(n: int) -> AlertRaised:
    return AlertRaised(data=Alert(level="info", code="test", message=str(n), at=datetime.now(UTC)))


class Reader:
    """Reads one subscription across several waits (leaving an ``async for`` closes a subscription)."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self._events = aiter(sub)

    async def take(self, n: int, within: float = WAIT) -> list[BusEvent]:
        """The next ``n`` events (fails the test if they do not come)."""
        return await self.take_until(lambda got: len(got) == n, within)

    async def take_until(self, done: Callable[[list[int]], bool], within: float = WAIT) -> list[BusEvent]:
        """Events until ``done`` holds for their numbers (fails the test if it never does)."""
        out: list[BusEvent] = []

        async def run() -> None:
            while not done([describe(e)[2] for e in out]):
                out.append(await anext(self._events))

        try:
            await asyncio.wait_for(run(), within)
        except TimeoutError:
            pytest.fail(f"stopped after {len(out)} events: {[describe(e) for e in out[-5:]]}")
        return out


async def until(cond: Callable[[], bool], what: str, within: float = WAIT) -> None:
    """Wait for a condition that no event signals (a counter, a connection state)."""
    deadline = asyncio.get_running_loop().time() + within
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def describe(ev: BusEvent) -> tuple[str, str, int]:
    if isinstance(ev, DroneChanged):
        assert ev.data.mission_seq is not None
        return ("drone", ev.data.id, ev.data.mission_seq)
    if isinstance(ev, IncidentChanged):
        return ("incident", ev.data.source, ev.data.id)
    if isinstance(ev, AlertRaised):
        return ("alert", "", int(ev.data.message))
    raise AssertionError(f"untyped event {ev!r}")


@pytest.fixture
async def two_nodes(nats_server: NatsServer) -> AsyncIterator[tuple[NatsEventBus, NatsEventBus]]:
    a, b = NatsEventBus(), NatsEventBus()
    await a.start(nats_server.url, "node-a")
    await b.start(nats_server.url, "node-b")
    yield a, b
    await a.stop()
    await b.stop()


async def test_events_reach_every_node_typed_and_in_order(two_nodes: tuple[NatsEventBus, NatsEventBus]) -> None:
    a, b = two_nodes
    sub_a, sub_b = Reader(a.subscribe(maxsize=5000)), Reader(b.subscribe(maxsize=5000))
    published_a: list[BusEvent] = []
    for i in range(500):  # five drones' telemetry, an incident now and then
        ev: BusEvent = incident(i, source="a") if i % 10 == 0 else drone(f"d{i % 5}", i)
        published_a.append(ev)
    published_b = [drone("b0", i) for i in range(100)]

    def publish_b_from_a_thread() -> None:  # sync API routes publish from a worker thread
        for ev in published_b:
            b.publish(ev)

    thread = asyncio.create_task(asyncio.to_thread(publish_b_from_a_thread))
    for ev in published_a:
        a.publish(ev)
    await thread

    expected_a = [describe(e) for e in published_a]
    expected_b = [describe(e) for e in published_b]
    for sub in (sub_a, sub_b):
        got = [describe(e) for e in await sub.take(600)]
        # each node's events, in the order it published them; the two streams interleave freely
        assert [g for g in got if g[1] != "b0"] == expected_a
        assert [g for g in got if g[1] == "b0"] == expected_b
        for d in ("d0", "d1", "d2", "d3", "d4"):  # per drone: every update, in order
            seqs = [g[2] for g in got if g[1] == d]
            assert seqs == [i for i in range(500) if i % 5 == int(d[1]) and i % 10 != 0]
    assert (a.published, b.published) == (500, 100)
    assert a.received == b.received == 600
    assert a.malformed == b.malformed == a.dropped == b.dropped == 0
    assert a.stats().published == 500 and a.stats().subscribers == 1


async def test_slow_subscriber_telemetry_is_coalesced(
    two_nodes: tuple[NatsEventBus, NatsEventBus],
) -> None:
    a, b = two_nodes
    slow = Reader(b.subscribe(maxsize=4))
    a.publish(incident(1))
    for i in range(200):  # never read while they come: the queue fills and coalesces
        a.publish(drone(f"d{i % 2}", i))
    await until(lambda: b.received == 201, "node B to receive everything")
    assert not slow.sub.lagging
    got = [describe(e) for e in await slow.take(4)]
    # the incident survived 200 telemetry updates (each replaced the same drone's oldest), and the
    # queue ends with each drone's latest state
    assert got[0] == ("incident", "test", 1)
    assert {d: seq for _, d, seq in got[1:]} == {"d0": 198, "d1": 199}

    slow.sub.close()
    assert b.stats().subscribers == 0
    lagging = b.subscribe(maxsize=5)
    for i in range(6):
        a.publish(alert(i))  # unkeyed: nothing to coalesce
    await until(lambda: lagging.lagging, "the subscriber to be marked lagging")
    assert b.stats().subscribers == 0  # closed and gone: its client starts again from a snapshot


async def test_malformed_message_is_counted_and_the_stream_goes_on(nats_factory: Callable[[], NatsServer]) -> None:
    server = nats_factory()
    a, b = NatsEventBus(), NatsEventBus()
    await a.start(server.url, "node-a")
    await b.start(server.url, "node-b")
    try:
        sub_b = Reader(b.subscribe())
        raw = await nats.connect(server.url, name="raw")
        try:
            a.publish(alert(1))
            await until(lambda: b.received == 1, "the first event")
            for bad in (b"not json", b'{"type": "nope", "data": {}}', b'{"type": "drone"}', b"\xff\xfe"):
                await raw.publish(SUBJECT, bad)
            await raw.flush()
            a.publish(alert(2))
            got = [describe(e) for e in await sub_b.take(2)]
        finally:
            await raw.close()
        assert got == [("alert", "", 1), ("alert", "", 2)]
        assert b.malformed == 4 and b.received == 2
        await until(lambda: a.malformed == 4, "node A to count them too")
    finally:
        await a.stop()
        await b.stop()


async def test_stop_sends_what_is_queued(two_nodes: tuple[NatsEventBus, NatsEventBus], nats_server: NatsServer) -> None:
    _, b = two_nodes
    sub_b = Reader(b.subscribe(maxsize=1000))
    late = NatsEventBus()
    await late.start(nats_server.url, "node-late")
    for i in range(300):
        late.publish(alert(i))
    await late.stop()  # right away: the outbox still holds most of them
    assert late.sent == 300
    got = [describe(e)[2] for e in await sub_b.take(300)]
    assert got == list(range(300))


async def test_unreachable_server_fails_start_in_one_line() -> None:
    bus = NatsEventBus()
    url = f"nats://127.0.0.1:{free_tcp_port()}"  # nothing listens there
    with pytest.raises(BusConnectError) as err:
        await bus.start(url, "node-x", connect_timeout=1.0)
    assert url in str(err.value) and "\n" not in str(err.value)
    assert not bus.connected


async def test_server_restart_while_nodes_run(nats_factory: Callable[[], NatsServer]) -> None:
    server = nats_factory()
    port = server.port
    a, b = NatsEventBus(buffer=50), NatsEventBus(buffer=50)
    await a.start(server.url, "node-a")
    await b.start(server.url, "node-b")
    try:
        sub_a, sub_b = Reader(a.subscribe(maxsize=1000)), Reader(b.subscribe(maxsize=1000))
        a.publish(alert(0))
        assert [describe(e) for e in await sub_b.take(1)] == [("alert", "", 0)]
        assert [describe(e) for e in await sub_a.take(1)] == [("alert", "", 0)]

        await asyncio.to_thread(server.stop)
        await until(lambda: not a.connected and not b.connected, "both nodes to notice the outage")
        for i in range(1, 81):  # 80 events while the server is away: the bus keeps the newest 50
            a.publish(alert(i))
        assert a.dropped == 30 and a.sent == 1

        await asyncio.to_thread(server.start)
        assert server.port == port
        await until(lambda: a.connected and b.connected, "both nodes to reconnect")
        assert a.reconnects == 1 and b.reconnects == 1

        # events may have been missed while cut off: every subscriber is closed as lagging, so a
        # browser's WebSocket starts again from a fresh snapshot
        assert sub_a.sub.lagging and sub_b.sub.lagging
        sub_a, sub_b = Reader(a.subscribe(maxsize=1000)), Reader(b.subscribe(maxsize=1000))
        await until(lambda: a.sent == 51, "the outbox to empty")
        a.publish(alert(1000))
        b.publish(alert(2000))
        for reader in (sub_a, sub_b):
            got = [describe(e)[2] for e in await reader.take_until(lambda got: {1000, 2000} <= set(got))]
            # what A kept through the outage arrives in order, a tail of it for a subscriber made
            # while it was being sent (NATS core stores nothing), before what came later
            outage = [n for n in got if n < 1000]
            assert outage == list(range(81 - len(outage), 81)), got
            assert sorted(got[len(outage) :]) == [1000, 2000]
    finally:
        await a.stop()
        await b.stop()
