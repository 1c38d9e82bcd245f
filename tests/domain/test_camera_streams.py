"""Cameras file: stream and snapshot URLs, and their credentials kept out of everything shown."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from dronedispatch.domain.assets import AssetFileError, AssetRegistry, Camera, load_assets, redact_credentials

BASE = {"id": "c", "name_ko": "카메라", "name_en": "Camera", "lat": 37.39, "lon": 126.64}


def test_credentials_are_redacted_in_every_dump_but_kept_for_use() -> None:
    cam = Camera(**BASE, stream="rtsp://admin:p%40ss@10.0.0.1:554/ch1", snapshot_url="http://u:pw@127.0.0.1/s.jpg")
    assert cam.stream == "rtsp://admin:p%40ss@10.0.0.1:554/ch1"  # what the relay connects with
    assert cam.model_dump()["stream"] == "rtsp://***@10.0.0.1:554/ch1"
    assert cam.model_dump(mode="json")["snapshot_url"] == "http://***@127.0.0.1/s.jpg"
    geo = AssetRegistry(city="x", cameras=[cam]).as_geojson()
    assert "admin" not in str(geo) and "pw@" not in str(geo)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("rtsp://u:p@h:554/x failed", "rtsp://***@h:554/x failed"),
        ("rtsp://u:p@ss@h/x", "rtsp://***@h/x"),  # an unescaped @ in the password
        ("open rtsp://h/x and HTTP://a:b@c", "open rtsp://h/x and HTTP://***@c"),
        ("no url here: user@example.org", "no url here: user@example.org"),
    ],
)
def test_redact_credentials_in_text(text: str, shown: str) -> None:
    assert redact_credentials(text) == shown


def test_a_stream_must_be_rtsp_and_a_snapshot_http_and_the_file_error_hides_credentials(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump({"city": "x", "cameras": [{**BASE, "stream": "http://admin:hunter2@h/x"}]}))
    with pytest.raises(AssetFileError) as err:
        load_assets(path)
    assert "cameras.0.stream" in str(err.value) and "hunter2" not in str(err.value)
    with pytest.raises(ValidationError):
        Camera(**BASE, snapshot_url="rtsp://h/x")
