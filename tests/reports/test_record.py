"""The incident record and the evidence package, from a real scenario run.

One short scenario (a park fire: a camera alarm, a 119 report merged 130 m away, dispatch, a pilot's
pause and resume, on scene, home, closed) runs once for the module, in a directory kept after the
run so its database and recordings can be read. The record is then rendered from that database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from dronedispatch import cityfiles
from dronedispatch.app.records import RecordService
from dronedispatch.domain.assets import load_assets
from dronedispatch.reports.evidence_package import verify_package
from dronedispatch.scenario import runner
from dronedispatch.scenario.cli import run_scenario
from dronedispatch.store.db import make_engine
from dronedispatch.store.models import Evidence, TelemetrySample
from dronedispatch.store.repo import Store, as_utc
from dronedispatch.store.telemetry import TelemetryStore

SCENARIO = Path(__file__).parent / "data" / "record-park-fire.yaml"


@dataclass
class Run:
    store: Store
    records: RecordService
    incident_id: int
    snapshot_sha: str
    dir: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    keep = tmp_path_factory.mktemp("scenario")
    # the runner deletes its directory after the run; this one stays, with the database and recordings
    keeping = SimpleNamespace(
        TemporaryDirectory=lambda prefix="": contextlib.nullcontext(str(keep)), mkdtemp=tempfile.mkdtemp
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "tempfile", keeping)
        result = asyncio.run(run_scenario(SCENARIO))
    assert result.passed, [result.error, *(f"{v.name}: {v.detail}" for v in result.verdicts)]
    engine = make_engine(f"sqlite:///{keep / 'dronedispatch.db'}")
    store = Store(engine)
    (incident,) = store.list_incidents()
    assert incident.id is not None and incident.status == "closed"
    (mission,) = store.list_missions(incident_id=incident.id)
    assert mission.id is not None
    telemetry = TelemetryStore(engine)
    if len(telemetry.track(mission.id)) < 2:  # the flown track: dock -> scene, should the recorder keep none
        t0 = as_utc(mission.launched_at or mission.created_at)
        telemetry.add_samples([
            TelemetrySample(mission_id=mission.id, drone_id=mission.drone_id, at=t0 + timedelta(seconds=i),
                            lat=37.3912 + i * 0.0001, lon=126.6405 - i * 0.0002, alt_m=40.0)
            for i in range(10)
        ])  # fmt: skip
    # an on-scene snapshot as the video path keeps it (the simulated camera may give none at this speed)
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 80, 40)).save(jpeg, "JPEG")
    snap = keep / "recordings" / f"mission-{mission.id}-snapshot.jpg"
    snap.parent.mkdir(exist_ok=True)
    snap.write_bytes(jpeg.getvalue())
    sha = hashlib.sha256(jpeg.getvalue()).hexdigest()
    store.add_evidence(Evidence(mission_id=mission.id, incident_id=incident.id, kind="snapshot", path=str(snap),
                                media_type="image/jpeg", sha256=sha, size_bytes=len(jpeg.getvalue())))  # fmt: skip
    records = RecordService(
        store, telemetry, cameras=load_assets(result.scenario.cameras_path), districts=result.districts,
        airspace=result.airspace.as_geojson(),
    )  # fmt: skip
    yield Run(store, records, incident.id, sha, keep)
    engine.dispose()


def _words(text: str) -> str:
    return " ".join(text.split())


def _in_order(text: str, *parts: str) -> list[int]:
    at = [text.find(p) for p in parts]
    assert all(i >= 0 for i in at), [p for p, i in zip(parts, at, strict=True) if i < 0]
    assert at == sorted(at), list(zip(parts, at, strict=True))
    return at


def test_record_page_tells_the_whole_story(run: Run) -> None:
    html = run.records.record_html(run.incident_id)
    reports = run.store.incident_reports(run.incident_id)
    assert [r.source for r in reports] == ["webhook", "cap"]
    assert reports[0].distance_m == 0.0 and 100 < (reports[1].distance_m or 0) < 160  # the 119 call, ~130 m away
    assert "송도 센트럴파크 Songdo Central Park (cctv-songdo-centralpark)" in html  # the camera that raised it
    assert "송도 Songdo (songdo)" in html  # its district, by name
    assert f"{reports[1].distance_m:.0f} m" in html
    text = _words(html)
    _in_order(
        text,
        "Report #1 from webhook",
        "dispatched by scenario-operator",
        "airborne (mission #1)",
        "on scene (mission #1)",
        "Closed: closed by the scenario",
    )
    # the pilot's pause and resume come between take-off and close (a quick flight may be on scene first)
    _in_order(text, "airborne (mission #1)", "Pilot command pause", "Pilot command resume", "Closed: closed by")
    assert "Report #2 from cap" in text and "recommended: " in text  # the recommendation's reason
    assert "<polyline" in html and 'class="district"' in html and 'class="zone"' in html  # the map, inline
    assert "data:image/jpeg;base64," in html  # the snapshot, inline
    for e in run.store.list_evidence(incident_id=run.incident_id):
        assert e.sha256 in html
    assert run.snapshot_sha in html


def test_record_pdf_has_the_story_in_order(run: Run, tmp_path: Path) -> None:
    pdf = run.records.record_pdf(run.incident_id)
    assert pdf.startswith(b"%PDF")
    (tmp_path / "record.pdf").write_bytes(pdf)
    out = subprocess.run(["pdftotext", str(tmp_path / "record.pdf"), "-"], capture_output=True, text=True, check=True)
    text = _words(out.stdout)
    assert "사건 기록 Incident record #1" in text  # Korean glyphs rendered (Noto CJK), not boxes
    _in_order(
        text,
        "Report #1 from webhook",
        "dispatched by scenario-operator",
        "on scene (mission #1)",
        "Closed: closed by the scenario",
    )
    assert "Report #2 from cap" in text


def _rewrite(src: Path, dest: Path, change: dict[str, bytes | None], add: dict[str, bytes] | None = None) -> None:
    """A copy of zip ``src`` with members replaced (bytes) or left out (None), and members added."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            if info.filename in change:
                data = change[info.filename]
                if data is not None:
                    zout.writestr(info.filename, data)
            else:
                zout.writestr(info, zin.read(info.filename))
        for name, data in (add or {}).items():
            zout.writestr(name, data)


def _verify_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dronedispatch.cli", "evidence", "verify", str(path)],
        capture_output=True, text=True, timeout=120, cwd=cityfiles.PROJECT_ROOT,
    )  # fmt: skip


def test_evidence_package_verifies_and_names_a_changed_file(run: Run, tmp_path: Path) -> None:
    package = tmp_path / "package.zip"
    manifest = run.records.write_evidence_package(run.incident_id, package, actor="tester")
    with zipfile.ZipFile(package) as zf:
        names = set(zf.namelist())
        listed = {f["path"]: f for f in json.loads(zf.read("manifest.json"))["files"]}
        audit = json.loads(zf.read("audit.json"))
        snapshot = next(n for n in names if n.startswith("snapshots/"))
        original = zf.read(snapshot)
    assert {"record.html", "record.pdf", "audit.json", "manifest.json"} <= names
    assert any(n.startswith("recordings/") for n in names) and any(n.startswith("telemetry/") for n in names)
    assert set(listed) == names - {"manifest.json"} and manifest["files"]
    evidence = run.store.list_evidence(incident_id=run.incident_id)
    assert {f.get("stored_sha256") for f in listed.values()} >= {e.sha256 for e in evidence}
    assert listed[snapshot]["sha256"] == run.snapshot_sha == hashlib.sha256(original).hexdigest()
    assert {"incident.create", "incident.merge", "mission.dispatch", "mission.launch", "incident.close"} <= {
        a["action"] for a in audit
    }
    last = run.store.audit_log(target_type="incident", target_id=str(run.incident_id), limit=1)[0]
    assert last.action == "evidence.package" and last.actor == "tester"

    assert verify_package(package) == []
    ok = _verify_cli(package)
    assert ok.returncode == 0 and "every hash holds" in ok.stdout, ok.stdout + ok.stderr

    tampered = tmp_path / "tampered.zip"
    _rewrite(package, tampered, {snapshot: bytes([original[0] ^ 0x01]) + original[1:]})  # one byte changed
    bad = _verify_cli(tampered)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    changed = [line for line in bad.stdout.splitlines() if line.startswith("CHANGED")]
    assert len(changed) == 1 and snapshot in changed[0] and "SHA-256" in changed[0]

    # a file taken out, or one slipped in, is named as well
    partial = tmp_path / "partial.zip"
    _rewrite(package, partial, {"audit.json": None}, add={"extra/note.txt": b"not evidence"})
    assert sorted(str(p) for p in verify_package(partial)) == [
        "audit.json: missing from the package",
        "extra/note.txt: not in the manifest",
    ]
