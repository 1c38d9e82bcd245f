"""Repositories: every read and write the service makes, one short transaction each.

Callers get detached model objects back (expire_on_commit=False), never a live session.

A write that reads first (``s.get`` then change) runs in ``_write_session``: on SQLite it takes
the write lock up front (BEGIN IMMEDIATE). pysqlite would otherwise begin the transaction only at
the first write, so the read before it would not belong to it and a concurrent writer's update
could be lost. On PostgreSQL a read-modify-write locks its row (SELECT ... FOR UPDATE).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from dronedispatch.domain.geo import distance_m as metres_between
from dronedispatch.domain.incidents import Report
from dronedispatch.store import audit_chain  # noqa: F401 - its session hooks chain every audit entry
from dronedispatch.store.models import (
    ACTIVE_DRONE_INDEX,
    ACTIVE_INCIDENT_INDEX,
    ACTIVE_MISSION_STATES,
    AuditEntry,
    Drone,
    Evidence,
    Incident,
    IncidentReport,
    Mission,
    User,
    utcnow,
)

__all__ = ["ACTIVE_MISSION_STATES", "ActiveMissionConflict", "NotFound", "SplitRefused", "Store", "as_utc"]


#: A table row that keeps an ``updated_at``.
_Row = TypeVar("_Row", Incident, Mission)

class NotFound(LookupError):
    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key} does not exist")
        self.kind = kind
        self.key = key


class ActiveMissionConflict(Exception):
    """The database refused a second active mission for a drone (``kind`` "drone", ``key`` its id)
    or for an incident (``kind`` "incident", ``key`` its id). ``mission_id`` is the active mission
    that holds it, when it could still be read."""

    def __init__(self, kind: str, key: str | int, mission_id: int | None = None) -> None:
        holder = f"mission {mission_id}" if mission_id is not None else "another mission"
        if kind == "drone":
            msg = f"drone {key} already flies {holder}"
        else:
            msg = f"incident {key} already has an active mission ({holder})"
        super().__init__(msg)
        self.kind = kind
        self.key = key
        self.mission_id = mission_id


class SplitRefused(Exception):
    """A report cannot be split out of its incident; ``code`` says why: ``closed``, ``only_report``,
    ``no_location``."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    @contextmanager
    def _write_session(self) -> Iterator[Session]:
        """A session whose transaction may read and then write (see the module docstring)."""
        with self.session() as s:
            if self.engine.dialect.name == "sqlite":
                # pysqlite begins its own transaction only before DML; one begun here is kept
                s.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield s

    # -- users ---------------------------------------------------------------------------------
    def get_user(self, username: str) -> User | None:
        with self.session() as s:
            return s.exec(select(User).where(User.username == username)).first()

    def upsert_user(self, username: str, password_hash: str, role: str, *, district: str | None = None) -> User:
        with self._write_session() as s:
            user = s.exec(select(User).where(User.username == username)).first()
            if user is None:
                user = User(username=username, password_hash=password_hash, role=role, district=district)
            else:
                user.password_hash, user.role, user.district = password_hash, role, district
            s.add(user)
            s.commit()
            return user

    def set_user_disabled(self, username: str, disabled: bool) -> User:
        with self._write_session() as s:
            user = s.exec(select(User).where(User.username == username)).first()
            if user is None:
                raise NotFound("user", username)
            user.disabled = disabled
            s.add(user)
            s.commit()
            return user

    def list_users(self) -> Sequence[User]:
        with self.session() as s:
            return s.exec(select(User).order_by(User.username)).all()

    # -- incidents -----------------------------------------------------------------------------
    def create_incident(self, report: Report, lat: float, lon: float, *, district: str | None = None) -> Incident:
        """A new incident formed by ``report`` (stored beside it), in ``district`` when known."""
        with self.session() as s:
            incident = Incident(
                district=district,
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
            s.add(_report_row(report, incident.id, distance_m=0.0))
            s.commit()
            return incident

    def merge_report(self, incident_id: int, report: Report) -> Incident:
        """Attach ``report`` to an existing incident; severity only ever goes up."""
        with self._write_session() as s:
            # the new count, severity and description derive from the old: hold the row until commit
            incident = s.get(Incident, incident_id, with_for_update=True)
            if incident is None:
                raise NotFound("incident", incident_id)
            # how far it lies from the incident's position, for the card and the record
            away = None
            if report.lat is not None and report.lon is not None:
                away = metres_between(report.lat, report.lon, incident.lat, incident.lon)
            s.add(_report_row(report, incident_id, distance_m=away))
            incident.report_count += 1
            incident.severity = max(incident.severity, int(report.severity))
            incident.updated_at = utcnow()
            if report.description and report.description not in incident.description:
                incident.description = (incident.description + "\n" + report.description).strip()
            s.add(incident)
            s.commit()
            return incident

    def split_report(self, incident_id: int, report_id: int, *, actor: str) -> tuple[Incident, Incident]:
        """Move report ``report_id`` out of ``incident_id`` into a new open incident at the report's
        position, audited ``incident.split``, all or nothing: (the incident left, the new incident)."""
        with self._write_session() as s:
            old = s.get(Incident, incident_id, with_for_update=True)
            if old is None:
                raise NotFound("incident", incident_id)
            report = s.get(IncidentReport, report_id, with_for_update=True)
            if report is None or report.incident_id != incident_id:
                raise NotFound(f"report of incident {incident_id}", report_id)
            if old.status == "closed":
                raise SplitRefused(f"incident {incident_id} is closed", "closed")
            q = select(func.count()).select_from(IncidentReport).where(IncidentReport.incident_id == incident_id)
            count = s.exec(q).one()
            if count < 2:
                raise SplitRefused(f"report {report_id} is the only report of incident {incident_id}", "only_report")
            if report.lat is None or report.lon is None:
                raise SplitRefused(f"report {report_id} has no position of its own", "no_location")
            new = Incident(
                category=report.category,
                severity=report.severity,
                lat=report.lat,
                lon=report.lon,
                camera_id=report.camera_id,
                source=report.source,
                description=report.description,
                district=old.district,  # within the merge radius of the old one: nearly always the same
                split_from_id=incident_id,
            )
            s.add(new)
            s.flush()
            assert new.id is not None
            away = report.distance_m
            report.incident_id, report.distance_m = new.id, 0.0
            s.add(report)
            old.report_count = count - 1
            old.updated_at = utcnow()
            s.add(old)
            s.add(_audit_row(actor, "incident.split", "incident", incident_id,
                             {"report_id": report_id, "new_incident_id": new.id, "distance_m": away,
                              "source": report.source}))  # fmt: skip
            s.commit()
            return old, new

    def get_incident(self, incident_id: int) -> Incident:
        with self.session() as s:
            incident = s.get(Incident, incident_id)
            if incident is None:
                raise NotFound("incident", incident_id)
            return incident

    def list_incidents(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0, district: str | None = None
    ) -> Sequence[Incident]:
        """Newest first; ``district`` keeps only that district's incidents."""
        with self.session() as s:
            q = select(Incident)
            if status:
                q = q.where(Incident.status == status)
            if district is not None:
                q = q.where(Incident.district == district)
            q = q.order_by(col(Incident.created_at).desc()).offset(offset).limit(limit)
            return s.exec(q).all()

    def open_incidents(self) -> Sequence[Incident]:
        with self.session() as s:
            return s.exec(select(Incident).where(Incident.status != "closed")).all()

    def open_incidents_with_reports(self) -> list[tuple[Incident, Sequence[IncidentReport]]]:
        """Every incident not closed, each with its reports: two queries in one session, whatever
        the number of incidents (matching a new report reads them all)."""
        with self.session() as s:
            incidents = s.exec(select(Incident).where(Incident.status != "closed")).all()
            ids = [i.id for i in incidents]
            reports: dict[int, list[IncidentReport]] = {i: [] for i in ids if i is not None}
            if ids:
                q = select(IncidentReport).where(col(IncidentReport.incident_id).in_(ids))
                for r in s.exec(q.order_by(col(IncidentReport.id))):
                    reports[r.incident_id].append(r)
            return [(i, reports.get(i.id, []) if i.id is not None else []) for i in incidents]

    def incident_reports(self, incident_id: int) -> Sequence[IncidentReport]:
        with self.session() as s:
            q = select(IncidentReport).where(IncidentReport.incident_id == incident_id)
            return s.exec(q.order_by(col(IncidentReport.id))).all()

    def update_incident(self, incident_id: int, **fields: Any) -> Incident:
        with self._write_session() as s:
            incident = _changed(s, Incident, "incident", incident_id, fields)
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
        with self._write_session() as s:
            mission = _changed(s, Mission, "mission", mission_id, fields)
            s.commit()
            return mission

    def list_missions(
        self,
        *,
        active: bool | None = None,
        incident_id: int | None = None,
        limit: int = 100,
        offset: int = 0,
        district: str | None = None,
    ) -> Sequence[Mission]:
        """Newest first; ``district`` keeps only missions for that district's incidents."""
        with self.session() as s:
            q = select(Mission)
            if district is not None:
                q = q.join(Incident, col(Incident.id) == Mission.incident_id).where(Incident.district == district)
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

    def active_mission_for_sysid(self, sysid: int) -> Mission | None:
        with self.session() as s:
            q = select(Mission).where(Mission.sysid == sysid, col(Mission.state).in_(ACTIVE_MISSION_STATES))
            return s.exec(q.order_by(col(Mission.id).desc())).first()

    def active_missions(self) -> dict[str, int]:
        """Drone id -> its active mission's id (the database allows at most one per drone)."""
        with self.session() as s:
            q = select(Mission.drone_id, Mission.id).where(col(Mission.state).in_(ACTIVE_MISSION_STATES))
            return {drone_id: mission_id for drone_id, mission_id in s.exec(q) if mission_id is not None}

    def dispatch_mission(
        self, mission: Mission, *, actor: str, audit_detail: dict[str, Any]
    ) -> tuple[Mission, Incident]:
        """Insert ``mission``, mark its incident dispatched and audit it, all or nothing.

        Raises ActiveMissionConflict when the drone or the incident already has an active mission
        (the partial unique indexes decide, so two concurrent dispatches cannot both win).
        """
        drone_id, incident_id = mission.drone_id, mission.incident_id
        try:
            with self._write_session() as s:
                incident = s.get(Incident, incident_id)
                if incident is None:
                    raise NotFound("incident", incident_id)
                s.add(mission)
                s.flush()
                assert mission.id is not None
                incident.status = "dispatched"
                incident.updated_at = utcnow()
                s.add(incident)
                s.add(_audit_row(actor, "mission.dispatch", "mission", mission.id, audit_detail))
                s.commit()
                return mission, incident
        except IntegrityError as exc:
            raise self._active_conflict(exc, drone_id, incident_id, None) from exc

    def record_transition(
        self, mission_id: int, fields: dict[str, Any], *, actor: str, action: str, detail: dict[str, Any]
    ) -> Mission:
        """Change a mission and append the audit entry that explains it, in one transaction."""
        try:
            with self._write_session() as s:
                mission = _changed(s, Mission, "mission", mission_id, fields)
                s.add(_audit_row(actor, action, "mission", mission_id, detail))
                s.commit()
                return mission
        except IntegrityError as exc:
            # only a mission made active again can collide: with its drone or incident as changed
            old = self.get_mission(mission_id)
            drone_id, incident_id = fields.get("drone_id", old.drone_id), fields.get("incident_id", old.incident_id)
            raise self._active_conflict(exc, drone_id, incident_id, mission_id) from exc

    def _active_conflict(
        self, exc: IntegrityError, drone_id: str, incident_id: int, mission_id: int | None
    ) -> ActiveMissionConflict | IntegrityError:
        """Which active-mission index refused a mission; ``exc`` itself when another constraint did.

        The error names the index (PostgreSQL) or its column (SQLite); failing that, the active
        mission that now holds the drone or the incident tells.
        """
        kind = _violated_index(exc)
        with self.session() as s:
            q = select(Mission.id).where(col(Mission.state).in_(ACTIVE_MISSION_STATES))
            if mission_id is not None:
                q = q.where(Mission.id != mission_id)
            by_drone = s.exec(q.where(Mission.drone_id == drone_id)).first()
            by_incident = s.exec(q.where(Mission.incident_id == incident_id)).first()
        if kind is None:
            kind = "drone" if by_drone is not None else "incident" if by_incident is not None else None
        if kind == "drone":
            return ActiveMissionConflict("drone", drone_id, by_drone)
        if kind == "incident":
            return ActiveMissionConflict("incident", incident_id, by_incident)
        return exc

    # -- drones --------------------------------------------------------------------------------
    def set_maintenance(self, drone_id: str, maintenance: bool) -> None:
        values = {"id": drone_id, "maintenance": maintenance, "updated_at": utcnow()}
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(Drone).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[col(Drone.id)], set_={"maintenance": maintenance, "updated_at": values["updated_at"]}
        )
        with self.session() as s:
            s.exec(stmt)  # type: ignore[call-overload]
            s.commit()

    def maintenance_flags(self) -> dict[str, bool]:
        with self.session() as s:
            return {d.id: d.maintenance for d in s.exec(select(Drone))}

    # -- evidence ------------------------------------------------------------------------------
    def add_evidence(self, evidence: Evidence, *, actor: str = "system", **detail: Any) -> Evidence:
        """Keep ``evidence`` with its ``evidence.<kind>`` audit entry, all or nothing: its SHA-256 joins
        the audit log's hash chain. The entry is the mission's when it has one, else the incident's;
        ``detail`` adds to the entry (the path, hash and size are always there)."""
        with self.session() as s:
            s.add(evidence)
            s.flush()
            on_mission = evidence.mission_id is not None
            target_type = "mission" if on_mission else "incident"
            target_id = evidence.mission_id if on_mission else evidence.incident_id
            detail |= {"evidence_id": evidence.id, "path": evidence.path, "sha256": evidence.sha256,
                       "size_bytes": evidence.size_bytes}  # fmt: skip
            s.add(_audit_row(actor, f"evidence.{evidence.kind}", target_type, target_id, detail))
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
            s.add(_audit_row(actor, action, target_type, target_id, detail))
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


def _changed(s: Session, model: type[_Row], kind: str, row_id: int, fields: dict[str, Any]) -> _Row:
    """Row ``row_id`` of ``model`` with ``fields`` set and ``updated_at`` stamped, added to session ``s``."""
    row = s.get(model, row_id)
    if row is None:
        raise NotFound(kind, row_id)
    for k, v in fields.items():
        setattr(row, k, v)
    row.updated_at = utcnow()
    s.add(row)
    return row


def _audit_row(actor: str, action: str, target_type: str, target_id: object, detail: dict[str, Any]) -> AuditEntry:
    return AuditEntry(actor=actor, action=action, target_type=target_type, target_id=str(target_id), detail=detail)


def _violated_index(exc: IntegrityError) -> str | None:
    """Which active-mission index ``exc`` violated: "drone", "incident" or None."""
    diag = getattr(exc.orig, "diag", None)  # psycopg names the index
    text = f"{getattr(diag, 'constraint_name', None) or ''} {exc.orig}"
    if ACTIVE_DRONE_INDEX in text or "UNIQUE constraint failed: missions.drone_id" in text:
        return "drone"
    if ACTIVE_INCIDENT_INDEX in text or "UNIQUE constraint failed: missions.incident_id" in text:
        return "incident"
    return None


def _report_row(report: Report, incident_id: int, *, distance_m: float | None = None) -> IncidentReport:
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
        distance_m=distance_m,
    )


def as_utc(dt: datetime) -> datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
