"""Each invariant the database can hold is refused by the database itself, not just by Python."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ringpools.choices import NumberRole, NumberState
from ringpools.models import Lease, PromoNumber, RingPool
from scaling.models import ScalingEvent
from tests.factories import (
    LeaseFactory,
    MembershipFactory,
    PromoNumberFactory,
    RingPoolFactory,
    ScalingEventFactory,
)

pytestmark = pytest.mark.django_db


def refused(callable_) -> bool:
    try:
        with transaction.atomic():
            callable_()
    except IntegrityError:
        return True
    return False


def test_a_number_is_in_service_only_once():
    number = PromoNumberFactory(number="+18055550150")
    assert refused(lambda: PromoNumberFactory(number="+18055550150", pool=RingPoolFactory()))
    # Once released, the carrier may sell the same number again (to us or another account).
    PromoNumber.objects.filter(pk=number.pk).update(state=NumberState.RELEASED, released_at=timezone.now())
    assert not refused(lambda: PromoNumberFactory(number="+18055550150"))


def test_a_number_belongs_to_at_most_one_pool_and_one_role():
    number = PromoNumberFactory()
    # One row, one pool column: the only way to "share" is a second row, refused above; the role is single.
    assert refused(lambda: PromoNumber.objects.filter(pk=number.pk).update(role="both"))


def test_numbers_are_stored_in_e164():
    number = PromoNumberFactory()

    def store(raw: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE ringpools_promonumber SET number = %s WHERE id = %s", [raw, number.pk])

    assert refused(lambda: store("(805) 555-0150"))
    assert refused(lambda: store("8055550150"))
    assert not refused(lambda: store("+18055550150"))


def test_a_pool_has_at_most_one_overflow_number():
    pool = RingPoolFactory()
    PromoNumberFactory(pool=pool, role=NumberRole.OVERFLOW)
    assert refused(lambda: PromoNumberFactory(pool=pool, role=NumberRole.OVERFLOW))


def test_the_overflow_number_is_not_one_of_the_rotating_numbers():
    pool = RingPoolFactory()
    overflow = PromoNumberFactory(pool=pool, role=NumberRole.OVERFLOW)
    # The same phone number cannot be added again as a rotating number of the pool...
    assert refused(lambda: PromoNumberFactory(pool=pool, number=overflow.number, role=NumberRole.ROTATING))
    # ...and an overflow number always belongs to a pool.
    assert refused(lambda: PromoNumberFactory(pool=None, account=pool.account, role=NumberRole.OVERFLOW))


def test_released_numbers_carry_their_release_time():
    number = PromoNumberFactory()
    assert refused(lambda: PromoNumber.objects.filter(pk=number.pk).update(state=NumberState.RELEASED))
    assert refused(lambda: PromoNumber.objects.filter(pk=number.pk).update(released_at=timezone.now()))


def test_pool_sizes_are_sane():
    pool = RingPoolFactory(min_size=1, max_size=10)
    assert refused(lambda: RingPool.objects.filter(pk=pool.pk).update(min_size=11))
    assert refused(lambda: RingPool.objects.filter(pk=pool.pk).update(max_size=0))
    assert refused(lambda: RingPool.objects.filter(pk=pool.pk).update(lease_seconds=5))
    assert refused(lambda: RingPool.objects.filter(pk=pool.pk).update(overflow_mode="sometimes"))


def test_monthly_cost_is_not_negative():
    assert refused(lambda: PromoNumberFactory(monthly_cost="-1.00"))


def test_one_membership_per_person_and_account():
    membership = MembershipFactory()
    assert refused(lambda: MembershipFactory(user=membership.user, account=membership.account))
    assert refused(lambda: MembershipFactory(role="owner"))


def test_a_lease_cannot_end_before_it_starts():
    now = timezone.now()
    assert refused(lambda: LeaseFactory(started_at=now, expires_at=now - timedelta(seconds=1)))


@pytest.mark.postgres
def test_two_leases_of_one_number_never_overlap_in_time():
    first = LeaseFactory()
    overlapping = dict(
        pool=first.pool,
        number=first.number,
        visitor_id="someone-else",
        started_at=first.started_at + timedelta(minutes=1),
        expires_at=first.expires_at + timedelta(minutes=1),
    )
    assert refused(lambda: Lease.objects.create(**overlapping))
    # Back to back is fine: the next visitor may start the moment the previous lease ends.
    after = dict(
        overlapping, started_at=first.expires_at, expires_at=first.expires_at + timedelta(minutes=30)
    )
    assert not refused(lambda: Lease.objects.create(**after))


@pytest.mark.postgres
def test_the_database_refuses_to_edit_or_delete_scaling_events():
    event = ScalingEventFactory()
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        ScalingEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        ScalingEvent.objects.filter(pk=event.pk).delete()
    assert ScalingEvent.objects.get(pk=event.pk).reason == "test"


def test_the_app_refuses_to_edit_or_delete_scaling_events():
    event = ScalingEventFactory()
    event.reason = "rewritten"
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()
