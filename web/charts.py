"""Today's occupancy against the typical day, as a small inline SVG.

Drawn here rather than by a chart library so that the page stays a few
kilobytes, needs no script and no third party, and so that the colours come
from the stylesheet (classes only: the Content-Security-Policy allows no inline
styles). The lines differ in dash as well as colour, and the page puts a
legend and a table beside the picture, so colour is never the only cue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

# Narrow on purpose: the picture is scaled to the screen, so that its labels stay
# readable on a 360 px phone (and the stylesheet caps its width on a desktop).
WIDTH, HEIGHT = 400, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 14, 14, 30
Series = Sequence[tuple[datetime, float]]


@dataclass(frozen=True)
class ChartText:
    """What the chart says, already translated and formatted."""

    title: str
    description: str
    clock: Callable[[datetime], str]
    number: Callable[[float], str]
    now_label: str


def _ticks(start: datetime, end: datetime) -> list[datetime]:
    """Whole hours, at most about seven labels across."""
    hours = (end - start).total_seconds() / 3600
    step = next((s for s in (1, 2, 3, 4, 6) if hours / s <= 6), 12)
    first = start.replace(minute=0, second=0, microsecond=0)
    if first < start:
        first += timedelta(hours=1)
    while first.hour % step:
        first += timedelta(hours=1)
    ticks = []
    while first < end:  # none at the right edge, where its label would be cut
        ticks.append(first)
        first += timedelta(hours=step)
    return ticks


def _scale_max(values: list[float], capacity: int | None) -> float:
    top = max([*values, float(capacity or 0), 1.0])
    return top * 1.05


def _runs(series: Series, start: datetime, end: datetime, gap: timedelta) -> list[list[tuple]]:
    """The series inside [start, end], split where samples are further apart than gap."""
    runs: list[list[tuple]] = []
    previous: datetime | None = None
    for at, value in series:
        if at < start or at > end:
            continue
        if previous is None or at - previous > gap:
            runs.append([])
        runs[-1].append((at, value))
        previous = at
    return runs


def day_chart(
    *,
    today: Series,
    typical: Series,
    start: datetime,
    end: datetime,
    now: datetime,
    capacity: int | None,
    text: ChartText,
    ident: str = "chart",
) -> Markup:
    """Two lines over [start, end]: today so far (solid) and the typical day (dashed)."""
    span = (end - start).total_seconds() or 1.0
    y_max = _scale_max([v for _, v in [*today, *typical]], capacity)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: datetime) -> float:
        return LEFT + plot_w * (at - start).total_seconds() / span

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / y_max)

    def line(series: Series, css: str) -> list[str]:
        out = []
        for run in _runs(series, start, end, timedelta(minutes=45)):
            points = " ".join(f"{x(at):.1f},{y(v):.1f}" for at, v in run)
            if len(run) == 1:
                at, v = run[0]
                out.append(f'<circle class="{css}-dot" cx="{x(at):.1f}" cy="{y(v):.1f}" r="3"/>')
            else:
                out.append(f'<polyline class="{css}" points="{points}"/>')
        return out

    parts = [
        f'<svg class="day-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" focusable="false">',
        f'<title id="{ident}-title">{escape(text.title)}</title>',
        f'<desc id="{ident}-desc">{escape(text.description)}</desc>',
    ]
    grid = [0.0, capacity / 2, float(capacity)] if capacity else [0.0, y_max / 2.1, y_max / 1.05]
    for value in grid:
        gy = y(value)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}"/>'
        )
        parts.append(
            f'<text class="axis" x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{escape(text.number(value))}</text>"
        )
    for tick in _ticks(start, end):
        tx = x(tick)
        parts.append(
            f'<text class="axis" x="{tx:.1f}" y="{HEIGHT - 9}" text-anchor="middle">'
            f"{escape(text.clock(tick))}</text>"
        )
    parts += line(typical, "typical")
    parts += line(today, "today")
    if start <= now <= end:
        nx = x(now)
        parts.append(
            f'<line class="now-line" x1="{nx:.1f}" x2="{nx:.1f}" '
            f'y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>'
        )
        anchor = "end" if nx > WIDTH - 50 else "start"
        offset = -4 if anchor == "end" else 4
        parts.append(
            f'<text class="axis now-label" x="{nx + offset:.1f}" y="{TOP + 12}" '
            f'text-anchor="{anchor}">{escape(text.now_label)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
