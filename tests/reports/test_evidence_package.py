"""The evidence package's manifest and its check, on small files (no service needed)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from dronedispatch.reports.evidence_package import PackageFile, verify_package, write_package
from dronedispatch.reports.svg_map import MapPoint, Track, render_map


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_manifest_hashes_every_file_and_lists_the_unavailable(tmp_path: Path) -> None:
    video = tmp_path / "mission-1.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4096)  # over one copy chunk
    files = [
        PackageFile("record.html", "text/html", data=b"<html>record</html>"),
        PackageFile(
            "recordings/1-mission-1.mp4",
            "video/mp4",
            source=video,
            evidence_id=1,
            stored_sha256=_sha(video.read_bytes()),
        ),
        PackageFile(
            "snapshots/2-gone.jpg", "image/jpeg", source=tmp_path / "gone.jpg", evidence_id=2, stored_sha256="ab" * 32
        ),
    ]
    package = tmp_path / "p.zip"
    manifest = write_package(package, files, incident_id=7, audit=[{"action": "incident.create"}])
    by_path = {f["path"]: f for f in manifest["files"]}
    assert set(by_path) == {"record.html", "recordings/1-mission-1.mp4", "audit.json"}
    assert by_path["recordings/1-mission-1.mp4"]["sha256"] == _sha(video.read_bytes())
    assert by_path["recordings/1-mission-1.mp4"]["size"] == video.stat().st_size
    assert manifest["unavailable"] == [{"path": "snapshots/2-gone.jpg", "evidence_id": 2, "stored_sha256": "ab" * 32}]
    with zipfile.ZipFile(package) as zf:
        assert json.loads(zf.read("manifest.json")) == manifest
        assert zf.getinfo("recordings/1-mission-1.mp4").compress_type == zipfile.ZIP_STORED  # media kept as is
        assert zf.getinfo("record.html").compress_type == zipfile.ZIP_DEFLATED
    assert verify_package(package) == []


def test_a_file_changed_before_packaging_is_named(tmp_path: Path) -> None:
    vtt = tmp_path / "mission-1.vtt"
    vtt.write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nalt 40 m\n")
    stored = _sha(b"WEBVTT\n")  # the hash taken when the file was kept: the file changed since
    package = tmp_path / "p.zip"
    write_package(
        package,
        [PackageFile("telemetry/1-mission-1.vtt", "text/vtt", source=vtt, evidence_id=1, stored_sha256=stored)],
        incident_id=1,
        audit=[],
    )
    (problem,) = verify_package(package)
    assert problem.path == "telemetry/1-mission-1.vtt" and "changed before packaging" in problem.reason


def test_not_a_package(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    assert "not a readable zip" in str(verify_package(junk)[0])
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("a.txt", "a")
    assert [str(p) for p in verify_package(plain)] == ["manifest.json: missing: not an evidence package"]


def test_map_fits_the_tracks_and_escapes_labels() -> None:
    square = {
        "type": "Polygon",
        "coordinates": [[[126.60, 37.35], [126.70, 37.35], [126.70, 37.45], [126.60, 37.45], [126.60, 37.35]]],
    }
    districts = {"features": [{"type": "Feature", "properties": {"name_en": "A<B"}, "geometry": square}]}
    track = Track("dd-01 (#1)", [(37.3912, 126.6405), (37.3926, 126.6378)])
    svg = render_map(
        districts=districts,
        airspace=None,
        tracks=[track],
        points=[MapPoint("<#1>", 37.3926, 126.6378)],
        width=400,
        height=300,
    )
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "A&lt;B" in svg and "&lt;#1&gt;" in svg and "<#1>" not in svg
    # both track ends lie inside the picture
    pts = svg.split('<polyline points="')[1].split('"')[0].split()
    for xy in pts:
        x, y = (float(v) for v in xy.split(","))
        assert 0 < x < 400 and 0 < y < 300
