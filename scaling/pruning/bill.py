"""The number bill of an account: what it pays for now, and the forecast after the planned prune.

The account pays for every number it holds at the carrier (`NumberState.held()`: active, and being
released until the carrier confirms). Numbers being released and numbers the month-end prune plans to
remove are not billed next month.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce

from accounts.models import Account
from ringpools.choices import NumberState
from ringpools.models import PromoNumber
from scaling.pruning.plans import PoolPrunePlan, account_prune_preview


@dataclass(frozen=True)
class Bill:
    account_id: int
    held: int
    held_cost: Decimal
    releasing: int
    releasing_cost: Decimal
    planned: int
    planned_cost: Decimal

    @property
    def forecast(self) -> int:
        return self.held - self.releasing - self.planned

    @property
    def forecast_cost(self) -> Decimal:
        return self.held_cost - self.releasing_cost - self.planned_cost

    @property
    def saving(self) -> Decimal:
        return self.held_cost - self.forecast_cost

    def __str__(self) -> str:
        return (
            f"{self.held} numbers held, {self.held_cost:.2f}/month now"
            f" ({self.releasing} being released, {self.releasing_cost:.2f});"
            f" prune plans {self.planned} ({self.planned_cost:.2f});"
            f" next month: {self.forecast} numbers, {self.forecast_cost:.2f}/month"
        )


_ZERO = Value(Decimal(0), output_field=DecimalField(max_digits=12, decimal_places=2))


def bills_for(*, account_ids: Iterable[int], planned: dict[int, tuple[int, Decimal]]) -> dict[int, Bill]:
    """Bills of several accounts in one query; `planned` gives each account's planned removals
    (count, monthly cost), as drawn by `scaling.pruning.prune_plans`."""
    account_ids = list(account_ids)
    releasing = Q(state=NumberState.RELEASING)
    rows = (
        PromoNumber.objects.filter(account_id__in=account_ids, state__in=NumberState.held())
        .order_by()
        .values("account_id")
        .annotate(
            held=Count("id"),
            held_cost=Coalesce(Sum("monthly_cost"), _ZERO),
            releasing=Count("id", filter=releasing),
            releasing_cost=Coalesce(Sum("monthly_cost", filter=releasing), _ZERO),
        )
    )
    found = {row["account_id"]: row for row in rows}
    bills = {}
    for account_id in account_ids:
        row = found.get(account_id, {})
        count, cost = planned.get(account_id, (0, Decimal(0)))
        bills[account_id] = Bill(
            account_id=account_id,
            held=row.get("held", 0),
            held_cost=row.get("held_cost", Decimal(0)),
            releasing=row.get("releasing", 0),
            releasing_cost=row.get("releasing_cost", Decimal(0)),
            planned=count,
            planned_cost=cost,
        )
    return bills


def planned_by_account(plans: Iterable[PoolPrunePlan]) -> dict[int, tuple[int, Decimal]]:
    totals: dict[int, tuple[int, Decimal]] = {}
    for plan in plans:
        count, cost = totals.get(plan.pool.account_id, (0, Decimal(0)))
        for verdict in plan.removals:
            count, cost = count + 1, cost + verdict.number.monthly_cost
        totals[plan.pool.account_id] = (count, cost)
    return totals


def account_bill(*, account: Account, now: datetime, plans: Iterable[PoolPrunePlan] | None = None) -> Bill:
    """The account's bill now and next month's forecast after the prune planned as of `now`."""
    plans = account_prune_preview(account=account, now=now) if plans is None else plans
    planned = planned_by_account(plans).get(account.pk, (0, Decimal(0)))
    return bills_for(account_ids=[account.pk], planned={account.pk: planned})[account.pk]
