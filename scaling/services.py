"""Writes of the scaling app: pools, their numbers, pins and the account's auto-scaling settings.

Every change to a pool's numbers, size or settings goes through a service here and leaves a
`ScalingEvent` (written by `scaling.audit`); staff, growth, pruning and the demo use the same ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from typing import Any, TypedDict, Unpack

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account, User
from config.history import history_by, history_dated, history_skipped
from ringpools.choices import NumberRole, NumberState, NumberType, OverflowMode
from ringpools.models import Campaign, DestinationNumber, PromoNumber, RingPool
from scaling.audit import scaling_event_record
from scaling.choices import EventKind, OrderState, Scope, Trigger
from scaling.models import AutoScalingSettings, CarrierOrder
from scaling.supply.carrier import Carrier, get_carrier
from scaling.supply.outbox import (
    Removal,
    carrier_orders_run,
    numbers_release_begin,
    purchase_order_run,
    purchase_orders_queue,
)


def auto_scaling_settings_for(account: Account, *, now: datetime | None = None) -> AutoScalingSettings:
    """The account's auto-scaling settings, created with the defaults (its history dated `now`) if it
    has none yet."""
    existing = AutoScalingSettings.objects.filter(account=account).first()
    if existing is not None:
        return existing
    fresh = AutoScalingSettings(account=account)
    try:
        with transaction.atomic(), history_dated(fresh, now):
            fresh.save(force_insert=True)
    except IntegrityError:  # created at the same moment by another request
        return AutoScalingSettings.objects.get(account=account)
    return fresh


class PoolOptions(TypedDict, total=False):
    """Settings a new pool may take instead of the model's defaults."""

    key: str
    lease_seconds: int
    min_size: int
    max_size: int
    is_active: bool
    allowed_origins: list[str]


class PoolChanges(TypedDict, total=False):
    """The settings of a pool that `ringpool_update` changes (the audited ones, POOL_SETTINGS)."""

    name: str
    campaign: Campaign
    destination_number: DestinationNumber
    number_type: str
    area_code: str
    region: str
    lease_seconds: int
    overflow_mode: str
    auto_scaling_enabled: bool
    min_size: int
    max_size: int
    is_active: bool
    allowed_origins: list[str]


def ringpool_create(
    *,
    account: Account,
    campaign: Campaign,
    destination_number: DestinationNumber,
    name: str,
    number_type: str = NumberType.LOCAL,
    area_code: str = "",
    region: str = "",
    size: int = 0,
    actor: User | None = None,
    carrier: Carrier | None = None,
    now: datetime | None = None,
    **options: Unpack[PoolOptions],
) -> RingPool:
    """Create a pool with the account's auto-scaling defaults (SPEC §5), its overflow number if the
    account includes one, and `size` rotating numbers from the carrier, at `now` (default: now)."""
    unknown = set(options) - set(PoolOptions.__annotations__)
    if unknown:
        raise ValidationError(f"Not pool options: {', '.join(sorted(unknown))}")
    defaults = auto_scaling_settings_for(account)
    now = now or timezone.now()
    pool = RingPool(
        account=account,
        campaign=campaign,
        destination_number=destination_number,
        name=name,
        number_type=number_type,
        area_code=area_code,
        region=region,
        auto_scaling_enabled=defaults.enable_for_new_pools,
        overflow_mode=(
            OverflowMode.OVERFLOW_NUMBER
            if defaults.include_overflow_number
            else OverflowMode.DESTINATION_NUMBER
        ),
        created_at=now,
        **options,
    )
    pool.full_clean()
    history_by(pool, actor)
    with transaction.atomic():
        with history_dated(pool, now):
            pool.save()
        scaling_event_record(
            account_id=pool.account_id,
            pool_id=pool.pk,
            kind=EventKind.POOL_CREATED,
            trigger=Trigger.SETUP,
            actor=actor,
            now=now,
            reason="created with the account's auto-scaling defaults",
            figures={
                "auto_scaling_enabled": pool.auto_scaling_enabled,
                "overflow_mode": pool.overflow_mode,
                "requested_size": size,
            },
        )
    carrier = carrier or get_carrier()
    if defaults.include_overflow_number:
        pool_number_add(
            pool=pool,
            role=NumberRole.OVERFLOW,
            trigger=Trigger.SETUP,
            actor=actor,
            carrier=carrier,
            now=now,
            reason="overflow number of a new pool",
        )
    for _ in range(size):
        bought = pool_number_add(
            pool=pool,
            trigger=Trigger.SETUP,
            actor=actor,
            carrier=carrier,
            now=now,
            reason="initial size of a new pool",
        )
        if bought.number is None:
            break
    return pool


# Pool fields whose changes are audited; the hot-path facts (last_overflow_at) are figures, not settings.
POOL_SETTINGS = (
    "name",
    "campaign_id",
    "destination_number_id",
    "number_type",
    "area_code",
    "region",
    "lease_seconds",
    "overflow_mode",
    "auto_scaling_enabled",
    "min_size",
    "max_size",
    "is_active",
    "allowed_origins",
)


@transaction.atomic
def ringpool_update(*, pool: RingPool, actor: User | None, **changes: Unpack[PoolChanges]) -> RingPool:
    """Change a pool's settings; records the before and after of every field that changed."""
    unknown = set(changes) - set(PoolChanges.__annotations__)
    if unknown:
        raise ValidationError(f"Not pool settings: {', '.join(sorted(unknown))}")
    before = RingPool.objects.select_for_update().get(pk=pool.pk)
    for field, value in changes.items():
        setattr(pool, field, value)
    pool.full_clean()
    diff = {
        field: {"before": _plain(getattr(before, field)), "after": _plain(getattr(pool, field))}
        for field in POOL_SETTINGS
        if getattr(before, field) != getattr(pool, field)
    }
    if not diff:
        return pool
    history_by(pool, actor)
    pool.save(update_fields=[f.removesuffix("_id") for f in diff])
    scaling_event_record(
        account_id=pool.account_id,
        pool_id=pool.pk,
        kind=EventKind.SETTINGS_CHANGED,
        trigger=Trigger.MANUAL,
        actor=actor,
        now=timezone.now(),
        reason="changed " + ", ".join(f.removesuffix("_id") for f in diff),
        figures=diff,
    )
    return pool


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | list | dict | type(None)) else str(value)


@dataclass(frozen=True)
class NumberPurchase:
    """What one purchase for a pool came to: the number in the pool, a purchase the carrier has not
    answered yet (reconciliation finishes it), or why nothing was added (a FAILED event says it too)."""

    number: PromoNumber | None = None
    pending: bool = False
    failure: str = ""


def pool_numbers_order(
    *,
    pool: RingPool,
    figures: Sequence[dict[str, Any]],
    trigger: str,
    reason: str,
    role: str = NumberRole.ROTATING,
    actor: User | None = None,
    now: datetime | None = None,
) -> list[CarrierOrder]:
    """Order one number for the pool per item of `figures`: pending purchase orders in the carrier
    outbox, which `carrier_orders_run` (here and now) or the carrier tasks (fanned out over workers)
    carry out; each records a NUMBER_ADDED event when its number joins the pool, or FAILED events
    saying why not yet. Joins the caller's transaction, so growth commits its decision with its orders.
    `reason` may hold `MATCH_SLOT`, worded at purchase from the number chosen (same area code...)."""
    return purchase_orders_queue(
        pool=pool, figures=figures, trigger=trigger, reason=reason, role=role, actor=actor, now=now
    )


def pool_number_add(
    *,
    pool: RingPool,
    trigger: str,
    reason: str,
    role: str = NumberRole.ROTATING,
    actor: User | None = None,
    figures: dict[str, Any] | None = None,
    carrier: Carrier | None = None,
    now: datetime | None = None,
) -> NumberPurchase:
    """Buy a number for the pool now, through the outbox (a purchase whose answer is lost is
    finished by reconciliation, never bought twice). Staff, pool set-up and the demo buy here.

    Call it outside any transaction: the carrier is never called while the database holds locks.
    """
    now = now or timezone.now()
    (order,) = pool_numbers_order(
        pool=pool,
        figures=[dict(figures or {})],
        trigger=trigger,
        reason=reason,
        role=role,
        actor=actor,
        now=now,
    )
    order = purchase_order_run(order, carrier=carrier or get_carrier(), now=now)
    if order.state == OrderState.PENDING:
        return NumberPurchase(pending=True, failure=order.last_error)
    if order.state == OrderState.DONE and order.number is not None:
        if order.number.state == NumberState.ACTIVE:
            return NumberPurchase(number=order.number)
        return NumberPurchase(failure="bought, but the pool no longer wanted it: released again")
    return NumberPurchase(failure=order.last_error or "the purchase failed")


def pool_number_remove(
    *,
    number: PromoNumber,
    trigger: str,
    reason: str,
    actor: User | None = None,
    figures: dict[str, Any] | None = None,
    carrier: Carrier | None = None,
    now: datetime | None = None,
) -> PromoNumber:
    """Take a number out of rotation at once and release it to the carrier, so it stops counting in
    the bill. The carrier is called after the number left rotation, outside any transaction; if it
    fails, the release is retried by reconciliation and the number never returns to rotation."""
    if number.pool is None:
        raise ValidationError("The number is in no pool.")
    now = now or timezone.now()
    orders = numbers_release_begin(
        pool=number.pool,
        removals=[Removal(number.pk, reason, figures or {})],
        trigger=trigger,
        actor=actor,
        now=now,
    )
    carrier_orders_run(orders=orders, carrier=carrier, now=now)
    return PromoNumber.objects.get(pk=number.pk)


# --- Pins: staff keep a number through month-end pruning -------------------------------------------


@transaction.atomic
def promo_number_pin(*, number: PromoNumber, actor: User, reason: str) -> PromoNumber:
    """Pin a number of a pool so the month-end prune never removes it; who, when and why are kept."""
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why the number is pinned.")
    locked = PromoNumber.objects.select_for_update(of=("self",)).get(pk=number.pk)
    if locked.pool_id is None or locked.state != NumberState.ACTIVE:
        raise ValidationError("Only an active number of a pool can be pinned.")
    before = {"pin_reason": locked.pin_reason, "pinned_by": locked.pinned_by_id}
    now = timezone.now()
    locked.pinned_at, locked.pinned_by, locked.pin_reason = now, actor, reason[:200]
    history_by(locked, actor)
    locked.save(update_fields=["pinned_at", "pinned_by", "pin_reason"])
    scaling_event_record(
        account_id=locked.account_id,
        pool_id=locked.pool_id,
        number_id=locked.pk,
        kind=EventKind.NUMBER_PINNED,
        trigger=Trigger.MANUAL,
        actor=actor,
        now=now,
        reason=f"pinned: {reason}",
        figures={"before": before, "after": {"pin_reason": locked.pin_reason, "pinned_by": actor.pk}},
    )
    return locked


@transaction.atomic
def promo_number_unpin(*, number: PromoNumber, actor: User, reason: str) -> PromoNumber:
    """Take a pin off: the number is again subject to the month-end prune."""
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why the pin is taken off.")
    locked = PromoNumber.objects.select_for_update(of=("self",)).get(pk=number.pk)
    if locked.pinned_at is None:
        return locked
    before = {
        "pinned_at": locked.pinned_at.isoformat(),
        "pinned_by": locked.pinned_by_id,
        "pin_reason": locked.pin_reason,
    }
    locked.pinned_at, locked.pinned_by, locked.pin_reason = None, None, ""
    history_by(locked, actor)
    locked.save(update_fields=["pinned_at", "pinned_by", "pin_reason"])
    if locked.pool_id is None:
        return locked  # it left its pool: the number's own history keeps the change
    scaling_event_record(
        account_id=locked.account_id,
        pool_id=locked.pool_id,
        number_id=locked.pk,
        kind=EventKind.NUMBER_UNPINNED,
        trigger=Trigger.MANUAL,
        actor=actor,
        now=timezone.now(),
        reason=f"unpinned: {reason}",
        figures={"before": before, "after": {}},
    )
    return locked


class StaleSettingsError(ValidationError):
    """The settings changed after the person's form was drawn; saving it would undo someone's change."""


@dataclass(frozen=True)
class SettingsChange:
    settings: AutoScalingSettings
    # field name -> {"before": ..., "after": ...}; campaigns and destination numbers as sorted names
    changes: dict[str, dict[str, Any]] = dataclass_field(default_factory=dict)


@transaction.atomic
def auto_scaling_settings_update(
    *,
    account: Account,
    actor: User | None,
    enable_for_new_pools: bool,
    include_overflow_number: bool,
    scope: str,
    campaigns: Iterable[Campaign],
    destination_numbers: Iterable[DestinationNumber],
    seen_updated_at: datetime | None = None,
) -> SettingsChange:
    """Change the account's page Settings → Network → RingPool Auto-Scaling (SPEC §5).

    All or nothing: a campaign or destination number of another account, a selective scope with
    nothing selected, or settings saved by someone else since `seen_updated_at` change nothing.
    The history (who, when, before and after, selections included) is one simple-history record.
    """
    campaigns, destination_numbers = list(campaigns), list(destination_numbers)
    if scope not in Scope.values:
        raise ValidationError(f"Unknown scope {scope!r}.", code="scope")
    if any(c.account_id != account.pk for c in campaigns) or any(
        d.account_id != account.pk for d in destination_numbers
    ):
        raise ValidationError("Campaigns and destination numbers must be the account's own.", code="foreign")
    if scope == Scope.SELECTED_CAMPAIGNS and not campaigns:
        raise ValidationError("Select at least one campaign, or choose all campaigns.", code="empty")
    if scope == Scope.SELECTED_DESTINATIONS and not destination_numbers:
        raise ValidationError(
            "Select at least one destination number, or choose another scope.", code="empty"
        )
    auto_scaling_settings_for(account)
    # The row lock orders concurrent saves; the timestamp check refuses a form drawn before the other.
    current = AutoScalingSettings.objects.select_for_update().get(account=account)
    if seen_updated_at is not None and current.updated_at != seen_updated_at:
        raise StaleSettingsError(
            "Someone else saved these settings after you opened the page. Nothing was changed: "
            "review their change and try again.",
            code="stale",
        )
    before = _settings_snapshot(current)
    current.enable_for_new_pools = enable_for_new_pools
    current.include_overflow_number = include_overflow_number
    current.scope = scope
    selected: dict[str, list[Any]] = {"campaigns": campaigns, "destination_numbers": destination_numbers}
    after = {
        **{name: getattr(current, name) for name in ("enable_for_new_pools", "include_overflow_number")},
        "scope": scope,
        **{name: sorted(str(item) for item in items) for name, items in selected.items()},
    }
    changes = {
        name: {"before": before[name], "after": after[name]} for name in after if before[name] != after[name]
    }
    if not changes:
        return SettingsChange(settings=current)
    # The selections are written without history of their own, so that the save below records the
    # whole change (fields and selections) as one history entry instead of three.
    with history_skipped(current):
        current.campaigns.set(campaigns)
        current.destination_numbers.set(destination_numbers)
    history_by(current, actor)
    current.save()
    return SettingsChange(settings=current, changes=changes)


def _settings_snapshot(current: AutoScalingSettings) -> dict[str, Any]:
    return {
        "enable_for_new_pools": current.enable_for_new_pools,
        "include_overflow_number": current.include_overflow_number,
        "scope": current.scope,
        "campaigns": sorted(str(c) for c in current.campaigns.all()),
        "destination_numbers": sorted(str(d) for d in current.destination_numbers.all()),
    }
