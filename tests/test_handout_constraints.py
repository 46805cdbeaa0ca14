"""The hand-out's rules as PostgreSQL constraints (migrations 0005 and 0006): the database itself refuses a
second live lease of one visitor in one pool, whatever code writes it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from ringpools.models import Lease
from tests.factories import LeaseFactory, PromoNumberFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def refused(create) -> bool:
    try:
        with transaction.atomic():
            create()
    except IntegrityError:
        return True
    return False


def test_one_visitor_never_holds_two_leases_of_one_pool_at_once():
    first = LeaseFactory(visitor_id="visitor-aaaa")
    other_number = PromoNumberFactory(pool=first.pool)
    second = dict(
        pool=first.pool,
        number=other_number,
        visitor_id="visitor-aaaa",
        started_at=first.started_at + timedelta(minutes=1),
        expires_at=first.expires_at + timedelta(minutes=1),
    )
    assert refused(lambda: Lease.objects.create(**second))
    # After the first ends, the same visitor may hold another number; another visitor any time.
    assert not refused(
        lambda: Lease.objects.create(
            **{
                **second,
                "started_at": first.expires_at,
                "expires_at": first.expires_at + timedelta(minutes=30),
            }
        )
    )
    other_pool_number = PromoNumberFactory()
    assert not refused(
        lambda: Lease.objects.create(
            **{**second, "pool": other_pool_number.pool, "number": other_pool_number}
        )
    )
    third_number = PromoNumberFactory(pool=first.pool)
    assert not refused(
        lambda: Lease.objects.create(**{**second, "number": third_number, "visitor_id": "visitor-aaab"})
    )
