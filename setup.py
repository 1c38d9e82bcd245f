"""Build step: the wheel carries the files the service reads and serves.

``web/``, ``mission_templates/`` and ``sitl/`` live at the top of the checkout (the layout every tool and
test relies on). A wheel has no checkout around it, so this step copies them into the built package as
``dronedispatch/_data/``, where ``dronedispatch.cityfiles`` looks first. Everything else is declared in
``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: Top-level folders shipped inside the package (their names are kept under dronedispatch/_data/).
SHIPPED = ("web", "mission_templates", "sitl")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads them from the checkout itself
            return
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "dronedispatch" / "_data"
        for name in SHIPPED:
            source = root / name
            if not source.is_dir():  # e.g. an sdist made without MANIFEST.in: fail rather than ship a broken wheel
                raise FileNotFoundError(f"{source}: missing, the wheel would have no {name}/")
            shutil.copytree(
                source, target / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )


setup(cmdclass={"build_py": BuildPyWithData})
