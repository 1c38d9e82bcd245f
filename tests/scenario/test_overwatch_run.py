"""The shipped hour-long fire watch: drones from two docks relieve one another over the scene.

One run (about two minutes of wall time at 40x) answers for the whole chain: the coverage asked
with the incident, relief planned on simulated time and launched through the mission supervisor,
hand-overs with at least 30 s of overlap audited with both missions, the video's drone following
the one on scene, every drone home with its reserve, and the report's coverage section.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dronedispatch import cityfiles
from dronedispatch.scenario import coverage
from dronedispatch.scenario.cli import run_scenario
from dronedispatch.scenario.expectations import PASS

pytestmark = pytest.mark.e2e


async def test_overwatch_fire_keeps_the_scene_covered_for_an_hour(tmp_path: Path) -> None:
    result = await run_scenario(cityfiles.SITL_DIR / "scenarios" / "overwatch-fire.yaml", report_dir=tmp_path)
    explain = "\n".join(
        [f"error: {result.error}"] + [f"{v.outcome} {v.name}: {v.detail}" for v in result.verdicts]
        + [f"{t:.0f} {kind}: {text}" for t, kind, text in result.recording.events[-40:]]
    )  # fmt: skip
    assert result.passed, explain
    assert all(v.outcome == PASS for v in result.verdicts), explain
    rec = result.recording
    [incident_id] = coverage.covered_incidents(rec)
    inc = result.facts.incidents[incident_id]
    tl = coverage.timeline(rec, incident_id, (inc["lat"], inc["lon"]))
    # short batteries: several hand-overs in the hour, each overlapping, and nothing uncovered between
    assert len(tl.handovers) >= 3 and all(h.overlap_s >= 30 for h in tl.handovers), tl.handovers
    assert tl.gaps == () and tl.covered_s >= 3600 - 60
    assert len({i.drone_id for i in tl.intervals}) >= 3  # drones rotated (from both docks)
    # every hand-over is in the audit log with both missions, and the relieved mission went home by command
    handovers = [a for a in result.facts.audit if a["action"] == "mission.handover"]
    assert len(handovers) == len(tl.handovers)
    for a in handovers:
        d = a["detail"]
        assert {"from_mission_id", "to_mission_id", "from_drone_id", "to_drone_id"} <= set(d), d
        assert str(d["from_mission_id"]) == a["target_id"] and d["overlap_s"] >= 30
    relieved = {a["detail"]["from_mission_id"] for a in handovers}
    for m in result.facts.missions:
        if m["id"] in relieved:
            assert m["state"] == "completed" and "overwatch" in (m["reason"] or ""), m
    # drones needed per hour against the theoretical minimum, in the report with the coverage chart
    rot = coverage.rotation(rec, incident_id, result.scenario.fleet, (inc["lat"], inc["lon"]))
    assert rot is not None and 1.0 < rot.minimum <= rot.drones_per_hour < 3 * rot.minimum
    page = (tmp_path / "report.html").read_text()
    assert f"Coverage of incident {incident_id}" in page and "theoretical minimum" in page
