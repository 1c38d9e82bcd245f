"""SITL scenarios: replay a day at the operations centre against the simulator and get a verdict.

``run_scenario_cli(file, report_dir)`` is what ``dronedispatch scenario run`` calls;
``run_scenario(path)`` runs one in the current event loop and returns a :class:`RunResult`.
"""

from __future__ import annotations

from dronedispatch.scenario.cli import run_scenario, run_scenario_cli
from dronedispatch.scenario.loader import LoadedScenario, ScenarioError, load_scenario
from dronedispatch.scenario.runner import RunResult

__all__ = ["LoadedScenario", "RunResult", "ScenarioError", "load_scenario", "run_scenario", "run_scenario_cli"]
