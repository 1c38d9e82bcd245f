"""MqttIngest against a real mosquitto broker: reports arrive, garbage is counted, outages are survived."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiomqtt
import pytest

from dronedispatch.domain.incidents import Category, Report
from dronedispatch.ingest import FrigateAdapter, IngestStats, MqttIngest, default_topics, parse_cap, parse_json_report
from tests.fixtures.services import MosquittoServer
from tests.ingest.capdata import cap_flood_sent_at

WAIT = 20.0  # generous: shared CPU; nothing here asserts a duration


class Sink:
    """Collects what MqttIngest hands out."""

    def __init__(self) -> None:
        self.reports: asyncio.Queue[Report] = asyncio.Queue()
        self.errors: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def on_report(self, report: Report) -> None:
        await self.reports.put(report)

    def on_error(self, topic: str, reason: str) -> None:
        self.errors.put_nowait((topic, reason))

    async def report(self) -> Report:
        async with asyncio.timeout(WAIT):
            return await self.reports.get()

    async def error(self) -> tuple[str, str]:
        async with asyncio.timeout(WAIT):
            return await self.errors.get()


async def publish(server: MosquittoServer, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client(server.host, server.port, identifier=f"pub-{uuid.uuid4().hex[:8]}") as client:
        await client.publish(topic, payload, qos=1)


def frigate_review(camera: str = "songdo_park_east", objects: tuple[str, ...] = ("smoke",)) -> bytes:
    item = {
        "id": f"{uuid.uuid4().hex[:10]}",
        "camera": camera,
        "start_time": 1764052200.0,
        "end_time": None,
        "severity": "alert",
        "data": {"objects": list(objects), "zones": [], "audio": [], "sub_labels": []},
    }
    return json.dumps({"type": "new", "before": item, "after": item}).encode()


IngestFactory = Callable[..., Awaitable[MqttIngest]]


@pytest.fixture
async def make_ingest() -> AsyncIterator[IngestFactory]:
    started: list[MqttIngest] = []

    async def make(server: MosquittoServer, sink: Sink, prefix: str, **kwargs) -> MqttIngest:
        frigate = FrigateAdapter()
        topics = {
            **frigate.topics(f"{prefix}/frigate"),
            f"{prefix}/reports/+": parse_json_report,
            f"{prefix}/cap": parse_cap,
        }
        kwargs.setdefault("backoff_initial", 0.05)
        kwargs.setdefault("backoff_max", 0.5)
        ingest = MqttIngest(server.url, topics, sink.on_report, sink.on_error, **kwargs)
        started.append(ingest)
        await ingest.start()
        async with asyncio.timeout(WAIT):
            await ingest.connected.wait()
        return ingest

    yield make
    for ingest in started:
        await ingest.stop()


async def test_reports_arrive_and_garbage_is_counted(mosquitto: MosquittoServer, make_ingest: IngestFactory) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    sink = Sink()
    ingest = await make_ingest(mosquitto, sink, prefix)

    await publish(mosquitto, f"{prefix}/frigate/reviews", frigate_review())
    report = await sink.report()
    assert report.category is Category.FIRE and report.camera_id == "songdo_park_east"

    # garbage of several kinds on every topic; the subscription keeps going after each
    garbage = [
        (f"{prefix}/frigate/reviews", b"\x00\xffnot json"),
        (f"{prefix}/frigate/events", b'{"type": "new", "after": {"camera": "bad camera!"}}'),
        (f"{prefix}/reports/gateway7", b'{"category": "fire"}'),
        (f"{prefix}/reports/gateway7", b"x" * 400_000),
        (f"{prefix}/cap", b'<!DOCTYPE a [<!ENTITY b "c">]><alert/>'),
        (f"{prefix}/frigate/reviews", b""),
    ]
    for topic, payload in garbage:
        await publish(mosquitto, topic, payload)
    errors = [await sink.error() for _ in garbage]
    assert [t for t, _ in errors] == [t for t, _ in garbage]
    reasons = [r for _, r in errors]
    assert "not UTF-8" in reasons[0]
    assert "after.camera" in reasons[1]
    assert "give a location" in reasons[2]
    assert "limit is" in reasons[3]
    assert "DTD" in reasons[4]
    assert "empty" in reasons[5]

    await publish(
        mosquitto,
        f"{prefix}/reports/gateway7",
        json.dumps({"category": "flood", "location": {"lat": 37.5, "lon": 126.6}}).encode(),
    )
    report = await sink.report()
    assert report.category is Category.FLOOD and report.source == "mqtt"
    await publish(mosquitto, f"{prefix}/cap", cap_flood_sent_at())
    assert (await sink.report()).source == "cap"

    stats = ingest.stats
    assert stats.received[f"{prefix}/frigate/reviews"] == 3
    assert stats.accepted[f"{prefix}/frigate/reviews"] == 1
    assert stats.rejected[f"{prefix}/frigate/reviews"] == 2
    assert stats.rejected[f"{prefix}/frigate/events"] == 1
    assert stats.rejected[f"{prefix}/reports/+"] == 2  # counted per filter, not per publisher topic
    assert stats.accepted[f"{prefix}/reports/+"] == 1
    assert stats.rejected[f"{prefix}/cap"] == 1 and stats.accepted[f"{prefix}/cap"] == 1
    assert "limit is" in stats.last_error[f"{prefix}/reports/+"]
    assert stats.connected


async def test_updates_that_add_nothing_are_ignored(mosquitto: MosquittoServer, make_ingest: IngestFactory) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    sink = Sink()
    ingest = await make_ingest(mosquitto, sink, prefix)
    quiet = json.loads(frigate_review(objects=("dog",)))
    quiet["after"]["severity"] = quiet["before"]["severity"] = "detection"
    await publish(mosquitto, f"{prefix}/frigate/reviews", json.dumps(quiet).encode())
    await publish(mosquitto, f"{prefix}/frigate/reviews", frigate_review(camera="cam_after_quiet"))
    report = await sink.report()
    assert report.camera_id == "cam_after_quiet"  # the ignored one produced nothing
    assert ingest.stats.ignored[f"{prefix}/frigate/reviews"] == 1
    assert sink.errors.empty()


async def test_failing_report_handler_does_not_stop_ingest(mosquitto: MosquittoServer) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    delivered: asyncio.Queue[Report] = asyncio.Queue()
    errors: list[tuple[str, str]] = []
    calls = 0

    async def flaky(report: Report) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database down")
        await delivered.put(report)

    ingest = MqttIngest(mosquitto.url, {f"{prefix}/r": parse_json_report}, flaky, lambda t, r: errors.append((t, r)))
    await ingest.start()
    try:
        async with asyncio.timeout(WAIT):
            await ingest.connected.wait()
        body = json.dumps({"category": "crime", "camera_id": "c1"}).encode()
        await publish(mosquitto, f"{prefix}/r", body)
        await publish(mosquitto, f"{prefix}/r", body)
        async with asyncio.timeout(WAIT):
            await delivered.get()
        assert ingest.stats.failed[f"{prefix}/r"] == 1
        assert errors and "database down" in errors[0][1]
    finally:
        await ingest.stop()


async def test_broker_restart_reconnects(mosquitto_factory, make_ingest: IngestFactory) -> None:
    server: MosquittoServer = mosquitto_factory()
    sink = Sink()
    ingest = await make_ingest(server, sink, "city")
    await publish(server, "city/frigate/reviews", frigate_review(camera="before_restart"))
    assert (await sink.report()).camera_id == "before_restart"

    await asyncio.to_thread(server.stop)
    async with asyncio.timeout(WAIT):
        await ingest.disconnected.wait()
    assert not ingest.stats.connected
    await asyncio.to_thread(server.start)
    async with asyncio.timeout(WAIT):
        await ingest.connected.wait()

    await publish(server, "city/frigate/reviews", frigate_review(camera="after_restart"))
    assert (await sink.report()).camera_id == "after_restart"
    assert ingest.stats.reconnects >= 1


async def test_persistent_session_keeps_messages_while_we_are_away(
    mosquitto: MosquittoServer, make_ingest: IngestFactory
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    client_id = f"dd-ingest-{prefix}"
    sink = Sink()
    first = await make_ingest(mosquitto, sink, prefix, client_id=client_id)
    await first.stop()
    await publish(mosquitto, f"{prefix}/frigate/reviews", frigate_review(camera="while_away"))
    await make_ingest(mosquitto, sink, prefix, client_id=client_id)
    assert (await sink.report()).camera_id == "while_away"


async def test_stats_are_a_prometheus_collector(mosquitto: MosquittoServer, make_ingest: IngestFactory) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    prefix = f"t{uuid.uuid4().hex[:8]}"
    stats = IngestStats()
    sink = Sink()
    await make_ingest(mosquitto, sink, prefix, stats=stats)
    await publish(mosquitto, f"{prefix}/cap", b"<nope")
    await sink.error()  # on_error runs after the count
    registry = CollectorRegistry()
    registry.register(stats)
    text = generate_latest(registry).decode()
    assert f'dronedispatch_ingest_messages_total{{outcome="rejected",source="{prefix}/cap"}} 1.0' in text
    assert "dronedispatch_ingest_mqtt_connected 1.0" in text


def test_url_must_be_mqtt() -> None:
    with pytest.raises(ValueError, match="mqtt://"):
        MqttIngest("http://127.0.0.1:1", {"a": parse_json_report}, lambda r: None, lambda t, r: None)  # type: ignore[arg-type,return-value]


async def test_starts_before_the_broker_is_up(mosquitto_factory) -> None:
    server: MosquittoServer = mosquitto_factory()
    await asyncio.to_thread(server.stop)
    sink = Sink()
    ingest = MqttIngest(
        server.url, default_topics(), sink.on_report, sink.on_error, backoff_initial=0.05, backoff_max=0.5
    )
    await ingest.start()
    try:
        assert ingest.disconnected.is_set()
        await asyncio.to_thread(server.start)
        async with asyncio.timeout(WAIT):
            await ingest.connected.wait()
        await publish(
            server,
            "frigate/events",
            json.dumps(
                {
                    "type": "new",
                    "after": {"id": "e1", "camera": "gate_2", "label": "fire", "start_time": 1764052200.0},
                }
            ).encode(),
        )
        report = await sink.report()
        assert report.category is Category.FIRE and report.source_ref == "frigate:event:e1"
        await publish(
            server,
            "dronedispatch/reports/sensor-9",
            json.dumps({"category": "facility", "camera_id": "sensor-9"}).encode(),
        )
        assert (await sink.report()).category is Category.FACILITY
        assert ingest.stats.reconnects == 0  # the first connection is not a reconnection
    finally:
        await ingest.stop()
    assert ingest.disconnected.is_set() and not ingest.stats.connected


def test_stats_apply_counts_for_any_shell() -> None:
    from datetime import UTC, datetime

    from dronedispatch.ingest import IngestError, parse_webhook

    stats = IngestStats()
    now = datetime(2026, 11, 25, tzinfo=UTC)
    [report] = stats.apply("webhook", parse_webhook, b'{"category": "fire", "camera_id": "c1"}', now)
    assert report.source == "webhook"
    with pytest.raises(IngestError):
        stats.apply("webhook", parse_webhook, b"{", now)
    snap = stats.snapshot()
    assert snap["received"] == {"webhook": 2}
    assert snap["accepted"] == {"webhook": 1} and snap["rejected"] == {"webhook": 1}
    assert snap["reports"] == {"webhook": 1}
    assert "invalid JSON" in snap["last_error"]["webhook"]


async def test_rejections_are_published_to_the_error_topic(
    mosquitto: MosquittoServer, make_ingest: IngestFactory
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    sink = Sink()
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=f"watch-{prefix}") as watcher:
        await watcher.subscribe(f"{prefix}/errors", qos=1)
        await make_ingest(mosquitto, sink, prefix, error_topic=f"{prefix}/errors")
        await publish(mosquitto, f"{prefix}/reports/dev1", b'{"category": "fire", "location": {"lat": 91, "lon": 0}}')
        async with asyncio.timeout(WAIT):
            message = await anext(aiter(watcher.messages))
    body = json.loads(message.payload)
    assert body["topic"] == f"{prefix}/reports/dev1"
    assert "location.lat" in body["reason"]


def test_error_topic_may_not_feed_back_into_the_subscription() -> None:
    with pytest.raises(ValueError, match="inside a subscribed topic filter"):
        MqttIngest(
            "mqtt://127.0.0.1:1",
            default_topics(),
            Sink().on_report,
            Sink().on_error,
            error_topic="dronedispatch/reports/errors",
        )


async def test_handler_may_refuse_a_report(mosquitto: MosquittoServer) -> None:
    """The service refuses a report it cannot place (unknown camera): counted as rejected, sender told."""
    from dronedispatch.ingest import IngestError, Problem

    prefix = f"t{uuid.uuid4().hex[:8]}"
    sink = Sink()

    async def refuse_unknown_cameras(report: Report) -> None:
        if report.camera_id != "known_cam":
            raise IngestError(report.source, Problem("camera_id", f"unknown camera {report.camera_id!r}"))
        await sink.on_report(report)

    ingest = MqttIngest(
        mosquitto.url,
        FrigateAdapter().topics(prefix),
        refuse_unknown_cameras,
        sink.on_error,
        error_topic=f"{prefix}/errors",
    )
    await ingest.start()
    try:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=f"watch-{prefix}") as watcher:
            await watcher.subscribe(f"{prefix}/errors", qos=1)
            async with asyncio.timeout(WAIT):
                await ingest.connected.wait()
            await publish(mosquitto, f"{prefix}/reviews", frigate_review(camera="mystery_cam"))
            await publish(mosquitto, f"{prefix}/reviews", frigate_review(camera="known_cam"))
            assert (await sink.report()).camera_id == "known_cam"
            topic, reason = await sink.error()
            assert topic == f"{prefix}/reviews" and "unknown camera 'mystery_cam'" in reason
            async with asyncio.timeout(WAIT):
                message = await anext(aiter(watcher.messages))
            assert "mystery_cam" in json.loads(message.payload)["reason"]
        snap = ingest.stats.snapshot()
        name = f"{prefix}/reviews"
        assert (snap["received"][name], snap["accepted"][name], snap["rejected"][name]) == (2, 1, 1)
        assert snap["reports"][name] == 1
    finally:
        await ingest.stop()


# ---- several nodes: one shared subscription group, each message to one member


def numbered_report(prefix: str, i: int) -> bytes:
    body = {"category": "fire", "camera_id": f"cam{i}", "source_ref": f"{prefix}-{i}"}
    return json.dumps(body).encode()


async def drain(sink: Sink, until: Callable[[list[Report]], bool]) -> list[Report]:
    """Reports from ``sink`` until ``until`` holds, then a short wait for any unwanted extra."""
    got: list[Report] = []
    async with asyncio.timeout(WAIT):
        while not until(got):
            got.append(await sink.reports.get())
    await asyncio.sleep(0.5)  # a duplicate would arrive right behind the last one
    while not sink.reports.empty():
        got.append(sink.reports.get_nowait())
    return got


async def test_a_shared_group_hands_each_message_to_one_member(
    mosquitto: MosquittoServer, make_ingest: IngestFactory
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    sink = Sink()  # one sink behind both: what the cluster's one database sees
    members = [
        await make_ingest(mosquitto, sink, prefix, client_id=f"{prefix}-node-{k}", shared_group=f"g{prefix}")
        for k in range(2)
    ]
    assert members[0].subscriptions[0].startswith(f"$share/g{prefix}/{prefix}/")
    for i in range(50):
        await publish(mosquitto, f"{prefix}/reports/gw", numbered_report(prefix, i))
    got = await drain(sink, lambda got: len(got) >= 50)
    refs = sorted(r.source_ref or "" for r in got)
    assert refs == sorted(f"{prefix}-{i}" for i in range(50))  # every one, none twice
    # mosquitto deals round robin: both members did part of the work
    assert all(m.stats.accepted[f"{prefix}/reports/+"] > 0 for m in members)


async def test_a_member_that_is_down_gets_its_share_when_it_returns(
    mosquitto: MosquittoServer, make_ingest: IngestFactory
) -> None:
    """mosquitto 2.0 keeps an offline member with a live session in the group and queues its share."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    group = f"g{prefix}"
    up, down = Sink(), Sink()
    await make_ingest(mosquitto, up, prefix, client_id=f"{prefix}-up", shared_group=group)
    away = await make_ingest(mosquitto, down, prefix, client_id=f"{prefix}-down", shared_group=group)
    await away.stop()
    for i in range(10):
        await publish(mosquitto, f"{prefix}/reports/gw", numbered_report(prefix, i))
    await asyncio.sleep(1.0)
    while_down = await drain(up, lambda got: True)
    assert 0 < len(while_down) < 10  # the member online got its share only
    assert down.reports.empty()

    await make_ingest(mosquitto, down, prefix, client_id=f"{prefix}-down", shared_group=group)
    on_return = await drain(down, lambda got: len(got) >= 10 - len(while_down))
    refs = sorted(r.source_ref or "" for r in while_down + on_return)
    assert refs == sorted(f"{prefix}-{i}" for i in range(10))  # each once, none lost
    assert up.reports.empty()


async def test_a_message_cut_off_by_a_stop_is_delivered_again(mosquitto: MosquittoServer) -> None:
    """Acknowledged only once handled: a stop in the middle leaves it with the broker for the next session."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    client_id = f"{prefix}-node"
    entered = asyncio.Event()
    delivered: asyncio.Queue[Report] = asyncio.Queue()

    async def stuck(report: Report) -> None:
        entered.set()
        await asyncio.Event().wait()  # a database that never answers

    first = MqttIngest(mosquitto.url, {f"{prefix}/r": parse_json_report}, stuck, lambda t, r: None,
                       client_id=client_id)  # fmt: skip
    await first.start()
    async with asyncio.timeout(WAIT):
        await first.connected.wait()
    await publish(mosquitto, f"{prefix}/r", numbered_report(prefix, 1))
    async with asyncio.timeout(WAIT):
        await entered.wait()
    await first.stop()

    second = MqttIngest(mosquitto.url, {f"{prefix}/r": parse_json_report}, delivered.put, lambda t, r: None,
                        client_id=client_id)  # fmt: skip
    await second.start()
    try:
        async with asyncio.timeout(WAIT):
            report = await delivered.get()
        assert report.source_ref == f"{prefix}-1"
    finally:
        await second.stop()


def test_a_shared_group_name_is_one_topic_level() -> None:
    for bad in ("", "a/b", "a+", "#"):
        with pytest.raises(ValueError, match="shared_group"):
            MqttIngest("mqtt://127.0.0.1:1", default_topics(), Sink().on_report, Sink().on_error, shared_group=bad)
