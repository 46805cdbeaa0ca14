"""Pool health over time on the pool's admin page.

Placeholder kept deliberately simple: the settings issue (8) draws the SVG charts with this same
signature, and the lead replaces this module with it at merge. Until then: the last days' hourly figures,
summed over the hand-out's shard rows, as a small table (hours without any activity left out).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Sum
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.display import local_time_text
from ringpools.figures import hour_of
from ringpools.models import PoolHourlyFigures, RingPool


def pool_health_charts(*, pool: RingPool, now: datetime, days: int = 7) -> SafeString:
    hours = (
        PoolHourlyFigures.objects.filter(pool=pool, hour__gte=hour_of(now - timedelta(days=days)))
        .values("hour")
        .annotate(p=Sum("presentations"), o=Sum("overflows"), c=Sum("calls"))
        .order_by("-hour")
    )
    rows = [(local_time_text(h["hour"], pool.account.timezone), h["p"], h["o"], h["c"]) for h in hours]
    if not rows:
        return format_html(
            '<p class="health-charts">No presentations, overflows or calls in {} days.</p>', days
        )
    return format_html(
        '<div class="health-charts" style="max-height:18em;overflow-y:auto">'
        "<table><caption>Hourly figures, last {} days (newest first)</caption>"
        "<thead><tr><th>hour</th><th>presentations</th><th>overflows</th><th>calls</th></tr></thead>"
        "<tbody>{}</tbody></table></div>",
        days,
        format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
    )
