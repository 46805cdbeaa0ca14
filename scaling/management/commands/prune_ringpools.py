from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Account
from ringpools.choices import NumberState
from ringpools.models import RingPool
from scaling.applicability import applicable_pools, pool_applicability, pools_with_applicability
from scaling.choices import PruneOutcome
from scaling.models import MonthlyPrune
from scaling.pruning.bill import bills_for
from scaling.pruning.rule import PRUNE_RULE_WORDS, NumberVerdict, PruneRule, prune_month
from scaling.pruning.run import PoolPruneResult, ringpools_prune, zones_closing_month
from scaling.supply.outbox import carrier_orders_of, carrier_orders_run


def counted(count: int, one: str, many: str | None = None) -> str:
    """`1 pool`, `2 pools`: the count with its noun in the right number."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


class Command(BaseCommand):
    help = (
        "Run the month-end prune as if the time were --at (default: now): on pools whose account is on "
        "the last day of its month, in its time zone, remove unused numbers (SPEC §7). Prints, per pool, "
        "what goes and what stays and why (-v 2: every number's verdict), the pools outside auto-scaling's "
        "scope whose numbers are in the bill, and each account's bill. --dry-run changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--at", help="ISO-8601 instant, e.g. 2026-11-30T20:00:00Z (default: now)")
        parser.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")

    def handle(self, *args: Any, at: str | None = None, dry_run: bool = False, **options: Any) -> None:
        now = self.now = _instant(at)
        self.verbose = options.get("verbosity", 1) >= 2
        mode = "dry run: nothing is changed" if dry_run else "real run"
        self.stdout.write(f"Month-end prune at {now.astimezone(ZoneInfo('UTC')):%Y-%m-%d %H:%M} UTC ({mode})")
        release = (
            None if dry_run else (lambda ids: carrier_orders_run(orders=carrier_orders_of(ids), now=now))
        )
        already = _decided_this_month(now)
        results = ringpools_prune(now=now, dry_run=dry_run, release=release, complete=True)
        totals = self._report(results, dry_run=dry_run)
        self._closing(now, totals, already=already, dry_run=dry_run)

    def _report(self, results: Iterable[PoolPruneResult], *, dry_run: bool) -> dict[str, Any]:
        totals: dict[str, Any] = {"pools": 0, "removed": 0, "cost": Decimal(0), "outside": 0}
        planned: dict[int, tuple[int, Decimal]] = {}
        outside = _outside_scope(self.now)
        account: Account | None = None
        for result in results:
            plan = result.plan
            if account is None or plan.pool.account_id != account.pk:
                if account is not None:
                    self._account_end(account, outside, planned if dry_run else {}, totals)
                account = plan.pool.account
                self._heading(account, plan.local_date)
            self._pool(result, dry_run=dry_run)
            cost = sum((v.number.monthly_cost for v in result.removed), Decimal(0))
            count, total = planned.get(account.pk, (0, Decimal(0)))
            planned[account.pk] = (count + len(result.removed), total + cost)
            totals["pools"] += 1
            totals["removed"] += len(result.removed)
            totals["cost"] += cost
        if account is not None:
            self._account_end(account, outside, planned if dry_run else {}, totals)
        # Accounts on their last day with no pool in auto-scaling's scope: their billed pools still show.
        for account_id in list(outside):
            first = outside[account_id][0]
            self._heading(first.account, self.now.astimezone(ZoneInfo(str(first.account.timezone))).date())
            self._account_end(first.account, outside, {}, totals)
        return totals

    def _heading(self, account: Account, local_date: date) -> None:
        self.stdout.write("")
        self.stdout.write(
            self.style.MIGRATE_HEADING(
                f"{account.name} ({account.timezone}; local date {local_date:%A %d %B %Y}, "
                "the last day of the month)"
            )
        )

    def _account_end(
        self,
        account: Account,
        outside: dict[int, list[RingPool]],
        planned: dict[int, tuple[int, Decimal]],
        totals: dict[str, Any],
    ) -> None:
        for pool in outside.pop(account.pk, []):
            why = pool_applicability(pool).reason
            numbers = getattr(pool, "billed_numbers", 0)
            self.stdout.write(
                f'  Pool "{pool.name}" ({counted(numbers, "number")} in the bill): not pruned, '
                f"auto-scaling does not apply ({why})"
            )
            totals["outside"] += 1
        self._bill(account, planned)

    def _pool(self, result: PoolPruneResult, *, dry_run: bool) -> None:
        plan = result.plan
        rotating = plan.plan.figures.get("rotating", 0)
        if result.outcome == "already":
            verdict = "already decided this month by another run"
        elif result.outcome == PruneOutcome.PRUNED:
            verdict = result.reason
        else:
            verdict = f"nothing removed: {result.reason}"
        self.stdout.write(
            f'  Pool "{plan.pool.name}" ({rotating} rotating, minimum {plan.pool.min_size}): {verdict}'
        )
        gone = "would go" if dry_run else "removed "
        for removed in result.removed:
            self.stdout.write(f"    {gone}  {_line(removed)}")
        kept = [v for v in plan.plan.verdicts if v.number.id not in {r.number.id for r in result.removed}]
        if self.verbose:
            for kept_one in kept:
                self.stdout.write(f"    stays     {_line(kept_one)}")
        elif kept:
            reasons = Counter(PRUNE_RULE_WORDS[PruneRule(v.rule)] for v in kept)
            listed = ", ".join(f"{reason} ({count})" for reason, count in reasons.most_common())
            self.stdout.write(f"    stays     {counted(len(kept), 'number')} — {listed}; -v 2 lists each one")

    def _bill(self, account: Account, planned: dict[int, tuple[int, Decimal]]) -> None:
        bill = bills_for(account_ids=[account.pk], planned=planned)[account.pk]
        self.stdout.write(f"  Bill: {bill}")

    def _closing(self, now: datetime, totals: dict[str, Any], *, already: int, dry_run: bool) -> None:
        self.stdout.write("")
        waiting = [
            f"{account.name} ({account.timezone}, local date {now.astimezone(account.timezone):%Y-%m-%d})"
            for account in Account.objects.order_by("name")
            if prune_month(now=now, tz=account.timezone) is None
        ]
        if waiting:
            shown = ", ".join(waiting[:10]) + (f" and {len(waiting) - 10} more" if len(waiting) > 10 else "")
            self.stdout.write(f"Not the last day of the month for: {shown}")
        if already:
            self.stdout.write(f"Pools whose prune was already decided this month, left alone: {already}")
        verb = "would remove" if dry_run else "removed"
        outside = (
            f"; {counted(totals['outside'], 'pool')} outside the scope, kept whole"
            if totals["outside"]
            else ""
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"{counted(totals['pools'], 'pool')} decided; {verb} {counted(totals['removed'], 'number')} "
                f"({totals['cost']:.2f}/month less from the next bill){outside}"
            )
        )


def _outside_scope(now: datetime) -> dict[int, list[RingPool]]:
    """Per account on its last local day, its pools outside auto-scaling's scope that have numbers
    in the bill (the prune leaves them whole), with `billed_numbers`."""
    pools = (
        pools_with_applicability(RingPool.objects.filter(account__timezone__in=zones_closing_month(now=now)))
        .exclude(pk__in=applicable_pools().values("pk"))
        .annotate(billed_numbers=Count("numbers", filter=Q(numbers__state__in=NumberState.held())))
        .filter(billed_numbers__gt=0)
        .select_related("account")
        .order_by("account__name", "name")
    )
    outside: dict[int, list[RingPool]] = {}
    for pool in pools:
        outside.setdefault(pool.account_id, []).append(pool)
    return outside


def _decided_this_month(now: datetime) -> int:
    """Pools of accounts on their last day whose prune of this month was decided before."""
    return sum(
        MonthlyPrune.objects.filter(pool__account__timezone=name, month=month).count()
        for name, month in zones_closing_month(now=now).items()
    )


def _line(verdict: NumberVerdict) -> str:
    number = verdict.number
    return f"{number.display:<16} {number.monthly_cost:>6.2f}/month  {verdict.reason}"


def _instant(at: str | None) -> datetime:
    if not at:
        return timezone.now()
    parsed = parse_datetime(at.replace("Z", "+00:00"))
    if parsed is None:
        raise CommandError(f"--at {at!r} is not an ISO-8601 date and time")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)
