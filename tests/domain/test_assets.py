from pathlib import Path

import pytest

from dronedispatch.cityfiles import DEFAULT_CAMERAS
from dronedispatch.domain.assets import AssetFileError, AssetKind, AssetRegistry, load_assets
from dronedispatch.domain.geo import bearing_deg, distance_m


def test_demo_registry_has_a_dozen_cameras_in_the_three_districts() -> None:
    reg = load_assets(DEFAULT_CAMERAS)
    cams = [c for c in reg.cameras if c.is_camera]
    assert len(cams) >= 12
    assert {c.district for c in cams} == {"songdo", "cheongna", "yeongjong"}
    park = reg.get("cctv-songdo-centralpark")
    assert park is not None and distance_m(park.lat, park.lon, 37.3926, 126.6378) < 50
    assert all(c.heading_deg is not None for c in cams), "cameras carry a view direction"
    assert "cctv-songdo-centralpark" in reg and "nope" not in reg
    sensors = [c for c in reg.cameras if not c.is_camera]
    assert AssetKind.WATER_LEVEL in {s.kind for s in sensors}


def test_view_point_lies_along_the_view_direction() -> None:
    park = load_assets(DEFAULT_CAMERAS).get("cctv-songdo-centralpark")
    assert park is not None and park.heading_deg is not None
    vp = park.view_point(1.0)
    assert bearing_deg(park.lat, park.lon, *vp) == pytest.approx(park.heading_deg, abs=1e-6)
    assert distance_m(park.lat, park.lon, *vp) == pytest.approx(park.range_m)


def test_geojson_for_the_map() -> None:
    gj = load_assets(DEFAULT_CAMERAS).as_geojson()
    f = gj["features"][0]
    assert f["geometry"]["type"] == "Point" and "heading_deg" in f["properties"] and "lat" not in f["properties"]


def test_bad_files_are_named(tmp_path: Path) -> None:
    p = tmp_path / "cams.yaml"
    p.write_text("city: x\ncameras:\n  - {id: a, name_ko: a, name_en: a, lat: 95, lon: 126}\n")
    with pytest.raises(AssetFileError, match=r"cams.yaml.*lat"):
        load_assets(p)
    p.write_text("city: x\ncameras:\n  - {id: a, name_ko: a, name_en: a, lat: 37, lon: 126}\n"
                 "  - {id: a, name_ko: b, name_en: b, lat: 37, lon: 126}\n")
    with pytest.raises(AssetFileError, match="appears twice"):
        load_assets(p)
    with pytest.raises(AssetFileError, match="cannot read"):
        load_assets(tmp_path / "missing.yaml")
    assert AssetRegistry(city="x").get("a") is None
