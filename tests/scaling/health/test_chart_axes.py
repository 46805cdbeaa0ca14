"""The health charts' axes read at every range (issue 21): whole-number ticks for counts, time marks
chosen for the span — hours over a day, days over a week, Mondays over a month or a quarter — in the
account's zone, never close enough to overprint at the page's width."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from scaling.health.charts import LEFT, RIGHT, WIDTH, count_ticks, pool_health_charts
from tests import factories

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
# A label is up to 6 characters of 11 px system-ui ("Mon 16", "16 Nov"): about 36 px; keep 40.
MIN_GAP = 40


@pytest.mark.parametrize(
    "peak, tick, top",
    [
        (0, 1, 1),
        (1, 1, 1),
        (3, 1, 3),
        (4, 1, 4),
        (5, 2, 6),
        (9, 5, 10),
        (10, 5, 10),
        (47, 20, 60),
        (999, 500, 1000),
    ],
)
def test_count_axes_step_by_whole_numbers(peak, tick, top):
    assert count_ticks(peak) == (tick, top)


def marks(svg: str, panel_bottom_only: bool = True) -> list[tuple[float, str]]:
    """The time axis labels of the first panel: (x, text)."""
    first_panel = svg.split("Overflow presentations per hour")[0]
    found = re.findall(r'<text x="([\d.]+)" y="([\d.]+)" fill="#4a5360">([^<]+)</text>', first_panel)
    ys = {y for _, y, _ in found}
    axis_y = max(ys, key=float)  # the labels under the panel
    return [(float(x), text) for x, y, text in found if y == axis_y]


def rule_values(svg: str) -> list[str]:
    return re.findall(r'text-anchor="end" fill="#4a5360">([^<]+)</text>', svg)


@pytest.fixture
def pool():
    pool = factories.RingPoolFactory(
        name="Axes pool", account=factories.AccountFactory(timezone="America/Los_Angeles")
    )
    for _ in range(3):
        factories.PromoNumberFactory(pool=pool, acquired_at=NOW - timedelta(days=120))
    return pool


@pytest.mark.parametrize(
    "days, expected",
    [
        (1, ["09:00", "12:00", "15:00", "18:00", "21:00", "Fri 20", "03:00", "06:00"]),
        (7, ["Sat 14", "Sun 15", "Mon 16", "Tue 17", "Wed 18", "Thu 19", "Fri 20"]),
        (30, ["26 Oct", "02 Nov", "09 Nov", "16 Nov"]),
        (90, None),
    ],
)
def test_time_marks_fit_the_span_in_the_accounts_zone_without_overprinting(pool, days, expected):
    svg = pool_health_charts(pool=pool, now=NOW, days=days)
    found = marks(svg)
    labels = [text for _, text in found]
    if expected is not None:
        assert labels == expected
    else:  # a quarter: each Monday, day and month
        assert len(labels) == 13 and all(re.fullmatch(r"\d\d [A-Z][a-z]{2}", label) for label in labels)
    assert "Times in America/Los_Angeles." in svg
    xs = [x for x, _ in found]
    assert all(LEFT <= x <= WIDTH - RIGHT for x in xs)
    assert min(b - a for a, b in pairwise(xs)) >= MIN_GAP


@pytest.mark.parametrize("days", [1, 7, 30, 90])
def test_count_ticks_are_whole_numbers_at_every_range(pool, days):
    values = rule_values(pool_health_charts(pool=pool, now=NOW, days=days))
    assert values and all(re.fullmatch(r"\d+", value) for value in values)
    assert "3" in values  # the pool size panel's axis reaches its three numbers
