"""Pool health drawn on the server as SVG: no script, no chart library, nothing from the internet.

`pool_health_charts` is shared by the customer's pool health page and the pool's admin page. It
computes the geometry here, each figure as a string; templates/scaling/health/charts.html lays out the
markup, autoescaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from ringpools.models import RingPool
from scaling.health.series import HealthSeries, pool_health_series

WIDTH, LEFT, RIGHT, PANEL, GAP, TOP = 760, 46, 12, 120, 34, 8
COLORS = {
    "size": "#2f5fb3",
    "in_use": "#27a17a",
    "overflows": "#d9622b",
    "calls": "#7a5cc2",
    "growth": "#1a7f37",
    "prune": "#c0392b",
    "grid": "#e3e6ea",
    "text": "#4a5360",
}


TEMPLATE = "scaling/health/charts.html"
LEGEND = (
    ("size", "pool size"),
    ("in_use", "numbers in use"),
    ("overflows", "overflow presentations"),
    ("calls", "calls"),
    ("growth", "growth (number added)"),
    ("prune", "prune (number removed)"),
)


@dataclass(frozen=True)
class _Rule:
    """A horizontal grid line of a panel and its value on the axis."""

    y: str
    label_y: str
    value: str


@dataclass(frozen=True)
class _Day:
    """A vertical grid line at local midnight and the day it starts."""

    x: str
    label_x: str
    label: str


@dataclass(frozen=True)
class _Bar:
    x: str
    y: str
    width: str
    height: str
    title: str


@dataclass(frozen=True)
class _Layer:
    key: str
    color: str
    bars: list[_Bar]
    points: str | None  # a line's points; None for bars


@dataclass(frozen=True)
class _Panel:
    title: str
    title_y: str
    top: str
    bottom: str
    label_y: str
    rules: list[_Rule]
    days: list[_Day]
    layers: list[_Layer]


@dataclass(frozen=True)
class _Event:
    """Growth or prune during an hour: a dashed line across the panels and its count."""

    key: str
    color: str
    x: str
    title: str
    label: str


def pool_health_charts(*, pool: RingPool, now: datetime, days: int = 7) -> SafeString:
    """Pool size and numbers in use, overflow presentations and calls per hour over the last `days`
    days, with growth and prune events marked, and a one-line verdict: too small, too big or right."""
    series = pool_health_series(pool=pool, now=now, days=days)
    tz = ZoneInfo(str(pool.account.timezone))
    panels = [
        (
            "Numbers: pool size and numbers in use",
            [("size", series.size, "line"), ("in_use", series.in_use, "bars")],
        ),
        ("Overflow presentations per hour", [("overflows", series.overflows, "bars")]),
        ("Calls per hour", [("calls", series.calls, "bars")]),
    ]
    height = TOP + len(panels) * (PANEL + GAP) + 18
    step = (WIDTH - LEFT - RIGHT) / max(len(series.hours), 1)
    events_top, events_bottom = TOP + 16, TOP + len(panels) * (PANEL + GAP) - GAP + 16
    context = {
        "pool_pk": pool.pk,
        "pool_name": pool.name,
        "days": days,
        "verdict": verdict(series),
        "figures": [
            ("Numbers now", series.current_size),
            ("Most in use at once (per hour)", series.peak_in_use),
            ("Overflow presentations", series.total_overflows),
            ("Calls", series.total_calls),
            ("Numbers added by growth", sum(series.growth)),
            ("Numbers removed by pruning", sum(series.prune)),
        ],
        "width": WIDTH,
        "height": height,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "axis_x": LEFT - 6,
        "colors": COLORS,
        "panels": [
            _panel(title, layers, series, TOP + number * (PANEL + GAP) + 16, step, tz)
            for number, (title, layers) in enumerate(panels)
        ],
        "events": _events(series, step, tz),
        "events_top": f"{events_top:.1f}",
        "events_bottom": f"{events_bottom:.1f}",
        "events_label_y": f"{events_top - 2:.1f}",
        "legend": [(COLORS[key], label) for key, label in LEGEND],
        "zone": tz.key,
    }
    return render_to_string(TEMPLATE, context)


def verdict(series: HealthSeries) -> str:
    """In words, whether the pool looks too small, too big or right over the window."""
    if series.total_overflows:
        return (
            f"Too small at times: {series.total_overflows} visitors were shown the overflow instead of a "
            "promo number."
        )
    if series.current_size and series.peak_in_use * 2 <= series.current_size:
        return (
            f"Possibly too big: at most {series.peak_in_use} of {series.current_size} numbers were in use "
            "in any hour."
        )
    if not series.current_size:
        return "The pool has no numbers."
    return (
        f"Size looks right: up to {series.peak_in_use} of {series.current_size} numbers in use, no overflow."
    )


def _panel(
    title: str,
    layers: list[tuple[str, list[int], str]],
    series: HealthSeries,
    top: float,
    step: float,
    tz: ZoneInfo,
) -> _Panel:
    peak = max([1, *(max(values, default=0) for _, values, _ in layers)])
    tick, top_value = count_ticks(peak)
    scale = PANEL / top_value
    bottom = top + PANEL
    rules = [
        _Rule(y=f"{y:.1f}", label_y=f"{y + 4:.1f}", value=str(value))
        for value in range(0, top_value + 1, tick)
        for y in [bottom - value * scale]
    ]
    days = [
        _Day(x=f"{LEFT + i * step:.1f}", label_x=f"{LEFT + i * step + 3:.1f}", label=label)
        for i, label in time_ticks(series.hours, tz)
    ]
    drawn = []
    for key, values, kind in layers:
        if kind == "bars":
            bars = [
                _Bar(
                    x=f"{LEFT + i * step:.1f}",
                    y=f"{bottom - v * scale:.1f}",
                    width=f"{max(step - 0.6, 0.6):.1f}",
                    height=f"{v * scale:.1f}",
                    title=f"{series.hours[i].astimezone(tz):%a %d %H:00 %Z}: {v}",
                )
                for i, v in enumerate(values)
                if v
            ]
            drawn.append(_Layer(key=key, color=COLORS[key], bars=bars, points=None))
        else:
            points = []
            for i, v in enumerate(values):
                y = bottom - v * scale
                points += [f"{LEFT + i * step:.1f},{y:.1f}", f"{LEFT + (i + 1) * step:.1f},{y:.1f}"]
            drawn.append(_Layer(key=key, color=COLORS[key], bars=[], points=" ".join(points)))
    return _Panel(
        title=title,
        title_y=f"{top - 5:.1f}",
        top=f"{top:.1f}",
        bottom=f"{bottom:.1f}",
        label_y=f"{bottom + 13:.1f}",
        rules=rules,
        days=days,
        layers=drawn,
    )


def count_ticks(peak: int, most: int = 4) -> tuple[int, int]:
    """The axis of a count whose largest value is `peak`: a whole step (1, 2 or 5 times a power of
    ten) giving at most `most` intervals, and the axis top, a multiple of it (no 4.5 numbers)."""
    magnitude = 1
    while True:
        for base in (1, 2, 5):
            tick = base * magnitude
            if -(-max(peak, 1) // tick) <= most:
                return tick, tick * -(-max(peak, 1) // tick)
        magnitude *= 10


def time_ticks(hours: list[datetime], tz: ZoneInfo) -> list[tuple[int, str]]:
    """Where the time axis is marked, by the span shown: every 3 hours over a day or two (the day's
    name at midnight), each midnight over a week, each Monday over a month or a quarter. Returns the
    positions (hour index) and their labels, in the reader's zone."""
    span_days = len(hours) / 24
    marks = []
    for i, hour in enumerate(hours):
        local = hour.astimezone(tz)
        if span_days <= 2:
            if local.hour % 3 == 0:
                marks.append((i, f"{local:%a %d}" if local.hour == 0 else f"{local:%H:00}"))
        elif local.hour == 0 and (span_days <= 10 or local.weekday() == 0):
            marks.append((i, f"{local:%a %d}" if span_days <= 10 else f"{local:%d %b}"))
    return marks


def _events(series: HealthSeries, step: float, tz: ZoneInfo) -> list[_Event]:
    out = []
    for i, hour in enumerate(series.hours):
        for key, count, sign in (("growth", series.growth[i], "+"), ("prune", series.prune[i], "\u2212")):
            if not count:
                continue
            label = "added by growth" if key == "growth" else "removed by the month-end prune"
            out.append(
                _Event(
                    key=key,
                    color=COLORS[key],
                    x=f"{LEFT + (i + 0.5) * step:.1f}",
                    title=f"{hour.astimezone(tz):%a %d %b %H:00 %Z}: {count} "
                    f"number{'s' if count > 1 else ''} {label}",
                    label=f"{sign}{count}",
                )
            )
    return out
