"""One Beat at a time: a lease row renewed at every tick by its holder; others stand by.

Two Beats started by mistake (a second host, a deploy that overlapped) would send every periodic
task twice. The tasks are idempotent, but a doubled schedule hides a misconfiguration and doubles the
load; so the second Beat stands by, logs that it does (once per change), and takes over within the
lease (RINGPOOL_BEAT_LEASE_SECONDS, 30 s) of the active one stopping. Each Beat's clock decides its
own lease: keep hosts on NTP (seconds of skew do not matter).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction

from scaling.models import BeatLease, BeatProcess


def lease() -> timedelta:
    return timedelta(seconds=settings.RINGPOOL_BEAT_LEASE_SECONDS)


# Beat processes not seen for this long are forgotten.
FORGET_AFTER = timedelta(days=1)


def beat_lead(holder: str, *, started_at: datetime, now: datetime) -> bool:
    """Renew or take the lease for `holder`; True while it leads. Records the Beat as seen."""
    # Ours (even lapsed, if nobody took it meanwhile): renew it.
    leading = bool(BeatLease.objects.filter(pk=1, holder=holder).update(expires_at=now + lease()))
    if not leading:
        taken = (
            BeatLease.objects.filter(pk=1)
            .filter(expires_at__lt=now)
            .update(holder=holder, acquired_at=now, expires_at=now + lease())
        )
        if not taken and not BeatLease.objects.filter(pk=1).exists():
            try:
                with transaction.atomic():
                    BeatLease.objects.create(pk=1, holder=holder, acquired_at=now, expires_at=now + lease())
                taken = 1
            except IntegrityError:
                taken = 0  # another Beat created it first
        leading = bool(taken)
    since = BeatLease.objects.filter(pk=1, holder=holder).values_list("acquired_at", flat=True).first()
    BeatProcess.objects.update_or_create(
        holder=holder,
        defaults={"seen_at": now, "leading_since": since if leading else None},
        create_defaults={
            "started_at": started_at,
            "seen_at": now,
            "leading_since": since if leading else None,
        },
    )
    return leading


def beat_step_down(holder: str) -> None:
    """A Beat shutting down cleanly gives the lease up, so a standby takes over at its next tick."""
    BeatLease.objects.filter(pk=1, holder=holder).delete()
    BeatProcess.objects.filter(holder=holder).update(leading_since=None)


def beats_forget(*, now: datetime) -> None:
    BeatProcess.objects.filter(seen_at__lt=now - FORGET_AFTER).delete()
