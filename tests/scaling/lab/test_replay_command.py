"""`manage.py replay_traffic TRACE` as the docs show it: figures for people, a JSON last line, the
account's own settings, and clear errors for bad input."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from scaling.choices import ScalingPolicy
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def trace(tmp_path):
    """Two days of a busy afternoon each day: 3 requests a second from 13:00 to 17:00 UTC."""
    seconds = []
    for _day in range(2):
        seconds += [0] * (13 * 3600) + [3] * (4 * 3600) + [0] * (7 * 3600)
    path = tmp_path / "workload.txt"
    path.write_text(" ".join(map(str, seconds)))
    return path


def replay(*args: str) -> tuple[str, dict]:
    out = StringIO()
    call_command("replay_traffic", *args, stdout=out, stderr=StringIO())
    printed = out.getvalue()
    return printed, json.loads(printed.strip().splitlines()[-1]) if "--json" in args else {}


def test_it_prints_the_figures_and_ends_with_one_json_line(trace):
    printed, figures = replay(str(trace), "--json", "--seed", "3")
    assert {"overflow_pct", "number_months", "number_days", "added", "removed"} <= set(figures)
    assert (
        "Overflow: " in printed
        and "number-months" in printed
        and "Numbers added and removed per month" in printed
    )
    assert figures["visitors"] == figures["presentations"] + figures["overflows"] > 0
    assert figures["added"] > 0  # five numbers do not hold a busy afternoon's visitors
    assert figures["days"] == 2.0
    _, same = replay(str(trace), "--json", "--seed", "3")
    assert same["overflow_pct"] == figures["overflow_pct"]  # the same seed, the same replay


def test_the_adaptive_policy_and_an_accounts_own_settings(trace):
    _, seed = replay(str(trace), "--json")
    _, adaptive = replay(str(trace), "--json", "--policy", "adaptive")
    assert adaptive["policy"] == "adaptive" and adaptive["overflows"] < seed["overflows"]
    account = factories.AccountFactory(slug="acme-roofing", name="Acme Roofing")
    factories.AutoScalingSettingsFactory(
        account=account, policy=ScalingPolicy.ADAPTIVE, growth_interval_minutes=5
    )
    _, figures = replay(str(trace), "--json", "--policy", "acme-roofing")
    assert (
        figures["policy"].startswith("Acme Roofing (adaptive")
        and figures["overflows"] == adaptive["overflows"]
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--policy", "nobody"], "not seed, adaptive, or the slug of an account"),
        (["--repeat", "0"], "--repeat must be at least 1"),
        (["--start", "July"], "is not an ISO-8601 moment"),
        (["--max-size", "2"], "--max-size must be at least --start-size"),
        (["--timezone", "Mars/Olympus"], "is not a time zone"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(trace, args, words):
    with pytest.raises(CommandError, match=words):
        replay(str(trace), *args)


def test_a_missing_or_unreadable_trace_says_so(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        replay(str(tmp_path / "missing.txt"))
    (tmp_path / "html.txt").write_text("<html>not a trace</html>")
    with pytest.raises(CommandError, match="not whitespace-separated request counts"):
        replay(str(tmp_path / "html.txt"))
