"""Every shipped scenario passes against the simulator; the built-to-fail one fails, clearly.

Each run is the real thing in one process: the service (store, dispatcher, mission supervisor,
MAVLink link), the simulated fleet over loopback UDP on free ports, a real mosquitto broker when
reports come over MQTT. Speed factors in the files keep the whole set within a few minutes.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dronedispatch import cityfiles
from dronedispatch.scenario.cli import run_scenario
from dronedispatch.scenario.expectations import PASS, SKIP

SCENARIOS = cityfiles.SITL_DIR / "scenarios"
DATA = Path(__file__).parent / "data"
SHIPPED = ["songdo-central-park", "surge", "link-loss", "battery-fault", "airport-control-zone", "packet-loss-5pct"]


def _explain(result) -> str:  # type: ignore[no-untyped-def]
    lines = [f"error: {result.error}"] if result.error else []
    lines += [f"{v.outcome} {v.name}: {v.detail}" for v in result.verdicts]
    lines += [f"{t:.0f} {kind}: {text}" for t, kind, text in result.recording.events[-40:]]
    return "\n".join(lines)


@pytest.mark.parametrize("name", SHIPPED)
async def test_shipped_scenario_passes(name: str, tmp_path: Path) -> None:
    result = await run_scenario(SCENARIOS / f"{name}.yaml", report_dir=tmp_path)
    assert result.passed, _explain(result)
    assert result.verdicts and all(v.outcome in (PASS, SKIP) for v in result.verdicts)
    # the reports are written and agree with the verdicts
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert int(suite.get("tests", "0")) == len(result.verdicts)
    page = (tmp_path / "report.html").read_text()
    assert (
        "PASSED" in page and "data:image/png;base64," in page and "http://" not in page.replace("http://www.w3.org", "")
    )
    if name == "songdo-central-park":
        video = next(v for v in result.verdicts if v.name.startswith("video"))
        if result.facts.video is None:  # the service has no video path: the check says so
            assert video.outcome == SKIP and "no video path" in video.detail
        else:  # a frame through the snapshot route on scene, the recording and snapshot kept
            assert video.outcome == PASS and "bytes of JPEG" in video.detail, video.detail
        first = result.recording.on_scene_at("park-smoke")
        assert first is not None and first[1] in ("dd-01", "dd-05"), "a G-Tower drone (the nearest) is first"
        # dispatch click to on scene within 15% of the airframe's floor, and the report shows it term by term
        floor = next(v for v in result.verdicts if v.name.startswith("response_within_floor"))
        assert floor.outcome == PASS and "ratio" in floor.detail and "climbing to 80 m" in floor.detail, floor.detail
        assert "Response against the physical floor" in page and "take-off to 25 m" in page
        assert any(seq == 1 for _, seq in result.recording.reached[first[1]])  # the vehicle's own arrival time
        # the 119 CAP warning merged into the camera's incident: one incident, one mission
        arrivals = result.recording.arrivals
        assert arrivals["park-smoke"].incident_id == arrivals["park-119"].incident_id
        assert len(result.recording.missions) == 1
    if name == "airport-control-zone":
        refusal = next(r for r in result.recording.refusals if r.ref == "unseo-fire")
        assert refusal.code == "airspace" and "approval" in refusal.reason
        (mission,) = result.recording.missions.values()
        assert mission.approval and mission.final == "completed"
    if name == "surge":
        assert len(result.recording.arrivals) == 20
        assert all(result.recording.on_scene_at(ref) for ref in result.recording.arrivals)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dronedispatch.cli", "scenario", "run", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cityfiles.PROJECT_ROOT,
    )


def test_cli_malformed_file_exits_2_naming_the_line() -> None:
    bad = DATA / "bad-duration.yaml"
    proc = _cli(str(bad))
    assert proc.returncode == 2
    assert f"{bad}:6: incidents[1].at: expected a duration" in proc.stderr


def test_built_to_fail_scenario_fails_with_a_clear_verdict(tmp_path: Path) -> None:
    """A drone too far away to arrive in time: exit status 1, the verdict says how late and why."""
    out = tmp_path / "out"
    proc = _cli(str(DATA / "too-far.yaml"), "--report", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdict = next(line for line in proc.stdout.splitlines() if "on_scene north-crash" in line)
    assert verdict.strip().startswith("FAIL on_scene north-crash within 120s: north-crash: ")
    # either it arrived late (and says how late) or it had not arrived when the run ended
    assert "more than 120 s allowed" in verdict or "no drone on scene within 120 s" in verdict, verdict
    assert "too-far: FAILED" in proc.stdout
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("errors") == "0"
    failure = suite.find("testcase/failure")
    assert failure is not None and "north-crash" in (failure.get("message") or "")
    assert "FAILED" in (out / "report.html").read_text()


async def test_motor_failure_en_route_fails_the_mission_with_a_reason(tmp_path: Path) -> None:
    result = await run_scenario(DATA / "motor-failure.yaml")
    # the faults reached the vehicles: the motor failure is reported by the vehicle itself
    motor = next(v for v in result.verdicts if "motor failure" in v.detail.lower())
    assert motor.outcome == PASS
    assert result.passed, _explain(result)
