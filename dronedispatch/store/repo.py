"""Repositories: every read and write the service makes, one short transaction each.

Callers get detached model objects back (expire_on_commit=False), never a live session.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from dronedispatch.domain.incidents import Report
from dronedispatch.store.models import AuditEntry, Evidence, Incident, IncidentReport, Mission, User, utcnow

ACTIVE_MISSION_STATES = ("planned", "uploading", "launching", "enroute", "on_scene", "returning")


class NotFound(LookupError):
    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key} does not exist")
        self.kind = kind
        self.key = key


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    # -- users ---------------------------------------------------------------------------------
    def get_user(self, username: str) -> User | None:
        with self.session() as s:
            return s.exec(select(User).where(User.username == username)).first()

    def upsert_user(self, username: str, password_hash: str, role: str) -> User:
        with self.session() as s:
            user = s.exec(select(User).where(User.username == username)).first()
            if user is None:
                user = User(username=username, password_hash=password_hash, role=role)
            else:
                user.password_hash, user.role = password_hash, role
            s.add(user)
            s.commit()
            return user

    def list_users(self) -> Sequence[User]:
        with self.session() as s:
            return s.exec(select(User).order_by(User.username)).all()

    # -- incidents -----------------------------------------------------------------------------
    def create_incident(self, report: Report, lat: float, lon: float) -> Incident:
        """A new incident formed by ``report`` (stored beside it)."""
        with self.session() as s:
            incident = Incident(
                category=report.category.value,
                severity=int(report.severity),
                lat=lat,
                lon=lon,
                area=report.area,
                camera_id=report.camera_id,
                source=report.source,
                description=report.description,
            )
            s.add(incident)
            s.flush()
            assert incident.id is not None
            s.add(_report_row(report, incident.id))
            s.commit()
            return incident

    def merge_report(self, incident_id: int, report: Report) -> Incident:
        """Attach ``report`` to an existing incident; severity only ever goes up."""
        with self.session() as s:
            incident = s.get(Incident, incident_id)
            if incident is None:
                raise NotFound("incident", incident_id)
            s.add(_report_row(report, incident_id))
            incident.report_count += 1
            incident.severity = max(incident.severity, int(report.severity))
            incident.updated_at = utcnow()
            if report.description and report.description not in incident.description:
                incident.description = (incident.description + "\n" + report.description).strip()
            s.add(incident)
            s.commit()
            return incident

    def get_incident(self, incident_id: int) -> Incident:
        with self.session() as s:
            incident = s.get(Incident, incident_id)
            if incident is None:
                raise NotFound("incident", incident_id)
            return incident

    def list_incidents(self, *, status: str | None = None, limit: int = 100, offset: int = 0) -> Sequence[Incident]:
        with self.session() as s:
            q = select(Incident)
            if status:
                q = q.where(Incident.status == status)
            q = q.order_by(col(Incident.created_at).desc()).offset(offset).limit(limit)
            return s.exec(q).all()

    def open_incidents(self) -> Sequence[Incident]:
        with self.session() as s:
            return s.exec(select(Incident).where(Incident.status != "closed")).all()

    def incident_reports(self, incident_id: int) -> Sequence[IncidentReport]:
        with self.session() as s:
            q = select(IncidentReport).where(IncidentReport.incident_id == incident_id)
            return s.exec(q.order_by(col(IncidentReport.id))).all()

    def update_incident(self, incident_id: int, **fields: Any) -> Incident:
        with self.session() as s:
            incident = s.get(Incident, incident_id)
            if incident is None:
                raise NotFound("incident", incident_id)
            for k, v in fields.items():
                setattr(incident, k, v)
            incident.updated_at = utcnow()
            s.add(incident)
            s.commit()
            return incident

    # -- missions ------------------------------------------------------------------------------
    def add_mission(self, mission: Mission) -> Mission:
        with self.session() as s:
            s.add(mission)
            s.commit()
            return mission

    def get_mission(self, mission_id: int) -> Mission:
        with self.session() as s:
            mission = s.get(Mission, mission_id)
            if mission is None:
                raise NotFound("mission", mission_id)
            return mission

    def update_mission(self, mission_id: int, **fields: Any) -> Mission:
        with self.session() as s:
            mission = s.get(Mission, mission_id)
            if mission is None:
                raise NotFound("mission", mission_id)
            for k, v in fields.items():
                setattr(mission, k, v)
            mission.updated_at = utcnow()
            s.add(mission)
            s.commit()
            return mission

    def list_missions(
        self, *, active: bool | None = None, incident_id: int | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[Mission]:
        with self.session() as s:
            q = select(Mission)
            if active is True:
                q = q.where(col(Mission.state).in_(ACTIVE_MISSION_STATES))
            elif active is False:
                q = q.where(col(Mission.state).not_in(ACTIVE_MISSION_STATES))
            if incident_id is not None:
                q = q.where(Mission.incident_id == incident_id)
            return s.exec(q.order_by(col(Mission.id).desc()).offset(offset).limit(limit)).all()

    def active_mission_for_drone(self, drone_id: str) -> Mission | None:
        with self.session() as s:
            q = select(Mission).where(Mission.drone_id == drone_id, col(Mission.state).in_(ACTIVE_MISSION_STATES))
            return s.exec(q).first()

    # -- evidence ------------------------------------------------------------------------------
    def add_evidence(self, evidence: Evidence) -> Evidence:
        with self.session() as s:
            s.add(evidence)
            s.commit()
            return evidence

    def get_evidence(self, evidence_id: int) -> Evidence:
        with self.session() as s:
            e = s.get(Evidence, evidence_id)
            if e is None:
                raise NotFound("evidence", evidence_id)
            return e

    def list_evidence(self, *, mission_id: int | None = None, incident_id: int | None = None) -> Sequence[Evidence]:
        with self.session() as s:
            q = select(Evidence)
            if mission_id is not None:
                q = q.where(Evidence.mission_id == mission_id)
            if incident_id is not None:
                q = q.where(Evidence.incident_id == incident_id)
            return s.exec(q.order_by(col(Evidence.id))).all()

    # -- audit ---------------------------------------------------------------------------------
    def audit(self, actor: str, action: str, target_type: str, target_id: object, **detail: Any) -> None:
        with self.session() as s:
            s.add(
                AuditEntry(actor=actor, action=action, target_type=target_type, target_id=str(target_id), detail=detail)
            )
            s.commit()

    def audit_log(
        self, *, target_type: str | None = None, target_id: str | None = None, limit: int = 200
    ) -> Sequence[AuditEntry]:
        with self.session() as s:
            q = select(AuditEntry)
            if target_type:
                q = q.where(AuditEntry.target_type == target_type)
            if target_id:
                q = q.where(AuditEntry.target_id == target_id)
            return s.exec(q.order_by(col(AuditEntry.id).desc()).limit(limit)).all()

    def latest_audit_detail(self, action: str, target_type: str) -> dict[str, dict[str, Any]]:
        """The detail of the newest entry of ``action`` per target: state that is only ever set by
        an audited action (e.g. a drone's maintenance flag) is read back from here on start."""
        with self.session() as s:
            q = select(AuditEntry).where(AuditEntry.action == action, AuditEntry.target_type == target_type)
            out: dict[str, dict[str, Any]] = {}
            for e in s.exec(q.order_by(col(AuditEntry.id))):
                out[e.target_id] = e.detail
            return out

    def counts(self) -> dict[str, int]:
        with self.session() as s:
            return {
                "incidents": s.exec(select(func.count()).select_from(Incident)).one(),
                "missions": s.exec(select(func.count()).select_from(Mission)).one(),
                "audit": s.exec(select(func.count()).select_from(AuditEntry)).one(),
            }


def _report_row(report: Report, incident_id: int) -> IncidentReport:
    return IncidentReport(
        incident_id=incident_id,
        source=report.source,
        source_ref=report.source_ref,
        category=report.category.value,
        severity=int(report.severity),
        lat=report.lat,
        lon=report.lon,
        camera_id=report.camera_id,
        description=report.description,
        observed_at=report.observed_at,
        raw=report.raw,
    )


def as_utc(dt: datetime) -> datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    from datetime import UTC

    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
