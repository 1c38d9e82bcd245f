"""The evidence package of an incident: one zip with its record, its files and their hashes, and
the check of such a package.

``manifest.json`` lists every other file of the zip with its size and SHA-256 (taken while it
was written), and for evidence files also the SHA-256 the store took when the file was closed.
:func:`verify_package` recomputes every hash: a file changed, missing from the zip or added to it
is named. A file that already differed from its stored hash when it was packaged is named too.

Files are copied into the zip in chunks, so a package of large recordings never sits in memory.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
CHUNK = 1 << 20
FORMAT = "dronedispatch-evidence-package/1"

#: Already compressed media gain nothing from deflate.
_STORED_TYPES = ("video/", "image/", "application/pdf")


@dataclass(frozen=True)
class PackageFile:
    """One file to put into the package: from disk (``source``) or from memory (``data``)."""

    path: str  # its name inside the zip
    media_type: str
    source: Path | None = None
    data: bytes | None = None
    evidence_id: int | None = None
    stored_sha256: str | None = None  # the hash the store took when the evidence file was closed


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _compression(media_type: str) -> int:
    return zipfile.ZIP_STORED if media_type.startswith(_STORED_TYPES) else zipfile.ZIP_DEFLATED


def write_package(
    dest: Path, files: Sequence[PackageFile], *, incident_id: int, audit: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Write the zip to ``dest``: ``files``, ``audit.json`` and the manifest (written last, with
    every hash). Evidence files missing on disk are listed in the manifest as ``unavailable``.
    Returns the manifest."""
    entries: list[dict[str, Any]] = []
    unavailable: list[dict[str, Any]] = []
    audit_file = PackageFile(
        "audit.json",
        "application/json",
        data=json.dumps(list(audit), ensure_ascii=False, indent=1, default=str).encode(),
    )
    with zipfile.ZipFile(dest, "w", allowZip64=True) as zf:
        for f in [*files, audit_file]:
            if f.path == MANIFEST or any(e["path"] == f.path for e in entries):
                raise ValueError(f"{f.path}: a second file of that name in the package")
            if f.data is None and (f.source is None or not f.source.is_file()):
                unavailable.append({"path": f.path, "evidence_id": f.evidence_id, "stored_sha256": f.stored_sha256})
                continue
            digest, size = hashlib.sha256(), 0
            info = zipfile.ZipInfo(f.path, date_time=datetime.now(UTC).timetuple()[:6])
            info.compress_type = _compression(f.media_type)
            with zf.open(info, "w", force_zip64=True) as out:
                if f.data is not None:
                    digest.update(f.data)
                    out.write(f.data)
                    size = len(f.data)
                else:
                    assert f.source is not None
                    with f.source.open("rb") as src:
                        while chunk := src.read(CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
            entry: dict[str, Any] = {"path": f.path, "size": size, "sha256": digest.hexdigest(),
                                     "media_type": f.media_type}  # fmt: skip
            if f.evidence_id is not None:
                entry["evidence_id"] = f.evidence_id
                entry["stored_sha256"] = f.stored_sha256
            entries.append(entry)
        manifest = {
            "format": FORMAT,
            "incident_id": incident_id,
            "created_at": datetime.now(UTC).isoformat(),
            "files": entries,
            "unavailable": unavailable,
        }
        zf.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1), zipfile.ZIP_DEFLATED)
    return manifest


def _member_hash(zf: zipfile.ZipFile, name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with zf.open(name) as src:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def verify_package(path: Path) -> list[Problem]:
    """Every file whose hash does not hold, is missing, or is not in the manifest (empty: all hold)."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        return [Problem(str(path), f"not a readable zip: {exc}")]
    problems: list[Problem] = []
    with zf:
        names = set(zf.namelist())
        if MANIFEST not in names:
            return [Problem(MANIFEST, "missing: not an evidence package")]
        try:
            manifest = json.loads(zf.read(MANIFEST))
            listed = {e["path"]: e for e in manifest["files"]}
        except (ValueError, KeyError, TypeError) as exc:
            return [Problem(MANIFEST, f"unreadable: {exc}")]
        for name, entry in listed.items():
            if name not in names:
                problems.append(Problem(name, "missing from the package"))
                continue
            try:
                sha, size = _member_hash(zf, name)
            except (zipfile.BadZipFile, OSError) as exc:  # a damaged member fails its CRC
                problems.append(Problem(name, f"changed: unreadable ({exc})"))
                continue
            if sha != entry.get("sha256"):
                problems.append(Problem(name, f"changed: SHA-256 {sha}, manifest says {entry.get('sha256')}"))
            elif size != entry.get("size"):
                problems.append(Problem(name, f"changed: {size} bytes, manifest says {entry.get('size')}"))
            stored = entry.get("stored_sha256")
            if stored and stored != entry.get("sha256"):
                problems.append(Problem(name, f"changed before packaging: stored SHA-256 {stored}"))
        for name in sorted(names - set(listed) - {MANIFEST}):
            if not name.endswith("/"):
                problems.append(Problem(name, "not in the manifest"))
    return problems
