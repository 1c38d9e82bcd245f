"""SITL scenarios: replay a day at the operations centre against the simulator and get a verdict.

``dronedispatch.scenario.cli.run_scenario_cli(file, report_dir)`` is what ``dronedispatch scenario
run`` calls; ``run_scenario(path)`` there runs one in the current event loop and returns a
:class:`~dronedispatch.scenario.runner.RunResult`. The package itself exports only the loader, so
that the API (which lists and starts scenarios) can import it without the runner, which builds a
whole service.
"""

from __future__ import annotations

from dronedispatch.scenario.loader import LoadedScenario, ScenarioError, load_scenario

__all__ = ["LoadedScenario", "ScenarioError", "load_scenario"]
