"""``dronedispatch scenario run FILE [--report DIR] [--px4 PATH]``: progress bar, verdicts, exit code."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from dronedispatch.scenario.expectations import FAIL, SKIP
from dronedispatch.scenario.loader import ScenarioError, load_scenario
from dronedispatch.scenario.px4 import px4_available
from dronedispatch.scenario.runner import ProgressFn, RunResult, ScenarioRun

EXIT_PASS, EXIT_FAIL, EXIT_BAD_FILE = 0, 1, 2


async def run_scenario(
    path: Path | str, *, report_dir: Path | None = None, progress: ProgressFn | None = None, px4: Path | None = None
) -> RunResult:
    """Load and run one scenario; write the reports when ``report_dir`` is given. ScenarioError on a bad file."""
    loaded = load_scenario(path)
    result = await ScenarioRun(loaded, progress=progress, px4=px4).run()
    if report_dir is not None:
        from dronedispatch.scenario.report import write_reports

        await asyncio.to_thread(write_reports, result, Path(report_dir))
    return result


def print_verdicts(result: RunResult, console: Console) -> None:
    spec = result.scenario.spec
    console.print(
        f"[bold]{spec.name}[/bold]: {len(result.recording.arrivals)} incidents, "
        f"{len(result.recording.missions)} missions, {result.recording.ended_at:.0f} s simulated "
        f"in {result.wall_s:.0f} s"
    )
    if result.error:
        console.print(f"[red]ERROR[/red] the run did not complete: {result.error}")
    for v in result.verdicts:
        mark = {FAIL: "[red]FAIL[/red]", SKIP: "[yellow]SKIP[/yellow]"}.get(v.outcome, "[green]PASS[/green]")
        console.print(f"  {mark} {v.name}: {v.detail}", highlight=False, soft_wrap=True)
    for note in result.notes:
        console.print(f"  [dim]note: {note}[/dim]", highlight=False, soft_wrap=True)
    verdict = "[green]PASSED[/green]" if result.passed else "[red]FAILED[/red]"
    console.print(f"{spec.name}: {verdict}")


def run_scenario_cli(file: Path, report_dir: Path | None = None, px4: Path | None = None) -> int:
    console = Console(stderr=False)
    if logging.getLogger().level > logging.DEBUG:  # the progress bar and the report tell the story (-v: logs)
        for name in ("dronedispatch", "httpx"):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        loaded = load_scenario(file)
    except ScenarioError as exc:
        print(f"dronedispatch: scenario file error:\n{exc}", file=sys.stderr)
        return EXIT_BAD_FILE
    if px4 is not None:
        ok, why = px4_available(px4)
        if not ok:
            print(f"dronedispatch: --px4: {why}", file=sys.stderr)
            return EXIT_BAD_FILE
    with Progress(
        TextColumn("[bold]{task.fields[name]}"),
        BarColumn(),
        TextColumn("{task.completed:>5.0f}/{task.total:.0f} s"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=loaded.spec.duration, name=loaded.spec.name)

        def progress(t: float, duration: float, what: str) -> None:
            bar.update(task, completed=t, total=duration, description=what)

        result = asyncio.run(run_scenario(file, report_dir=report_dir, progress=progress, px4=px4))
    print_verdicts(result, console)
    if report_dir is not None:
        console.print(f"reports: {report_dir / 'report.html'}, {report_dir / 'junit.xml'}")
    return EXIT_PASS if result.passed else EXIT_FAIL
