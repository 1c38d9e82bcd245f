"""Incident records and evidence packages, gathered from the store.

:class:`RecordService` reads an incident, its reports, missions, flown tracks, evidence and audit
entries through narrow ports, turns them into the plain data of
:class:`~dronedispatch.reports.record.IncidentRecord` and has :mod:`dronedispatch.reports` render
it: the record page, its PDF and the evidence package. Every method blocks (store reads, file
hashing, PDF rendering): callers run them in a worker thread.

The timeline comes from the audit log, which says who did what and why (the recommendation's
reason, the pilot's commands, a node taking a mission over); milestones that have no audit entry
(data written by other tools) come from the mission and incident rows themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from dronedispatch.domain.assets import AssetRegistry
from dronedispatch.reports import evidence_package, record, svg_map
from dronedispatch.reports.pdf import html_to_pdf
from dronedispatch.store.models import AuditEntry, Evidence, Incident, IncidentReport, Mission, TelemetrySample
from dronedispatch.store.repo import as_utc

#: Mission states after which a mission flies no more.
TERMINAL_STATES = frozenset({"completed", "aborted", "failed"})
#: Snapshots larger than this are listed, not shown, in the record.
MAX_INLINE_SNAPSHOT_BYTES = 4 << 20
#: Audit entries read per target, far above what one incident gathers.
AUDIT_LIMIT = 100_000


class RecordSource(Protocol):
    """What a record reads from the store."""

    def get_incident(self, incident_id: int) -> Incident: ...
    def incident_reports(self, incident_id: int) -> Sequence[IncidentReport]: ...
    def list_missions(
        self, *, active: bool | None = None, incident_id: int | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[Mission]: ...
    def list_evidence(self, *, mission_id: int | None = None, incident_id: int | None = None) -> Sequence[Evidence]: ...
    def audit_log(
        self, *, target_type: str | None = None, target_id: str | None = None, limit: int = 200
    ) -> Sequence[AuditEntry]: ...
    def audit(self, actor: str, action: str, target_type: str, target_id: object, **detail: Any) -> None: ...


class TrackSource(Protocol):
    def tracks(self, mission_ids: Sequence[int]) -> dict[int, list[TelemetrySample]]: ...


class RecordService:
    def __init__(
        self,
        store: RecordSource,
        telemetry: TrackSource,
        *,
        cameras: AssetRegistry,
        districts: Mapping[str, Any] | None,
        airspace: Mapping[str, Any] | None,
    ) -> None:
        self._store = store
        self._telemetry = telemetry
        self._cameras = cameras
        self._districts = districts
        self._airspace = airspace

    # -- gathering -----------------------------------------------------------------------------
    def _camera_name(self, camera_id: str | None) -> str | None:
        if not camera_id:
            return None
        cam = self._cameras.get(camera_id)
        return f"{cam.name_ko} {cam.name_en} ({camera_id})" if cam is not None else camera_id

    def _district_name(self, district_id: str | None) -> str | None:
        for f in (self._districts or {}).get("features") or []:
            props = f.get("properties") or {}
            if district_id and props.get("id") == district_id:
                return f"{props.get('name_ko', '')} {props.get('name_en', '')} ({district_id})".strip()
        return district_id

    def _missions(self, incident_id: int) -> list[Mission]:
        return sorted(self._store.list_missions(incident_id=incident_id, limit=1000), key=lambda m: m.id or 0)

    def _evidence(self, incident_id: int, missions: Sequence[Mission]) -> list[Evidence]:
        rows = {e.id: e for e in self._store.list_evidence(incident_id=incident_id)}
        for m in missions:
            rows.update({e.id: e for e in self._store.list_evidence(mission_id=m.id)})
        return [rows[k] for k in sorted(k for k in rows if k is not None)]

    def audit_entries(self, incident_id: int) -> list[AuditEntry]:
        """The incident's and its missions' audit entries, oldest first."""
        missions = self._missions(incident_id)
        entries = list(self._store.audit_log(target_type="incident", target_id=str(incident_id), limit=AUDIT_LIMIT))
        for m in missions:
            entries += self._store.audit_log(target_type="mission", target_id=str(m.id), limit=AUDIT_LIMIT)
        return sorted(entries, key=lambda e: e.id or 0)

    def gather(self, incident_id: int) -> record.IncidentRecord:
        """The plain data of the incident's record."""
        inc = self._store.get_incident(incident_id)
        reports = list(self._store.incident_reports(incident_id))
        missions = self._missions(incident_id)
        evidence = self._evidence(incident_id, missions)
        audit = self.audit_entries(incident_id)
        tracks = self._telemetry.tracks([m.id for m in missions if m.id is not None])
        report_lines = [
            record.ReportLine(
                id=r.id or 0, observed_at=as_utc(r.observed_at), received_at=as_utc(r.received_at), source=r.source,
                source_ref=r.source_ref, category=r.category, severity=r.severity, lat=r.lat, lon=r.lon,
                distance_m=r.distance_m, camera=self._camera_name(r.camera_id), description=r.description,
            )
            for r in reports
        ]  # fmt: skip
        mission_lines = [
            record.MissionLine(
                id=m.id or 0, drone_id=m.drone_id, template=m.template, state=m.state, reason=m.reason,
                created_by=m.created_by, created_at=as_utc(m.created_at),
                launched_at=as_utc(m.launched_at) if m.launched_at else None,
                on_scene_at=as_utc(m.on_scene_at) if m.on_scene_at else None,
                ended_at=as_utc(m.ended_at) if m.ended_at else None, samples=len(tracks.get(m.id or 0, [])),
            )
            for m in missions
        ]  # fmt: skip
        evidence_lines = [
            record.EvidenceLine(
                id=e.id or 0, kind=e.kind, name=Path(e.path).name, media_type=e.media_type, size_bytes=e.size_bytes,
                sha256=e.sha256, mission_id=e.mission_id,
            )
            for e in evidence
        ]  # fmt: skip
        return record.IncidentRecord(
            id=incident_id, category=inc.category, severity=inc.severity, status=inc.status, lat=inc.lat, lon=inc.lon,
            district=self._district_name(inc.district), source=inc.source, camera=self._camera_name(inc.camera_id),
            description=inc.description, approval_ref=inc.approval_ref, outcome=inc.outcome,
            created_at=as_utc(inc.created_at), closed_at=as_utc(inc.closed_at) if inc.closed_at else None,
            split_from_id=inc.split_from_id, reports=report_lines, missions=mission_lines,
            timeline=timeline(inc, reports, missions, audit), evidence=evidence_lines,
            snapshots=self._snapshots(evidence), map_svg=self._map(inc, reports, missions, tracks),
        )  # fmt: skip

    def _snapshots(self, evidence: Sequence[Evidence]) -> list[record.SnapshotImage]:
        out = []
        for e in evidence:
            path = Path(e.path)
            if e.kind != "snapshot" or not path.is_file() or path.stat().st_size > MAX_INLINE_SNAPSHOT_BYTES:
                continue
            whose = f"mission #{e.mission_id}" if e.mission_id is not None else "reporting camera"
            caption = f"#{e.id} {whose} · {as_utc(e.created_at):%Y-%m-%d %H:%M:%S} UTC"
            out.append(record.SnapshotImage(caption, e.media_type, path.read_bytes()))
        return out

    def _map(
        self,
        inc: Incident,
        reports: Sequence[IncidentReport],
        missions: Sequence[Mission],
        tracks: Mapping[int, Sequence[TelemetrySample]],
    ) -> str:
        points = [
            svg_map.MapPoint(f"#{r.id} {r.source}", r.lat, r.lon, "report")
            for r in reports
            if r.lat is not None and r.lon is not None and (r.distance_m or 0) > 1.0
        ]
        if inc.camera_id and (cam := self._cameras.get(inc.camera_id)) is not None:
            points.append(svg_map.MapPoint(cam.name_en, cam.lat, cam.lon, "camera"))
        points.append(svg_map.MapPoint(f"#{inc.id}", inc.lat, inc.lon, "incident"))
        lines = [
            svg_map.Track(f"{m.drone_id} (#{m.id})", [(s.lat, s.lon) for s in tracks.get(m.id or 0, [])])
            for m in missions
        ]
        return svg_map.render_map(
            districts=self._districts,
            airspace=self._airspace,
            tracks=[t for t in lines if t.points],
            points=points,
            title=f"incident {inc.id}",
        )

    # -- outputs -------------------------------------------------------------------------------
    def record_html(self, incident_id: int) -> str:
        return record.render_record(self.gather(incident_id))

    def record_pdf(self, incident_id: int) -> bytes:
        return html_to_pdf(self.record_html(incident_id))

    def write_evidence_package(self, incident_id: int, dest: Path, *, actor: str) -> dict[str, Any]:
        """Write the incident's evidence package to ``dest`` (audited ``evidence.package``); its manifest."""
        html = self.record_html(incident_id)
        missions = self._missions(incident_id)
        files = [
            evidence_package.PackageFile("record.html", "text/html", data=html.encode()),
            evidence_package.PackageFile("record.pdf", "application/pdf", data=html_to_pdf(html)),
        ]
        folders = {"recording": "recordings", "subtitles": "telemetry", "snapshot": "snapshots"}
        for e in self._evidence(incident_id, missions):
            folder = folders.get(e.kind, e.kind)
            files.append(
                evidence_package.PackageFile(
                    f"{folder}/{e.id}-{Path(e.path).name}", e.media_type, source=Path(e.path), evidence_id=e.id,
                    stored_sha256=e.sha256,
                )
            )  # fmt: skip
        audit = [
            {"id": a.id, "at": as_utc(a.at).isoformat(), "actor": a.actor, "action": a.action,
             "target_type": a.target_type, "target_id": a.target_id, "detail": a.detail}
            for a in self.audit_entries(incident_id)
        ]  # fmt: skip
        manifest = evidence_package.write_package(dest, files, incident_id=incident_id, audit=audit)
        self._store.audit(
            actor, "evidence.package", "incident", incident_id,
            files=len(manifest["files"]), unavailable=len(manifest["unavailable"]),
            manifest_sha256={f["path"]: f["sha256"] for f in manifest["files"]},
        )  # fmt: skip
        return manifest


def _t(at: Any) -> Any:
    return as_utc(at)


def timeline(
    inc: Incident, reports: Sequence[IncidentReport], missions: Sequence[Mission], audit: Sequence[AuditEntry]
) -> list[record.TimelineEntry]:
    """The incident's story: reports, the audit log's entries, and the rows' milestones that the
    audit log does not hold (pure: from the rows given)."""
    E = record.TimelineEntry
    out: list[record.TimelineEntry] = []
    for r in reports:
        away = "" if r.distance_m is None else f", {r.distance_m:.0f} m from the incident"
        cam = f", camera {r.camera_id}" if r.camera_id else ""
        out.append(
            E(
                _t(r.received_at),
                "report",
                f"Report #{r.id} from {r.source}{cam}{away}",
                detail=f"observed {as_utc(r.observed_at):%H:%M:%S} UTC; {r.description}".rstrip("; "),
            )
        )
    seen: set[tuple[str, int]] = set()  # (milestone, mission id) found in the audit log
    closed = False
    drone_of = {m.id: m.drone_id for m in missions}
    for a in audit:
        d, at, who = a.detail or {}, _t(a.at), a.actor
        mid = int(a.target_id) if a.target_type == "mission" and a.target_id.isdigit() else None
        drone = drone_of.get(mid, "?") if mid is not None else None
        if a.action == "incident.create":
            out.append(E(at, "decision", f"Incident opened from a {d.get('source', '?')} report", who))
        elif a.action == "incident.merge":
            out.append(E(at, "decision", f"{d.get('source', '?')} report merged", who, str(d.get("reason", ""))))
        elif a.action == "incident.duplicate":
            out.append(E(at, "decision", "Same report received again (ignored)", who, str(d.get("reason", ""))))
        elif a.action == "incident.split":
            out.append(E(at, "decision", f"Report #{d.get('report_id')} split into incident "
                                         f"#{d.get('new_incident_id')}", who))  # fmt: skip
        elif a.action == "incident.close":
            closed = True
            out.append(E(at, "close", f"Closed: {d.get('outcome') or inc.outcome or '—'}", who))
        elif a.action == "mission.dispatch" and mid is not None:
            seen.add(("dispatch", mid))
            eta = d.get("eta_s")
            why = f"recommended: {d.get('reason', '—')}"
            if isinstance(eta, int | float):
                why += f"; ETA {eta:.0f} s"
            out.append(E(at, "dispatch", f"Drone {d.get('drone_id', drone)} dispatched by {who} "
                                         f"(mission #{mid}, {d.get('template', '?')})", who, why))  # fmt: skip
        elif a.action == "mission.launch" and mid is not None:
            seen.add(("airborne", mid))
            out.append(E(at, "airborne", f"Drone {drone} airborne (mission #{mid})", who))
        elif a.action == "mission.state" and mid is not None:
            new, reason = d.get("new"), d.get("reason")
            kind = "on_scene" if new == "on_scene" else "ended" if new in TERMINAL_STATES else "state"
            if kind != "state":
                seen.add((kind, mid))
            text = f"Drone {drone} on scene (mission #{mid})" if kind == "on_scene" else (
                f"Mission #{mid} {d.get('old')} → {new}")  # fmt: skip
            out.append(E(at, "alert" if new in ("failed", "aborted") else kind, text, who, str(reason or "")))
        elif a.action == "mission.handover":
            out.append(E(at, "handover", f"Drone {d.get('from_drone_id', drone)} handed the scene over to drone "
                                         f"{d.get('to_drone_id', '?')} (mission #{d.get('from_mission_id', mid)} → "
                                         f"#{d.get('to_mission_id', '?')})", who,
                         f"{d.get('overlap_s', '?')} s together on scene"))  # fmt: skip
        elif a.action == "mission.supervise":
            out.append(E(at, "handover", f"Node {d.get('node', '?')} took over mission #{mid}", who,
                         f"state {d.get('state', '?')}"))  # fmt: skip
        elif a.action == "mission.preempt":
            out.append(E(at, "command", f"Mission #{mid} pre-empted for incident #{d.get('for_incident')}", who))
        elif a.action.startswith("mission.command."):
            cmd = a.action.removeprefix("mission.command.")
            where = f" to {d['lat']:.5f}, {d['lon']:.5f}" if "lat" in d and "lon" in d else ""
            out.append(E(at, "command", f"Pilot command {cmd}{where} (mission #{mid}, drone {drone})", who))
        elif a.action == "alert.raised":
            level = str(d.get("level", "warning"))
            out.append(E(at, "alert", f"Alert ({level}): {d.get('message', d.get('code', '?'))}", who,
                         str(d.get("code", ""))))  # fmt: skip
        elif a.action == "evidence.package":
            out.append(E(at, "audit", f"Evidence package downloaded ({d.get('files', '?')} files)", who))
        elif a.action.startswith("evidence."):
            sha = d.get("sha256")
            whose = f"mission #{mid}" if mid is not None else "reporting camera"
            out.append(E(at, "evidence", f"{a.action.removeprefix('evidence.')} kept ({whose})", who,
                         f"SHA-256 {sha}" if sha else ""))  # fmt: skip
        else:
            out.append(E(at, "audit", a.action, who))
    for m in missions:  # milestones written without an audit entry
        assert m.id is not None
        if ("dispatch", m.id) not in seen:
            out.append(E(_t(m.created_at), "dispatch", f"Drone {m.drone_id} dispatched by {m.created_by} "
                                                       f"(mission #{m.id}, {m.template})", m.created_by))  # fmt: skip
        if m.launched_at and ("airborne", m.id) not in seen:
            out.append(E(_t(m.launched_at), "airborne", f"Drone {m.drone_id} airborne (mission #{m.id})"))
        if m.on_scene_at and ("on_scene", m.id) not in seen:
            out.append(E(_t(m.on_scene_at), "on_scene", f"Drone {m.drone_id} on scene (mission #{m.id})"))
        if m.ended_at and ("ended", m.id) not in seen:
            out.append(E(_t(m.ended_at), "ended", f"Mission #{m.id} {m.state}", detail=m.reason or ""))
    if inc.closed_at and not closed:
        out.append(E(_t(inc.closed_at), "close", f"Closed: {inc.outcome or '—'}"))
    return record.ordered(out)
