"""factory-boy factories for every model. Pools with numbers are made through the real services."""

from __future__ import annotations

from datetime import UTC, datetime

import factory
from django.utils import timezone

from accounts.choices import Role
from accounts.models import Account, Membership, User
from ringpools.choices import CallAttribution, NumberRole, NumberState, NumberType
from ringpools.models import (
    Call,
    Campaign,
    DestinationNumber,
    Lease,
    PoolHourlyFigures,
    PromoNumber,
    RingPool,
)
from scaling.models import AutoScalingSettings, InventoryNumber, ScalingEvent


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"person{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class StaffFactory(UserFactory):
    is_staff = True
    is_superuser = True


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Account {n}")
    slug = factory.Sequence(lambda n: f"account-{n}")
    timezone = "America/Los_Angeles"
    carrier_auth_token = "test-auth-token"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    account = factory.SubFactory(AccountFactory)
    role = Role.MEMBER


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")


class DestinationNumberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DestinationNumber

    account = factory.SubFactory(AccountFactory)
    number = factory.Sequence(lambda n: f"+1805{2000000 + n:07d}")
    label = "Call center"


class RingPoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RingPool

    account = factory.SubFactory(AccountFactory)
    campaign = factory.SubFactory(CampaignFactory, account=factory.SelfAttribute("..account"))
    destination_number = factory.SubFactory(
        DestinationNumberFactory, account=factory.SelfAttribute("..account")
    )
    name = factory.Sequence(lambda n: f"Pool {n}")
    number_type = NumberType.LOCAL
    area_code = "805"
    allowed_origins = factory.LazyFunction(lambda: ["https://www.example.com"])


class PromoNumberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PromoNumber

    pool = factory.SubFactory(RingPoolFactory)
    account = factory.SelfAttribute("pool.account")
    role = NumberRole.ROTATING
    number = factory.Sequence(lambda n: f"+1805{3000000 + n:07d}")
    number_type = NumberType.LOCAL
    area_code = "805"
    region = "CA"
    state = NumberState.ACTIVE
    acquired_at = factory.LazyFunction(timezone.now)
    monthly_cost = "1.00"


class LeaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lease

    number = factory.SubFactory(PromoNumberFactory)
    pool = factory.SelfAttribute("number.pool")
    visitor_id = factory.Sequence(lambda n: f"visitor-{n:06d}")
    started_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda lease: lease.started_at + timezone.timedelta(minutes=30))


class CallFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Call

    number = factory.SubFactory(PromoNumberFactory)
    pool = factory.SelfAttribute("number.pool")
    account = factory.SelfAttribute("number.account")
    call_sid = factory.Sequence(lambda n: f"CA{n:032d}")
    to_number = factory.SelfAttribute("number.number")
    from_number = "+12125550111"
    attribution = CallAttribution.NONE
    received_at = factory.LazyFunction(timezone.now)


class PoolHourlyFiguresFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PoolHourlyFigures

    pool = factory.SubFactory(RingPoolFactory)
    hour = factory.LazyFunction(lambda: timezone.now().replace(minute=0, second=0, microsecond=0))
    presentations = 10
    overflows = 2


class AutoScalingSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AutoScalingSettings
        django_get_or_create = ("account",)

    account = factory.SubFactory(AccountFactory)


class ScalingEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScalingEvent

    pool = factory.SubFactory(RingPoolFactory)
    account = factory.SelfAttribute("pool.account")
    kind = "number_added"
    trigger = "manual"
    reason = "test"
    created_at = factory.LazyFunction(lambda: datetime.now(UTC))


class InventoryNumberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InventoryNumber

    number = factory.Sequence(lambda n: f"+1805{4000000 + n:07d}")
    number_type = NumberType.LOCAL
    area_code = "805"
    region = "CA"
    monthly_cost = "1.00"
