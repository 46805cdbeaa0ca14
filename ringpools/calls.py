"""Incoming calls from the carrier's voice webhook: record, attribute, route (SPEC §4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone

from ringpools import phone
from ringpools.choices import CallAttribution, NumberRole, NumberState
from ringpools.figures import figures_add
from ringpools.models import Call, Lease, PromoNumber


@dataclass(frozen=True)
class IncomingCall:
    call_sid: str
    from_number: str
    to_number: str
    status: str


def promo_number_for(to_number: str) -> PromoNumber | None:
    """The number a caller dialled: the one we hold, else the most recently released one."""
    try:
        e164 = phone.to_e164(to_number)
    except phone.InvalidPhoneNumber:
        return None
    return (
        PromoNumber.objects.filter(number=e164)
        .select_related("account", "pool__destination_number")
        .annotate(
            held_first=Case(
                When(state__in=NumberState.held(), then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("held_first", "-released_at")
        .first()
    )


def attribute(number: PromoNumber, at: datetime) -> tuple[str, Lease | None]:
    """Which visit a call at `at` belongs to: the lease holding the number, or its last holder if the
    lease ended within the late-call grace window."""
    if number.role == NumberRole.OVERFLOW:
        return CallAttribution.OVERFLOW, None
    leases = Lease.objects.filter(number=number, started_at__lte=at)
    holder = leases.filter(expires_at__gt=at).order_by("-started_at").first()
    if holder is not None:
        return CallAttribution.LEASE, holder
    grace = timedelta(seconds=settings.RINGPOOL_LATE_CALL_GRACE_SECONDS)
    previous = leases.filter(expires_at__gte=at - grace).order_by("-expires_at").first()
    if previous is not None:
        return CallAttribution.LATE, previous
    return CallAttribution.NONE, None


def call_record(
    *, number: PromoNumber, incoming: IncomingCall, now: datetime | None = None
) -> tuple[Call, bool]:
    """Record the call once per CallSid (carrier retries find the first record). Returns (call, created)."""
    now = now or timezone.now()
    existing = Call.objects.filter(call_sid=incoming.call_sid).first()
    if existing is not None:
        return existing, False
    attribution, lease = attribute(number, now)
    pool = number.pool
    try:
        with transaction.atomic():
            call = Call.objects.create(
                account_id=number.account_id,
                pool=pool,
                number=number,
                lease=lease,
                call_sid=incoming.call_sid,
                from_number=incoming.from_number[:32],
                to_number=number.number,
                status=incoming.status[:20],
                attribution=attribution,
                is_overflow=attribution == CallAttribution.OVERFLOW,
                received_at=now,
                forwarded_to=str(pool.destination_number.number) if pool else "",
            )
            PromoNumber.objects.filter(id=number.id).update(last_called_at=now)
            if pool is not None:
                figures_add(pool.id, now, calls=1)
    except IntegrityError:
        # The same CallSid arrived twice at once: the other request recorded it.
        return Call.objects.get(call_sid=incoming.call_sid), False
    return call, True
