"""The service host's wall clock jumps (an hour ahead, then ten minutes back) while a mission flies.

`dronedispatch serve` runs under libfaketime (Debian's ``libfaketime``, installed by ``make system-packages``)
with its wall clock read from a file the test rewrites; the monotonic clock is left alone, as a real clock step
leaves it. Every timeout of the service runs on the monotonic clock, so the jumps must change nothing: the link
is never reported lost, the mission is supervised on and completes, nothing times out. Expiries that are stored
or shared between nodes (access tokens, sessions, lockouts, overwatch cover) run on wall time by design: the
test signs in again after the jump, as a browser refreshes its token.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.conftest import DD, System, start_system, wait_for
from tests.e2e.test_faults import dispatch, mission_audit, ready

pytestmark = pytest.mark.e2e

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
#: How often libfaketime re-reads the offset file, seconds.
CACHE_S = 1

#: libfaketime 0.9.10 answers clock_nanosleep on the (unfaked) monotonic clock with EINVAL, which is what
#: time.sleep uses: the process's time.sleep waits in select() instead (a relative timeout, not faked).
SHIM = """\
import runpy, select, sys, time
time.sleep = lambda seconds: select.select([], [], [], max(seconds, 0.0)) and None
sys.argv = sys.argv[3:]  # [shim, python, -m, dronedispatch.cli, serve, ...]: run the module as -m would
runpy.run_module("dronedispatch.cli", run_name="__main__", alter_sys=True)
"""


def service_clock_offset_s(system: System) -> float:
    """How far the service's wall clock is from ours, read from the time it stamps its own heartbeat."""
    tester = system.client("tester")
    try:
        node = tester.get("/api/v1/cluster").json()["nodes"][0]
    finally:
        tester.close()
    return datetime.fromisoformat(node["heartbeat_at"]).timestamp() - time.time()


def alerts(db: Path) -> list[str]:
    with sqlite3.connect(db, timeout=10) as conn:
        rows = conn.execute("SELECT detail FROM audit_log WHERE action = 'alert.raised' ORDER BY id").fetchall()
    return [json.loads(d)["code"] for (d,) in rows]


def test_wall_clock_jumps_on_the_service_host_time_out_nothing(tmp_path: Path) -> None:
    assert LIBFAKETIME.exists(), f"{LIBFAKETIME} is missing: run `make system-packages` (Debian's libfaketime)"
    offset_file = tmp_path / "faketime"
    offset_file.write_text("+0\n")
    shim = tmp_path / "faketime_shim.py"
    shim.write_text(SHIM)
    wrapper = (
        "env",
        f"LD_PRELOAD={LIBFAKETIME}",
        f"FAKETIME_TIMESTAMP_FILE={offset_file}",
        f"FAKETIME_CACHE_DURATION={CACHE_S}",
        "FAKETIME_DONT_FAKE_MONOTONIC=1",
        sys.executable,
        str(shim),
    )
    with contextmanager(start_system)(tmp_path, vehicles=1, speed_factor=10.0, serve_wrapper=wrapper) as system:
        db = tmp_path / "dd.db"
        operator = system.client("operator")
        ready(system, operator)
        incident, mission = dispatch(system, operator)
        mid = mission["id"]
        system.watch(operator, mid).wait("enroute", "on_scene", timeout=60)

        def jump(offset: str, expected_s: float) -> None:
            offset_file.write_text(f"{offset}\n")
            wait_for(lambda: abs(service_clock_offset_s(system) - expected_s) < 30, 10 + CACHE_S,
                     f"the service's clock at {offset}", system)  # fmt: skip

        jump("+3600", 3600)  # an hour ahead
        # the link kept, the mission still flying, over more than the vehicle-silence limit of wall time
        operator = system.client("operator")  # signed in again: the old token's expiry is an hour behind
        drone = operator.get("/api/v1/drones").json()[0]
        assert drone["link"]["ok"] and drone["link"]["last_heard_s"] < 5, drone["link"]
        system.watch(operator, mid).wait("on_scene", timeout=60)
        jump("+3000", 3000)  # ten minutes back
        operator = system.client("operator")
        time.sleep(3 * CACHE_S)  # a few rounds of the service's timers on the new wall clock
        drone = operator.get("/api/v1/drones").json()[0]
        assert drone["link"]["ok"] and drone["link"]["last_heard_s"] < 5, drone["link"]
        assert operator.get(f"/api/v1/missions/{mid}").json()["state"] == "on_scene"

        # supervised throughout: the pilot brings it home and the mission completes, once
        pilot = system.client("pilot")
        r = pilot.post(f"/api/v1/missions/{mid}/commands", json={"command": "rtl"})
        assert r.status_code == 200, f"{r.text}\n{system.log_tail()}"
        system.watch(operator, mid).wait("completed", timeout=120)
        with sqlite3.connect(db, timeout=10) as conn:
            rows = conn.execute("SELECT id, state FROM missions").fetchall()
        assert rows == [(mid, "completed")], rows
        steps = [(d["old"], d["new"]) for d in mission_audit(db, mid, "mission.state")]
        assert [new for _, new in steps] == ["uploading", "launching", "enroute", "on_scene", "returning",
                                            "completed"], steps  # fmt: skip
        assert not [a for a in alerts(db) if a in ("link_lost", "mission_failed", "store_write_failed")], alerts(db)
        verified = subprocess.run([*DD, "audit", "verify"], env=system.env, capture_output=True, timeout=60)
        assert verified.returncode == 0, (verified.stdout + verified.stderr).decode()
        assert incident["status"] in ("open", "dispatched")
