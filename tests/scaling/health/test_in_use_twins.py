"""Numbers in use per hour, twins proven equal: the PostgreSQL statement (which reads only the
window's leases) and the portable one (every lease joined to the hours), over random histories of
leases — begun long before the window, reaching into it, inside one hour, ending on the hour, of no
length at all — in windows of one to three days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ringpools.models import Lease
from scaling.health.series import numbers_in_use_portable, numbers_in_use_postgresql
from tests import factories
from tests.twins import TWIN_STORIES, rolled_back

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
NOW = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
# Per number, its leases one after the other (a number's leases never overlap): minutes since the
# previous one ended (0: at once), and minutes it lasted (0: given back the moment it began).
LEASES = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 59, 60, 61]) | st.integers(0, 900),
        st.sampled_from([0, 1, 60]) | st.integers(0, 300),
    ),
    max_size=12,
)


@TWIN_STORIES
# Found by this test: a lease ended the instant it began, sharing its start with the number's next one.
@example(numbers=[[(0, 0), (0, 60)]], days=1, start=1)
@given(
    numbers=st.lists(LEASES, min_size=1, max_size=4),
    days=st.integers(1, 3),
    start=st.integers(0, 4 * 24 * 60),
)
def test_the_statement_and_the_portable_count_agree(
    numbers: list[list[tuple[int, int]]], days: int, start: int
) -> None:
    def both() -> tuple[list[int], list[int]]:
        pool = factories.RingPoolFactory()
        hours = [NOW - HOUR * back for back in range(days * 24 - 1, -1, -1)]
        leases = []
        for history in numbers:
            number = factories.PromoNumberFactory(pool=pool, acquired_at=NOW - timedelta(days=30))
            moment = hours[0] - timedelta(minutes=start)
            for gap, length in history:
                began = moment + timedelta(minutes=gap)
                moment = began + timedelta(minutes=length)
                leases.append(
                    Lease(
                        pool=pool,
                        number=number,
                        visitor_id=f"v{len(leases)}",
                        started_at=began,
                        expires_at=moment,
                    )
                )
        Lease.objects.bulk_create(leases)
        return numbers_in_use_postgresql(pool=pool, hours=hours), numbers_in_use_portable(
            pool=pool, hours=hours
        )

    statement, portable = rolled_back(both)
    assert statement == portable
