"""Growth when things fail: whatever dies when, every number the carrier bills the account for ends in
exactly one pool or released, and two passes at once add the numbers that are due exactly once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db import DatabaseError, connection

from ringpools.choices import NumberRole, NumberState
from ringpools.models import PromoNumber, RingPool
from scaling.choices import EventKind, OrderState
from scaling.growth import run as growth
from scaling.growth.run import ringpools_grow
from scaling.models import CarrierOrder, InventoryNumber, ScalingEvent
from scaling.supply.carrier import CarrierError, NumberUnavailableError, TransientCarrierError
from scaling.supply.inventory import InventoryCarrier
from scaling.supply.outbox import CLAIM_FOR, carrier_orders_reconcile
from tests import factories

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def minutes(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def carrier_holds(account) -> set[str]:
    return {str(n) for n in InventoryNumber.objects.filter(sold_to=account).values_list("number", flat=True)}


def pools_hold(account) -> set[str]:
    """Numbers the account's pools hold that came from the carrier (the factory's do not)."""
    held = PromoNumber.objects.filter(
        account=account, state__in=NumberState.held(), carrier_ref__startswith="INV"
    )
    return {str(n) for n in held.values_list("number", flat=True)}


def due_pool() -> RingPool:
    """A pool of one number that overflowed after the first pass saw auto-scaling on for it."""
    pool = factories.RingPoolFactory(area_code="805", max_size=10)
    factories.PromoNumberFactory(pool=pool)
    for _ in range(5):
        factories.InventoryNumberFactory()
    ringpools_grow(now=minutes(-1), carrier=InventoryCarrier())
    RingPool.objects.filter(pk=pool.pk).update(last_overflow_at=minutes(0))
    return pool


def reconcile_after_the_claim(at: datetime, carrier: InventoryCarrier | None = None) -> None:
    carrier_orders_reconcile(carrier=carrier or InventoryCarrier(), now=at + CLAIM_FOR + timedelta(seconds=1))


def rotating(pool: RingPool) -> int:
    return pool.numbers.filter(state=NumberState.ACTIVE, role=NumberRole.ROTATING).count()


def test_the_carrier_timing_out_after_buying_ends_with_the_number_in_the_pool():
    pool = due_pool()
    held_before = carrier_holds(pool.account)
    carrier = InventoryCarrier(faults={"purchase_after": [TransientCarrierError("read timed out")]})

    report = ringpools_grow(now=minutes(0.5), carrier=carrier)

    assert report.plans[0].outcome == "added 0, 1 to retry (the carrier did not answer: read timed out)"
    assert len(carrier_holds(pool.account)) == len(held_before) + 1  # bought, not yet in the pool
    assert ringpools_grow(now=minutes(1.5), carrier=InventoryCarrier()).added == 0  # not bought twice
    reconcile_after_the_claim(minutes(0.5))

    assert rotating(pool) == 2
    assert pools_hold(pool.account) == carrier_holds(pool.account)
    assert len(carrier_holds(pool.account)) == 1
    (added,) = ScalingEvent.objects.filter(pool=pool, kind=EventKind.NUMBER_ADDED)
    assert added.figures["reconciled"] is True and added.figures["overflows_since_last_growth"] == 0


def test_the_database_failing_after_the_carrier_sold_is_finished_by_the_next_pass():
    pool = due_pool()
    with mock.patch.object(PromoNumber, "save", side_effect=DatabaseError("could not extend file")):
        ringpools_grow(now=minutes(0.5), carrier=InventoryCarrier())
    assert len(carrier_holds(pool.account)) == 1 and rotating(pool) == 1
    assert CarrierOrder.objects.get().state == OrderState.PENDING

    reconcile_after_the_claim(minutes(0.5))

    assert rotating(pool) == 2
    assert pools_hold(pool.account) == carrier_holds(pool.account)


@pytest.mark.parametrize("the_carrier_sold", [True, False])
def test_a_process_dying_between_intent_and_answer_leaves_a_pending_order_the_next_pass_reconciles(
    the_carrier_sold,
):
    pool = due_pool()
    carrier = InventoryCarrier()
    real_purchase = InventoryCarrier.purchase

    def dies(self, available, *, account_id, friendly_name):
        if the_carrier_sold:
            real_purchase(self, available, account_id=account_id, friendly_name=friendly_name)
        raise SystemExit("killed")

    with mock.patch.object(InventoryCarrier, "purchase", dies), pytest.raises(SystemExit):
        ringpools_grow(now=minutes(0.5), carrier=carrier)
    assert CarrierOrder.objects.get().state == OrderState.PENDING
    assert len(carrier_holds(pool.account)) == (1 if the_carrier_sold else 0)

    reconcile_after_the_claim(minutes(0.5))

    # Bought by the dead process: found under the order's request id. Not bought: bought now. Either
    # way the growth that was due happens once.
    order = CarrierOrder.objects.get()
    assert order.state == OrderState.DONE and order.number.state == NumberState.ACTIVE
    assert pools_hold(pool.account) == carrier_holds(pool.account)
    assert rotating(pool) == 2
    added = ScalingEvent.objects.get(kind=EventKind.NUMBER_ADDED)
    assert added.figures["reconciled"] is the_carrier_sold
    # The next interval grows afresh if the pool still overflows; nothing was lost or bought twice.
    RingPool.objects.filter(pk=pool.pk).update(last_overflow_at=minutes(4))
    ringpools_grow(now=minutes(6), carrier=carrier)
    assert rotating(pool) == 3
    assert pools_hold(pool.account) == carrier_holds(pool.account)


def test_a_refused_purchase_is_a_failed_event_with_the_carriers_message_and_is_retried():
    pool = due_pool()
    carrier = InventoryCarrier(faults={"purchase": [CarrierError("20003: authenticate")]})

    report = ringpools_grow(now=minutes(0.5), carrier=carrier)

    assert (
        report.plans[0].outcome == "added 0, 1 to retry (carrier refused the purchase: 20003: authenticate)"
    )
    assert ScalingEvent.objects.get(kind=EventKind.FAILED).reason.endswith("20003: authenticate")
    assert ringpools_grow(now=minutes(2), carrier=carrier).added == 0  # the order is the retry
    carrier_orders_reconcile(carrier=carrier, now=minutes(2))
    assert rotating(pool) == 2
    assert carrier_holds(pool.account) == pools_hold(pool.account)


def test_a_number_sold_to_another_buyer_meanwhile_means_choose_another_not_fail():
    pool = due_pool()
    carrier = InventoryCarrier(
        faults={"purchase": [NumberUnavailableError("+18055550100 is no longer available")]}
    )

    report = ringpools_grow(now=minutes(0.5), carrier=carrier)

    assert report.plans[0].outcome == "added 1"
    assert not ScalingEvent.objects.filter(kind=EventKind.FAILED).exists()
    assert carrier_holds(pool.account) == pools_hold(pool.account)


def test_a_search_that_gets_no_answer_is_a_failed_event_and_is_retried_with_back_off():
    pool = due_pool()
    carrier = InventoryCarrier()
    with mock.patch.object(InventoryCarrier, "offers", side_effect=TransientCarrierError("503")):
        ringpools_grow(now=minutes(0.5), carrier=carrier)
    failed = ScalingEvent.objects.get(kind=EventKind.FAILED)
    assert failed.reason == "the carrier did not answer: 503" and failed.figures["transient"] is True
    assert carrier_orders_reconcile(carrier=carrier, now=minutes(1)) == []  # back-off: not yet
    carrier_orders_reconcile(carrier=carrier, now=minutes(1.6))
    assert rotating(pool) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("meet_at_the_decision", [True, False])
def test_two_grow_passes_at_the_same_moment_add_the_number_that_is_due_once(meet_at_the_decision):
    """Two passes on their own connections. With `meet_at_the_decision` both have read the pool as due
    before either takes the decision (the race the compare-and-swap closes); without, they just start
    together."""
    real_take = growth._growth_take
    for attempt in range(15):
        pool = due_pool()
        now = minutes(0.5 + 10 * attempt)
        RingPool.objects.filter(pk=pool.pk).update(last_overflow_at=now - timedelta(seconds=10))
        start, decide = threading.Barrier(2), threading.Barrier(2, timeout=10)
        errors: list[BaseException] = []

        def take_together(plan, decide: threading.Barrier = decide, **decision):
            decide.wait()
            return real_take(plan, **decision)

        def one_pass(start: threading.Barrier = start, now: datetime = now, errors: list = errors) -> None:
            try:
                start.wait()
                ringpools_grow(now=now, carrier=InventoryCarrier())
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)
            finally:
                connection.close()

        with mock.patch.object(growth, "_growth_take", take_together if meet_at_the_decision else real_take):
            threads = [threading.Thread(target=one_pass) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        assert errors == []
        assert rotating(pool) == 2, f"attempt {attempt}"
        assert ScalingEvent.objects.filter(pool=pool, kind=EventKind.NUMBER_ADDED).count() == 1
        assert len(carrier_holds(pool.account)) == 1
        assert CarrierOrder.objects.filter(pool=pool).count() == 1  # one decision, one purchase attempt
        RingPool.objects.filter(pk=pool.pk).update(is_active=False)
