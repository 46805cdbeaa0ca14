"""Writes of the scaling app. Every change to a pool's numbers goes through here and leaves a ScalingEvent."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, User
from ringpools.choices import NumberRole, NumberState, NumberType, OverflowMode
from ringpools.models import Campaign, DestinationNumber, PromoNumber, RingPool
from scaling.carrier import AvailableNumber, Carrier, get_carrier
from scaling.choices import EventKind, OrderState, Scope, Trigger
from scaling.models import AutoScalingSettings, ScalingEvent
from scaling.outbox import Removal, carrier_orders_run, numbers_release_begin, purchase_order_place


def auto_scaling_settings_for(account: Account) -> AutoScalingSettings:
    settings, _ = AutoScalingSettings.objects.get_or_create(account=account)
    return settings


def scaling_event_record(
    *,
    pool: RingPool,
    kind: str,
    trigger: str,
    reason: str,
    number: PromoNumber | None = None,
    figures: dict[str, Any] | None = None,
    actor: User | None = None,
) -> ScalingEvent:
    return ScalingEvent.objects.create(
        account_id=pool.account_id,
        pool=pool,
        number=number,
        kind=kind,
        trigger=trigger,
        reason=reason,
        figures=figures or {},
        actor=actor,
        created_at=timezone.now(),
    )


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
    **options: Any,
) -> RingPool:
    """Create a pool with the account's auto-scaling defaults (SPEC §5), its overflow number if the
    account includes one, and `size` rotating numbers from the carrier."""
    defaults = auto_scaling_settings_for(account)
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
        **options,
    )
    pool.full_clean()
    pool._history_user = actor
    with transaction.atomic():
        pool.save()
        scaling_event_record(
            pool=pool,
            kind=EventKind.POOL_CREATED,
            trigger=Trigger.SETUP,
            actor=actor,
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
            reason="overflow number of a new pool",
        )
    for _ in range(size):
        if (
            pool_number_add(
                pool=pool,
                trigger=Trigger.SETUP,
                actor=actor,
                carrier=carrier,
                reason="initial size of a new pool",
            )
            is None
        ):
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
def ringpool_update(*, pool: RingPool, actor: User | None, **changes: Any) -> RingPool:
    """Change a pool's settings; records the before and after of every field that changed."""
    unknown = set(changes) - set(POOL_SETTINGS) - {"campaign", "destination_number"}
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
    pool._history_user = actor
    pool.save(update_fields=[f.removesuffix("_id") for f in diff])
    scaling_event_record(
        pool=pool,
        kind=EventKind.SETTINGS_CHANGED,
        trigger=Trigger.MANUAL,
        actor=actor,
        reason="changed " + ", ".join(f.removesuffix("_id") for f in diff),
        figures=diff,
    )
    return pool


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | list | dict | type(None)) else str(value)


@dataclass(frozen=True)
class NumberChoice:
    available: AvailableNumber
    match: str  # "area_code", "region", "toll_free", "toll_free_fallback", "any_local"


def number_choose(*, pool: RingPool, carrier: Carrier) -> NumberChoice | None:
    """SPEC §6: a local pool takes the same area code, then the same region, then toll-free."""
    if pool.number_type == NumberType.TOLL_FREE:
        found = carrier.find_available(number_type=NumberType.TOLL_FREE)
        return NumberChoice(found, "toll_free") if found else None
    searches = []
    if pool.area_code:
        searches.append(("area_code", {"number_type": NumberType.LOCAL, "area_code": pool.area_code}))
    if pool.region:
        searches.append(("region", {"number_type": NumberType.LOCAL, "region": pool.region}))
    if not searches:
        searches.append(("any_local", {"number_type": NumberType.LOCAL}))
    searches.append(("toll_free_fallback", {"number_type": NumberType.TOLL_FREE}))
    for match, criteria in searches:
        found = carrier.find_available(**criteria)
        if found is not None:
            return NumberChoice(found, match)
    return None


def pool_number_add(
    *,
    pool: RingPool,
    trigger: str,
    reason: str,
    role: str = NumberRole.ROTATING,
    actor: User | None = None,
    figures: dict[str, Any] | None = None,
    carrier: Carrier | None = None,
) -> PromoNumber | None:
    """Buy a number from the carrier and put it in the pool (through the outbox, so a purchase whose
    answer is lost is finished by reconciliation). None, with a FAILED event, if none was added now.

    Call it outside any transaction: the carrier is never called while the database holds locks.
    """
    carrier = carrier or get_carrier()
    figures = dict(figures or {})
    choice = number_choose(pool=pool, carrier=carrier)
    if choice is None:
        scaling_event_record(
            pool=pool,
            kind=EventKind.FAILED,
            trigger=trigger,
            actor=actor,
            figures=figures,
            reason="the carrier has no number to offer",
        )
        return None
    figures["match"] = choice.match
    order = purchase_order_place(
        pool=pool,
        available=choice.available,
        carrier=carrier,
        trigger=trigger,
        reason=reason,
        role=role,
        figures=figures,
        actor=actor,
    )
    if order.state != OrderState.DONE or order.number is None or order.number.state != NumberState.ACTIVE:
        return None
    return order.number


def pool_number_remove(
    *,
    number: PromoNumber,
    trigger: str,
    reason: str,
    actor: User | None = None,
    figures: dict[str, Any] | None = None,
    carrier: Carrier | None = None,
) -> PromoNumber:
    """Take a number out of rotation at once and release it to the carrier, so it stops counting in
    the bill. The carrier is called after the number left rotation, outside any transaction; if it
    fails, the release is retried by reconciliation and the number never returns to rotation."""
    orders = numbers_release_begin(
        pool=number.pool, removals=[Removal(number.pk, reason, figures or {})], trigger=trigger, actor=actor
    )
    carrier_orders_run(orders=orders, carrier=carrier)
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
    locked._history_user = actor
    locked.save(update_fields=["pinned_at", "pinned_by", "pin_reason"])
    scaling_event_record(
        pool=locked.pool,
        number=locked,
        kind=EventKind.NUMBER_PINNED,
        trigger=Trigger.MANUAL,
        actor=actor,
        reason=f"pinned: {reason}"[:300],
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
    locked._history_user = actor
    locked.save(update_fields=["pinned_at", "pinned_by", "pin_reason"])
    scaling_event_record(
        pool=locked.pool,
        number=locked,
        kind=EventKind.NUMBER_UNPINNED,
        trigger=Trigger.MANUAL,
        actor=actor,
        reason=f"unpinned: {reason}"[:300],
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
    selected = {"campaigns": campaigns, "destination_numbers": destination_numbers}
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
    current.skip_history_when_saving = True
    try:
        current.campaigns.set(campaigns)
        current.destination_numbers.set(destination_numbers)
    finally:
        del current.skip_history_when_saving
    current._history_user = actor
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
