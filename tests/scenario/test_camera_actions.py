"""Scenario actions on the simulated fixed cameras: camera_reboot and camera_event."""

from __future__ import annotations

from pathlib import Path

import pytest

from dronedispatch.domain.assets import load_assets
from dronedispatch.scenario import runner
from dronedispatch.scenario.loader import ScenarioError, load_scenario
from dronedispatch.scenario.runner import ScenarioRun, _cctv_site
from dronedispatch.sim.cctv_site import CctvSite

CAMERA = "cctv-songdo-centralpark"
SCENARIO = f"""name: camera-actions
speed_factor: 10
duration: 20s
fleet: {{vehicles: 1}}
actions:
  - {{at: 1s, do: camera_reboot, camera: {CAMERA}, seconds: 10s}}
  - {{at: 2s, do: camera_event, camera: cctv-songdo-gtower, topic: motion}}
  - {{at: 3s, do: camera_event, camera: cctv-songdo-gtower, topic: motion, active: false}}
expect:
  - {{check: nothing_lost}}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cams.yaml"
    path.write_text(text)
    return path


def test_camera_actions_are_checked_with_their_lines(tmp_path: Path) -> None:
    spec = load_scenario(_write(tmp_path, SCENARIO)).spec
    assert spec.uses_cameras and [a.do for a in spec.actions] == ["camera_reboot", "camera_event", "camera_event"]
    assert spec.actions[0].seconds == 10 and spec.actions[2].active is False
    no_seconds = SCENARIO.replace(", seconds: 10s", "")
    with pytest.raises(ScenarioError, match=r"cams.yaml:6: actions\[0\]: a camera_reboot action needs seconds"):
        load_scenario(_write(tmp_path, no_seconds))
    unknown = SCENARIO.replace("camera: cctv-songdo-gtower, topic: motion}", "camera: sensor-songdo-air, topic: x}")
    with pytest.raises(ScenarioError, match=r"cams.yaml:7: actions\[1\].camera: no camera 'sensor-songdo-air'"):
        load_scenario(_write(tmp_path, unknown))
    no_incident = SCENARIO.replace("do: camera_reboot", "do: rtl")
    with pytest.raises(ScenarioError, match=r"a rtl action needs incident"):
        load_scenario(_write(tmp_path, no_incident))


async def test_the_service_is_pointed_at_the_scenarios_own_cameras(tmp_path: Path) -> None:
    loaded = load_scenario(_write(tmp_path, SCENARIO))
    site, path = _cctv_site(loaded.cameras_path, tmp_path)
    entries = load_assets(path).cameras
    streams = {c.id: c.stream for c in entries if c.stream}
    assert streams and all(s == f"rtsp://127.0.0.1:{site.rtsp.port}/{i}" for i, s in streams.items())
    for k, c in enumerate(entries):
        if c.onvif is not None:
            assert c.onvif.url == f"http://127.0.0.1:{site.onvif_base_port + k}/onvif/device_service"
    assert site.rtsp.port != 8554 and site.onvif_base_port != 18080  # never the demo's
    assert set(site.cameras) == {c.id for c in entries if c.is_camera}


async def test_a_run_reboots_a_camera_and_raises_its_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, bool]] = []

    def site_with_listener(cameras: Path, tmp: Path) -> tuple[CctvSite, Path]:
        site, path = _cctv_site(cameras, tmp)
        site.camera("cctv-songdo-gtower").on_event(lambda e: events.append((e.topic, e.active)))
        return site, path

    monkeypatch.setattr(runner, "_cctv_site", site_with_listener)
    run = ScenarioRun(load_scenario(_write(tmp_path, SCENARIO)))
    result = await run.run()
    assert result.error is None, result.error
    assert run.cctv is not None and run.cctv.camera(CAMERA).reboots == 1
    assert events == [("motion", True), ("motion", False)]
    texts = [text for _, kind, text in result.recording.events if kind == "camera"]
    assert texts == [
        f"{CAMERA} reboots: offline for 10 s",
        "cctv-songdo-gtower: event motion starts",
        "cctv-songdo-gtower: event motion ends",
    ]


def test_a_run_without_camera_actions_reaches_no_camera(tmp_path: Path) -> None:
    """The service of such a run gets the cameras without streams or ONVIF: nothing on the demo's ports."""
    loaded = load_scenario(_write(tmp_path, SCENARIO.split("actions:")[0] + "expect:\n  - {check: nothing_lost}\n"))
    assert not loaded.spec.uses_cameras
    original = load_assets(loaded.cameras_path).cameras
    assert any(c.stream or c.onvif for c in original)
    copy = load_assets(runner._without_live_cameras(loaded.cameras_path, tmp_path)).cameras
    assert [c.id for c in copy] == [c.id for c in original]
    assert not any(c.stream or c.onvif or c.snapshot_url for c in copy)
