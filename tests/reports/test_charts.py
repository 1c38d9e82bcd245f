"""The monthly report's SVG charts: well-formed, scaled to round axis tops, escaped, gaps kept as gaps."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from dronedispatch.reports.charts import bar_chart, line_chart, nice_ceiling

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (1, 1), (7, 10), (12, 20), (21, 25), (26, 50), (0.3, 0.5), (100, 100), (101, 200)]
)
def test_axis_tops_are_round_numbers_at_or_above_the_largest_value(value: float, top: float) -> None:
    assert nice_ceiling(value) == pytest.approx(top)


def test_bars_scale_to_the_axis_top_and_keep_their_order() -> None:
    svg = bar_chart(["A", "B", "C"], {"p50": [10.0, 20.0, None], "p90": [40.0, 5.0, 12.5]}, title="t", height=228)
    root = ET.fromstring(svg)
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    # one bar per present value: C's p50 is missing and draws nothing (not a zero)
    titles = [r.find(f"{SVG}title").text for r in bars]  # type: ignore[union-attr]
    assert titles == ["p50 · A: 10", "p90 · A: 40", "p50 · B: 20", "p90 · B: 5", "p90 · C: 12.5"]
    # plot height = 228 - 28 - 40 = 160; axis top 50 (nice ceiling of 40): 40 → 128 px, 10 → 32 px
    heights = {t: float(r.get("height", "0")) for t, r in zip(titles, bars, strict=True)}
    assert heights["p90 · A: 40"] == pytest.approx(128.0, abs=0.1)
    assert heights["p50 · A: 10"] == pytest.approx(32.0, abs=0.1)
    # every bar stands on the baseline (y + height = 28 + 160)
    assert all(float(r.get("y", "0")) + float(r.get("height", "0")) == pytest.approx(188.0, abs=0.11) for r in bars)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "50" in texts and "0" in texts and "25" in texts  # gridline labels at 0, ½ and the top
    assert texts.count("A") == 1 and texts.count("C") == 1


def test_lines_break_at_missing_values_and_text_is_escaped() -> None:
    svg = line_chart(["1", "2", "3", "4", "5"], {"<b>&x": [1.0, 2.0, None, 4.0, 3.0]}, title='"q" <i>')
    root = ET.fromstring(svg)  # would fail on an unescaped < or &
    lines = list(root.iter(f"{SVG}polyline"))
    assert len(lines) == 2  # 1-2 and 4-5: no segment drawn across the gap
    assert [len(line.get("points", "").split()) for line in lines] == [2, 2]
    assert len(list(root.iter(f"{SVG}circle"))) == 4
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert '"q" <i>' in texts and "<b>&x" in texts
    assert "<i>" not in svg and "&lt;i&gt;" in svg


def test_many_labels_are_thinned_and_empty_data_still_draws_an_axis() -> None:
    labels = [f"{h:02d}" for h in range(24)]
    svg = line_chart(labels, {"n": [float(h) for h in range(24)]})
    shown = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
    assert shown == ["00", "02", "04", "06", "08", "10", "12", "14", "16", "18", "20", "22"]
    empty = ET.fromstring(bar_chart(["x"], {"n": [None]}))
    assert [r for r in empty.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None] == []
    assert len(list(empty.iter(f"{SVG}line"))) == 5  # the gridlines are there, topped at 1


def test_mismatched_or_negative_data_is_refused() -> None:
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        bar_chart(["a", "b", "c"], {"s": [1.0, 2.0]})
    with pytest.raises(ValueError, match="negative"):
        line_chart(["a"], {"s": [-1.0]})
    with pytest.raises(ValueError, match="at least one series"):
        bar_chart(["a"], {})
