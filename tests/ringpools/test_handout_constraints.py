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


@pytest.mark.parametrize(
    "hint", [{}, {"new_visitor": True}, {"keepalive": True}], ids=["plain", "said-new", "keepalive"]
)
def test_a_number_shown_free_while_leased_is_never_leased_again_and_the_claim_fails_loudly(hint):
    """Should a number's row ever say it is free while a lease holds it (a bug, a hand edit), the
    claim is refused by lease_number_not_held_twice with an error, not retried quietly as if the
    visitor's other request had won: the operator sees it, and no second visitor gets the number."""
    from django.utils import timezone

    from ringpools.handout import present_number
    from ringpools.models import PromoNumber
    from ringpools.selectors import handout_pool

    held = LeaseFactory(visitor_id="visitor-aaaa", expires_at=timezone.now() + timedelta(minutes=20))
    PromoNumber.objects.filter(pk=held.number_id).update(busy_until=timezone.now() - timedelta(hours=1))
    with pytest.raises(IntegrityError, match="lease_number_not_held_twice"), transaction.atomic():
        present_number(pool=handout_pool(held.pool.key), visitor_id="visitor-bbbb", **hint)
    assert list(Lease.objects.values_list("visitor_id", flat=True)) == ["visitor-aaaa"]
