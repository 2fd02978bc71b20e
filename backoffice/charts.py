"""Server-drawn SVG charts for the back office (no script, no CDN: works offline).

Each function returns markup that is safe to put in a template: every piece of
text is escaped here.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colours that stay distinguishable for the common colour-vision deficiencies.
SERIES_COLOURS = {
    "on hand": "#1f77b4",
    "reserved": "#ff7f0e",
    "available": "#2ca02c",
    "damaged": "#d62728",
    "quality control": "#9467bd",
}
LINE_STYLES = {
    "on hand": 'stroke-width="4"',
    "available": 'stroke-width="2" stroke-dasharray="6 4"',
    "damaged": 'stroke-width="2" stroke-dasharray="2 3"',
    "quality control": 'stroke-width="2" stroke-dasharray="10 3 2 3"',
}
BAR_COLOUR = "#417690"  # the admin's own blue


@dataclass(frozen=True)
class StepSeries:
    """A quantity that changes in steps: (time, value after that time) points."""

    label: str
    points: Sequence[tuple[datetime.datetime, int]]


def _nice_max(value: int) -> int:
    """A round number at or above `value` for the top of an axis."""
    if value <= 5:
        return 5
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * magnitude)
        if top >= value:
            return top
    return value  # pragma: no cover


def step_chart(
    series: Sequence[StepSeries],
    *,
    start: datetime.datetime,
    end: datetime.datetime,
    title: str,
    width: int = 720,
    height: int = 220,
) -> SafeString:
    """A step-line chart of several series over [start, end], with axes and a legend."""
    left, right, top, bottom = 56, 130, 28, 32
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for _, v in s.points] or [0]
    low = min(0, min(values))
    high = _nice_max(max(values)) if max(values) > 0 else 5
    span_t = max((end - start).total_seconds(), 1.0)

    def x(t: datetime.datetime) -> float:
        return left + plot_w * min(max((t - start).total_seconds() / span_t, 0.0), 1.0)

    def y(v: int) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="stock-chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    # Horizontal grid and y labels: low, 0 (if different), middle, top.
    ticks = sorted({low, 0, (low + high) // 2, high})
    for tick in ticks:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="{"#999" if tick == 0 else "#e5e5e5"}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{tick}</text>'
        )
    parts.append(
        f'<text x="{left}" y="{height - 10}" font-size="11">{start:%Y-%m-%d %H:%M}</text>'
        f'<text x="{left + plot_w}" y="{height - 10}" font-size="11" '
        f'text-anchor="end">{end:%Y-%m-%d %H:%M}</text>'
    )
    for index, s in enumerate(series):
        colour = SERIES_COLOURS.get(s.label, "#555")
        coords: list[str] = []
        previous = None
        for t, v in s.points:
            if previous is not None:
                coords.append(f"{x(t):.1f},{y(previous):.1f}")
            coords.append(f"{x(t):.1f},{y(v):.1f}")
            previous = v
        if s.points:
            coords.append(f"{x(end):.1f},{y(previous):.1f}")
        # On hand is drawn wide and available dashed on top, so both stay visible
        # when nothing is reserved and the two lines coincide.
        style = LINE_STYLES.get(s.label, 'stroke-width="2"')
        parts.append(
            f'<polyline data-series="{escape(s.label)}" fill="none" stroke="{colour}" '
            f'{style} points="{" ".join(coords)}"/>'
        )
        legend_y = top + 14 + index * 18
        last = s.points[-1][1] if s.points else 0
        parts.append(
            f'<rect x="{left + plot_w + 12}" y="{legend_y - 9}" width="12" height="4" '
            f'fill="{colour}"/><text x="{left + plot_w + 30}" y="{legend_y - 3}" '
            f'font-size="12">{escape(s.label)}: {last}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text above is escaped


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    note: str = ""


def bar_chart(bars: Sequence[Bar], *, title: str, width: int = 560) -> SafeString:
    """Horizontal bars with a label on the left and the value (and note) on the right."""
    row_h, left, right, top = 26, 90, 170, 28
    height = top + row_h * len(bars) + 8
    plot_w = width - left - right
    high = max([b.value for b in bars] + [1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bar-chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for index, bar in enumerate(bars):
        y = top + index * row_h
        length = plot_w * bar.value / high
        parts.append(
            f'<text x="{left - 8}" y="{y + 16}" font-size="12" text-anchor="end">'
            f"{escape(bar.label)}</text>"
            f'<rect data-label="{escape(bar.label)}" data-value="{bar.value}" x="{left}" '
            f'y="{y + 4}" width="{length:.1f}" height="{row_h - 8}" fill="{BAR_COLOUR}"/>'
            f'<text x="{left + length + 6:.1f}" y="{y + 16}" font-size="12">'
            f"{bar.value}{escape(' ' + bar.note if bar.note else '')}</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text above is escaped
