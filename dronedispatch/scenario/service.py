"""Scenario runs started from the web view: shipped scenarios, run in the background, reports kept.

A run is ``dronedispatch scenario run FILE --report DIR`` in a child process, so a heavy scenario
(its own service, simulator and broker) never shares the live service's event loop. Each run has
a directory under ``base_dir`` holding ``run.json`` (state, times, exit code, verdict counts),
``junit.xml``, ``report.html`` and the output. The directory is the record: listing runs reads
the disk, so a restarted service (or another node on shared storage) still lists them.

Only the files in the scenarios directory can be started (by name); a request never names a path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import uuid
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dronedispatch import cityfiles
from dronedispatch.app.errors import Conflict, UnknownObject
from dronedispatch.scenario.loader import ScenarioError, load_scenario

log = logging.getLogger(__name__)

DEFAULT_SCENARIOS_DIR = cityfiles.SITL_DIR / "scenarios"
RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{8}$")
_TASKS: set[asyncio.Task[None]] = set()  # keeps the watcher tasks alive until their runs end
_WATCHING: set[str] = set()  # run ids whose process this service is waiting for


class RunConflict(Conflict):
    """A run is already in progress (runs are heavy: one at a time)."""


@dataclass
class RunInfo:
    id: str
    scenario: str
    state: str  # running | passed | failed | error
    started_at: str
    ended_at: str | None = None
    exit_code: int | None = None
    pid: int | None = None
    tests: int | None = None
    failures: int | None = None
    skipped: int | None = None
    detail: str | None = None

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("pid")
        base = f"/api/v1/scenarios/runs/{self.id}"
        out["report_url"] = f"{base}/report.html" if self.state != "running" else None
        out["junit_url"] = f"{base}/junit.xml" if self.state != "running" else None
        return out


class ScenarioRuns:
    def __init__(self, base_dir: Path, scenarios_dir: Path = DEFAULT_SCENARIOS_DIR) -> None:
        self.base_dir = Path(base_dir)
        self.scenarios_dir = Path(scenarios_dir)

    # -- catalogue -----------------------------------------------------------------------------
    def shipped(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.scenarios_dir.glob("*.yaml")):
            try:
                spec = load_scenario(path).spec
            except ScenarioError as exc:
                out.append({"name": path.stem, "valid": False, "error": str(exc)})
                continue
            out.append(
                {
                    "name": path.stem,
                    "valid": True,
                    "title": spec.name,
                    "description": spec.description,
                    "incidents": len(spec.incidents),
                    "faults": len(spec.faults),
                    "duration_s": spec.duration,
                    "speed_factor": spec.speed_factor,
                    "expectations": len(spec.expect),
                }
            )
        return out

    def _file(self, name: str) -> Path | None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or name.startswith("."):
            return None
        path = self.scenarios_dir / f"{name}.yaml"
        return path if path.is_file() else None

    # -- runs ----------------------------------------------------------------------------------
    def runs(self) -> list[RunInfo]:
        if not self.base_dir.is_dir():
            return []
        found = [self.get(p.name) for p in self.base_dir.iterdir() if RUN_ID.match(p.name)]
        return sorted((r for r in found if r is not None), key=lambda r: r.id, reverse=True)

    def get(self, run_id: str) -> RunInfo | None:
        if not RUN_ID.match(run_id):
            return None
        try:
            data = json.loads((self.base_dir / run_id / "run.json").read_text())
            info = RunInfo(**data)
        except (OSError, ValueError, TypeError):
            return None
        if info.state == "running" and info.id not in _WATCHING and not _alive(info.pid):
            # the service that started it is gone and so is the process: it will never report back
            info.state, info.detail = "error", "the run was interrupted (its process is gone)"
        return info

    def file(self, run_id: str, name: str) -> Path | None:
        if name not in ("report.html", "junit.xml", "output.txt") or self.get(run_id) is None:
            return None
        path = self.base_dir / run_id / name
        return path if path.is_file() else None

    async def start(self, name: str) -> RunInfo:
        """Start shipped scenario ``name``; UnknownObject when there is none, RunConflict when one is running."""
        path = self._file(name)
        if path is None:
            known = ", ".join(s["name"] for s in self.shipped()) or "none"
            raise UnknownObject(f"no scenario {name!r} (shipped: {known})", "unknown_scenario")
        if any(r.state == "running" for r in self.runs()):
            raise RunConflict("a scenario run is already in progress; wait for it to finish", "run_in_progress")
        now = datetime.now(UTC)
        run_id = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        run_dir = self.base_dir / run_id
        run_dir.mkdir(parents=True)
        output = await asyncio.to_thread(open, run_dir / "output.txt", "wb")  # the child writes; the watcher closes
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dronedispatch.cli",
            "scenario",
            "run",
            str(path),
            "--report",
            str(run_dir),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"},
        )
        info = RunInfo(id=run_id, scenario=name, state="running", started_at=now.isoformat(), pid=proc.pid)
        self._save(info)
        _WATCHING.add(run_id)
        task = asyncio.create_task(self._watch(info, proc, output), name=f"scenario-run-{run_id}")
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)
        log.info("scenario %s started as run %s (pid %d)", name, run_id, proc.pid)
        return info

    async def _watch(self, info: RunInfo, proc: asyncio.subprocess.Process, output: Any) -> None:
        try:
            code = await proc.wait()
        finally:
            output.close()
        info.exit_code = code
        info.ended_at = datetime.now(UTC).isoformat()
        info.state = {0: "passed", 1: "failed"}.get(code, "error")
        junit = self.base_dir / info.id / "junit.xml"
        try:
            suite = ET.parse(junit).getroot().find("testsuite")
            if suite is not None:
                info.tests = int(suite.get("tests", "0"))
                info.failures = int(suite.get("failures", "0")) + int(suite.get("errors", "0"))
                info.skipped = int(suite.get("skipped", "0"))
        except (OSError, ET.ParseError, ValueError):
            info.detail = "no JUnit report was written; see output.txt"
        self._save(info)
        _WATCHING.discard(info.id)
        log.info("scenario run %s: %s (exit %d)", info.id, info.state, code)

    def _save(self, info: RunInfo) -> None:
        path = self.base_dir / info.id / "run.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info), indent=1))
        tmp.replace(path)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
