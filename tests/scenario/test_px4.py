"""``--px4``: the same scenario against real PX4 SIH instances; runs only where a PX4 build exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dronedispatch import cityfiles
from dronedispatch.scenario.cli import run_scenario
from dronedispatch.scenario.px4 import px4_available

pytestmark = pytest.mark.px4

BUILD = os.environ.get("PX4_BUILD_DIR")
AVAILABLE, WHY = px4_available(BUILD)


def test_missing_build_is_reported_not_crashed(tmp_path: Path) -> None:
    ok, why = px4_available(tmp_path)
    assert not ok and "no PX4 SITL build" in why
    ok, why = px4_available(None)
    assert not ok and "PX4_BUILD_DIR" in why


@pytest.mark.skipif(not AVAILABLE, reason=f"real PX4 SIH not available: {WHY}")
async def test_songdo_central_park_against_px4_sih(tmp_path: Path) -> None:
    # PX4 instances use PX4's fixed ports (GCS 14550): do not run this beside a demo
    assert BUILD is not None
    result = await run_scenario(
        cityfiles.SITL_DIR / "scenarios" / "songdo-central-park.yaml", report_dir=tmp_path, px4=Path(BUILD)
    )
    assert result.error is None, result.error
    assert result.passed, "\n".join(f"{v.outcome} {v.name}: {v.detail}" for v in result.verdicts)
    assert any("PX4 SIH" in n for n in result.notes), "the run says what differs on real PX4"
