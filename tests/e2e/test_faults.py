"""Faults real deployments see, injected into real processes while a mission flies.

After each fault: no mission lost or duplicated in the store, the audit log holds every transition once
and in order, and the drone is supervised again (it comes home on a pilot's command) or safely home.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import paho.mqtt.publish as paho_publish
import psycopg
import pytest

from tests.e2e.conftest import Database, System, start_system, wait_for
from tests.fixtures.services import MosquittoServer, PostgresServer, find_mosquitto, find_pg_bindir, free_udp_port

pytestmark = pytest.mark.e2e

#: A spot in Songdo Central Park, a few hundred metres from dd-01's dock.
SCENE = {"lat": 37.3927, "lon": 126.6378}
#: The mission states a flight to the scene and home passes through, in order.
FLIGHT = ["uploading", "launching", "enroute", "on_scene", "returning", "completed"]
#: How long the database stays down: long enough for the drone to change state meanwhile.
DB_OUTAGE_S = 30.0
#: How long the MQTT broker stays down.
BROKER_OUTAGE_S = 6.0


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server this test may stop and start (the session's is shared by other tests)."""
    workdir = Path(tempfile.mkdtemp(prefix="dd-pg-fault-"))
    server = PostgresServer(workdir=workdir, bindir=find_pg_bindir())
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def own_broker() -> Iterator[MosquittoServer]:
    """A mosquitto broker this test stops and starts, keeping sessions and queued messages on disk meanwhile."""
    workdir = Path(tempfile.mkdtemp(prefix="dd-mqtt-fault-"))
    server = MosquittoServer(workdir=workdir, binary=find_mosquitto(), persistence=True)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def figures(test: str, **values: object) -> None:
    """One line of the test's measured figures (shown with ``pytest -s``; the README's fault table quotes them)."""
    print(f"\nFAULT FIGURES {test}: " + " ".join(f"{k}={v}" for k, v in values.items()))


def ready(system: System, client: httpx.Client) -> None:
    wait_for(lambda: all(d["state"] == "ready" for d in client.get("/api/v1/drones").json()), 60,
             "drones ready", system)  # fmt: skip


def dispatch(system: System, client: httpx.Client) -> tuple[dict, dict]:
    incident = client.post("/api/v1/incidents", json={"category": "traffic_accident", "location": SCENE})
    assert incident.status_code == 201, incident.text
    r = client.post(f"/api/v1/incidents/{incident.json()['id']}/dispatch", json={})
    assert r.status_code == 201, f"{r.text}\n{system.log_tail()}"
    return incident.json(), r.json()


def bring_home(system: System, mission_id: int) -> None:
    """A pilot's RTL: the service supervises the drone again if it reaches the vehicle and sees it home."""
    r = system.client("pilot").post(f"/api/v1/missions/{mission_id}/commands", json={"command": "rtl"})
    assert r.status_code == 200, f"{r.text}\n{system.log_tail()}"
    system.watch(system.client("operator"), mission_id).wait("completed", timeout=180)


def mission_rows(pg_url: str, incident_id: int) -> list[tuple]:
    with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql")) as conn:
        return conn.execute("SELECT id, state FROM missions WHERE incident_id = %s", (incident_id,)).fetchall()


def samples_between(pg_url: str, mission_id: int, start: datetime, end: datetime) -> int:
    with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql")) as conn:
        row = conn.execute(
            "SELECT count(*) FROM telemetry_samples WHERE mission_id = %s AND at > %s AND at < %s",
            (mission_id, start, end),
        ).fetchone()
    return int(row[0]) if row else 0


def state_audit(pg_url: str, mission_id: int) -> list[tuple[str, str]]:
    """The mission's recorded transitions (old, new), in the order the audit log has them."""
    with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql")) as conn:
        rows = conn.execute(
            "SELECT detail FROM audit_log WHERE action = 'mission.state' AND target_type = 'mission' "
            "AND target_id = %s ORDER BY id",
            (str(mission_id),),
        ).fetchall()
    return [(d["old"], d["new"]) for (d,) in rows]


def test_postgres_outage_while_a_mission_flies(tmp_path: Path, own_postgres: PostgresServer) -> None:
    database = Database("postgresql", own_postgres.url(), own_postgres.log_path)
    with contextmanager(start_system)(tmp_path, database=database, vehicles=1, speed_factor=10.0) as system:
        operator = system.client("operator")
        ready(system, operator)
        incident, mission = dispatch(system, operator)
        system.watch(operator, mission["id"]).wait("launching", "enroute", timeout=60)

        own_postgres.stop()
        down_at, down_wall = time.monotonic(), datetime.now(UTC)
        # requests that need the store are refused at once with a reason: 503, never a 500 or a hang
        t0 = time.monotonic()
        r = operator.get(f"/api/v1/missions/{mission['id']}", timeout=15)
        assert r.status_code == 503, f"{r.status_code} {r.text}\n{system.log_tail()}"
        assert r.json()["code"] == "database_unavailable" and "database" in r.json()["detail"]
        assert r.headers.get("Retry-After")
        assert time.monotonic() - t0 < 10
        first_503_s = time.monotonic() - t0
        r = httpx.post(f"{system.url}/api/v1/auth/token", data={"username": "pilot", "password": "x"}, timeout=15)
        assert r.status_code == 503, r.text
        time.sleep(max(0.0, DB_OUTAGE_S - (time.monotonic() - down_at)))
        system.check_running()
        up_wall = datetime.now(UTC)
        own_postgres.start(keep_port=True)
        up_at = time.monotonic()

        # the transitions decided during the outage reach the store, in order, once it is back
        watch = system.watch(operator, mission["id"])
        wait_for(lambda: watch.state() == "on_scene", 60, "on_scene written after the outage", system)
        written_after_s = time.monotonic() - up_at
        # the link kept supervising meanwhile: the arrival is dated when it happened, inside the outage, and the
        # track flown meanwhile was kept
        on_scene_at = datetime.fromisoformat(operator.get(f"/api/v1/missions/{mission['id']}").json()["on_scene_at"])
        assert down_wall < on_scene_at < up_wall, (down_wall, on_scene_at, up_wall)
        wait_for(lambda: samples_between(database.url, mission["id"], down_wall, up_wall) >= 10, 30,
                 "the track flown during the outage", system)  # fmt: skip
        outage_samples = samples_between(database.url, mission["id"], down_wall, up_wall)
        bring_home(system, mission["id"])

        rows = mission_rows(database.url, incident["id"])
        assert rows == [(mission["id"], "completed")], rows
        transitions = state_audit(database.url, mission["id"])
        news = [new for _, new in transitions]
        assert news == FLIGHT[1:] or news == FLIGHT, transitions  # "planned → uploading" may be the first
        assert all(a == b_old for (_, a), (b_old, _) in itertools.pairwise(transitions)), transitions
        assert "mission_failed" not in (system.logs / "serve.log").read_text(errors="replace")
        figures("postgres_outage", outage_s=f"{(up_at - down_at):.1f}", first_503_after_s=f"{first_503_s:.2f}",
                requests_503=2, on_scene_written_after_db_back_s=f"{written_after_s:.1f}",
                samples_kept_from_outage=outage_samples, missions=len(rows), transitions=len(transitions),
                transitions_in_order=True)  # fmt: skip


def report(ref: str) -> bytes:
    """A generic JSON report; every one at the same spot, so they all belong to one incident."""
    body = {"category": "traffic_accident", "severity": 3, "location": SCENE, "description": f"e2e {ref}",
            "source_ref": ref}  # fmt: skip
    return json.dumps(body).encode()


def stored_refs(db: Path) -> dict[str, int]:
    """How many times each MQTT report was stored (the service's SQLite file, read beside it: WAL allows it)."""
    with sqlite3.connect(db, timeout=10) as conn:
        rows = conn.execute(
            "SELECT source_ref, count(*) FROM incident_reports WHERE source = 'mqtt' GROUP BY source_ref"
        ).fetchall()
    return {ref: n for ref, n in rows}


def test_broker_outage_loses_no_qos1_report_and_processes_none_twice(
    tmp_path: Path, own_broker: MosquittoServer
) -> None:
    env = {"DD_MQTT_URL": own_broker.url}
    with contextmanager(start_system)(tmp_path, vehicles=1, extra_env=env) as system:
        db = tmp_path / "dd.db"
        # a reporter with a persistent session: QoS 1 messages it cannot deliver stay queued until the broker is back
        reporter = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="e2e-reporter", clean_session=False,
                               protocol=paho.MQTTv311)  # fmt: skip
        reporter.reconnect_delay_set(min_delay=1, max_delay=2)
        reporter.connect(own_broker.host, own_broker.port)
        reporter.loop_start()
        try:
            # the service is subscribed once a report goes through
            reporter.publish("dronedispatch/reports/e2e", report("r-0"), qos=1)
            wait_for(lambda: stored_refs(db).get("r-0"), 60, "the first report stored", system)

            own_broker.stop()
            wait_for(lambda: not reporter.is_connected(), 10, "the reporter to see the broker gone")
            during = [f"r-{n}" for n in range(1, 6)]
            for ref in during:
                reporter.publish("dronedispatch/reports/e2e", report(ref), qos=1)
            # long enough for the service's reconnect backoff to grow to several seconds (0.5, 1, 2, 4 s …)
            time.sleep(BROKER_OUTAGE_S)
            system.check_running()
            assert set(stored_refs(db)) == {"r-0"}
            own_broker.start()  # same port, sessions and queues restored from disk
            broker_up_at = time.monotonic()
            # published the moment the broker is back, while the service still waits to reconnect: the broker
            # holds it in the service's persistent session (restored from disk) until the service is back
            paho_publish.single("dronedispatch/reports/e2e", report("r-6"), qos=1, hostname=own_broker.host,
                                port=own_broker.port, client_id="e2e-late-reporter")  # fmt: skip

            # the reporter's queue reaches the service too, once both are connected again
            wanted = {*during, "r-6"}
            wait_for(lambda: wanted <= set(stored_refs(db)), 90, "the reports published during the outage", system)
            all_stored_after_s = time.monotonic() - broker_up_at
            time.sleep(2.0)  # a redelivery, if any, would land now
        finally:
            reporter.loop_stop()
            reporter.disconnect()
        refs = stored_refs(db)
        assert refs == {f"r-{n}": 1 for n in range(7)}, refs
        # all of them one incident: none lost, none counted twice
        with sqlite3.connect(db, timeout=10) as conn:
            counts = conn.execute("SELECT id, report_count FROM incidents").fetchall()
        assert len(counts) == 1 and counts[0][1] == 7, counts
        figures("broker_restart", outage_s=BROKER_OUTAGE_S, reports_published=7, published_while_down=5,
                stored=sum(refs.values()), lost=7 - len(refs), twice=sum(n > 1 for n in refs.values()),
                all_stored_after_broker_back_s=f"{all_stored_after_s:.1f}", incidents=len(counts))  # fmt: skip


def inject(port: int, command: str) -> str:
    """Send one fault command to the simulator's fault port; its answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(command.encode(), ("127.0.0.1", port))
        return s.recv(256).decode()


def mission_audit(db: Path, mission_id: int, action: str) -> list[dict]:
    with sqlite3.connect(db, timeout=10) as conn:
        rows = conn.execute(
            "SELECT detail FROM audit_log WHERE action = ? AND target_type = 'mission' AND target_id = ? ORDER BY id",
            (action, str(mission_id)),
        ).fetchall()
    return [json.loads(d) for (d,) in rows]


def alert_codes(db: Path, mission_id: int) -> list[str]:
    return [d["code"] for d in mission_audit(db, mission_id, "alert.raised")]


def test_vehicle_rebooted_mid_mission_is_detected_rechecked_and_flagged(tmp_path: Path) -> None:
    fault_port = free_udp_port()
    sitl_args = ("--fault-port", str(fault_port))
    with contextmanager(start_system)(tmp_path, vehicles=1, speed_factor=10.0, sitl_args=sitl_args) as system:
        db = tmp_path / "dd.db"
        operator = system.client("operator")
        ready(system, operator)
        incident, mission = dispatch(system, operator)
        mid = mission["id"]
        system.watch(operator, mid).wait("on_scene", timeout=120)

        # a restart that keeps the plan: detected, the pilot alerted, the plan read back and found ours
        assert inject(fault_port, "vehicle_reboot 1 keep 3") == "ok"
        injected_at = time.monotonic()
        checked = wait_for(lambda: mission_audit(db, mid, "mission.vehicle_rebooted"), 60,
                           "the restart detected and the plan re-read", system)  # fmt: skip
        first_detected_s = time.monotonic() - injected_at
        assert isinstance(checked, list) and checked[0]["plan_matches"] is True, checked
        assert checked[0]["held_items"] == len(mission["items"])
        assert "vehicle_rebooted" in alert_codes(db, mid) and "mission_mismatch" not in alert_codes(db, mid)

        # a restart that loses the plan: flagged as a mismatch, in the mission's record. The restart shows as the
        # boot clock going backwards: the vehicle must have been up longer than it stays silent (at 10x, 3 s of
        # silence are 30 s of its clock)
        time.sleep(3.0)
        assert inject(fault_port, "vehicle_reboot 1 clear 3") == "ok"
        injected_at = time.monotonic()
        wait_for(lambda: len(mission_audit(db, mid, "mission.vehicle_rebooted")) == 2, 60,
                 "the second restart detected", system)  # fmt: skip
        second_detected_s = time.monotonic() - injected_at
        second = mission_audit(db, mid, "mission.vehicle_rebooted")[1]
        assert second["plan_matches"] is False and second["held_items"] == 0, second
        wait_for(lambda: "mission_mismatch" in alert_codes(db, mid), 30, "the mismatch alert", system)
        assert alert_codes(db, mid).count("vehicle_rebooted") == 2

        # supervised again: the pilot brings it home and the mission completes, once, in the store
        bring_home(system, mid)
        with sqlite3.connect(db, timeout=10) as conn:
            rows = conn.execute("SELECT id, state FROM missions WHERE incident_id = ?", (incident["id"],)).fetchall()
        assert rows == [(mid, "completed")], rows
        detected = f"{first_detected_s:.1f},{second_detected_s:.1f}"
        figures("vehicle_reboot", reboots=2, silent_s=3, detected_after_s=detected,
                kept_plan_matches=True, lost_plan_flagged=True, alerts=",".join(alert_codes(db, mid)),
                missions=len(rows))  # fmt: skip


#: Runs a command with a limit on the size of any file it writes, as a full disk would stop it: writes past the
#: limit fail with EFBIG (SIGXFSZ, which would kill the process, is ignored). Small enough for a few seconds of
#: video, large enough for the service's log.
FILE_SIZE_LIMIT = 1_000_000
LIMIT_FILE_SIZE = (
    sys.executable, "-c",
    "import os, resource, signal, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); os.execv(sys.argv[2], sys.argv[2:])",
    str(FILE_SIZE_LIMIT),
)  # fmt: skip


def pg_rows(url: str, query: str, *args: object) -> list[tuple]:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        return conn.execute(query, args).fetchall()


def test_recordings_disk_full_stops_the_recording_not_the_mission(
    tmp_path: Path, fresh_postgres_db: str, postgres_server: PostgresServer
) -> None:
    # the store is PostgreSQL, in its own process: only the service's own files meet the limit
    database = Database("postgresql", fresh_postgres_db, postgres_server.log_path)
    recordings = tmp_path / "recordings"
    env = {"DD_RECORDINGS_DIR": str(recordings)}
    with contextmanager(start_system)(tmp_path, database=database, vehicles=1, speed_factor=10.0, video=True,
                                      extra_env=env, serve_wrapper=LIMIT_FILE_SIZE) as system:  # fmt: skip
        url = database.url
        operator = system.client("operator")
        ready(system, operator)
        incident, mission = dispatch(system, operator)
        mid = mission["id"]

        def alerts() -> list[str]:
            rows = pg_rows(url, "SELECT detail FROM audit_log WHERE action = 'alert.raised' AND target_id = %s",
                           str(mid))  # fmt: skip
            return [d["code"] for (d,) in rows]

        # the recording fills its file up to the limit: the pilot is told at once, the mission flies on
        dispatched_at = time.monotonic()
        wait_for(lambda: "recording_stopped" in alerts(), 120, "the recording-stopped alert", system)
        alert_after_s = time.monotonic() - dispatched_at
        system.watch(operator, mid).wait("on_scene", timeout=120)
        bring_home(system, mid)

        assert pg_rows(url, "SELECT id, state FROM missions WHERE incident_id = %s", incident["id"]) == [
            (mid, "completed")
        ]
        # nothing half-written is evidence: no recording or subtitles listed, their files removed, the reason audited
        kinds = [k for (k,) in pg_rows(url, "SELECT kind FROM evidence WHERE mission_id = %s", mid)]
        assert "recording" not in kinds and "subtitles" not in kinds, kinds
        assert not list(recordings.glob(f"mission-{mid}-*")), list(recordings.iterdir())
        failed = pg_rows(url, "SELECT detail FROM audit_log WHERE action = 'recording.failed' AND target_id = %s",
                         str(mid))  # fmt: skip
        assert len(failed) == 1 and "no room left" in failed[0][0]["reason"], failed
        # whatever evidence was kept (the snapshot on scene) is whole: its size and hash match the file
        for path, size, digest in pg_rows(url, "SELECT path, size_bytes, sha256 FROM evidence WHERE mission_id = %s",
                                          mid):  # fmt: skip
            data = Path(path).read_bytes()
            assert len(data) == size and hashlib.sha256(data).hexdigest() == digest, path
        assert "mission_failed" not in alerts()
        figures("disk_full", file_size_limit_bytes=FILE_SIZE_LIMIT, alert_after_dispatch_s=f"{alert_after_s:.1f}",
                mission_state="completed", evidence_kinds=",".join(kinds) or "-", half_written_listed=0,
                recording_failed_audited=len(failed))  # fmt: skip
