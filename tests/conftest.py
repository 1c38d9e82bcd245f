from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dronedispatch import cityfiles

pytest_plugins = ["tests.fixtures.services"]


@pytest.fixture(scope="session", autouse=True)
def _cameras_without_live_sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Services started by tests read the city's cameras without their streams and ONVIF devices,
    unless a test gives its own file: the demo file points at fixed loopback ports (8554, 18080+k),
    and a test must never pull from, or take events of, whatever else answers there."""
    if "DD_CAMERAS" in os.environ:
        yield
        return
    data = yaml.safe_load(cityfiles.DEFAULT_CAMERAS.read_text(encoding="utf-8"))
    for entry in data.get("cameras") or []:
        for key in ("stream", "snapshot_url", "onvif"):
            entry.pop(key, None)
    out: Path = tmp_path_factory.mktemp("cameras") / "cameras.yaml"
    out.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    os.environ["DD_CAMERAS"] = str(out)
    try:
        yield
    finally:
        os.environ.pop("DD_CAMERAS", None)
