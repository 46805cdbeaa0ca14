from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from scaling.choices import OrderState
from scaling.supply.outbox import carrier_orders_reconcile
from scaling.supply.reconcile import carrier_numbers_reconcile


class Command(BaseCommand):
    help = (
        "Finish the carrier orders left pending (back-off over, or their process died), here and now; "
        "with --numbers, also compare the carrier's list of the platform's numbers with ours and put "
        "right what differs. Beat runs both (the orders every minute, through the carrier workers; the "
        "numbers hourly)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--numbers", action="store_true", help="also compare the carrier's list with ours"
        )
        parser.add_argument("--limit", type=int, default=1000, help="at most this many orders (default 1000)")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        ended = carrier_orders_reconcile(now=now, limit=options["limit"])
        states = [order.state for order in ended]
        self.stdout.write(
            f"Carrier orders taken up: {len(ended)} ({states.count(OrderState.DONE)} done, "
            f"{states.count(OrderState.FAILED)} failed, {states.count(OrderState.PENDING)} still pending)."
        )
        if options["numbers"]:
            report = carrier_numbers_reconcile(now=now)
            self.stdout.write(f"Carrier numbers: {report.summary()}.")
            for label, numbers in (
                ("adopted", report.adopted),
                ("released", report.released),
                ("taken out", report.phantoms),
            ):
                for number in numbers:
                    self.stdout.write(f"  {label}: {number}")
