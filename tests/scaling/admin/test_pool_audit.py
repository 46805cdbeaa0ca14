"""The pool's admin page answers "is this pool the right size, and why did it change" on its own."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from ringpools.choices import NumberRole, NumberState
from ringpools.models import PromoNumber, RingPool
from scaling.growth.run import ringpools_grow
from scaling.models import ScalingEvent
from scaling.supply.inventory import InventoryCarrier
from tests import factories

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 29, 5, 30, tzinfo=UTC)  # 2026-11-28 21:30 in Los Angeles


@pytest.fixture
def staff(client):
    user = factories.StaffFactory(username="sam")
    client.force_login(user)
    return user


def pool_page(client, pool) -> str:
    response = client.get(reverse("admin:ringpools_ringpool_change", args=[pool.pk]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def busy_pool():
    """Five numbers in rotation and an overflow number; one number is held now, one was never shown."""
    pool = factories.RingPoolFactory(name="Spring Sale", max_size=8)
    numbers = [
        factories.PromoNumberFactory(
            pool=pool, number=f"+1805555011{i}", monthly_cost="1.50", acquired_at=NOW - timedelta(days=30)
        )
        for i in range(5)
    ]
    factories.PromoNumberFactory(
        pool=pool,
        number="+18885550100",
        role=NumberRole.OVERFLOW,
        number_type="toll_free",
        monthly_cost="2.00",
    )
    factories.PromoNumberFactory(
        pool=pool, number="+18055550199", state=NumberState.RELEASED, released_at=NOW - timedelta(days=40)
    )
    for i, number in enumerate(numbers[1:], start=1):
        PromoNumber.objects.filter(pk=number.pk).update(last_presented_at=NOW - timedelta(hours=i * 20))
    PromoNumber.objects.filter(pk=numbers[4].pk).update(busy_until=NOW + timedelta(minutes=20))
    factories.PoolHourlyFiguresFactory(
        pool=pool, hour=NOW.replace(minute=0), shard=1, presentations=30, overflows=3
    )
    factories.PoolHourlyFiguresFactory(
        pool=pool, hour=NOW.replace(minute=0), shard=2, presentations=10, overflows=1
    )
    factories.PoolHourlyFiguresFactory(
        pool=pool, hour=NOW.replace(minute=0) - timedelta(days=3), presentations=60, overflows=0, calls=2
    )
    factories.ScalingEventFactory(
        pool=pool,
        kind="number_added",
        trigger="growth",
        reason="overflow seen: 4 visitors turned away",
        figures={"overflows": 4, "match": "area_code"},
        created_at=NOW - timedelta(hours=2),
    )
    return pool


def test_the_pool_page_says_at_a_glance_whether_the_pool_is_the_right_size(client, staff, busy_pool):
    with time_machine.travel(NOW, tick=False):
        page = pool_page(client, busy_pool)
    glance = page[page.index('class="glance"') : page.index('class="panels"')]
    # Five numbers in rotation, and the sixth said to be the overflow number, not counted as one of them.
    assert "Numbers in rotation<b>5</b>" in glance
    assert "plus the overflow number" in glance and "(888) 555-0100" in glance
    assert "In use now<b>1 of 5</b>" in glance
    # Last 24 h: numbers shown at 20 h ago only (and 40 h, 60 h, 80 h are outside); 4 overflows in 40.
    assert "Last 1 day<b>20% used</b>" in glance and "4 overflows in 40 presentations (10%)" in glance
    assert "Last 7 days<b>80% used</b>" in glance and "2 calls" in glance
    # 5 x 1.50 + 2.00 for the overflow number; the released number costs nothing any more.
    assert "9.50 USD" in glance
    assert "Auto-scaling<b>on</b>" in glance
    assert "Next growth" in glance


def test_the_pool_page_lists_numbers_longest_unused_first_and_the_latest_events(client, staff, busy_pool):
    with time_machine.travel(NOW, tick=False):
        page = pool_page(client, busy_pool)
    table = page[page.index('id="pool-numbers"') : page.index("</table>", page.index('id="pool-numbers"'))]
    order = [
        n for n in ("(805) 555-0110", "(805) 555-0114", "(805) 555-0113", "(805) 555-0112", "(805) 555-0111")
    ]
    positions = [table.index(n) for n in order]
    assert positions == sorted(positions)  # never shown, then shown 80 h, 60 h, 40 h, 20 h ago
    assert "(805) 555-0199" not in table  # released
    assert "Overflow" in table and "Rotating" in table and "Active" in table
    assert "21:50 PST" in table  # held until 05:50 UTC, shown in the account's zone
    events = page[page.index('id="pool-events"') :]
    assert "Number added" in events and "overflow seen: 4 visitors turned away" in events
    assert '<th scope="row">overflows</th><td>4</td>' in events and "2026-11-28 19:30 PST" in events
    assert 'id="next-growth-panel"' in page and 'id="prune-preview-panel"' in page
    assert '<svg class="pool-health-chart"' in page


def test_the_pool_page_says_why_auto_scaling_is_off_and_when_it_may_grow(client, staff):
    settings = factories.AutoScalingSettingsFactory(scope="campaigns")
    outside = factories.RingPoolFactory(account=settings.account)
    page = pool_page(client, outside)
    assert "campaign outside the account&#x27;s scope" in page
    assert "never while auto-scaling is off" in page

    # The growth pass notices where auto-scaling is on; overflows after that earn numbers.
    capped = factories.RingPoolFactory(max_size=1, area_code="805")
    factories.PromoNumberFactory(pool=capped)
    overflowing = factories.RingPoolFactory(area_code="805")
    factories.PromoNumberFactory(pool=overflowing)
    factories.InventoryNumberFactory()
    ringpools_grow(now=NOW - timedelta(minutes=10), carrier=InventoryCarrier())
    RingPool.objects.filter(pk__in=[capped.pk, overflowing.pk]).update(
        last_overflow_at=NOW - timedelta(minutes=4)
    )
    ringpools_grow(now=NOW - timedelta(minutes=3), carrier=InventoryCarrier())
    RingPool.objects.filter(pk__in=[capped.pk, overflowing.pk]).update(
        last_overflow_at=NOW - timedelta(minutes=1)
    )

    with time_machine.travel(NOW, tick=False):
        assert "not until its maximum size is raised or numbers are removed" in pool_page(client, capped)
        page = pool_page(client, overflowing)
    # One number per 5 minutes: grown 3 minutes ago, so not before 2 minutes from now (21:32 in LA).
    assert "at 2026-11-28 21:32" in page
    assert "due: +1" not in page


def bulk_numbers(pool, count: int, start: int = 0) -> None:
    PromoNumber.objects.bulk_create(
        PromoNumber(
            account_id=pool.account_id,
            pool=pool,
            number=f"+1212{5000000 + start + i:07d}",
            number_type="local",
            area_code="212",
            state=NumberState.ACTIVE,
            acquired_at=NOW - timedelta(days=i % 90),
            last_presented_at=NOW - timedelta(minutes=i) if i % 3 else None,
            monthly_cost="1.00",
        )
        for i in range(count)
    )


def test_the_pool_page_runs_the_same_queries_for_a_pool_of_thousands_of_numbers(client, staff):
    pool = factories.RingPoolFactory()
    bulk_numbers(pool, 5)
    for _ in range(3):
        factories.ScalingEventFactory(pool=pool)
    with CaptureQueriesContext(connection) as small:
        pool_page(client, pool)
    bulk_numbers(pool, 3000, start=10)
    ScalingEvent.objects.bulk_create(
        factories.ScalingEventFactory.build_batch(300, pool=pool, account=pool.account)
    )
    with CaptureQueriesContext(connection) as big:
        page = pool_page(client, pool)
    assert len(big.captured_queries) <= len(small.captured_queries) <= 30
    assert "Numbers in rotation<b>3005</b>" in page
    assert "50 of 3005" in page and page.count('href="/admin/ringpools/promonumber/') >= 50
    assert "3005.00 USD" in page or "3,005.00 USD" in page


def test_the_pool_and_number_lists_export_their_filtered_rows_as_csv(client, staff, busy_pool):
    other = factories.RingPoolFactory(name="Other pool")
    factories.PromoNumberFactory(pool=other, number="+14155550123")
    response = client.get(
        reverse("admin:ringpools_promonumber_changelist") + "export.csv", {"pool__id__exact": busy_pool.pk}
    )
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {r["number"] for r in rows} >= {"+18055550110", "+18885550100"}
    assert "+14155550123" not in {r["number"] for r in rows}
    assert {r["currency"] for r in rows} == {"USD"}

    response = client.get(reverse("admin:ringpools_ringpool_changelist") + "export.csv", {"q": "Spring"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["name"], r["numbers in rotation"], r["overflow number"]) for r in rows] == [
        ("Spring Sale", "5", "+18885550100")
    ]
    listing = client.get(reverse("admin:ringpools_ringpool_changelist"), {"q": "Spring"}).content.decode()
    assert "export.csv?q=Spring" in listing


def test_a_name_that_looks_like_a_formula_is_exported_as_text(client, staff):
    factories.RingPoolFactory(name='=HYPERLINK("http://evil.example","x")')
    response = client.get(reverse("admin:ringpools_ringpool_changelist") + "export.csv")
    body = b"".join(response.streaming_content).decode()
    assert "'=HYPERLINK" in body


def test_numbers_are_shown_in_national_format_with_e164_on_hover(client, staff, busy_pool):
    page = client.get(reverse("admin:ringpools_promonumber_changelist")).content.decode()
    assert '<span class="phone" title="+18055550110">(805) 555-0110</span>' in page
    assert "Rotating (shown" not in page  # short labels: rows stay one line
    assert "Jan. 1, 2000" not in page and "2000-01-01" not in page  # a free number is not "busy until 2000"


def test_a_pool_is_found_by_any_of_its_numbers_however_typed(client, staff, busy_pool):
    factories.RingPoolFactory(name="Another pool")
    for typed in ("(805) 555-0112", "+18055550112", "805.555.0112"):
        page = client.get(reverse("admin:ringpools_ringpool_changelist"), {"q": typed}).content.decode()
        assert "Spring Sale" in page and "Another pool" not in page, typed
        assert page.count('class="field-pool_name"') == 1


def test_the_csv_export_of_thousands_of_numbers_runs_a_fixed_number_of_queries(client, staff):
    pool = factories.RingPoolFactory()
    bulk_numbers(pool, 10)
    export = reverse("admin:ringpools_promonumber_changelist") + "export.csv"

    def exported() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            body = b"".join(client.get(export).streaming_content).decode()
        return body.count("\n") - 1, len(queries.captured_queries)

    rows, few = exported()
    bulk_numbers(pool, 3000, start=10)
    more_rows, many = exported()
    assert (rows, more_rows) == (10, 3010)
    assert many <= few + 2  # the iterator fetches in chunks of 2,000 rows on SQLite
