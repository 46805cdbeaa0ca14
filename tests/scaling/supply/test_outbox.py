"""The carrier outbox: whatever fails when, every number the carrier bills us for ends in exactly one
pool or released, and no number returns to rotation while its release is pending."""

from __future__ import annotations

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from ringpools.choices import NumberState
from ringpools.models import PromoNumber
from scaling.choices import EventKind, OrderKind, OrderState, Trigger
from scaling.models import CarrierOrder, InventoryNumber, ScalingEvent
from scaling.services import pool_number_add, pool_number_remove, pool_numbers_order
from scaling.supply.carrier import CarrierError, TransientCarrierError
from scaling.supply.choice import number_choose
from scaling.supply.inventory import InventoryCarrier
from scaling.supply.outbox import CLAIM_FOR, carrier_orders_reconcile, purchase_order_run
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool():
    pool = factories.RingPoolFactory(area_code="805", max_size=10)
    for _ in range(5):
        factories.InventoryNumberFactory()
    return pool


def carrier_holds(account) -> set[str]:
    return {str(n) for n in InventoryNumber.objects.filter(sold_to=account).values_list("number", flat=True)}


def pool_holds(account) -> set[str]:
    held = PromoNumber.objects.filter(account=account, state__in=NumberState.held())
    return {str(n) for n in held.values_list("number", flat=True)}


def later(minutes: float = 0) -> timezone.datetime:
    return timezone.now() + CLAIM_FOR + timedelta(minutes=minutes, seconds=1)


def test_a_purchase_that_timed_out_after_buying_ends_in_the_pool(pool):
    carrier = InventoryCarrier(faults={"purchase_after": [TransientCarrierError("read timed out")]})

    assert (
        pool_number_add(pool=pool, trigger=Trigger.GROWTH, reason="overflow", carrier=carrier).number is None
    )
    order = CarrierOrder.objects.get()
    assert order.state == OrderState.PENDING and order.last_error.endswith("read timed out")
    assert len(carrier_holds(pool.account)) == 1 and pool_holds(pool.account) == set()

    carrier_orders_reconcile(carrier=carrier, now=later(5))

    order.refresh_from_db()
    assert order.state == OrderState.DONE
    assert order.number.pool == pool and order.number.state == NumberState.ACTIVE
    assert pool_holds(pool.account) == carrier_holds(pool.account) == {str(order.number.number)}
    added = ScalingEvent.objects.get(kind=EventKind.NUMBER_ADDED)
    assert added.figures["reconciled"] is True and added.figures["match"] == "area_code"


def test_a_purchase_whose_database_write_failed_is_finished_by_reconciliation(pool):
    carrier = InventoryCarrier()
    with mock.patch.object(PromoNumber, "save", side_effect=DatabaseError("disk full")):
        assert (
            pool_number_add(pool=pool, trigger=Trigger.GROWTH, reason="overflow", carrier=carrier).number
            is None
        )
    assert len(carrier_holds(pool.account)) == 1 and pool_holds(pool.account) == set()

    carrier_orders_reconcile(carrier=carrier, now=later())

    assert pool_holds(pool.account) == carrier_holds(pool.account)
    assert pool.numbers.filter(state=NumberState.ACTIVE).count() == 1


def test_a_process_that_died_after_buying_leaves_an_order_the_next_pass_finishes(pool):
    carrier = InventoryCarrier()
    choice = number_choose(pool=pool, carrier=carrier)
    # Died between the carrier's answer and the write: the carrier sold the number under the order's
    # request id, the order is pending and still claimed by the dead process.
    (order,) = pool_numbers_order(pool=pool, figures=[{}], trigger=Trigger.GROWTH, reason="x")
    with mock.patch.object(InventoryCarrier, "purchase", side_effect=SystemExit), pytest.raises(SystemExit):
        purchase_order_run(order, carrier=carrier)
    carrier.purchase(choice.available, account_id=pool.account_id, friendly_name=order.request_id)

    assert carrier_orders_reconcile(carrier=carrier, now=timezone.now()) == []  # its claim still holds
    carrier_orders_reconcile(carrier=carrier, now=later())

    assert pool_holds(pool.account) == carrier_holds(pool.account) == {choice.available.number}


def test_a_purchase_the_carrier_never_made_is_made_by_the_next_attempt_once(pool):
    carrier = InventoryCarrier(faults={"purchase": [TransientCarrierError("connection reset")]})
    pool_number_add(pool=pool, trigger=Trigger.MANUAL, reason="overflow", carrier=carrier)
    assert CarrierOrder.objects.get().state == OrderState.PENDING  # no answer: maybe bought, maybe not

    carrier_orders_reconcile(carrier=carrier, now=later(5))

    order = CarrierOrder.objects.get()
    assert order.state == OrderState.DONE and order.attempts == 2
    assert carrier_holds(pool.account) == pool_holds(pool.account) == {str(order.number.number)}


def test_a_refused_purchase_asked_by_a_person_fails_at_once_with_the_carriers_message(pool):
    carrier = InventoryCarrier(faults={"purchase": [CarrierError("account suspended")]})
    bought = pool_number_add(pool=pool, trigger=Trigger.MANUAL, reason="staff", carrier=carrier)
    assert bought.number is None and bought.failure.endswith("account suspended")
    assert CarrierOrder.objects.get().state == OrderState.FAILED
    assert ScalingEvent.objects.get(kind=EventKind.FAILED).reason.endswith("account suspended")


def test_a_refused_growth_purchase_stays_due_is_told_once_and_is_bought_when_the_carrier_sells(pool):
    refusals = [CarrierError("account suspended"), CarrierError("account suspended")]
    carrier = InventoryCarrier(faults={"purchase": refusals})
    pool_number_add(pool=pool, trigger=Trigger.GROWTH, reason="overflow", carrier=carrier)
    order = CarrierOrder.objects.get()
    assert order.state == OrderState.PENDING and order.next_attempt_at is not None

    carrier_orders_reconcile(carrier=carrier, now=later(5))  # refused again: same reason, no new event
    assert ScalingEvent.objects.filter(kind=EventKind.FAILED).count() == 1
    carrier_orders_reconcile(carrier=carrier, now=later(60))

    order.refresh_from_db()
    assert order.state == OrderState.DONE
    assert carrier_holds(pool.account) == pool_holds(pool.account) == {str(order.number.number)}


def test_a_number_found_on_reconciliation_for_a_full_pool_is_released_again(pool):
    carrier = InventoryCarrier(faults={"purchase_after": [TransientCarrierError("timeout")]})
    pool_number_add(pool=pool, trigger=Trigger.GROWTH, reason="overflow", carrier=carrier)
    factories.PromoNumberFactory.create_batch(pool.max_size, pool=pool)  # filled up meanwhile

    carrier_orders_reconcile(carrier=carrier, now=later(5))

    assert carrier_holds(pool.account) == set()
    bought = PromoNumber.objects.get(carrier_ref__startswith="INV")
    assert bought.state == NumberState.RELEASED
    assert ScalingEvent.objects.filter(kind=EventKind.RECONCILED, reason__contains="maximum size").exists()


def test_a_removed_number_leaves_rotation_at_once_and_is_released_when_the_carrier_answers(pool):
    carrier = InventoryCarrier()
    number = pool_number_add(pool=pool, trigger=Trigger.MANUAL, reason="test", carrier=carrier).number
    failing = InventoryCarrier(faults={"release": [TransientCarrierError("503"), CarrierError("locked")]})

    pool_number_remove(number=number, trigger=Trigger.MANUAL, reason="not needed", carrier=failing)
    number.refresh_from_db()
    assert number.state == NumberState.RELEASING  # out of rotation, still held at the carrier
    assert carrier_holds(pool.account) == {str(number.number)}

    carrier_orders_reconcile(carrier=failing, now=later(1))  # refused: a FAILED event, retried later
    number.refresh_from_db()
    assert number.state == NumberState.RELEASING
    assert ScalingEvent.objects.filter(kind=EventKind.FAILED, reason__contains="locked").exists()

    carrier_orders_reconcile(carrier=failing, now=later(10))
    number.refresh_from_db()
    assert number.state == NumberState.RELEASED and number.released_at is not None
    assert carrier_holds(pool.account) == set()
    order = CarrierOrder.objects.get(kind=OrderKind.RELEASE)
    assert order.state == OrderState.DONE and order.attempts == 3
    assert list(ScalingEvent.objects.filter(number=number).order_by("id").values_list("kind", flat=True)) == [
        EventKind.NUMBER_ADDED,
        EventKind.NUMBER_REMOVED,
        EventKind.FAILED,
        EventKind.NUMBER_RELEASED,
    ]


def test_removing_a_number_twice_releases_it_once(pool):
    carrier = InventoryCarrier()
    number = pool_number_add(pool=pool, trigger=Trigger.MANUAL, reason="test", carrier=carrier).number
    pool_number_remove(number=number, trigger=Trigger.MANUAL, reason="x", carrier=carrier)
    pool_number_remove(number=number, trigger=Trigger.MANUAL, reason="x", carrier=carrier)
    assert CarrierOrder.objects.filter(kind=OrderKind.RELEASE).count() == 1
    assert ScalingEvent.objects.filter(kind=EventKind.NUMBER_REMOVED).count() == 1


@pytest.mark.postgres
def test_removing_a_number_works_on_postgresql(pool):
    # The old removal locked the number with select_related("pool") and failed on PostgreSQL.
    carrier = InventoryCarrier()
    number = pool_number_add(pool=pool, trigger=Trigger.MANUAL, reason="test", carrier=carrier).number
    assert (
        pool_number_remove(number=number, trigger="manual", reason="x", carrier=carrier).state == "released"
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_reconcilers_at_once_finish_an_order_once():
    for attempt in range(10):
        pool = factories.RingPoolFactory(area_code="805", max_size=10)
        factories.InventoryNumberFactory()
        carrier = InventoryCarrier(faults={"purchase_after": [TransientCarrierError("timeout")]})
        pool_number_add(pool=pool, trigger=Trigger.GROWTH, reason="overflow", carrier=carrier)
        barrier = threading.Barrier(2)
        now = later(5)

        def reconcile(barrier: threading.Barrier = barrier, now=now) -> None:
            try:
                barrier.wait()
                carrier_orders_reconcile(carrier=InventoryCarrier(), now=now)
            finally:
                connection.close()

        threads = [threading.Thread(target=reconcile) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert pool.numbers.count() == 1, f"attempt {attempt}"
        assert ScalingEvent.objects.filter(pool=pool, kind=EventKind.NUMBER_ADDED).count() == 1
        InventoryNumber.objects.all().delete()
