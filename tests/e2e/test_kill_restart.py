"""The service killed with SIGKILL while one mission uploads, one launches and one flies, then started again.

One kill covers the three moments at once (three drones, each held at its moment by the simulator's fault
port): the upload is slowed item by item, arming is refused for a few seconds, the third drone is in the air.
Started again, the service must read back what each vehicle holds before doing anything with it: the flight is
supervised, the launch whose plan the vehicle holds goes on without a second upload, the upload the vehicle
never finished fails with the reason and its incident is back in the queue. Nothing lost or doubled in the
store, every transition audited once and in order, the audit chain whole, every drone home.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import DD, System, start_system, wait_for
from tests.e2e.test_faults import inject, mission_audit, ready
from tests.fixtures.services import free_udp_port

pytestmark = pytest.mark.e2e

#: Each uploaded item is handled this late by the slowed vehicle: its upload stays in progress for seconds.
SLOW_ITEM_S = 1.5
#: Arming is refused this long (the service keeps asking for 5 s): the launch stays between upload and take-off.
REFUSE_ARMING_S = 4.0


def dispatch_to(system: System, client: httpx.Client, drone: dict) -> tuple[int, int]:
    """A new incident a short flight from ``drone``'s dock (the drones' docks are apart: no two incidents
    merge), flown by that drone."""
    location = {"lat": drone["position"]["lat"] + 300 / 111_000, "lon": drone["position"]["lon"]}
    incident = client.post("/api/v1/incidents", json={"category": "traffic_accident", "location": location})
    assert incident.status_code == 201, incident.text
    r = client.post(f"/api/v1/incidents/{incident.json()['id']}/dispatch", json={"drone_id": drone["id"]})
    assert r.status_code == 201, f"{r.text}\n{system.log_tail()}"
    return incident.json()["id"], r.json()["id"]


def db_state(db: Path, mission_id: int) -> str:
    with sqlite3.connect(db, timeout=10) as conn:
        row = conn.execute("SELECT state FROM missions WHERE id = ?", (mission_id,)).fetchone()
    return str(row[0])


def transfers(fault_port: int, sysid: int) -> dict[str, int]:
    answer = inject(fault_port, f"transfers {sysid}")
    return {k: int(v) for k, v in (w.split("=") for w in answer.split())}


def kill_and_start_again(system: System) -> None:
    """SIGKILL (no shutdown code runs), then the same command on the same store."""
    system.serve.send_signal(signal.SIGKILL)
    system.serve.wait(timeout=10)
    log = open(system.logs / "serve.log", "ab")
    system.serve = subprocess.Popen(system.serve_cmd, env=system.env, stdout=log, stderr=subprocess.STDOUT)
    wait_for(system.healthy, 60, "the restarted service to answer /healthz", system)


def state_chain(db: Path, mission_id: int) -> list[str]:
    """The mission's audited transitions as the states it went through; fails on a gap or a repeat."""
    steps = [(d["old"], d["new"]) for d in mission_audit(db, mission_id, "mission.state")]
    states = ["planned"]
    for old, new in steps:
        assert old == states[-1], f"mission {mission_id}: audit jumps from {states[-1]} to {old}->{new}: {steps}"
        states.append(new)
    return states


def test_kill_during_upload_launch_and_flight_resumes_from_what_the_vehicles_hold(tmp_path: Path) -> None:
    fault_port = free_udp_port()
    with contextmanager(start_system)(
        tmp_path, vehicles=3, speed_factor=10.0, sitl_args=("--fault-port", str(fault_port))
    ) as system:
        db = tmp_path / "dd.db"
        operator = system.client("operator")
        ready(system, operator)
        drones = {d["sysid"]: d for d in operator.get("/api/v1/drones").json()}
        assert sorted(drones) == [1, 2, 3], drones

        # in flight: drone 1
        flying_incident, flying = dispatch_to(system, operator, drones[1])
        system.watch(operator, flying).wait("enroute", "on_scene", timeout=60)
        # uploading: drone 3, its items handled one every SLOW_ITEM_S
        assert inject(fault_port, f"slow_mission_items 3 {SLOW_ITEM_S}") == "ok"
        cut_incident, cut = dispatch_to(system, operator, drones[3])
        wait_for(lambda: db_state(db, cut) == "uploading" and transfers(fault_port, 3)["uploads"] == 1, 20,
                 "the slowed upload under way", system)  # fmt: skip
        # launching: drone 2 holds its plan, arming is refused for a while
        assert inject(fault_port, f"refuse_arming 2 {REFUSE_ARMING_S}") == "ok"
        launch_incident, launching = dispatch_to(system, operator, drones[2])
        wait_for(lambda: db_state(db, launching) == "launching", REFUSE_ARMING_S - 1, "the launch waiting to arm",
                 system)  # fmt: skip
        assert db_state(db, cut) == "uploading", "the slowed upload ended before the kill"
        before = {sysid: transfers(fault_port, sysid) for sysid in drones}

        kill_and_start_again(system)
        assert inject(fault_port, "slow_mission_items 3 0") == "ok"
        operator = system.client("operator")

        # the upload the vehicle never finished: read back, found missing, failed with the reason, requeued
        wait_for(lambda: db_state(db, cut) == "failed", 30, "the cut-off upload to fail", system)
        m = operator.get(f"/api/v1/missions/{cut}").json()
        assert "cut off by a restart" in m["reason"] and "holds no mission" in m["reason"], m["reason"]
        assert operator.get(f"/api/v1/incidents/{cut_incident}").json()["status"] == "open"
        # the launch whose plan the vehicle holds goes on, and the flight is supervised again
        system.watch(operator, launching).wait("enroute", "on_scene", timeout=60)
        system.watch(operator, flying).wait("enroute", "on_scene", timeout=30)
        for mission_id in (flying, launching):
            checks = mission_audit(db, mission_id, "mission.supervise")
            assert len(checks) == 1 and checks[0]["plan_matches"] is True, checks
        # read back from every vehicle with a mission, never uploaded again
        after = {sysid: transfers(fault_port, sysid) for sysid in drones}
        for sysid in drones:
            assert after[sysid]["uploads"] == before[sysid]["uploads"] == 1, (sysid, before, after)
            assert after[sysid]["downloads"] > before[sysid]["downloads"], (sysid, before, after)

        # supervised: both come home on a pilot's command
        pilot = system.client("pilot")
        for mission_id in (flying, launching):
            r = pilot.post(f"/api/v1/missions/{mission_id}/commands", json={"command": "rtl"})
            assert r.status_code == 200, f"{r.text}\n{system.log_tail()}"
        for mission_id in (flying, launching):
            system.watch(operator, mission_id).wait("completed", timeout=120)

        # nothing lost, nothing doubled; every transition audited once, in order
        with sqlite3.connect(db, timeout=10) as conn:
            rows = conn.execute("SELECT incident_id, id, state FROM missions ORDER BY id").fetchall()
        assert rows == [(flying_incident, flying, "completed"), (cut_incident, cut, "failed"),
                        (launch_incident, launching, "completed")], rows  # fmt: skip
        assert state_chain(db, cut) == ["planned", "uploading", "failed"]
        assert state_chain(db, launching)[:4] == ["planned", "uploading", "launching", "enroute"]
        for mission_id in (flying, launching):
            assert state_chain(db, mission_id)[-2:] == ["returning", "completed"]
        assert len(mission_audit(db, launching, "mission.launch")) == 1
        verified = subprocess.run([*DD, "audit", "verify"], env=system.env, capture_output=True, timeout=60)
        assert verified.returncode == 0, (verified.stdout + verified.stderr).decode()
        # every drone on the ground, disarmed
        wait_for(lambda: all(not d["armed"] for d in operator.get("/api/v1/drones").json()), 30,
                 "every drone disarmed at home", system)  # fmt: skip
