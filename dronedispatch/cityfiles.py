"""Load a city's files (fleet, airspace, cameras, districts) from disk, and say where the shipped ones are.

Everything city-specific lives in these files; the code knows no city. Defaults point at the
IFEZ demo files shipped in ``sitl/``.

The shipped files (``web/``, ``mission_templates/``, ``sitl/``) sit at the top of a source checkout,
beside the package. A wheel carries them inside the package, in ``dronedispatch/_data/`` (copied there
by the build step in ``setup.py``), so an installed service finds them without the checkout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dronedispatch.domain.fleet import FleetConfig

#: Name of the folder, inside the package, that holds the shipped files in an installed wheel.
DATA_PACKAGE_DIR = "_data"


def find_data_root(package_dir: Path) -> Path:
    """The folder holding ``web/``, ``mission_templates/`` and ``sitl/`` for the package at ``package_dir``:
    its ``_data/`` when installed from a wheel, else the source checkout around it. A checkout never has
    ``_data/`` (the build step writes it into the build tree only), so the two cannot be confused."""
    installed = package_dir / DATA_PACKAGE_DIR
    return installed if installed.is_dir() else package_dir.parent


#: Root of the shipped files: the checkout's top level, or ``dronedispatch/_data`` in an installed wheel.
#: Scripts that run from a checkout (PX4 SIH, scenarios) also use it as their working directory.
PROJECT_ROOT = find_data_root(Path(__file__).resolve().parent)
WEB_DIR = PROJECT_ROOT / "web"
TEMPLATES_DIR = PROJECT_ROOT / "mission_templates"
SITL_DIR = PROJECT_ROOT / "sitl"
DEFAULT_FLEET = SITL_DIR / "fleet-ifez.yaml"
DEFAULT_AIRSPACE = SITL_DIR / "airspace-ifez.geojson"
DEFAULT_CAMERAS = SITL_DIR / "cameras-ifez.yaml"
DEFAULT_DISTRICTS = SITL_DIR / "ifez-districts.geojson"


class CityFileError(ValueError):
    """A city file is missing or malformed; the message names the file and the problem."""


def read_structured(path: Path) -> Any:
    """Read YAML or JSON, turning any failure into a :class:`CityFileError` naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CityFileError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        if str(path).endswith((".json", ".geojson")):
            return json.loads(text)
        return yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise CityFileError(f"{path}: not valid {'JSON' if str(path).endswith('json') else 'YAML'}: {exc}") from exc


def load_fleet(path: Path | str = DEFAULT_FLEET) -> FleetConfig:
    data = read_structured(Path(path))
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as exc:
        raise CityFileError(f"{path}: {exc}") from exc
