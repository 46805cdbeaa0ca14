"""The hand-out's twins proven equal: the PostgreSQL statements (handout_steps._PostgresSteps) and the
ORM steps (_OrmSteps) run the same random stories — time passing across the lease, the renewal slack
and the cool-down; visitors asking with and without hints, allowed to claim or not; goodbyes; numbers
leaving service — and must give every visitor the same answer and leave every row the same."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from ringpools import handout
from ringpools.choices import NumberRole, NumberState, OverflowMode
from ringpools.handout import ClaimRefused, HandoutBusy, present_number, release_lease, renewal_slack
from ringpools.models import Lease, PoolHourlyFigures, PromoNumber, RingPool
from ringpools.selectors import handout_pool
from tests import factories
from tests.twins import TWIN_STORIES, numbered, rolled_back

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
T0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
VISITORS = ["visitor-aaaa", "visitor-bbbb", "visitor-cccc"]
PAGES = [
    ("", {}),
    ("https://example.com/?utm_source=ad", {"utm_source": "ad"}),
    ("https://example.com/b", {"q": "ü"}),
]
# How a number leaves service: out of rotation at once, given back, made the overflow number, moved.
LEAVE = ["releasing", "released", "overflow", "moved"]


@dataclass(frozen=True)
class Story:
    lease_seconds: int
    cooldown: int
    numbers: list[tuple[int, int, bool]]  # acquired (hours before T0), free since (s before T0), rested
    overflow_number: bool
    steps: list[tuple[Any, ...]]


@st.composite
def stories(draw: st.DrawFn) -> Story:
    lease = draw(st.sampled_from([60, 600, 1800]))
    cooldown = draw(st.sampled_from([30, 900]))
    slack = int(renewal_slack(lease).total_seconds())
    # Waits at the edges of the rules, and anywhere in between.
    edges = [
        1,
        slack - 1,
        slack,
        slack + 1,
        lease - 1,
        lease,
        lease + 1,
        cooldown,
        cooldown + 1,
        20,
        21,
        3600,
    ]
    wait = st.sampled_from(edges) | st.integers(1, 2 * lease)
    # Few visitors, so that one visitor's asks, goodbyes and renewals follow each other often.
    visitor = st.integers(0, len(VISITORS) - 1)
    ask = st.tuples(
        st.just("ask"),
        visitor,
        st.booleans(),
        st.booleans() | st.just(True),
        st.booleans(),
        st.integers(0, 2),
    )
    # Weighted by repetition: mostly asks and short waits, now and then a goodbye or a number leaving.
    step = st.one_of(
        ask,
        ask,
        ask,
        st.tuples(st.just("wait"), wait),
        st.tuples(st.just("wait"), st.integers(1, 30)),
        st.tuples(st.just("goodbye"), visitor),
        st.tuples(st.just("leave"), st.integers(0, 4), st.sampled_from(LEAVE)),
    )
    numbers = draw(
        st.lists(
            st.tuples(
                st.integers(0, 2),
                st.sampled_from([0, 10, cooldown - 1, cooldown, 2 * cooldown]),
                st.booleans(),
            ),
            min_size=1,
            max_size=5,
        )
    )
    return Story(
        lease_seconds=lease,
        cooldown=cooldown,
        # A number is flagged rested only once it has rested the cool-down.
        numbers=[(hours, free, rested and free >= cooldown) for hours, free, rested in numbers],
        overflow_number=draw(st.booleans()),
        steps=draw(st.lists(step, min_size=15, max_size=40)),
    )


def setting_up(story: Story) -> tuple[RingPool, RingPool]:
    mode = OverflowMode.OVERFLOW_NUMBER if story.overflow_number else OverflowMode.DESTINATION_NUMBER
    pool = factories.RingPoolFactory(lease_seconds=story.lease_seconds, overflow_mode=mode)
    elsewhere = factories.RingPoolFactory(account=pool.account)
    for hours, free, rested in story.numbers:
        factories.PromoNumberFactory(
            pool=pool,
            acquired_at=T0 - timedelta(hours=hours),
            busy_until=T0 - timedelta(seconds=free),
            rested=rested,
        )
    if story.overflow_number:
        factories.PromoNumberFactory(pool=pool, role=NumberRole.OVERFLOW, acquired_at=T0 - timedelta(days=9))
    return pool, elsewhere


def told(
    pool: RingPool, visitor: str, *, now: datetime, keepalive: bool, may_claim: bool, new: bool, page: int
):
    url, params = PAGES[page]
    try:
        shown = present_number(
            pool=handout_pool(pool.key),  # type: ignore[arg-type]
            visitor_id=visitor,
            page_url=url,
            params=params,
            keepalive=keepalive,
            may_claim=may_claim,
            new_visitor=new,
            now=now,
        )
    except (ClaimRefused, HandoutBusy) as refusal:
        return type(refusal).__name__
    return shown


def leave(pool: RingPool, elsewhere: RingPool, position: int, how: str, now: datetime) -> None:
    rotating = list(
        PromoNumber.objects.filter(pool=pool, role=NumberRole.ROTATING, state=NumberState.ACTIVE).order_by(
            "id"
        )
    )
    if position >= len(rotating):
        return
    number = PromoNumber.objects.filter(pk=rotating[position].pk)
    if how == "releasing":
        number.update(state=NumberState.RELEASING)
    elif how == "released":
        number.update(state=NumberState.RELEASED, released_at=now)
    elif how == "overflow":
        if not PromoNumber.objects.filter(
            pool=pool, role=NumberRole.OVERFLOW, state=NumberState.ACTIVE
        ).exists():
            number.update(role=NumberRole.OVERFLOW)
    else:
        number.update(pool=elsewhere)


def rows(pool: RingPool) -> tuple[Any, ...]:
    """Every row the hand-out writes for this account, ids of leases by order of creation."""
    account = pool.account_id
    leases = list(
        Lease.objects.filter(pool__account_id=account)
        .order_by("id")
        .values_list(
            "id",
            "number_id",
            "pool_id",
            "visitor_id",
            "page_url",
            "params",
            "started_at",
            "expires_at",
            "released_at",
        )
    )
    numbers = list(
        PromoNumber.objects.filter(account_id=account)
        .order_by("id")
        .values_list("id", "pool_id", "state", "role", "busy_until", "last_presented_at", "rested")
    )
    figures = list(
        PoolHourlyFigures.objects.filter(pool__account_id=account)
        .order_by("pool_id", "hour", "shard")
        .values_list("pool_id", "hour", "presentations", "overflows", "calls")
    )
    overflows = list(
        RingPool.objects.filter(account_id=account).order_by("id").values_list("id", "last_overflow_at")
    )
    return [lease[1:] for lease in leases], numbers, figures, overflows


def run(story: Story, pool: RingPool, elsewhere: RingPool, steps: type) -> list[tuple[Any, Any]]:
    """The story told to one implementation: each step's answer (lease ids by order) and the rows."""
    record = []
    now = T0
    with mock.patch.object(handout, "steps_for_database", lambda: steps):
        for step in story.steps:
            answer: Any = None
            if step[0] == "wait":
                now += timedelta(seconds=step[1])
            elif step[0] == "ask":
                _, who, keepalive, may_claim, new, page = step
                answer = told(
                    pool, VISITORS[who], now=now, keepalive=keepalive, may_claim=may_claim, new=new, page=page
                )
            elif step[0] == "goodbye":
                answer = release_lease(pool=handout_pool(pool.key), visitor_id=VISITORS[step[1]], now=now)  # type: ignore[arg-type]
            else:
                leave(pool, elsewhere, step[1], step[2], now)
            if isinstance(answer, handout.Presentation):
                order = numbered(
                    list(Lease.objects.filter(pool__account_id=pool.account_id).values_list("id", flat=True))
                )
                lease = order.get(answer.lease_id) if answer.lease_id is not None else None
                answer = (answer.number, answer.kind, answer.expires_at, lease, answer.claimed)
            record.append((step, answer, rows(pool)))
    return record


@TWIN_STORIES
@given(story=stories())
def test_the_statements_and_the_orm_steps_answer_and_write_alike(story: Story) -> None:
    with override_settings(RINGPOOL_HANDOUT_COOLDOWN_SECONDS=story.cooldown):

        def both() -> tuple[list[Any], list[Any]]:
            pool, elsewhere = setting_up(story)
            statements = rolled_back(lambda: run(story, pool, elsewhere, handout._PostgresSteps))
            orm = rolled_back(lambda: run(story, pool, elsewhere, handout._OrmSteps))
            return statements, orm

        statements, orm = rolled_back(both)
    for told_by_statements, told_by_orm in zip(statements, orm, strict=True):
        assert told_by_statements == told_by_orm
