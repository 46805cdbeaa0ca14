"""The demo: simulated visitors through the real HTTP API drive a pool into overflow, and it grows."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from scaling.growth.run import ringpools_grow
from scaling.supply.inventory import InventoryCarrier
from tests import factories


@pytest.mark.django_db(transaction=True)
def test_the_demo_drives_a_pool_into_overflow_through_the_http_api_and_the_pool_grows(live_server):
    pool = factories.RingPoolFactory(area_code="805", max_size=10)
    factories.PromoNumberFactory.create_batch(2, pool=pool)
    factories.InventoryNumberFactory()
    ringpools_grow(carrier=InventoryCarrier())  # auto-scaling seen on
    out = StringIO()

    call_command(
        "simulate_visitors",
        "--pool",
        pool.key,
        "--base-url",
        live_server.url,
        "--every",
        "0.05",
        "--duration",
        "0.5",
        stdout=out,
    )

    assert "shown the overflow: " in out.getvalue() and "visitors holding a number: 2" in out.getvalue()
    pool.refresh_from_db()
    assert pool.last_overflow_at is not None
    assert ringpools_grow(carrier=InventoryCarrier()).added == 1
