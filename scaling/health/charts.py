"""Pool health drawn on the server as SVG: no script, no chart library, nothing from the internet.

`pool_health_charts` is shared by the customer's pool health page and the pool's admin page.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

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
    plot_width = WIDTH - LEFT - RIGHT
    step = plot_width / max(len(series.hours), 1)
    parts = [
        f'<svg class="pool-health-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="health-title-{pool.pk} health-desc-{pool.pk}" '
        'font-family="system-ui, sans-serif" font-size="11">',
        f'<title id="health-title-{pool.pk}">Health of {escape(pool.name)} over the last {days} days</title>',
        f'<desc id="health-desc-{pool.pk}">{escape(verdict(series))}</desc>',
    ]
    for number, (title, layers) in enumerate(panels):
        top = TOP + number * (PANEL + GAP) + 16
        parts.append(_panel(title, layers, series, top, step, tz))
    parts.append(_events(series, step, TOP + 16, TOP + len(panels) * (PANEL + GAP) - GAP + 16))
    parts.append("</svg>")
    legend = "".join(
        f'<span class="legend-item"><span class="legend-swatch" style="background:{COLORS[key]}"></span>'
        f"{label}</span>"
        for key, label in (
            ("size", "pool size"),
            ("in_use", "numbers in use"),
            ("overflows", "overflow presentations"),
            ("calls", "calls"),
            ("growth", "growth (number added)"),
            ("prune", "prune (number removed)"),
        )
    )
    summary = (
        f'<p class="health-verdict">{escape(verdict(series))}</p>'
        '<dl class="health-figures">'
        f"<div><dt>Numbers now</dt><dd>{series.current_size}</dd></div>"
        f"<div><dt>Most in use at once (per hour)</dt><dd>{series.peak_in_use}</dd></div>"
        f"<div><dt>Overflow presentations</dt><dd>{series.total_overflows}</dd></div>"
        f"<div><dt>Calls</dt><dd>{series.total_calls}</dd></div>"
        f"<div><dt>Numbers added by growth</dt><dd>{sum(series.growth)}</dd></div>"
        f"<div><dt>Numbers removed by pruning</dt><dd>{sum(series.prune)}</dd></div>"
        "</dl>"
    )
    return mark_safe(
        f'<figure class="pool-health" data-pool="{pool.pk}">{summary}{"".join(parts)}'
        f'<figcaption class="health-legend">{legend}</figcaption></figure>'
    )


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
    title: str, layers: list[tuple[str, list[int], str]], series: HealthSeries, top: float, step: float, tz
) -> str:
    peak = max([1, *(max(values, default=0) for _, values, _ in layers)])
    scale = PANEL / peak
    bottom = top + PANEL
    out = [
        f'<text x="{LEFT}" y="{top - 5:.1f}" fill="{COLORS["text"]}" font-weight="600">{escape(title)}</text>'
    ]
    for fraction in (0, 0.5, 1):
        y = bottom - PANEL * fraction
        value = peak * fraction
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{COLORS["grid"]}"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{COLORS["text"]}">'
            f"{value:g}</text>"
        )
    for i, hour in enumerate(series.hours):
        local = hour.astimezone(tz)
        if local.hour == 0:
            x = LEFT + i * step
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{bottom:.1f}" '
                f'stroke="{COLORS["grid"]}"/>'
                f'<text x="{x + 3:.1f}" y="{bottom + 13:.1f}" fill="{COLORS["text"]}">{local:%a %d}</text>'
            )
    for key, values, kind in layers:
        if kind == "bars":
            bars = "".join(
                f'<rect x="{LEFT + i * step:.1f}" y="{bottom - v * scale:.1f}" '
                f'width="{max(step - 0.6, 0.6):.1f}" height="{v * scale:.1f}">'
                f"<title>{series.hours[i].astimezone(tz):%a %d %H:00}: {v}</title></rect>"
                for i, v in enumerate(values)
                if v
            )
            out.append(f'<g class="series-{key}" fill="{COLORS[key]}" fill-opacity="0.75">{bars}</g>')
        else:
            points = []
            for i, v in enumerate(values):
                y = bottom - v * scale
                points += [f"{LEFT + i * step:.1f},{y:.1f}", f"{LEFT + (i + 1) * step:.1f},{y:.1f}"]
            out.append(
                f'<polyline class="series-{key}" fill="none" stroke="{COLORS[key]}" stroke-width="2" '
                f'points="{" ".join(points)}"/>'
            )
    return "".join(out)


def _events(series: HealthSeries, step: float, top: float, bottom: float) -> str:
    out = []
    for i, hour in enumerate(series.hours):
        for key, count, sign in (("growth", series.growth[i], "+"), ("prune", series.prune[i], "\u2212")):
            if not count:
                continue
            x = LEFT + (i + 0.5) * step
            label = "added by growth" if key == "growth" else "removed by the month-end prune"
            out.append(
                f'<g class="event-{key}"><title>{hour:%Y-%m-%d %H:00} UTC: {count} number'
                f"{'s' if count > 1 else ''} {label}</title>"
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{bottom:.1f}" stroke="{COLORS[key]}" '
                'stroke-dasharray="3 2" stroke-width="1.5"/>'
                f'<text x="{x:.1f}" y="{top - 2:.1f}" text-anchor="middle" fill="{COLORS[key]}" '
                f'font-weight="700">{sign}{count}</text></g>'
            )
    return "".join(out)
