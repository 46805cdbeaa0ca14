"""The outbox's twins proven equal: the release's first half as one PostgreSQL statement
(release_begin_sql) and through the ORM (release_begin_orm), over random stories of releases —
numbers of several pools in every state and role, used or not, removals naming the right pool or
another, numbers already leaving, long and unusual reasons, figures of any shape, with the prune's
guard (only numbers still unused) or without — must return the same orders and write the same numbers,
orders and audit events."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ringpools.choices import NumberRole, NumberState
from ringpools.models import PromoNumber, RingPool
from scaling.choices import Trigger
from scaling.models import CarrierOrder, ScalingEvent
from scaling.supply.outbox import QueuedRelease, Removal, StillUnused, release_begin_orm, release_begin_sql
from tests import factories
from tests.twins import TWIN_STORIES, rolled_back

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
T0 = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
POOLS = 3
STATES = [NumberState.ACTIVE, NumberState.ACTIVE, NumberState.RELEASING, NumberState.RELEASED]
# No NUL (PostgreSQL text refuses it) and no lone surrogates (not UTF-8): anything else a person types.
TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
FIGURES = st.dictionaries(
    st.sampled_from(["request_id", "rule", "cap", "unused", "ü"]) | st.text(TEXT, max_size=6),
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(TEXT, max_size=20),
    max_size=4,
)


@dataclass(frozen=True)
class Story:
    numbers: list[tuple[int, str, bool, str, tuple[Any, ...]]]  # pool, state, overflow, carrier ref, use
    releases: list[tuple[Any, ...]]  # removals (number, pool named), reason, figures, trigger, by staff,
    # guarded (only numbers still unused)


# A number's use, around the guard's edges (presented 5 days ago, called 10 days ago, free at T0):
# hours before T0 when last presented and called (None: never), pinned, hours its lease runs after T0.
AGO = st.none() | st.sampled_from([0, 1, 5 * 24 - 1, 5 * 24, 5 * 24 + 1, 10 * 24, 10 * 24 + 1, 400])
USE = st.tuples(AGO, AGO, st.booleans(), st.sampled_from([-1, 0, 1]))


@st.composite
def stories(draw: st.DrawFn) -> Story:
    numbers = draw(
        st.lists(
            st.tuples(
                st.integers(0, POOLS - 1),
                st.sampled_from(STATES),
                st.booleans(),
                st.sampled_from(["", "PN1", "PN2"]),
                USE,
            ),
            min_size=1,
            max_size=8,
        )
    )
    removal = st.tuples(st.integers(0, len(numbers) - 1), st.integers(0, POOLS - 1) | st.just(None))
    release = st.tuples(
        st.lists(removal, min_size=1, max_size=6),
        st.text(TEXT, max_size=400),
        FIGURES,
        st.sampled_from([Trigger.PRUNE, Trigger.MANUAL]),
        st.booleans(),
        st.booleans(),
    )
    return Story(numbers=numbers, releases=draw(st.lists(release, min_size=1, max_size=4)))


def setting_up(story: Story) -> tuple[list[RingPool], list[PromoNumber], Any]:
    account = factories.AccountFactory()
    pools = [factories.RingPoolFactory(account=account) for _ in range(POOLS)]
    numbers = []
    overflow_taken: set[int] = set()
    for pool, state, overflow, ref, (presented, called, pinned, lease) in story.numbers:
        # One active overflow number per pool (ringpool_one_overflow_number).
        overflow = overflow and not (state == NumberState.ACTIVE and pool in overflow_taken)
        if overflow and state == NumberState.ACTIVE:
            overflow_taken.add(pool)
        numbers.append(
            factories.PromoNumberFactory(
                pool=pools[pool],
                state=state,
                role=NumberRole.OVERFLOW if overflow else NumberRole.ROTATING,
                carrier_ref=ref,
                released_at=T0 - timedelta(days=3) if state == NumberState.RELEASED else None,
                last_presented_at=None if presented is None else T0 - timedelta(hours=presented),
                last_called_at=None if called is None else T0 - timedelta(hours=called),
                pinned_at=T0 - timedelta(days=1) if pinned else None,
                pin_reason="printed on a flyer" if pinned else "",
                busy_until=T0 + timedelta(hours=lease),
            )
        )
    return pools, numbers, factories.StaffFactory()


ORDER_FIELDS = [
    "kind",
    "state",
    "pool_id",
    "number_id",
    "role",
    "offer",
    "carrier_ref",
    "trigger",
    "reason",
    "figures",
    "actor_id",
    "attempts",
    "last_error",
    "claimed_until",
    "next_attempt_at",
    "created_at",
    "finished_at",
]
REQUEST_ID = re.compile(r"ringpool-(\d+)-[0-9a-f]{20}")


def run(story: Story, pools: list[RingPool], numbers: list[PromoNumber], staff: Any, begin: Any) -> list[Any]:
    record = []
    account_of = {pool.pk: pool.account_id for pool in pools}
    for step, (removals, reason, figures, trigger, by_staff, guarded) in enumerate(story.releases):
        # One removal per number (a mapping); the pool it names may not be the number's own.
        wanted = {
            numbers[n].pk: (
                numbers[n].pool_id if pool is None else pools[pool].pk,
                Removal(number_id=numbers[n].pk, reason=f"{reason} #{n}", figures=figures),
            )
            for n, pool in removals
        }
        orders = begin(
            wanted,
            account_of=account_of,
            trigger=trigger,
            actor=staff if by_staff else None,
            now=T0 + timedelta(minutes=step),
            only=StillUnused(T0, T0 - timedelta(days=5), T0 - timedelta(days=10)) if guarded else None,
        )
        for order in orders:
            match = REQUEST_ID.fullmatch(order.request_id)
            assert match and int(match[1]) == order.pool_id, order.request_id
        record.append(([answered(order) for order in orders], rows(pools)))
    return record


def answered(order: QueuedRelease) -> tuple[Any, ...]:
    """An order as returned: its pool and number (its id and request id are drawn afresh by each)."""
    return order.pool_id, order.number_id


def rows(pools: list[RingPool]) -> tuple[Any, ...]:
    """The numbers, orders and events of the story's account; orders by order of creation, each event
    with its order's place instead of the request id (random in both)."""
    account = pools[0].account_id
    numbers = list(
        PromoNumber.objects.filter(account_id=account).order_by("id").values_list("id", "pool_id", "state")
    )
    orders = list(
        CarrierOrder.objects.filter(account_id=account)
        .order_by("id")
        .values_list("request_id", *ORDER_FIELDS)
    )
    place = {order[0]: position for position, order in enumerate(orders)}  # request id -> creation order
    events = []
    for event in (
        ScalingEvent.objects.filter(account_id=account)
        .order_by("id")
        .values("pool_id", "number_id", "kind", "trigger", "reason", "figures", "actor_id", "created_at")
    ):
        figures = dict(event["figures"])
        figures["request_id"] = place.get(figures.get("request_id"), "not an order's")
        events.append({**event, "figures": figures})
    return numbers, [order[1:] for order in orders], events


@TWIN_STORIES
@given(story=stories())
def test_the_statement_and_the_orm_steps_release_alike(story: Story) -> None:
    def both() -> tuple[list[Any], list[Any]]:
        pools, numbers, staff = setting_up(story)
        statement = rolled_back(lambda: run(story, pools, numbers, staff, release_begin_sql))
        orm = rolled_back(lambda: run(story, pools, numbers, staff, release_begin_orm))
        return statement, orm

    statement, orm = rolled_back(both)
    for released_by_statement, released_by_orm in zip(statement, orm, strict=True):
        assert released_by_statement == released_by_orm


GUARD = StillUnused(T0, T0 - timedelta(days=5), T0 - timedelta(days=10))


@pytest.mark.parametrize(
    "use, goes",
    [
        ({}, True),
        ({"last_presented_at": T0 - timedelta(days=5)}, False),  # presented exactly 5 days ago: in use
        ({"last_presented_at": T0 - timedelta(days=5, microseconds=1)}, True),
        ({"last_called_at": T0 - timedelta(days=10)}, False),  # called exactly 10 days ago: in use
        ({"last_called_at": T0 - timedelta(days=10, microseconds=1)}, True),
        ({"busy_until": T0 + timedelta(microseconds=1)}, False),  # leased now
        ({"busy_until": T0}, True),  # the lease ended at this instant
        ({"pinned_at": T0 - timedelta(days=1), "pin_reason": "on the flyer"}, False),
        ({"role": NumberRole.OVERFLOW}, False),
    ],
    ids=[
        "unused",
        "presented-5d",
        "presented-5d+",
        "called-10d",
        "called-10d+",
        "leased",
        "lease-over",
        "pinned",
        "overflow",
    ],
)
def test_the_guard_keeps_a_number_used_at_its_edges_in_both_twins(use, goes):
    """The prune's guard, at each edge of the rule's windows, alike in the statement and the ORM."""
    for begin in (release_begin_sql, release_begin_orm):
        number = factories.PromoNumberFactory(**use)
        wanted = {number.pk: (number.pool_id, Removal(number_id=number.pk, reason="month-end prune"))}
        queued = begin(
            wanted,
            account_of={number.pool_id: number.account_id},
            trigger=Trigger.PRUNE,
            actor=None,
            now=T0,
            only=GUARD,
        )
        number.refresh_from_db()
        assert (len(queued), number.state) == (
            (1, NumberState.RELEASING) if goes else (0, NumberState.ACTIVE)
        ), begin
