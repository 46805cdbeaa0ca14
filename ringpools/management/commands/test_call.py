from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import F

from ringpools import phone
from ringpools.calls import promo_number_for
from ringpools.choices import CallAttribution, NumberRole, NumberState
from ringpools.models import PromoNumber
from ringpools.sample_calls import SAMPLE_CALLER, sample_call_place


class Command(BaseCommand):
    help = (
        "Place a test call to a promo number through the real, signed call webhook, and print how it was "
        "recorded and attributed. Give the number ('(805) 555-0101'), or a pool's key (rp_demo_local) to "
        "call the number that pool showed a visitor last."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "number",
            help="the promo number called, in any common format, or a pool key: its last shown number",
        )
        parser.add_argument("--from", dest="from_number", default=SAMPLE_CALLER, help="the caller's number")
        parser.add_argument(
            "--url",
            default=None,
            help="webhook of a running server, e.g. http://127.0.0.1:8000/webhooks/calls "
            "(default: through the webhook view in this process)",
        )

    def handle(self, *args: Any, number: str, from_number: str, url: str | None, **options: Any) -> None:
        promo = _last_shown(number) or promo_number_for(number)
        if promo is None:
            raise CommandError(f"No promo number {number!r} (nor a pool with that key).")
        if not promo.account.has_carrier_auth_token:
            raise CommandError(f"Account {promo.account} has no carrier auth token to sign the call with.")
        try:
            result = sample_call_place(number=promo, from_number=from_number, url=url)
        except OSError as error:
            raise CommandError(f"Could not reach the webhook at {url}: {error}") from error
        if result.status_code != 200 or result.call is None:
            raise CommandError(f"The webhook answered {result.status_code}: {result.answer.strip()[:200]}")
        call = result.call
        line = (
            f"Call {call.call_sid} to {phone.display(str(call.to_number))}: {call.get_attribution_display()}"
        )
        if call.lease is not None:
            line += f", visitor {call.lease.visitor_id} on {call.lease.page_url or '(no page)'}"
        self.stdout.write(line)
        if call.attribution in (CallAttribution.LEASE, CallAttribution.LATE):
            self.stdout.write(f"  parameters: {call.lease.params if call.lease else {}}")
        self.stdout.write(f"  forwarded to {call.forwarded_to or '(nowhere)'}")


def _last_shown(key: str) -> PromoNumber | None:
    """The number the pool `key` showed a visitor last (its first rotating number if none was shown)."""
    return (
        PromoNumber.objects.filter(pool__key=key, state=NumberState.ACTIVE, role=NumberRole.ROTATING)
        .select_related("account")
        .order_by(F("last_presented_at").desc(nulls_last=True), "number")
        .first()
    )
