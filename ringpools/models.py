from __future__ import annotations

import secrets
from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from phonenumber_field.modelfields import PhoneNumberField
from simple_history.models import HistoricalRecords

from accounts.models import Account
from ringpools import phone
from ringpools.choices import CallAttribution, NumberRole, NumberState, NumberType, OverflowMode

NEVER_LEASED = datetime(2000, 1, 1, tzinfo=UTC)


def never_leased() -> datetime:
    return NEVER_LEASED


def new_pool_key() -> str:
    return "rp_" + secrets.token_urlsafe(12)


class Campaign(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="campaign_name_unique_in_account")
        ]

    def __str__(self) -> str:
        return self.name


class DestinationNumber(models.Model):
    """The advertiser's real number; calls to promo numbers are forwarded here."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="destination_numbers")
    number = PhoneNumberField()
    label = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["account_id", "label"]
        constraints = [
            models.UniqueConstraint(fields=["account", "number"], name="destination_number_unique_in_account")
        ]

    def __str__(self) -> str:
        return f"{self.label} {self.number.as_national}" if self.label else self.number.as_national


class RingPool(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="ringpools")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="ringpools")
    destination_number = models.ForeignKey(
        DestinationNumber, on_delete=models.PROTECT, related_name="ringpools"
    )
    name = models.CharField(max_length=200)
    key = models.CharField(
        "public key",
        max_length=40,
        unique=True,
        default=new_pool_key,
        editable=False,
        help_text="Used by the JavaScript tag and the API; not a secret.",
    )
    number_type = models.CharField(max_length=12, choices=NumberType.choices, default=NumberType.LOCAL)
    area_code = models.CharField("preferred area code", max_length=5, blank=True)
    region = models.CharField(
        "preferred region",
        max_length=80,
        blank=True,
        validators=[phone.validate_region],
        help_text='A US state, e.g. "CA", "California" or "Santa Barbara, CA". Empty: the area code\'s.',
    )
    lease_seconds = models.PositiveIntegerField(
        default=1800, help_text="How long a visitor keeps a number without renewing (sliding)."
    )
    overflow_mode = models.CharField(
        max_length=20, choices=OverflowMode.choices, default=OverflowMode.OVERFLOW_NUMBER
    )
    auto_scaling_enabled = models.BooleanField(default=True)
    min_size = models.PositiveIntegerField(default=1, help_text="Pruning never goes below this many numbers.")
    max_size = models.PositiveIntegerField(default=50, help_text="Spend cap: growth never goes past it.")
    is_active = models.BooleanField(default=True)
    allowed_origins = models.JSONField(
        default=list,
        blank=True,
        help_text='Web origins allowed to ask for numbers, e.g. ["https://www.example.com"].',
    )
    last_overflow_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    history = HistoricalRecords(excluded_fields=["last_overflow_at"])

    class Meta:
        ordering = ["account_id", "name"]
        verbose_name = "RingPool"
        constraints = [
            models.CheckConstraint(condition=Q(max_size__gte=1), name="ringpool_max_size_at_least_one"),
            models.CheckConstraint(
                condition=Q(min_size__lte=models.F("max_size")), name="ringpool_min_not_above_max"
            ),
            models.CheckConstraint(
                condition=Q(lease_seconds__gte=60, lease_seconds__lte=86400),
                name="ringpool_lease_1min_to_1day",
            ),
            models.CheckConstraint(
                condition=Q(number_type__in=NumberType.values), name="ringpool_number_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(overflow_mode__in=OverflowMode.values), name="ringpool_overflow_mode_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.account_id and (
            (self.campaign_id and self.campaign.account_id != self.account_id)
            or (self.destination_number_id and self.destination_number.account_id != self.account_id)
        ):
            raise ValidationError(
                "The campaign and the destination number must belong to the pool's account."
            )

    @property
    def overflow_number(self) -> PromoNumber | None:
        return self.numbers.filter(role=NumberRole.OVERFLOW, state=NumberState.ACTIVE).first()


class PromoNumber(models.Model):
    """A tracking number the account rents from the carrier.

    A number has one role in one pool: rotating (leased to one visitor at a time) or the pool's overflow
    number. Released numbers keep their pool so a late caller is still routed to the last destination.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="promo_numbers")
    pool = models.ForeignKey(
        RingPool, null=True, blank=True, on_delete=models.PROTECT, related_name="numbers"
    )
    role = models.CharField(max_length=10, choices=NumberRole.choices, default=NumberRole.ROTATING)
    number = PhoneNumberField()
    number_type = models.CharField(max_length=12, choices=NumberType.choices)
    area_code = models.CharField(max_length=5, blank=True)
    region = models.CharField(max_length=80, blank=True)
    state = models.CharField(max_length=10, choices=NumberState.choices, default=NumberState.ACTIVE)
    acquired_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)
    last_presented_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_called_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Hot path: the number is held by a lease until this moment. Free numbers are those with busy_until
    # in the past, and the oldest busy_until has rested longest; a number never leased rests since
    # NEVER_LEASED, so it goes first. Not null, so the hand-out reads it straight off its index.
    busy_until = models.DateTimeField(default=never_leased, editable=False)
    # Hand-out order (SPEC §3.3): free numbers that rested at least the cool-down go first, the pool's
    # longest-serving first. "Rested" depends on the clock, which no index can follow, so the hand-out
    # sets this flag lazily once busy_until is a cool-down in the past, and clears it on every claim;
    # the rested numbers then sit in their own index in service order.
    rested = models.BooleanField(default=True, editable=False)
    carrier_ref = models.CharField("carrier reference", max_length=64, blank=True)
    monthly_cost = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    # Staff pin a number to keep it through month-end pruning (who, when, why).
    pinned_at = models.DateTimeField(null=True, blank=True, editable=False)
    pinned_by = models.ForeignKey(
        "accounts.User",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        db_index=False,  # a partial index (Meta): every claim rewrites the row's index entries
    )
    pin_reason = models.CharField(max_length=200, blank=True, editable=False)

    history = HistoricalRecords(
        excluded_fields=["last_presented_at", "last_called_at", "busy_until", "rested"]
    )

    class Meta:
        ordering = ["number"]
        constraints = [
            # A number being released is still ours at the carrier: it cannot be bought twice meanwhile.
            models.UniqueConstraint(
                fields=["number"],
                condition=Q(state__in=NumberState.held()),
                name="promonumber_held_number_unique",
            ),
            models.UniqueConstraint(
                fields=["pool"],
                condition=Q(role=NumberRole.OVERFLOW, state=NumberState.ACTIVE),
                name="ringpool_one_overflow_number",
            ),
            models.CheckConstraint(
                condition=Q(role=NumberRole.ROTATING) | Q(pool__isnull=False),
                name="promonumber_overflow_role_needs_pool",
            ),
            models.CheckConstraint(
                condition=(Q(state__in=NumberState.held()) & Q(released_at__isnull=True))
                | (Q(state=NumberState.RELEASED) & Q(released_at__isnull=False)),
                name="promonumber_released_at_matches_state",
            ),
            models.CheckConstraint(
                condition=Q(number__regex=r"^\+[1-9][0-9]{6,14}$"), name="promonumber_number_is_e164"
            ),
            models.CheckConstraint(
                condition=Q(pinned_at__isnull=True) | ~Q(pin_reason=""), name="promonumber_pin_has_reason"
            ),
            models.CheckConstraint(condition=Q(monthly_cost__gte=0), name="promonumber_cost_not_negative"),
            models.CheckConstraint(condition=Q(role__in=NumberRole.values), name="promonumber_role_valid"),
            models.CheckConstraint(condition=Q(state__in=NumberState.values), name="promonumber_state_valid"),
            models.CheckConstraint(
                condition=Q(number_type__in=NumberType.values), name="promonumber_number_type_valid"
            ),
        ]
        indexes = [
            # The hand-out's first choice: rested numbers of a pool, longest-serving first.
            models.Index(
                fields=["pool", "acquired_at", "id"],
                name="promonumber_handout_rested",
                condition=Q(state=NumberState.ACTIVE, role=NumberRole.ROTATING, rested=True),
            ),
            # Numbers in use or resting: which ones have now rested (oldest busy_until first), and
            # the fallback when none has, the one released longest ago.
            models.Index(
                fields=["pool", "busy_until", "id"],
                name="promonumber_handout_resting",
                condition=Q(state=NumberState.ACTIVE, role=NumberRole.ROTATING, rested=False),
            ),
            # Pins are few: the users' foreign key needs an index only where one is set.
            models.Index(
                fields=["pinned_by"], name="promonumber_pinned_by", condition=Q(pinned_by__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return self.number.as_national if self.number else "?"

    @property
    def is_active(self) -> bool:
        return self.state == NumberState.ACTIVE


class Lease(models.Model):
    """A promo number held by one visitor of one pool until `expires_at` (sliding)."""

    # Indexed by lease_visitor and lease_number_history (Meta), which lead with them: an index of
    # their own would cost every claim two more index writes, and tempt the planner into reading a
    # pool's every lease to find one visitor's.
    pool = models.ForeignKey(RingPool, on_delete=models.CASCADE, related_name="leases", db_index=False)
    number = models.ForeignKey(PromoNumber, on_delete=models.PROTECT, related_name="leases", db_index=False)
    visitor_id = models.CharField(max_length=128)
    page_url = models.CharField(max_length=2048, blank=True)
    params = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True, help_text="Set when the page said goodbye.")

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gte=models.F("started_at")), name="lease_ends_after_start"
            ),
        ]
        indexes = [
            models.Index(fields=["pool", "visitor_id", "expires_at"], name="lease_visitor"),
            models.Index(fields=["number", "started_at"], name="lease_number_history"),
        ]

    def __str__(self) -> str:
        return f"{self.number} → {self.visitor_id}"


class Call(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="calls")
    pool = models.ForeignKey(RingPool, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")
    number = models.ForeignKey(
        PromoNumber, null=True, blank=True, on_delete=models.PROTECT, related_name="calls"
    )
    lease = models.ForeignKey(Lease, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")
    call_sid = models.CharField("carrier call id", max_length=64, unique=True)
    from_number = models.CharField(max_length=32, blank=True)
    to_number = PhoneNumberField()
    status = models.CharField(max_length=20, blank=True)
    attribution = models.CharField(
        max_length=10, choices=CallAttribution.choices, default=CallAttribution.NONE
    )
    is_overflow = models.BooleanField(default=False)
    received_at = models.DateTimeField()
    forwarded_to = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["pool", "received_at"], name="call_pool_time")]

    def __str__(self) -> str:
        return self.call_sid

    @property
    def is_late(self) -> bool:
        return self.attribution == CallAttribution.LATE


class PoolHourlyFigures(models.Model):
    """Per-pool hourly counts, written by the hand-out and the webhook; read by admin, charts, scaling.

    Counts are spread over a few shard rows per hour so a rush on one pool does not serialise every
    request on one row lock; readers sum the shards.
    """

    SHARDS = 8

    pool = models.ForeignKey(RingPool, on_delete=models.CASCADE, related_name="hourly_figures")
    hour = models.DateTimeField()
    shard = models.PositiveSmallIntegerField(default=0)
    presentations = models.PositiveIntegerField(default=0)
    overflows = models.PositiveIntegerField(default=0)
    calls = models.PositiveIntegerField(default=0)
    # Overflows shown to a visitor arriving (not to one already waiting, whose page's keep-alives
    # are overflows too): the visitors turned away, which the adaptive policy's growth counts.
    turned_away = models.PositiveIntegerField(db_default=0)

    class Meta:
        verbose_name = "pool hourly figures"
        verbose_name_plural = "pool hourly figures"
        constraints = [
            models.UniqueConstraint(
                fields=["pool", "hour", "shard"], name="hourly_figures_one_row_per_shard"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pool_id} {self.hour:%Y-%m-%d %H}:00"
