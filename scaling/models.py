from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from phonenumber_field.modelfields import PhoneNumberField
from simple_history.models import HistoricalRecords

from accounts.models import Account
from ringpools.choices import NumberRole, NumberType
from ringpools.models import Campaign, DestinationNumber, PromoNumber, RingPool
from scaling.choices import (
    AlertKind,
    AlertSeverity,
    EventKind,
    GrowthMode,
    OrderKind,
    OrderState,
    PruneOutcome,
    ScalingPolicy,
    Scope,
    Trigger,
)


class AutoScalingSettings(models.Model):
    """The account's page Settings → Network → RingPool Auto-Scaling. Every change is in `history`."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="auto_scaling_settings")
    enable_for_new_pools = models.BooleanField("Enable auto-scaling for each new RingPool", default=True)
    include_overflow_number = models.BooleanField(
        "Include an overflow number in each new RingPool", default=True
    )
    scope = models.CharField(max_length=20, choices=Scope.choices, default=Scope.ALL_CAMPAIGNS)
    campaigns = models.ManyToManyField(Campaign, blank=True, related_name="+")
    destination_numbers = models.ManyToManyField(DestinationNumber, blank=True, related_name="+")
    # Staff-only growth pace (SPEC §6). Step mode: `growth_step` numbers per interval (default one per
    # five minutes). Percentage mode: `growth_percent` of the pool per interval, rounded up, at least
    # one and at most `growth_cap_per_interval`.
    growth_mode = models.CharField(max_length=12, choices=GrowthMode.choices, default=GrowthMode.STEP)
    growth_step = models.PositiveSmallIntegerField(default=1)
    growth_percent = models.PositiveSmallIntegerField(default=10, help_text="Percentage mode only.")
    growth_cap_per_interval = models.PositiveSmallIntegerField(
        default=5, help_text="Percentage mode: at most this many numbers per interval."
    )
    growth_interval_minutes = models.PositiveSmallIntegerField(default=5)
    # Staff-only: the seed's rule (the default, the seed article's every rule) or the adaptive policy.
    policy = models.CharField(
        "scaling policy", max_length=10, choices=ScalingPolicy.choices, default=ScalingPolicy.SEED
    )
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(m2m_fields=[campaigns, destination_numbers])

    class Meta:
        verbose_name = "auto-scaling settings"
        verbose_name_plural = "auto-scaling settings"
        constraints = [
            models.CheckConstraint(condition=Q(scope__in=Scope.values), name="autoscaling_scope_valid"),
            models.CheckConstraint(condition=Q(growth_step__gte=1), name="autoscaling_growth_step_positive"),
            models.CheckConstraint(
                condition=Q(growth_interval_minutes__gte=1), name="autoscaling_growth_interval_positive"
            ),
            models.CheckConstraint(
                condition=Q(growth_mode__in=GrowthMode.values), name="autoscaling_growth_mode_valid"
            ),
            models.CheckConstraint(
                condition=Q(growth_percent__gte=1, growth_percent__lte=100),
                name="autoscaling_growth_percent_1_to_100",
            ),
            models.CheckConstraint(
                condition=Q(growth_cap_per_interval__gte=1), name="autoscaling_growth_cap_positive"
            ),
            models.CheckConstraint(
                condition=Q(policy__in=ScalingPolicy.values), name="autoscaling_policy_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Auto-scaling settings of {self.account}"


class PoolGrowth(models.Model):
    """The growth facts of one pool, kept in the scaling app so `ringpools` stays free of them.

    `scaling_on_since` is when a grow pass first saw auto-scaling apply to the pool (feature, scope,
    pool flag, pool active), cleared by the pass that sees it no longer apply: overflows from before
    do not count. `last_grown_at` is the decision record: a pass takes a pool's growth by
    compare-and-swap on it, in the transaction that queues the growth's purchase orders, so any
    number of passes at once grow a pool once and no decision exists without its orders.
    """

    pool = models.OneToOneField(RingPool, on_delete=models.CASCADE, primary_key=True, related_name="growth")
    scaling_on_since = models.DateTimeField(null=True, blank=True)
    last_grown_at = models.DateTimeField(null=True, blank=True)
    # Set when a `cap_reached` event was recorded; cleared when the pool is below its maximum again,
    # so the event is recorded once per episode, not once a pass.
    capped_since = models.DateTimeField(null=True, blank=True)
    # The overflows of the hour of `last_grown_at` that the growth then answered: the hourly figures
    # count whole hours, so the next pass subtracts these to count the overflows since the growth.
    overflows_answered = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "pool growth state"
        indexes = [
            models.Index(fields=["scaling_on_since"], name="poolgrowth_on_since"),
        ]

    def __str__(self) -> str:
        return f"Growth of pool {self.pool_id}"


class ScalingEvent(models.Model):
    """The audit trail of pool numbers and scaling decisions. Append-only: never edited or deleted."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="scaling_events")
    # No index of its own: scalingevent_pool_latest (pool, -created_at) serves every lookup by pool,
    # and each index is written once per event (a month-end prune writes 100,000s at once).
    pool = models.ForeignKey(
        RingPool, on_delete=models.PROTECT, related_name="scaling_events", db_index=False
    )
    number = models.ForeignKey(
        PromoNumber, null=True, blank=True, on_delete=models.PROTECT, related_name="scaling_events"
    )
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    reason = models.CharField(max_length=300)
    figures = models.JSONField(default=dict, blank=True, help_text="The facts behind the decision.")
    # Not indexed: nothing lists events by actor (deleting a user, which scans, is rare).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["pool", "-created_at"], name="scalingevent_pool_latest")]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=EventKind.values), name="scalingevent_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.reason}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Scaling events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Scaling events are never deleted.")


class CarrierOrder(models.Model):
    """The carrier outbox: a purchase or a release, recorded before the carrier is called.

    A carrier call is not part of any database transaction and may fail after it succeeded (a
    timeout). So the intent is committed first, the carrier is called outside any transaction, and the
    answer is recorded afterwards; an order still pending after a crash or a timeout is reconciled by a
    later pass (`scaling.outbox.carrier_orders_reconcile`): a purchase is looked up at the carrier by
    its `request_id` (the friendly name the number was bought under) and put in its pool or released;
    a release is sent again (releases are idempotent). Whatever was killed when, every number the
    carrier bills us for ends in exactly one pool, or released.
    """

    kind = models.CharField(max_length=10, choices=OrderKind.choices)
    state = models.CharField(max_length=10, choices=OrderState.choices, default=OrderState.PENDING)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="carrier_orders")
    pool = models.ForeignKey(RingPool, on_delete=models.PROTECT, related_name="carrier_orders")
    # Release: the number being released. Purchase: the number once it is in the pool.
    number = models.ForeignKey(
        PromoNumber, null=True, blank=True, on_delete=models.PROTECT, related_name="carrier_orders"
    )
    role = models.CharField(max_length=10, choices=NumberRole.choices, default=NumberRole.ROTATING)
    # Unique by a constraint rather than unique=True: the latter adds a second (LIKE) index on
    # PostgreSQL that no query uses and every order writes.
    request_id = models.CharField(
        max_length=64, help_text="Our idempotency key; the friendly name at the carrier."
    )
    offer = models.JSONField(default=dict, blank=True, help_text="Purchase: the number the carrier offered.")
    carrier_ref = models.CharField("carrier reference", max_length=64, blank=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    reason = models.CharField(max_length=300)
    figures = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    # A process working on the order holds it until then (compare-and-swap, never a lock held across a
    # carrier call); after that another pass may take it over.
    claimed_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at", "id"],
                name="carrierorder_pending",
                condition=Q(state=OrderState.PENDING),
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["request_id"], name="carrierorder_request_id_unique"),
            models.CheckConstraint(condition=Q(kind__in=OrderKind.values), name="carrierorder_kind_valid"),
            models.CheckConstraint(condition=Q(state__in=OrderState.values), name="carrierorder_state_valid"),
            models.CheckConstraint(
                condition=~Q(kind=OrderKind.RELEASE) | Q(number__isnull=False),
                name="carrierorder_release_names_its_number",
            ),
            models.UniqueConstraint(
                fields=["number"],
                condition=Q(kind=OrderKind.RELEASE, state=OrderState.PENDING),
                name="carrierorder_one_pending_release_per_number",
            ),
            models.CheckConstraint(
                condition=Q(state=OrderState.PENDING, finished_at__isnull=True)
                | (~Q(state=OrderState.PENDING) & Q(finished_at__isnull=False)),
                name="carrierorder_finished_at_matches_state",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.request_id} ({self.get_state_display()})"


class MonthlyPrune(models.Model):
    """A pool's month-end prune, decided once per pool and month (the account's local month).

    Written in the same transaction as the numbers it removes leave rotation, so a retry, a second
    Beat or a manual run in the same month finds it and removes nothing more; the releases it queued
    are finished by the outbox, whatever crashed when.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="monthly_prunes")
    pool = models.ForeignKey(RingPool, on_delete=models.PROTECT, related_name="monthly_prunes")
    month = models.DateField(help_text="First day of the month, in the account's time zone.")
    outcome = models.CharField(max_length=10, choices=PruneOutcome.choices)
    removed = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=300)
    figures = models.JSONField(default=dict, blank=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.PRUNE)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField()
    run = models.UUIDField(editable=False, help_text="The run that decided it.")

    class Meta:
        ordering = ["-month", "pool_id"]
        constraints = [
            models.UniqueConstraint(fields=["pool", "month"], name="monthlyprune_once_per_pool_and_month"),
            models.CheckConstraint(condition=Q(month__day=1), name="monthlyprune_month_is_first_day"),
            models.CheckConstraint(
                condition=Q(outcome__in=PruneOutcome.values), name="monthlyprune_outcome_valid"
            ),
            models.CheckConstraint(
                condition=Q(outcome=PruneOutcome.PRUNED, removed__gt=0)
                | Q(outcome=PruneOutcome.SKIPPED, removed=0),
                name="monthlyprune_removed_matches_outcome",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pool} {self.month:%Y-%m}: {self.reason}"


class InventoryNumber(models.Model):
    """The demo carrier's stock of numbers for sale (RINGPOOL_CARRIER=inventory)."""

    number = PhoneNumberField(unique=True)
    number_type = models.CharField(max_length=12, choices=NumberType.choices)
    area_code = models.CharField(max_length=5, blank=True)
    region = models.CharField(max_length=80, blank=True)
    monthly_cost = models.DecimalField(max_digits=8, decimal_places=2, default=1)
    sold_to = models.ForeignKey(Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sold_at = models.DateTimeField(null=True, blank=True)
    friendly_name = models.CharField(max_length=64, blank=True, help_text="What the buyer named it.")

    class Meta:
        ordering = ["number"]
        verbose_name = "carrier inventory number"

    def __str__(self) -> str:
        return str(self.number)


class BeatProcess(models.Model):
    """A running Beat, seen at each of its ticks. The one holding the lease sends the periodic tasks;
    any other stands by and takes over when the lease lapses (scaling/jobs/beat.py)."""

    holder = models.CharField(max_length=120, unique=True, help_text="host:pid:token")
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    leading_since = models.DateTimeField(null=True, blank=True, help_text="Empty while standing by.")

    class Meta:
        ordering = ["-seen_at"]
        verbose_name = "Beat process"
        verbose_name_plural = "Beat processes"

    def __str__(self) -> str:
        return self.holder


class BeatLease(models.Model):
    """The single lease that makes one Beat the active one: held by renewing it before it expires."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    holder = models.CharField(max_length=120)
    acquired_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="beatlease_single_row")]

    def __str__(self) -> str:
        return f"Held by {self.holder} until {self.expires_at:%H:%M:%S}"


class JobRun(models.Model):
    """The last run of each periodic task, as the workers saw it (one row per task, kept current)."""

    task = models.CharField(max_length=120, unique=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_succeeded_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=10, blank=True, help_text='"ok" or "failed"')
    last_error = models.CharField(max_length=300, blank=True)
    last_result = models.CharField(max_length=100, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    runs = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["task"]
        verbose_name = "periodic task run"

    def __str__(self) -> str:
        return self.task


class Alert(models.Model):
    """One episode of a condition auto-scaling cannot fix by itself (scaling/alerts): first seen, open
    once it has lasted its condition's grace (`opened_at`; until then pending, shown to nobody), kept
    current while it lasts, resolved when it ends. At most one unresolved episode per condition and
    subject: the database refuses a second. Written only by `scaling.alerts.episodes`."""

    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    subject = models.CharField(max_length=120, help_text='What it is about, e.g. "pool:12" or "system".')
    severity = models.CharField(max_length=12, choices=AlertSeverity.choices, default=AlertSeverity.PROBLEM)
    account = models.ForeignKey(
        Account,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alerts",
        help_text="Empty: the system.",
    )
    pool = models.ForeignKey(RingPool, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    reason = models.CharField(max_length=300)
    advice = models.CharField("what to do", max_length=300, blank=True)
    figures = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField()
    seen_at = models.DateTimeField(help_text="When the condition was last seen to hold.")
    opened_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=300, blank=True)
    mailed_open_at = models.DateTimeField(null=True, blank=True, editable=False)
    mailed_resolved_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject"],
                condition=Q(resolved_at__isnull=True),
                name="alert_one_unresolved_episode",
            ),
            models.CheckConstraint(condition=Q(kind__in=AlertKind.values), name="alert_kind_valid"),
            models.CheckConstraint(
                condition=Q(resolved_at__isnull=True) | Q(opened_at__isnull=False),
                name="alert_resolved_only_once_open",
            ),
        ]
        indexes = [models.Index(fields=["account", "resolved_at"], name="alert_account_open")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None and self.resolved_at is None
