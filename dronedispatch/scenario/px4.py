"""``--px4 PATH``: run a scenario against real PX4 SIH instances (sitl/px4_sih.sh) instead of the simulator.

PATH is a PX4 SITL build directory (``PX4-Autopilot/build/px4_sitl_default``). The launcher starts
one ``px4 -i <i>`` per drone with PX4's fixed port layout, so the service listens on the GCS port
14550 (PX4 instances send there; this cannot be moved without editing PX4's start-up scripts).

What differs from the simulator, and is written into the run's notes:
- PX4 has one home for all instances (PX4_HOME_LAT/LON/ALT), so every drone starts at the
  scenario's first dock;
- faults cannot be injected into PX4 from outside (no hooks), so they are not applied;
- scenario time is wall-clock time × the speed factor (PX4_SIM_SPEED_FACTOR).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dronedispatch import cityfiles
from dronedispatch.domain.fleet import FleetConfig
from dronedispatch.scenario.model import Scenario

PX4_GCS_PORT = 14550
LAUNCHER = cityfiles.SITL_DIR / "px4_sih.sh"
STOP_TIMEOUT_S = 20.0


class Px4Unavailable(RuntimeError):
    """No usable PX4 build (the launcher's exit status 2) or no launcher."""


def px4_available(build_dir: Path | str | None) -> tuple[bool, str]:
    """Whether ``build_dir`` holds a PX4 SITL build, and if not, why (for skips and errors)."""
    if not build_dir:
        return False, "PX4_BUILD_DIR is not set (point it at PX4-Autopilot/build/px4_sitl_default)"
    path = Path(build_dir)
    if not (path / "bin" / "px4").is_file() or not (path / "etc").is_dir():
        return False, f"no PX4 SITL build at {path} (needs bin/px4 and etc/; run 'make px4_sitl' in PX4-Autopilot)"
    if not LAUNCHER.is_file():
        return False, f"the launcher {LAUNCHER} is missing"
    return True, ""


class Px4Fleet:
    """The scenario's drones as PX4 SIH processes, started and stopped through sitl/px4_sih.sh."""

    sim_time: Callable[[], float] | None = None  # scenario time: the wall clock × speed factor

    def __init__(self, build_dir: Path, fleet: FleetConfig, spec: Scenario, gcs_port: int, tmp: Path) -> None:
        ok, why = px4_available(build_dir)
        if not ok:
            raise Px4Unavailable(why)
        self.build_dir = Path(build_dir)
        self.spec = spec
        self.tmp = tmp
        self.gcs_port = PX4_GCS_PORT
        home = fleet.docks[0]
        # PX4 knows one home for every instance: the service must see every drone at that dock
        self.fleet = FleetConfig(
            city=fleet.city,
            docks=[home],
            drones=[d.model_copy(update={"dock": home.id, "sysid": i + 1}) for i, d in enumerate(fleet.drones)],
        )
        self.notes = [f"PX4 SIH: every drone starts at {home.name_en} (PX4 has one home for all instances)"]
        if spec.faults:
            self.notes.append(f"PX4 SIH: {len(spec.faults)} fault(s) not applied (PX4 offers no injection hooks)")
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        home = self.fleet.docks[0]
        log = open(self.tmp / "px4_sih.log", "wb")  # noqa: ASYNC230 - a local file, opened once
        self._proc = await asyncio.create_subprocess_exec(
            "bash",
            str(LAUNCHER),
            "-n",
            str(len(self.fleet.drones)),
            "--home",
            f"{home.lat},{home.lon},{home.alt}",
            "--speed-factor",
            f"{self.spec.speed_factor:g}",
            "--logdir",
            str(self.tmp / "px4"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env={**_environ(), "PX4_BUILD_DIR": str(self.build_dir)},
            cwd=cityfiles.PROJECT_ROOT,
        )
        log.close()
        with contextlib.suppress(TimeoutError):
            code = await asyncio.wait_for(self._proc.wait(), 2.0)
            text = (self.tmp / "px4_sih.log").read_text(errors="replace")[-2000:]
            raise Px4Unavailable(f"the PX4 launcher exited at once with status {code}: {text}")

    async def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)  # the launcher's trap stops exactly the PX4 processes it started
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def vehicles(self, drone: str) -> list[Any]:
        return []


def _environ() -> dict[str, str]:
    return dict(os.environ)
