"""The operations map shows each dock with its live state: door, charge, fault and weather, as the dock
publishes them over MQTT (docs/docks-mqtt.md), updated without a reload."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.publish as mqtt_publish
import pytest
from playwright.sync_api import Browser, expect

from dronedispatch.domain.docks import CommandOutcome, DockState, DoorState, Weather, state_topic
from tests.browser.conftest import open_page
from tests.e2e.conftest import System, start_system
from tests.fixtures.services import MosquittoServer

pytestmark = pytest.mark.browser


@pytest.fixture
def broker(mosquitto_factory: Callable[[], MosquittoServer]) -> MosquittoServer:
    return mosquitto_factory()  # its own: the retained states below concern the demo fleet's docks


@pytest.fixture
def dock_system(tmp_path: Path, broker: MosquittoServer) -> Iterator[System]:
    yield from start_system(tmp_path, vehicles=1, extra_env={"DD_MQTT_URL": broker.url})


def publish(broker: MosquittoServer, state: DockState) -> None:
    topic = state_topic(state.dock_id)
    mqtt_publish.single(topic, state.to_json(), qos=1, retain=True, hostname=broker.host, port=broker.port)


def test_dock_markers_show_door_charge_fault_and_weather(
    dock_system: System, broker: MosquittoServer, browser: Browser
) -> None:
    op = open_page(browser, dock_system, "operator")
    page = op.page
    marker = page.locator(".dock-icon[data-dock='gtower']")
    expect(marker).to_have_attribute("data-door", "")  # nothing heard yet
    marker.dispatch_event("click")  # a drone sits on top of the dock: the click goes to the dock itself
    expect(page.locator(".dock-popup")).to_contain_text("상태 정보 없음")

    now = datetime.now(UTC)
    weather = Weather(wind_mean_ms=4.2, gust_ms=7.9, rain_mm_h=0.5, temperature_c=12.5, at=now)
    state = DockState(
        dock_id="gtower", door=DoorState.OPENING, drone_present=True, charging=True, charge_pct=31.5,
        minutes_to_threshold=3.2, weather=weather, updated_at=now,
    )  # fmt: skip
    publish(broker, state)
    expect(marker).to_have_attribute("data-door", "opening", timeout=15_000)
    popup = page.locator(".dock-popup")  # still open: it follows the dock live
    expect(popup).to_contain_text("문: 여는 중 · 드론 있음")
    expect(popup).to_contain_text("충전 중 32% · 출동 가능까지 4분")
    expect(popup).to_contain_text("바람 4.2 m/s · 돌풍 7.9 m/s · 강수 0.5 mm/h · 12.5 °C")

    # the door jams: shown with the dock's reason, live
    faulted = state.model_copy(
        update={
            "door": DoorState.FAULT, "fault": "door jammed", "updated_at": datetime.now(UTC),
            "last_command": CommandOutcome(request_id="r-1", result="fault", reason="door jammed"),
        }
    )  # fmt: skip
    publish(broker, faulted)
    expect(marker).to_have_attribute("data-fault", "door jammed", timeout=15_000)
    expect(popup).to_contain_text("고장: door jammed")
    # English too, in place
    page.click("#lang")
    expect(popup).to_contain_text("Fault: door jammed")
    # the other docks have reported nothing
    expect(page.locator(".dock-icon[data-dock='cheongna']")).to_have_attribute("data-door", "")
    assert not op.errors, "\n".join(op.errors)
