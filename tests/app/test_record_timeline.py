"""The record's timeline tells the alerts a mission raised, in their place in the story."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dronedispatch.app.records import timeline
from dronedispatch.store.models import AuditEntry, Incident, Mission

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def test_alerts_of_a_mission_appear_in_order_with_their_level() -> None:
    inc = Incident(id=1, category="fire", lat=37.39, lon=126.63, source="webhook", created_at=T0)
    mission = Mission(id=5, incident_id=1, drone_id="dd-01", sysid=1, template="t", created_by="op", created_at=T0,
                      state="completed")  # fmt: skip
    audit = [
        AuditEntry(id=1, at=T0 + timedelta(seconds=5), actor="op", action="mission.dispatch", target_type="mission",
                   target_id="5", detail={"drone_id": "dd-01", "template": "t"}),
        AuditEntry(id=2, at=T0 + timedelta(seconds=90), actor="system", action="alert.raised", target_type="mission",
                   target_id="5", detail={"level": "critical", "code": "link_lost", "message": "dd-01: link lost",
                                          "drone_id": "dd-01"}),
    ]  # fmt: skip
    entries = timeline(inc, [], [mission], audit)
    alert = next(e for e in entries if e.kind == "alert")
    assert alert.text == "Alert (critical): dd-01: link lost" and alert.actor == "system"
    assert alert.detail == "link_lost" and alert.at == T0 + timedelta(seconds=90)
    dispatched = next(e for e in entries if e.kind == "dispatch")
    assert dispatched.at < alert.at


def test_an_overwatch_hand_over_is_told_with_both_drones_and_the_overlap() -> None:
    inc = Incident(id=1, category="fire", lat=37.39, lon=126.63, source="webhook", created_at=T0)
    first = Mission(id=5, incident_id=1, drone_id="dd-01", sysid=1, template="t", created_by="op", created_at=T0,
                    state="completed")  # fmt: skip
    relief = Mission(id=6, incident_id=1, drone_id="dd-05", sysid=5, template="t", created_by="overwatch",
                     created_at=T0 + timedelta(minutes=15), state="on_scene", relieves_mission_id=5)  # fmt: skip
    audit = [
        AuditEntry(id=9, at=T0 + timedelta(minutes=20), actor="overwatch", action="mission.handover",
                   target_type="mission", target_id="5",
                   detail={"from_mission_id": 5, "to_mission_id": 6, "from_drone_id": "dd-01", "to_drone_id": "dd-05",
                           "incident_id": 1, "overlap_s": 42.0}),
    ]  # fmt: skip
    handover = next(e for e in timeline(inc, [], [first, relief], audit) if e.kind == "handover")
    assert handover.text == "Drone dd-01 handed the scene over to drone dd-05 (mission #5 → #6)"
    assert handover.detail == "42.0 s together on scene" and handover.actor == "overwatch"
