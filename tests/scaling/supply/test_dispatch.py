"""Handing pending orders to the carrier workers: each once while it waits in the queue, again if its
message was lost, and at once when the worker that took it died (its claim lapsed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from scaling.choices import OrderState, Trigger
from scaling.models import CarrierOrder
from scaling.services import pool_numbers_order
from scaling.supply.inventory import InventoryCarrier
from scaling.supply.outbox import QUEUED_FOR, carrier_orders_dispatch, claim_for, purchase_order_run
from tests import factories

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def orders():
    pool = factories.RingPoolFactory(area_code="805")
    factories.InventoryNumberFactory.create_batch(3)
    return pool_numbers_order(pool=pool, figures=[{}, {}], trigger=Trigger.GROWTH, reason="due", now=T0)


def test_an_order_is_handed_out_once_while_it_waits_and_again_when_its_message_was_lost(orders):
    assert sorted(carrier_orders_dispatch(now=T0)) == sorted(o.pk for o in orders)
    assert carrier_orders_dispatch(now=T0 + timedelta(minutes=1)) == []  # still queued
    assert sorted(carrier_orders_dispatch(now=T0 + QUEUED_FOR + timedelta(seconds=1))) == sorted(
        o.pk for o in orders
    )


def test_an_order_whose_worker_died_is_handed_out_again_once_its_claim_lapses(orders):
    first, _ = orders
    carrier_orders_dispatch(now=T0)
    with mock.patch.object(InventoryCarrier, "purchase", side_effect=SystemExit), pytest.raises(SystemExit):
        purchase_order_run(
            first, carrier=InventoryCarrier(), now=T0 + timedelta(seconds=5)
        )  # the worker dies
    assert carrier_orders_dispatch(now=T0 + timedelta(seconds=30)) == []  # its claim still holds
    lapsed = T0 + timedelta(seconds=5) + claim_for() + timedelta(seconds=1)
    assert carrier_orders_dispatch(now=lapsed) == [first.pk]
    ended = purchase_order_run(CarrierOrder.objects.get(pk=first.pk), carrier=InventoryCarrier(), now=lapsed)
    assert ended.state == OrderState.DONE and ended.attempts == 2


def test_one_order_failing_unexpectedly_does_not_starve_the_others(orders, caplog):
    from scaling.supply.outbox import carrier_orders_reconcile

    broken = InventoryCarrier(faults={"find_available": [RuntimeError("a bug in the adapter")]})
    ended = carrier_orders_reconcile(carrier=broken, now=T0)
    assert [order.state for order in ended] == [OrderState.DONE]  # the second went on
    assert "failed unexpectedly" in caplog.text
    later = T0 + claim_for() + timedelta(seconds=1)
    (retried,) = carrier_orders_reconcile(carrier=InventoryCarrier(), now=later)
    assert retried.state == OrderState.DONE


def test_the_orders_of_one_batch_share_one_search_at_the_carrier():
    from scaling.supply.outbox import carrier_orders_run

    class CountingCarrier(InventoryCarrier):
        searches = 0

        def offers(self, **criteria):
            CountingCarrier.searches += 1
            return super().offers(**criteria)

    factories.InventoryNumberFactory.create_batch(8)
    pools = [factories.RingPoolFactory(area_code="805") for _ in range(5)]
    orders = [
        order
        for pool in pools
        for order in pool_numbers_order(pool=pool, figures=[{}], trigger=Trigger.GROWTH, reason="due", now=T0)
    ]
    ended = carrier_orders_run(orders=orders, carrier=CountingCarrier(), now=T0)

    assert [order.state for order in ended] == [OrderState.DONE] * 5
    assert len({order.number.number for order in ended}) == 5
    assert CountingCarrier.searches == 1  # five purchases, one search (a real carrier: 6 calls, not 10)
