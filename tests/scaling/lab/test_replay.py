"""The policy lab's replay (issue 22): the product's own rules on a pool of heaps, its traffic model,
its bill, and its figures on the NASA trace."""

from __future__ import annotations

import bz2
import gzip
import io
import random
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ringpools.order import handout_rank
from scaling.growth.rule import ADAPTIVE_MEMORY, largest_held
from scaling.lab.replay import LabPolicy, _Pool, month_ends, replay
from scaling.lab.traffic import TraceError, TrafficModel, Visitors, trace_read, visitors_draw

ROOT = Path(__file__).resolve().parents[3]
NASA = ROOT / "bench" / "traces" / "nasa-http-1995-per-second.tbz2"
START = datetime(1995, 7, 1, tzinfo=UTC)
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


def visitors(*arrivals: float, hold: float = 34 * MINUTE, seconds: float | None = None, calls=()) -> Visitors:
    """Visitors arriving at these seconds, each holding its number `hold` (the last 30 minutes the
    lease after the visit), calling at the given seconds (NaN: no call)."""
    arrives = np.array(arrivals, dtype=float)
    holds = arrives + hold
    calls_at = np.array(list(calls) + [np.nan] * (len(arrivals) - len(calls)), dtype=float)
    return Visitors(
        arrives, holds - 30 * MINUTE, holds, calls_at, seconds=int(seconds or arrives.max() + DAY)
    )


def test_traces_are_read_plain_compressed_or_archived_and_bad_ones_refused(tmp_path):
    text = b"1 0 2\n3  4\n"
    (tmp_path / "plain.txt").write_bytes(text)
    (tmp_path / "trace.gz").write_bytes(gzip.compress(text))
    (tmp_path / "trace.bz2").write_bytes(bz2.compress(text))
    with tarfile.open(tmp_path / "trace.tbz2", "w:bz2") as archive:
        member = tarfile.TarInfo("workload.txt")
        member.size = len(text)
        archive.addfile(member, io.BytesIO(text))
    for name in ("plain.txt", "trace.gz", "trace.bz2", "trace.tbz2"):
        assert trace_read(tmp_path / name).tolist() == [1, 0, 2, 3, 4]
    (tmp_path / "words.txt").write_text("1 two 3")
    (tmp_path / "negative.txt").write_text("1 -2 3")
    (tmp_path / "empty.txt").write_text("  \n")
    for name, words in (
        ("words.txt", "not whitespace-separated"),
        ("negative.txt", "negative"),
        ("empty.txt", "no request"),
    ):
        with pytest.raises(TraceError, match=words):
            trace_read(tmp_path / name)
    with pytest.raises(TraceError, match="cannot read"):
        trace_read(tmp_path / "missing.txt")


def test_the_traffic_model_draws_one_visitor_per_ten_requests_each_holding_its_visit_and_the_lease():
    requests = np.full(6 * 3600, 5, dtype=np.int64)  # 5 requests a second for six hours
    drawn = visitors_draw(requests, TrafficModel(seed=7), repeat=2)
    assert drawn.seconds == 2 * requests.size
    expected = 2 * requests.sum() / 10
    assert abs(len(drawn) - expected) < 4 * expected**0.5  # binomial: within four deviations
    assert np.all(np.diff(drawn.arrives) >= 0)
    assert np.allclose(drawn.holds_until - drawn.leaves, 30 * MINUTE)
    assert 3.8 * MINUTE < float(np.mean(drawn.leaves - drawn.arrives)) < 4.2 * MINUTE
    callers = ~np.isnan(drawn.calls_at)
    assert 0.025 < callers.mean() < 0.035
    assert np.all(drawn.calls_at[callers] >= drawn.arrives[callers])
    assert np.all(drawn.calls_at[callers] <= drawn.holds_until[callers])
    again = visitors_draw(requests, TrafficModel(seed=7), repeat=2)
    assert np.array_equal(again.arrives, drawn.arrives)  # --seed makes a replay repeatable
    assert not np.array_equal(
        visitors_draw(requests, TrafficModel(seed=8), repeat=2).arrives[:50], drawn.arrives[:50]
    )


def test_a_visitor_finding_every_number_held_is_turned_away_and_the_pool_grows_at_the_seeds_pace():
    # One number; from 10:00 a visitor every 30 seconds for an hour: most are turned away at first.
    arrivals = [10 * HOUR + 30 * i for i in range(120)]
    result = replay(visitors(*arrivals), policy=LabPolicy("seed"), start=START, tz=UTC, start_size=1)
    assert result.overflows > 0 and result.presentations + result.overflows == 120
    # One number per 5 minutes while visitors are turned away: 12 intervals in the hour at most.
    assert 1 <= sum(result.added.values()) <= 13
    assert result.overflow_pct == pytest.approx(100 * result.overflows / 120)


def test_the_adaptive_policy_learns_a_new_pools_traffic_five_numbers_an_interval_in_its_first_week():
    # Three visitors at once on one number: two turned away, so the next minute buys five (two under
    # the seed's rule would have bought one).
    adaptive = replay(
        visitors(10, 11, 12), policy=LabPolicy("adaptive", adaptive=True), start=START, tz=UTC, start_size=1
    )
    seed = replay(visitors(10, 11, 12), policy=LabPolicy("seed"), start=START, tz=UTC, start_size=1)
    assert (adaptive.overflows, sum(adaptive.added.values())) == (2, 5)
    assert (seed.overflows, sum(seed.added.values())) == (2, 1)
    # After the first week, beyond the most it held (one number): the pace's one number.
    week = 7 * DAY
    later = replay(
        visitors(week + 10, week + 11, week + 12, seconds=8 * DAY),
        policy=LabPolicy("a", adaptive=True),
        start=START,
        tz=UTC,
        start_size=1,
    )
    assert (later.overflows, sum(later.added.values())) == (2, 1)
    # A pool that learnt its traffic before the replay (the what-ifs: from today's size) does not learn.
    learnt = replay(
        visitors(10, 11, 12),
        policy=LabPolicy("a", adaptive=True),
        start=START,
        tz=UTC,
        start_size=1,
        created_at=START - timedelta(days=7),
    )
    assert (learnt.overflows, sum(learnt.added.values())) == (2, 1)


def test_the_adaptive_policy_regrows_fast_to_what_it_held_before_its_renewals_released_it():
    # Ten numbers idle for a month: the renewal on day 30 keeps one. Three visitors at once on day 40
    # find it held: the pool held ten 10 days ago, so it regrows five at once.
    day40 = 40 * DAY
    traffic = visitors(day40, day40 + 1, day40 + 2, seconds=41 * DAY)
    adaptive = replay(traffic, policy=LabPolicy("a", adaptive=True), start=START, tz=UTC, start_size=10)
    assert sum(adaptive.removed.values()) == 9
    assert (adaptive.overflows, adaptive.final_size) == (2, 1 + 5)


def test_beyond_what_it_held_a_pool_of_30_grows_only_for_two_visitors_turned_away_within_a_day():
    def rush(at: float) -> list[float]:  # 31 visitors at once on 30 numbers: one turned away
        return [at + i / 100 for i in range(31)]

    day8 = 8 * DAY
    policy = LabPolicy("a", adaptive=True)
    one = replay(visitors(*rush(day8)), policy=policy, start=START, tz=UTC, start_size=30)
    assert (one.overflows, sum(one.added.values())) == (1, 0)  # 4 % of 30: a shortage is 2
    two = replay(visitors(*rush(day8), day8 + 600), policy=policy, start=START, tz=UTC, start_size=30)
    assert (two.overflows, sum(two.added.values())) == (2, 1)
    # The second a day and a half later: the first is no longer "since the last growth" within a day.
    apart = replay(
        visitors(*rush(day8), *rush(day8 + 1.5 * DAY)), policy=policy, start=START, tz=UTC, start_size=30
    )
    assert (apart.overflows, sum(apart.added.values())) == (2, 0)


def test_the_replays_largest_recent_is_largest_held_over_its_numbers_at_every_moment():
    # Its cached answer, kept until the pool changes or a counted release leaves the 90 days, equals
    # the rule's function over every number, asked afresh; time only moves on, as in a replay.
    rng = random.Random(7)
    pool = _Pool(cooldown=900.0)
    memory = ADAPTIVE_MEMORY.total_seconds()
    now = 0.0
    for _ in range(600):
        now += rng.choice([rng.uniform(0, DAY), rng.uniform(0, 40 * DAY)])
        expected = largest_held(zip(pool.acquired, pool.released, strict=True), since=now - memory)
        assert pool.largest_recent(now) == expected
        active = list(pool.numbers())
        if rng.random() < 0.3:
            continue  # no change: the next question may only find the window moved
        if active and rng.random() < 0.45:
            pool.release(rng.choice(active), now)
        else:
            pool.add(now)


def test_numbers_are_billed_per_started_30_days_until_released():
    quiet = visitors(10, seconds=30 * DAY)
    assert replay(quiet, policy=LabPolicy("seed"), start=START, tz=UTC, start_size=3).number_months == 3
    longer = visitors(10, seconds=30 * DAY + 1)
    assert replay(longer, policy=LabPolicy("seed"), start=START, tz=UTC, start_size=3).number_months == 6
    result = replay(longer, policy=LabPolicy("seed"), start=START, tz=UTC, start_size=3)
    assert result.number_days == pytest.approx(3 * (30 + 1 / DAY))


def test_the_month_end_prune_runs_at_beats_first_run_on_the_last_local_day():
    la = __import__("zoneinfo").ZoneInfo("America/Los_Angeles")
    ends = month_ends(start=START, seconds=62 * DAY, tz=la)
    assert [(START + timedelta(seconds=at)).astimezone(la).strftime("%Y-%m-%d %H:%M") for at, _ in ends] == [
        "1995-07-31 00:15",
        "1995-08-31 00:15",
    ]
    # Ten numbers, one visitor on day 1: at July's end 20% of the unused go (the product's rule).
    result = replay(
        visitors(HOUR, seconds=40 * DAY), policy=LabPolicy("seed"), start=START, tz=UTC, start_size=10
    )
    assert dict(result.removed) == {datetime(1995, 7, 1).date(): 2}
    assert result.final_size == 8


def test_the_adaptive_policy_releases_idle_surplus_at_each_numbers_renewal():
    # Ten numbers, a visitor an hour for 40 days: one or two are ever in use; at the renewal on day
    # 30 the idle ones above the busiest hour's need plus headroom go, before the month-end prune.
    arrivals = [HOUR * (i + 1) for i in range(24 * 40)]
    adaptive = replay(
        visitors(*arrivals, seconds=40 * DAY),
        policy=LabPolicy("a", adaptive=True),
        start=START,
        tz=UTC,
        start_size=10,
    )
    seed = replay(
        visitors(*arrivals, seconds=40 * DAY), policy=LabPolicy("s"), start=START, tz=UTC, start_size=10
    )
    assert adaptive.final_size < seed.final_size
    assert adaptive.number_months < seed.number_months
    assert adaptive.overflows == seed.overflows == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.floats(0, 3600)), min_size=1, max_size=40),
    st.integers(1, 6),
)
def test_the_replays_heaps_hand_out_the_free_number_of_least_hand_out_rank(steps, size):
    """Against the rule applied to every free number, whatever the order of arrivals and holds."""
    pool = _Pool(cooldown=900.0)
    for _ in range(size):
        pool.add(0.0)
    now = 0.0
    for gap, hold in steps:
        now += gap * 600.0
        free = [n for n in range(size) if (pool.busy_until[n] or -1.0) <= now]
        expected = min(
            free,
            key=lambda n: handout_rank(
                number_id=n,
                acquired_at=pool.acquired[n],
                busy_until=pool.busy_until[n],
                rested_before=now - 900.0,
            ),
            default=None,
        )
        assert pool.claim(now, leaves=now + hold, holds_until=now + hold) == expected


@pytest.fixture(scope="module")
def nasa() -> np.ndarray:
    return trace_read(NASA)


def test_on_the_nasa_trace_the_seed_rule_gives_the_issues_figures_within_10_percent(nasa):
    result = replay(
        visitors_draw(nasa, TrafficModel(seed=1), repeat=3), policy=LabPolicy("seed"), start=START, tz=UTC
    )
    assert result.days == pytest.approx(175.7, abs=0.1)
    assert result.overflow_pct == pytest.approx(0.78, rel=0.10)
    assert result.number_months == pytest.approx(2914, rel=0.10)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_on_the_nasa_trace_the_adaptive_policy_turns_away_at_most_07x_for_no_more_money(nasa, seed):
    drawn = visitors_draw(nasa, TrafficModel(seed=seed), repeat=3)
    base = replay(drawn, policy=LabPolicy("seed"), start=START, tz=UTC)
    adaptive = replay(drawn, policy=LabPolicy("adaptive", adaptive=True), start=START, tz=UTC)
    assert adaptive.overflow_pct <= 0.7 * base.overflow_pct
    assert adaptive.number_months <= base.number_months
