"""Small charts as inline SVG strings, for documents rendered without a browser (the monthly report PDF).

Pure functions of their data: the same numbers give the same SVG, every text is escaped, and a missing value
(``None``) leaves a gap rather than a zero that would read as a measurement.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

#: Series colours, told apart in print and by readers with red-green colour blindness.
PALETTE = ("#1f5fbf", "#e08a00", "#2a9d8f", "#b8336a", "#6b5fa8", "#7a7a7a")
FONT = "Noto Sans CJK KR, Noto Sans KR, sans-serif"
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 48.0, 12.0, 28.0, 40.0

Series = Mapping[str, Sequence[float | None]]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above ``value`` (axis tops that read as round numbers)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10 * power  # pragma: no cover - the loop ends at 10 × power, which is always enough


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.1f}"


def _check(labels: Sequence[str], series: Series) -> float:
    if not series:
        raise ValueError("a chart needs at least one series")
    for name, values in series.items():
        if len(values) != len(labels):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(labels)} labels")
    present = [v for values in series.values() for v in values if v is not None]
    if any(v < 0 for v in present):
        raise ValueError("charts here start at zero: negative values are not drawn")
    return nice_ceiling(max(present, default=0.0))


def _frame(width: float, height: float, title: str, top: float, unit: str, series: Series) -> list[str]:
    plot_h = height - _PAD_TOP - _PAD_BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}" font-size="10" class="chart">',
        f'<text x="{_PAD_LEFT:.0f}" y="14" font-size="12" font-weight="bold" fill="#222">{escape(title)}</text>',
    ]
    for i in range(5):  # four bands: gridlines at 0, ¼, ½, ¾ and the top
        value = top * i / 4
        y = _PAD_TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{_PAD_LEFT:.1f}" y1="{y:.1f}" x2="{width - _PAD_RIGHT:.1f}" y2="{y:.1f}" '
            f'stroke="{"#888" if i == 0 else "#ddd"}" stroke-width="{1 if i == 0 else 0.5}"/>'
        )
        parts.append(
            f'<text x="{_PAD_LEFT - 4:.1f}" y="{y + 3:.1f}" text-anchor="end" fill="#555">{escape(_fmt(value))}</text>'
        )
    if unit:
        parts.append(f'<text x="4" y="{_PAD_TOP - 6:.1f}" fill="#555">{escape(unit)}</text>')
    # legend, top right, one entry per series
    x = width - _PAD_RIGHT
    for i, name in reversed(list(enumerate(series))):
        label = escape(name)
        x -= 6 * len(name) + 22
        parts.append(f'<rect x="{x:.1f}" y="6" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{x + 13:.1f}" y="15" fill="#333">{label}</text>')
    return parts


def _x_labels(labels: Sequence[str], centres: Sequence[float], baseline: float) -> list[str]:
    # at most ~16 labels fit under a page-wide chart; thin the rest evenly, keeping the first
    every = max(1, math.ceil(len(labels) / 16))
    return [
        f'<text x="{cx:.1f}" y="{baseline + 14:.1f}" text-anchor="middle" fill="#555">{escape(label)}</text>'
        for i, (label, cx) in enumerate(zip(labels, centres, strict=True))
        if i % every == 0
    ]


@dataclass(frozen=True, slots=True)
class _Plot:
    """The area inside the axes (it starts at _PAD_LEFT, _PAD_TOP): its size, and the value drawn at its top."""

    top: float
    width: float
    height: float

    @property
    def baseline(self) -> float:
        return _PAD_TOP + self.height

    def rise(self, value: float) -> float:
        """How far above the baseline ``value`` stands."""
        return self.height * value / self.top


def _chart(
    labels: Sequence[str],
    series: Series,
    title: str,
    unit: str,
    width: float,
    height: float,
    draw: Callable[[_Plot], tuple[list[str], list[float]]],
) -> str:
    """A chart's frame (title, value axis, legend) around the marks ``draw`` returns with the x of each label."""
    top = _check(labels, series)
    plot = _Plot(top, width - _PAD_LEFT - _PAD_RIGHT, height - _PAD_TOP - _PAD_BOTTOM)
    parts = _frame(width, height, title, top, unit, series)
    marks, centres = draw(plot)
    parts += marks
    parts += _x_labels(labels, centres, plot.baseline)
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    labels: Sequence[str],
    series: Series,
    *,
    title: str = "",
    unit: str = "",
    width: float = 640,
    height: float = 220,
) -> str:
    """Grouped vertical bars: one group per label, one bar per series, in the series' order."""

    def draw(plot: _Plot) -> tuple[list[str], list[float]]:
        parts: list[str] = []
        group_w = plot.width / max(1, len(labels))
        bar_w = group_w * 0.8 / len(series)
        centres = []
        for gi, label in enumerate(labels):
            gx = _PAD_LEFT + gi * group_w + group_w * 0.1
            centres.append(_PAD_LEFT + (gi + 0.5) * group_w)
            for si, (name, values) in enumerate(series.items()):
                v = values[gi]
                if v is None:
                    continue
                h = plot.rise(v)
                parts.append(
                    f'<rect x="{gx + si * bar_w:.1f}" y="{plot.baseline - h:.1f}" width="{max(bar_w - 1, 0.5):.1f}" '
                    f'height="{h:.1f}" fill="{PALETTE[si % len(PALETTE)]}">'
                    f"<title>{escape(f'{name} · {label}: {_fmt(v)}')}</title></rect>"
                )
        return parts, centres

    return _chart(labels, series, title, unit, width, height, draw)


def line_chart(
    labels: Sequence[str],
    series: Series,
    *,
    title: str = "",
    unit: str = "",
    width: float = 640,
    height: float = 220,
) -> str:
    """Lines over evenly spaced labels, with a dot on every value; ``None`` breaks a line into pieces."""

    def draw(plot: _Plot) -> tuple[list[str], list[float]]:
        parts: list[str] = []
        n = len(labels)
        step = plot.width / max(1, n - 1) if n > 1 else 0.0
        centres = [_PAD_LEFT + (i * step if n > 1 else plot.width / 2) for i in range(n)]
        for si, values in enumerate(series.values()):
            colour = PALETTE[si % len(PALETTE)]
            run: list[str] = []
            runs: list[list[str]] = [run]
            for i, v in enumerate(values):
                if v is None:
                    run = []
                    runs.append(run)
                    continue
                y = plot.baseline - plot.rise(v)
                run.append(f"{centres[i]:.1f},{y:.1f}")
                parts.append(f'<circle cx="{centres[i]:.1f}" cy="{y:.1f}" r="2" fill="{colour}"/>')
            for pts in runs:
                if len(pts) > 1:
                    points = " ".join(pts)
                    parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        return parts, centres

    return _chart(labels, series, title, unit, width, height, draw)
