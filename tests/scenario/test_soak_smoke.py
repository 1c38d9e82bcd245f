"""bench/soak.py as a smoke test: a short soak (about half a minute of wall time, over an hour simulated at a
denser incident rate, 20 drones, random faults, malformed reports) completes, samples memory, descriptors and loop lag,
and loses nothing. The full soak (a simulated week) is run by hand: see the README."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_soak_completes_and_loses_nothing() -> None:
    cmd = [
        sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "0.5", "--drones", "20",
        "--speed-factor", "200", "--incidents", "4000", "--faults-per-hour", "6", "--malformed", "0.1",
        "--sample-s", "5", "--seed", "3", "--json",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    detail = json.dumps(out, indent=1) + proc.stderr[-3000:]
    assert out["error"] is None, detail
    assert out["drones"] == 20 and out["faults"] >= 3 and out["samples"] >= 2, detail
    assert out["reports_sent"] >= 10 and out["malformed_sent"] >= 1, detail
    assert out["reports_lost"] == 0 and out["reports_stored"] == out["reports_sent"], detail
    assert out["malformed_accepted"] == 0, detail
    assert out["incidents_without_decision"] == 0, detail
    assert out["missions"] >= 1 and out["missions_stuck_active"] == 0, detail
    assert all(ok for ok, _ in out["verdicts"].values()), detail
    assert out["rss_mb_peak"] > 0 and out["fds_peak"] > 0
    assert not out["lost_anything"] and proc.returncode == 0, detail
