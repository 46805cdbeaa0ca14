"""Alert episodes (the only writer of `Alert`): what a check found becomes an episode that opens once,
stays open — kept current, no new mail — while the condition lasts, and resolves once when it ends.

A condition seen again after its episode resolved is a new episode. A condition with a grace (growth
behind its pace for ten minutes, an hour of overflows) is pending from its first sighting and opens
only once it has lasted the grace; one that ends sooner leaves no episode behind.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from scaling.audit import reason_cut
from scaling.choices import AlertSeverity
from scaling.models import Alert


@dataclass(frozen=True)
class Finding:
    """A condition holding now, about one subject ("pool:12", "account:3:2026-11", "system")."""

    kind: str
    subject: str
    reason: str
    advice: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    account_id: int | None = None
    pool_id: int | None = None
    severity: str = AlertSeverity.PROBLEM
    grace: timedelta = timedelta(0)  # how long it must hold before it opens


@dataclass
class SyncReport:
    opened: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    ongoing: int = 0
    pending: int = 0


def alerts_sync(
    *, kinds: Collection[str], findings: Iterable[Finding], now: datetime, resolution: dict[str, str]
) -> SyncReport:
    """Bring the episodes of the conditions `kinds` (those just checked) in line with `findings`:
    open or update what was found, resolve (or, if still pending, drop) what was not. `resolution`:
    per kind, the words a resolved episode gets."""
    report = SyncReport()
    with transaction.atomic():
        unresolved = {
            (alert.kind, alert.subject): alert
            for alert in Alert.objects.select_for_update().filter(kind__in=kinds, resolved_at__isnull=True)
        }
        for finding in findings:
            alert = unresolved.pop((finding.kind, finding.subject), None)
            if alert is None:
                alert = Alert(kind=finding.kind, subject=finding.subject, first_seen_at=now)
            _current(alert, finding, now)
            if alert.opened_at is None and now - alert.first_seen_at >= finding.grace:
                alert.opened_at = now
                report.opened.append(alert)
            elif alert.opened_at is None:
                report.pending += 1
            else:
                report.ongoing += 1
            alert.save()
        for alert in unresolved.values():
            if alert.opened_at is None:
                alert.delete()  # ended within its grace: never an episode
                continue
            alert.resolved_at = now
            alert.resolution = reason_cut(resolution.get(alert.kind, "the condition ended"))
            alert.save(update_fields=["resolved_at", "resolution"])
            report.resolved.append(alert)
    return report


def _current(alert: Alert, finding: Finding, now: datetime) -> None:
    alert.severity = finding.severity
    alert.account_id = finding.account_id
    alert.pool_id = finding.pool_id
    alert.reason = reason_cut(finding.reason)
    alert.advice = reason_cut(finding.advice)
    alert.figures = finding.figures
    alert.seen_at = now


def alert_mailed(alert: Alert, *, now: datetime) -> None:
    """Record that the mail of the episode as it stands went out: its opening, and its resolution if
    it is resolved (an episode resolved before its opening mail went out is told both in one)."""
    told = {"mailed_open_at": alert.mailed_open_at or now}
    if alert.resolved_at is not None:
        told["mailed_resolved_at"] = now
    for column, moment in told.items():
        setattr(alert, column, moment)
    Alert.objects.filter(pk=alert.pk).update(**told)
