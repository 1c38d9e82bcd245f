"""Load a city's files (fleet, airspace, cameras, districts) from disk.

Everything city-specific lives in these files; the code knows no city. Defaults point at the
IFEZ demo files shipped in ``sitl/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dronedispatch.domain.fleet import FleetConfig

#: Root of the source tree (the demo's city files live in ``sitl/`` beside the package).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
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
