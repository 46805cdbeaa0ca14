from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from scaling.choices import Trigger
from scaling.growth.run import GrowthReport, ringpools_grow
from scaling.tasks import carrier_orders_queue


class Command(BaseCommand):
    help = (
        "Run one grow pass (SPEC §6) as if the time were --at, and print per overflowing pool what was "
        "(or, with --dry-run, would be) done and why. The Celery task runs the same pass."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--at", help="ISO-8601 moment to run the pass at (default: now)")
        parser.add_argument("--dry-run", action="store_true", help="change nothing; say what would be done")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="hand the purchases to the carrier workers (as Beat's pass does) instead of buying here",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = _moment(options["at"])
        report = ringpools_grow(
            now=now,
            dry_run=options["dry_run"],
            explain=True,
            trigger=Trigger.GROWTH,
            dispatch=carrier_orders_queue if options["queue"] else None,
        )
        self.stdout.write(render(report))


def _moment(raw: str | None) -> datetime:
    if not raw:
        return timezone.now()
    moment = parse_datetime(raw)
    if moment is None:
        raise CommandError(f"--at {raw!r} is not an ISO-8601 date and time")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def render(report: GrowthReport) -> str:
    when = timezone.localtime(report.now)
    dry = " (dry run: nothing changed)" if report.dry_run else ""
    lines = [f"Grow pass at {when:%Y-%m-%d %H:%M:%S %Z}{dry}"]
    for plan in report.plans:
        pool = plan.pool
        lines.append(
            f"- {pool.name} [{pool.key}] size {plan.size}/{pool.max_size}, "
            f"{plan.overflows} overflows since its last growth: {plan.outcome}"
        )
        lines.append(f"    why: {plan.decision.reason}")
    if not report.plans:
        lines.append("No pool overflowed since its last growth (or since auto-scaling was turned on for it).")
    for pool, reason in report.off:
        lines.append(f"- {pool.name} [{pool.key}] overflowed, but auto-scaling does not apply: {reason}")
    lines.append(
        f"Not due: {report.idle} pools with auto-scaling on had no overflow since their last growth "
        "or since auto-scaling was turned on for them; "
        f"{report.off_total} pools have auto-scaling off."
    )
    if not report.dry_run:
        lines.append(f"Numbers added: {report.added}.")
        if report.queued:
            lines.append(f"Numbers queued for the carrier workers: {report.queued}.")
    return "\n".join(lines) + "\n"
