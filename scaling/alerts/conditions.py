"""The conditions auto-scaling cannot fix by itself, read from the database as they are now.

Each function returns a `Finding` per subject the condition holds for; `alerts_check` runs them all and
hands what they found to `episodes.alerts_sync`, which opens, keeps and resolves the episodes. The
thresholds are settings (config/settings.py, "Alerts"; the README lists them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from celery.schedules import crontab
from django.conf import settings
from django.db.models import Avg, Count, Min, OuterRef, Q, Subquery, Sum
from django.db.models.fields.json import KT
from django_celery_beat.models import PeriodicTask

from accounts.models import Account
from ringpools.choices import NumberRole, NumberState, NumberType
from ringpools.figures import hour_of
from ringpools.models import PoolHourlyFigures, PromoNumber, RingPool
from scaling.alerts.episodes import Finding, SyncReport, alerts_sync
from scaling.applicability import applicable_pools
from scaling.choices import AlertKind, AlertSeverity, OrderKind, OrderState
from scaling.growth.rule import GrowthVerdict
from scaling.growth.run import overflows_since_last_growth, pace_of, plan_for, pools_due, settings_of
from scaling.models import BeatProcess, CarrierOrder, JobRun, MonthlyPrune
from scaling.spans import ago, span
from scaling.supply.outbox import NO_NUMBER_TO_OFFER

# The hour of figures an alert reads: the current hour and the one before (figures are hourly).
HOUR = timedelta(hours=1)

RESOLUTION: dict[str, str] = {
    AlertKind.AT_CAP: "the pool is below its maximum size again, or turned no visitor away for an hour",
    AlertKind.NO_LOCAL_NUMBER: "the pool's latest purchase was a local number again",
    AlertKind.NO_NUMBER: "the carrier offered a number again (or the purchase was withdrawn)",
    AlertKind.CARRIER_FAILING: "the account's carrier orders go through again",
    AlertKind.GROWTH_BEHIND: "the pool grew, or is no longer due to",
    AlertKind.OVERFLOW_MANUAL: "the pool's overflow share fell below the threshold, or auto-scaling applies",
    AlertKind.BEAT_DOWN: "a Beat leads again",
    AlertKind.JOB_LATE: "the task ran again, or was disabled",
    AlertKind.PRUNE_MISSED: "the month's prune was decided for every pool, or the month after ended",
    AlertKind.OUTBOX_BACKLOG: "no carrier order has waited that long any more",
}


def _money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def _overflow_figures(pool_ids: list[int], now: datetime) -> dict[int, tuple[int, int]]:
    """(presentations, overflows) of each pool over the last hour (the current and previous hours)."""
    rows = (
        PoolHourlyFigures.objects.filter(pool_id__in=pool_ids, hour__gte=hour_of(now - HOUR))
        .values("pool_id")
        .annotate(p=Sum("presentations"), o=Sum("overflows"))
        .order_by()
    )
    return {row["pool_id"]: (row["p"] or 0, row["o"] or 0) for row in rows}


def _pool_subject(pool: RingPool) -> dict[str, object]:
    return {"subject": f"pool:{pool.pk}", "account_id": pool.account_id, "pool_id": pool.pk}


def at_cap(now: datetime) -> list[Finding]:
    """Pools at their maximum size that still turned visitors away to the overflow in the last hour."""
    size = (
        PromoNumber.objects.filter(pool=OuterRef("pk"), state=NumberState.ACTIVE, role=NumberRole.ROTATING)
        .values("pool")
        .annotate(c=Count("id"), cost=Avg("monthly_cost"))
    )
    pools = list(
        applicable_pools()
        .annotate(size=Subquery(size.values("c")), cost=Subquery(size.values("cost")))
        .filter(size__gte=1, last_overflow_at__gte=now - 2 * HOUR)
    )
    pools = [pool for pool in pools if pool.size >= pool.max_size]
    figures = _overflow_figures([pool.pk for pool in pools], now)
    found = []
    for pool in pools:
        presented, overflows = figures.get(pool.pk, (0, 0))
        if overflows < settings.RINGPOOL_ALERT_AT_CAP_OVERFLOWS:
            continue
        pace = pace_of(settings_of(pool))
        more = max(pace.step, -(-pool.max_size // 5))  # a fifth more, at least one interval's growth
        cost = Decimal(pool.cost or 0).quantize(Decimal("0.01"))
        share = 100 * overflows / max(presented + overflows, 1)
        found.append(
            Finding(
                kind=AlertKind.AT_CAP,
                **_pool_subject(pool),  # type: ignore[arg-type]
                reason=f"{pool.name} is at its maximum size of {pool.max_size} numbers and turned "
                f"{overflows:,} visitors away to the overflow number in the last hour ({share:.0f}% of them)",
                advice=f"Raise the maximum size: {more} more number{'s cost' if more > 1 else ' costs'} "
                f"about {_money(more * cost)} a month ({_money(cost)} each). Or narrow the traffic sent "
                "to this pool.",
                figures={
                    "size": pool.size,
                    "max_size": pool.max_size,
                    "overflows_last_hour": overflows,
                    "presentations_last_hour": presented,
                    "overflow_percent": round(share, 1),
                    "suggested_more": more,
                    "monthly_cost_each": str(cost),
                    "monthly_cost_of_more": str(more * cost),
                },
            )
        )
    return found


def carrier_numbers(now: datetime) -> list[Finding]:
    """Local pools whose latest number came from the toll-free fallback; pools the carrier has no
    number for at all (a purchase waiting because nothing was offered)."""
    found = []
    waiting = (
        CarrierOrder.objects.filter(
            kind=OrderKind.PURCHASE, state=OrderState.PENDING, last_error=NO_NUMBER_TO_OFFER
        )
        .select_related("pool")
        .order_by("pool_id", "created_at")
    )
    seen: set[int] = set()
    for order in waiting:
        pool = order.pool
        if pool is None or pool.pk in seen:
            continue
        seen.add(pool.pk)
        wanted = pool.area_code or pool.region or pool.get_number_type_display()
        found.append(
            Finding(
                kind=AlertKind.NO_NUMBER,
                **_pool_subject(pool),  # type: ignore[arg-type]
                reason=f"The carrier has no number to offer for {pool.name} ({wanted}, then toll-free): "
                f"its purchase has waited for {span(now - order.created_at)}",
                advice="Widen the pool's area code or region, or ask the carrier for numbers in the area.",
                figures={"request_id": order.request_id, "attempts": order.attempts},
            )
        )
    latest = CarrierOrder.objects.filter(
        pool=OuterRef("pk"), kind=OrderKind.PURCHASE, state=OrderState.DONE, role=NumberRole.ROTATING
    ).order_by("-finished_at", "-id")
    pools = (
        applicable_pools()
        .filter(number_type=NumberType.LOCAL)
        .annotate(
            latest_match=Subquery(latest.annotate(match=KT("offer__match")).values("match")[:1]),
            latest_at=Subquery(latest.values("finished_at")[:1]),
        )
    )
    for pool in pools.filter(latest_match="toll_free_fallback"):
        where = " / ".join(filter(None, (pool.area_code, pool.region))) or "its area"
        found.append(
            Finding(
                kind=AlertKind.NO_LOCAL_NUMBER,
                **_pool_subject(pool),  # type: ignore[arg-type]
                reason=f"The carrier had no local number for {pool.name} in {where}: its latest number "
                f"is toll-free (bought {ago(pool.latest_at, now)})",
                advice="Widen the pool's region, or accept toll-free numbers for this pool.",
                figures={"area_code": pool.area_code, "region": pool.region},
            )
        )
    return found


def carrier_failing(now: datetime) -> list[Finding]:
    """Accounts whose purchases or releases have kept failing for longer than the threshold."""
    since = now - timedelta(minutes=settings.RINGPOOL_ALERT_CARRIER_FAILING_MINUTES)
    failing = (
        CarrierOrder.objects.filter(state=OrderState.PENDING, created_at__lte=since)
        .exclude(last_error="")
        .exclude(last_error=NO_NUMBER_TO_OFFER)  # its own alert
        .order_by("account_id", "created_at")
        .values_list("account_id", "kind", "created_at", "last_error")
    )
    by_account: dict[int, list[tuple[str, datetime, str]]] = {}
    for account_id, kind, created_at, error in failing.iterator():
        by_account.setdefault(account_id, []).append((kind, created_at, error))
    found = []
    for account_id, orders in by_account.items():
        counts = Counter(kind for kind, _, _ in orders)
        words = " and ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in sorted(counts.items()))
        oldest, error = orders[0][1], orders[-1][2]
        found.append(
            Finding(
                kind=AlertKind.CARRIER_FAILING,
                subject=f"account:{account_id}",
                account_id=account_id,
                reason=f"{words} kept failing for {span(now - oldest)}; the latest error: {error}",
                advice="Check the carrier credentials and the carrier's status; the orders are retried "
                "with back-off meanwhile.",
                figures={
                    **{f"{kind}s": n for kind, n in counts.items()},
                    "minutes": round((now - oldest).total_seconds() / 60),
                    "last_error": error,
                },
            )
        )
    return found


def growth_behind(now: datetime) -> list[Finding]:
    """Pools due to grow for longer than their interval plus the threshold (the grace) without growing."""
    late = timedelta(minutes=settings.RINGPOOL_ALERT_GROWTH_LATE_MINUTES)
    found = []
    due = list(pools_due(now=now))
    counted = overflows_since_last_growth(due, now=now)
    for pool in due:
        plan = plan_for(pool, now=now, overflows=0, turned_away=counted.turned_away.get(pool.pk, 0))
        if plan.decision.verdict != GrowthVerdict.GROW:
            continue
        pace = pace_of(settings_of(pool))
        last = pool.growth.last_grown_at
        found.append(
            Finding(
                kind=AlertKind.GROWTH_BEHIND,
                **_pool_subject(pool),  # type: ignore[arg-type]
                reason=f"{pool.name} has been due to grow ({pace.describe()}) for more than "
                f"{int(late.total_seconds() // 60)} minutes and has not: "
                + (f"last grown {ago(last, now)}" if last else "never grown"),
                advice="Check that the workers and Beat run (the admin's periodic task runs) and the "
                "carrier answers.",
                figures={"size": plan.size, "max_size": pool.max_size, "last_grown_at": _iso(last)},
                grace=late,
            )
        )
    return found


def overflow_manual(now: datetime) -> list[Finding]:
    """A suggestion: pools auto-scaling does not apply to that showed the overflow to more than the
    threshold's share of their visitors for an hour."""
    threshold = settings.RINGPOOL_ALERT_OVERFLOW_PERCENT
    overflowing = RingPool.objects.filter(is_active=True, last_overflow_at__gte=now - HOUR)
    pools = list(overflowing.exclude(pk__in=applicable_pools(overflowing).values("pk")))
    figures = _overflow_figures([pool.pk for pool in pools], now)
    found = []
    for pool in pools:
        presented, overflows = figures.get(pool.pk, (0, 0))
        share = 100 * overflows / max(presented + overflows, 1)
        if share <= threshold:
            continue
        found.append(
            Finding(
                kind=AlertKind.OVERFLOW_MANUAL,
                severity=AlertSeverity.SUGGESTION,
                **_pool_subject(pool),  # type: ignore[arg-type]
                reason=f"{pool.name} showed the overflow number to {share:.0f}% of its visitors in the last "
                "hour, and auto-scaling does not apply to it",
                advice="Turn auto-scaling on for this pool (or include its campaign in the scope), or add "
                "numbers by hand.",
                figures={
                    "overflow_percent": round(share, 1),
                    "overflows": overflows,
                    "presentations": presented,
                },
                grace=HOUR,
            )
        )
    return found


def beat_down(now: datetime) -> list[Finding]:
    """No Beat has led (sent the periodic tasks) recently: nothing grows, nothing is pruned."""
    silent = timedelta(seconds=settings.RINGPOOL_ALERT_BEAT_SILENT_SECONDS)
    if beat_alive(now):
        return []
    last = BeatProcess.objects.order_by("-seen_at").first()
    seen = f"last seen {ago(last.seen_at, now)} ({last.holder})" if last else "never seen"
    return [
        Finding(
            kind=AlertKind.BEAT_DOWN,
            subject="system",
            reason=f"No Beat has sent the periodic tasks for over {int(silent.total_seconds())} s: {seen}",
            advice="Start Beat (README: running in production); while it is down no pool grows.",
            figures={"last_seen_at": _iso(last.seen_at) if last else None},
        )
    ]


def beat_alive(now: datetime) -> bool:
    """A Beat leads and was seen within RINGPOOL_ALERT_BEAT_SILENT_SECONDS (readiness reads it too)."""
    silent = timedelta(seconds=settings.RINGPOOL_ALERT_BEAT_SILENT_SECONDS)
    return BeatProcess.objects.filter(leading_since__isnull=False, seen_at__gte=now - silent).exists()


# Tasks whose lateness has an alert of its own (the prune runs on a few days of the month).
_OWN_ALERT = {"scaling.tasks.prune_ringpools", "scaling.tasks.check_alerts"}


def jobs_late(now: datetime) -> list[Finding]:
    """Enabled periodic tasks that have not started since their last due time (plus the margin), while
    a Beat leads (without one, the Beat alert says it all)."""
    if not beat_alive(now):
        return []
    margin = timedelta(minutes=settings.RINGPOOL_ALERT_JOB_MARGIN_MINUTES)
    runs = {run.task: run for run in JobRun.objects.all()}
    leading = BeatProcess.objects.filter(leading_since__isnull=False).aggregate(m=Min("leading_since"))["m"]
    found = []
    for task in PeriodicTask.objects.filter(enabled=True, crontab__isnull=False).select_related("crontab"):
        if task.task in _OWN_ALERT or task.crontab is None:
            continue
        schedule: crontab = task.crontab.schedule
        run = runs.get(task.task)
        since = run.last_started_at if run and run.last_started_at else leading
        if since is None:
            continue
        due = _next_due(schedule, since)
        if due + margin > now:
            continue
        last = f"last started {ago(since, now)}" if run else "never run since Beat started"
        found.append(
            Finding(
                kind=AlertKind.JOB_LATE,
                subject=f"task:{task.task}",
                reason=f"“{task.name}” was due {ago(due, now)} and has not run ({last})",
                advice="Check that a worker consumes the queue and the task does not fail (admin: periodic "
                "task runs).",
                figures={"task": task.task, "due_at": _iso(due), "last_started_at": _iso(since)},
            )
        )
    return found


def _next_due(schedule: crontab, after: datetime) -> datetime:
    """The first time the crontab fires after `after` (celery's own arithmetic, in UTC)."""
    start, delta, _ = schedule.remaining_delta(after)
    return (start + delta).astimezone(after.tzinfo)


def prune_missed(now: datetime) -> list[Finding]:
    """Accounts whose last local day of the previous month passed with pools left undecided (the
    check runs through the whole following month; a late run of the prune for that day resolves it)."""
    found = []
    for account in Account.objects.filter(auto_scaling_available=True):
        tz = ZoneInfo(str(account.timezone))
        local = now.astimezone(tz)
        month_start = local.date().replace(day=1)
        last_day = month_start - timedelta(days=1)
        month = last_day.replace(day=1)
        end_of_last_day = datetime.combine(month_start, datetime.min.time(), tzinfo=tz)
        pools = applicable_pools(
            RingPool.objects.filter(account=account, created_at__lt=end_of_last_day - timedelta(hours=1))
        ).exclude(pk__in=MonthlyPrune.objects.filter(month=month).values("pool_id"))
        missing = pools.count()
        if not missing:
            continue
        at = datetime.combine(last_day, datetime.min.time(), tzinfo=tz).replace(hour=12)
        found.append(
            Finding(
                kind=AlertKind.PRUNE_MISSED,
                subject=f"account:{account.pk}:{month:%Y-%m}",
                account_id=account.pk,
                reason=f"The month-end prune of {month:%B %Y} did not run for {missing} pools of "
                f"{account.name} on its last day ({last_day:%A %d %B}, {account.timezone})",
                advice=f"Run it for that day: manage.py prune_ringpools --at {at.isoformat()} "
                "(add --dry-run first to see what it removes).",
                figures={"month": f"{month:%Y-%m}", "pools": missing, "last_day": str(last_day)},
            )
        )
    return found


def outbox_backlog(now: datetime) -> list[Finding]:
    """Carrier orders waiting longer than the threshold, whatever the reason (workers down, a carrier
    slow or refusing)."""
    waiting = timedelta(minutes=settings.RINGPOOL_ALERT_OUTBOX_MINUTES)
    pending = CarrierOrder.objects.filter(state=OrderState.PENDING)
    summary = pending.aggregate(
        n=Count("id"), oldest=Min("created_at"), old=Count("id", filter=Q(created_at__lte=now - waiting))
    )
    if not summary["old"]:
        return []
    minutes = round((now - summary["oldest"]).total_seconds() / 60)
    return [
        Finding(
            kind=AlertKind.OUTBOX_BACKLOG,
            subject="system",
            reason=f"{summary['old']:,} carrier orders have waited over {int(waiting.total_seconds() // 60)} "
            f"minutes (the oldest {minutes} minutes; {summary['n']:,} pending in all)",
            advice="Check that the carrier workers run (queue `carrier`) and what the orders' last "
            "errors say (admin: carrier orders).",
            figures={"pending": summary["n"], "waiting_long": summary["old"], "oldest_minutes": minutes},
        )
    ]


def _iso(moment: datetime | date | None) -> str | None:
    return moment.isoformat() if moment else None


CONDITIONS: dict[str, Callable[[datetime], list[Finding]]] = {
    # kinds checked together -> the function that finds them (a function may find two kinds)
    f"{AlertKind.AT_CAP}": at_cap,
    f"{AlertKind.NO_LOCAL_NUMBER},{AlertKind.NO_NUMBER}": carrier_numbers,
    f"{AlertKind.CARRIER_FAILING}": carrier_failing,
    f"{AlertKind.GROWTH_BEHIND}": growth_behind,
    f"{AlertKind.OVERFLOW_MANUAL}": overflow_manual,
    f"{AlertKind.BEAT_DOWN}": beat_down,
    f"{AlertKind.JOB_LATE}": jobs_late,
    f"{AlertKind.PRUNE_MISSED}": prune_missed,
    f"{AlertKind.OUTBOX_BACKLOG}": outbox_backlog,
}


def alerts_check(*, now: datetime, only: Collection[str] | None = None) -> SyncReport:
    """Every condition (or those of the kinds `only`), now: episodes opened, kept and resolved (one
    transaction per condition, so a condition whose query fails leaves the others' as they were)."""
    total = SyncReport()
    for kinds, find in CONDITIONS.items():
        if only is not None and not set(kinds.split(",")) & set(only):
            continue
        report = alerts_sync(kinds=kinds.split(","), findings=find(now), now=now, resolution=RESOLUTION)
        total.opened += report.opened
        total.resolved += report.resolved
        total.ongoing += report.ongoing
        total.pending += report.pending
    return total
