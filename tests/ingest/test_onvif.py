"""ONVIF events as an incident source: the pure mapping, then the service's PullPoint loops against
simulated devices, through the runtime's ingest into a real store on SQLite."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from dronedispatch.domain.assets import Camera, OnvifSource
from dronedispatch.domain.incidents import Category
from dronedispatch.ingest.onvif import (
    DEFAULT_TOPICS,
    EventPairs,
    Notification,
    OnvifIngest,
    normalize_topic,
    rendezvous_owner,
    topic_table,
)
from dronedispatch.runtime import Runtime
from dronedispatch.settings import Settings
from dronedispatch.sim.onvif_device import OnvifDevice, SoapFault
from tests.fixtures.services import free_udp_port

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
MOTION = "RuleEngine/CellMotionDetector/Motion"
RULE = (("Rule", "MyMotionDetectorRule"),)


def note(state: str | None, operation: str = "Changed", topic: str = MOTION) -> Notification:
    data = (("IsMotion", state),) if state is not None else (("ObjectId", "7"),)
    return Notification(topic=topic, operation=operation, at=T0, source=RULE, data=data)


def test_topics_and_tables() -> None:
    assert normalize_topic("tns1:RuleEngine/CellMotionDetector/Motion") == MOTION
    assert normalize_topic("RuleEngine/CellMotionDetector/Motion") == MOTION
    assert normalize_topic("motion") == MOTION
    assert normalize_topic("tns1:RuleEngine/tnsvendor:Intrusion/Alarm") == "RuleEngine/Intrusion/Alarm"
    assert topic_table(OnvifSource(url="http://x")) == DEFAULT_TOPICS
    table = topic_table(OnvifSource(url="http://x", topics={"tamper": "crime", "tns1:Vendor/Smoke": "fire"}))
    assert table == {"VideoSource/GlobalSceneChange/ImagingService": Category.CRIME, "Vendor/Smoke": Category.FIRE}
    with pytest.raises(ValueError, match="unknown category 'burglary'"):
        topic_table(OnvifSource(url="http://x", topics={"motion": "burglary"}))


def test_a_start_end_pair_is_one_report_and_a_pulse_is_one_each() -> None:
    pairs = EventPairs()
    assert pairs.is_news(note("true"))
    assert not pairs.is_news(note("true"))  # the same event, e.g. a camera re-sending it
    assert not pairs.is_news(note("true", "Initialized"))  # re-announced to a re-created subscription
    assert pairs.open_count() == 1
    assert not pairs.is_news(note("false"))  # the end closes the pair
    assert pairs.open_count() == 0
    assert not pairs.is_news(note("false", "Initialized"))
    assert pairs.is_news(note("true", "Initialized"))  # an alarm already on when we subscribed
    assert pairs.is_news(note(None)) and pairs.is_news(note(None))  # pulses

    # a new subscription: what is re-announced stays open, what is not ended meanwhile (a reboot)
    pairs.is_news(note("true", topic="RuleEngine/FieldDetector/ObjectsInside"))
    assert pairs.open_count() == 2
    pairs.begin_resync()
    assert not pairs.is_news(note("true", "Initialized"))
    pairs.end_resync()
    assert pairs.open_count() == 1
    assert not pairs.is_news(note("true"))  # motion went on all along
    assert pairs.is_news(note("true", topic="RuleEngine/FieldDetector/ObjectsInside"))  # a new intrusion


# ---- the service against simulated devices ---------------------------------------------------


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(check: Callable[[], Any], within: float = 15.0, what: str = "condition") -> Any:
    """``check()``'s first true value (run in a thread: it may read the store), polled every 0.1 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def onvif_incidents(rt: Runtime) -> list[tuple[int | None, str, str | None, int]]:
    return sorted(
        (inc.id, inc.category, reports[0].camera_id if reports else None, inc.report_count)
        for inc, reports in rt.store.open_incidents_with_reports()
        if any(r.source == "onvif" for r in reports)
    )


async def test_events_become_incidents_across_renewals_losses_and_reboots(tmp_path: Path, caplog: Any) -> None:
    good = OnvifDevice("cctv-a", "A", free_tcp_port(), username="operator", password="s3cret-pw")
    locked = OnvifDevice("cctv-c", "C", free_tcp_port(), username="operator", password="right-pw")
    for d in (good, locked):
        await d.start()
    cameras = {
        "city": "test",
        "cameras": [
            {"id": "cctv-a", "name_ko": "가", "name_en": "A", "lat": 37.39, "lon": 126.63, "heading_deg": 90,
             "onvif": {"url": good.url, "username": "operator", "password": "s3cret-pw",
                       "topics": {"motion": "other", "intrusion": "crime", "line_crossing": "crime"}}},
            {"id": "sensor-b", "kind": "water_level", "name_ko": "나", "name_en": "B", "lat": 37.45, "lon": 126.60},
            {"id": "cctv-c", "name_ko": "다", "name_en": "C", "lat": 37.50, "lon": 126.55,
             "onvif": {"url": locked.url, "username": "operator", "password": "wrong-pw"}},
        ],
    }  # fmt: skip
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(cameras, allow_unicode=True))
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'dd.db'}", mavlink=f"udpin:127.0.0.1:{free_udp_port()}",
        secret_key="test-secret-key-that-is-long-enough-for-hs256", cameras=path,
        onvif_subscription_s=3, onvif_pull_timeout_s=1, onvif_silent_after_s=3,
    )  # fmt: skip
    caplog.set_level(logging.DEBUG)
    rt = Runtime(settings)
    alerts: list[tuple[str, str, str]] = []
    raise_alert = rt.alerts.raise_

    def record(level: Any, code: str, message: str, **kw: Any) -> None:
        alerts.append((level, code, message))
        raise_alert(level, code, message, **kw)

    rt.alerts.raise_ = record  # type: ignore[method-assign]
    await rt.start()
    try:
        assert rt.onvif is not None
        states = rt.onvif.states
        await eventually(lambda: states["cctv-a"].state == "subscribed", what="cctv-a subscribed")
        # a wrong password is a clear state, not a crash, and the other camera works regardless
        await eventually(lambda: states["cctv-c"].state == "unauthorized", what="cctv-c unauthorized")
        assert "username/password" in (states["cctv-c"].last_error or "")
        assert "sensor-b" not in states

        # motion starts: one incident; it ends: no new report
        good.raise_event("motion", True)
        first = await eventually(lambda: onvif_incidents(rt), what="an incident")
        assert [(c, cam, n) for _, c, cam, n in first] == [("other", "cctv-a", 1)]
        good.raise_event("motion", False)
        # an intrusion opens a crime incident; line crossings at the same camera merge into it
        good.raise_event("intrusion", True)
        good.raise_event("line_crossing")
        good.raise_event("line_crossing")
        got = await eventually(
            lambda: [i for i in onvif_incidents(rt) if i[1] == "crime" and i[3] == 3], what="three crime reports"
        )
        assert len(got) == 1
        assert [i[1:] for i in onvif_incidents(rt) if i[1] == "other"] == [("other", "cctv-a", 1)]
        assert rt.ingest_stats.reports["onvif"] == 4

        # renewal across several expiries of a 3 s subscription: still one subscription, still events
        await asyncio.sleep(7.5)
        assert states["cctv-a"].subscriptions == 1 and good.created == 1
        assert states["cctv-a"].renewals >= 3
        good.raise_event("intrusion", False)
        good.raise_event("line_crossing")
        await eventually(lambda: any(i[1] == "crime" and i[3] == 4 for i in onvif_incidents(rt)), what="4th report")

        # the device forgets the subscription: the loop creates a new one and events flow again
        good.forget_subscriptions()
        await eventually(lambda: good.created == 2 and states["cctv-a"].state == "subscribed", what="re-created")
        good.raise_event("line_crossing")
        await eventually(lambda: any(i[1] == "crime" and i[3] == 5 for i in onvif_incidents(rt)), what="5th report")
        assert not any(code == "camera_silent" and "cctv-a" in m for _, code, m in alerts)

        # a reboot: the camera goes silent (alert), then recovers (alert) and its events arrive again
        good.raise_event("motion", True)  # on when the camera goes down: the reboot ends it unseen
        await eventually(lambda: any(i[1] == "other" and i[3] == 2 for i in onvif_incidents(rt)), what="motion again")
        good.reboot(5.0)
        await eventually(lambda: states["cctv-a"].silent, what="cctv-a silent")
        assert states["cctv-a"].state == "unreachable"
        assert any(lvl == "warning" and code == "camera_silent" and "cctv-a" in m for lvl, code, m in alerts)
        await eventually(lambda: not states["cctv-a"].silent and good.created == 3, within=20, what="recovered")
        assert any(code == "camera_recovered" and "cctv-a" in m for _, code, m in alerts)
        good.raise_event("line_crossing")
        await eventually(lambda: any(i[1] == "crime" and i[3] == 6 for i in onvif_incidents(rt)), what="6th report")
        good.raise_event("motion", True)  # a new motion after the reboot is news, not the old one still open
        await eventually(lambda: any(i[1] == "other" and i[3] == 3 for i in onvif_incidents(rt)), what="new motion")

        # the locked camera was reported silent too, with the reason
        assert any(code == "camera_silent" and "cctv-c" in m and "password" in m for _, code, m in alerts)
        metrics = list(rt.onvif.collect())
        up = {s.labels["camera"]: s.value for s in metrics[0].samples}
        assert up == {"cctv-a": 1, "cctv-c": 0}
        assert rt.onvif.snapshot()["cctv-a"]["state"] == "subscribed"
    finally:
        await rt.stop()
        for d in (good, locked):
            await d.stop()
    assert good.subscriptions == {}  # unsubscribed on stop
    # credentials never reach the log
    assert "s3cret-pw" not in caplog.text and "wrong-pw" not in caplog.text
    # nor an API answer
    assert all("onvif" not in c for c in rt.cameras.as_geojson()["features"][0]["properties"])


class RefusingDevice(OnvifDevice):
    """A camera that accepts subscriptions but refuses every PullMessages (e.g. a Timeout it will not take)."""

    async def _pull(self, sub: Any, op: Any) -> str:
        raise SoapFault("s:Sender", "ter:InvalidArgVal", "Timeout too long")


async def test_a_subscription_lost_before_its_first_pull_is_retried_with_backoff() -> None:
    device = RefusingDevice("cctv-x", "X", free_tcp_port(), username="u", password="p")
    await device.start()
    camera = Camera(
        id="cctv-x",
        name_ko="엑스",
        name_en="X",
        lat=37.4,
        lon=126.6,
        onvif=OnvifSource(url=device.url, username="u", password="p"),
    )
    reports: list[Any] = []

    async def on_report(report: Any) -> None:
        reports.append(report)

    ingest = OnvifIngest([camera], on_report, subscription_s=30, pull_timeout_s=1, backoff_initial=0.5)
    await ingest.start()
    try:
        await eventually(lambda: device.created >= 2, what="a second subscription")
        await asyncio.sleep(2.0)
        # 0.5, 1, 2 s apart at most: not one subscription after another as fast as the device answers
        assert device.created <= 4
        assert "pull refused" in (ingest.states["cctv-x"].last_error or "")
        assert reports == []
    finally:
        await ingest.stop()
        await device.stop()


async def test_several_nodes_subscribe_each_camera_once_and_hand_it_over() -> None:
    device = OnvifDevice("cctv-n", "N", free_tcp_port(), username="u", password="p")
    await device.start()
    camera = Camera(
        id="cctv-n", name_ko="엔", name_en="N", lat=37.4, lon=126.6,
        onvif=OnvifSource(url=device.url, username="u", password="p"),
    )  # fmt: skip
    live = {"node-a", "node-b"}
    first = rendezvous_owner("cctv-n", live)
    assert first in live and rendezvous_owner("cctv-n", sorted(live, reverse=True)) == first
    reports: list[tuple[str, Any]] = []

    def node(name: str) -> OnvifIngest:
        async def owns(camera_id: str) -> bool:
            return rendezvous_owner(camera_id, live) == name

        async def on_report(report: Any) -> None:
            reports.append((name, report))

        return OnvifIngest([camera], on_report, subscription_s=2, pull_timeout_s=1, owns=owns, owner_check_s=0.3)

    nodes = {name: node(name) for name in sorted(live)}
    for ingest in nodes.values():
        await ingest.start()
    try:
        owner = nodes[first]
        (other_name,) = live - {first}
        other = nodes[other_name]
        await eventually(lambda: owner.states["cctv-n"].state == "subscribed", what="the owner subscribed")
        await eventually(lambda: other.states["cctv-n"].state == "elsewhere", what="the other standing by")
        device.raise_event("line_crossing")
        await eventually(lambda: len(reports) == 1, what="one report")
        await asyncio.sleep(1.5)  # past a renewal: still one subscription, one report
        assert device.created == 1 and len(reports) == 1 and reports[0][0] == first

        live.discard(first)  # the owner's heartbeat is gone: the other node takes the camera over
        await eventually(lambda: other.states["cctv-n"].state == "subscribed", what="hand-over")
        await eventually(lambda: len(device.subscriptions) == 1, what="the old subscription released")
        device.raise_event("line_crossing")
        await eventually(lambda: len(reports) == 2, what="a report through the new owner")
        assert reports[1][0] == other_name
        assert not owner.states["cctv-n"].silent
    finally:
        for ingest in nodes.values():
            await ingest.stop()
        await device.stop()
