"""Alert mail: once when an episode opens, once when it resolves, to the people who can act.

An account's conditions go to its super users and to the account managers; the system's conditions
(Beat, periodic tasks, the carrier outbox) to the account managers. Anyone can turn the mails off for
themselves (`User.alert_emails`: the Alerts page, or the admin). A mail that could not be sent stays
due and goes with the next check; an episode resolved before its opening mail went out gets one mail
that says both.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db.models import Q, QuerySet
from django.urls import reverse

from accounts.choices import Role
from accounts.models import Membership, User
from scaling.alerts.episodes import alert_mailed
from scaling.models import Alert

log = logging.getLogger(__name__)


def account_managers() -> QuerySet[User]:
    """The people who look after every account: superusers, and staff who may open customers' pages."""
    perm = Q(groups__permissions__codename="open_customer_area") | Q(
        user_permissions__codename="open_customer_area"
    )
    return User.objects.filter(Q(is_superuser=True) | (Q(is_staff=True) & perm), is_active=True).distinct()


def alert_recipients(alert: Alert) -> list[str]:
    """Addresses told about `alert`, each once, without those who turned alert mail off."""
    groups = [account_managers()]
    if alert.account_id is not None:
        groups.append(
            User.objects.filter(
                is_active=True, memberships__account_id=alert.account_id, memberships__role=Role.SUPER_USER
            )
        )
    return sorted(
        {
            address
            for people in groups
            for address in people.filter(alert_emails=True).exclude(email="").values_list("email", flat=True)
        }
    )


def alert_mails_send(*, now: datetime) -> int:
    """Send the mails due (episodes opened or resolved and not yet told). Returns how many went."""
    due = (
        Alert.objects.filter(
            Q(opened_at__isnull=False, mailed_open_at__isnull=True)
            | Q(resolved_at__isnull=False, mailed_resolved_at__isnull=True)
        )
        .select_related("account", "pool")
        .order_by("opened_at", "pk")
    )
    sent = 0
    connection = get_connection(fail_silently=False)
    for alert in due:
        to = alert_recipients(alert)
        messages = [_message(alert, address) for address in to]
        try:
            if messages:
                connection.send_messages(messages)
        except Exception:  # the mail server's trouble: the mail stays due for the next check
            log.exception("Could not send the mail of alert %s (%s)", alert.pk, alert.subject)
            continue
        alert_mailed(alert, now=now)
        sent += len(messages)
    return sent


def _message(alert: Alert, address: str) -> EmailMessage:
    what = alert.pool.name if alert.pool else (alert.account.name if alert.account else "RingPool")
    state = "Resolved" if alert.resolved_at else "Alert"
    subject = f"[RingPool] {state}: {alert.get_kind_display()} — {what}"
    return EmailMessage(subject=subject, body=alert_mail_body(alert), to=[address])


def alert_mail_body(alert: Alert) -> str:
    """The mail's text: what happened, when (in the account's time zone), what to do, the figures."""
    tz = ZoneInfo(str(alert.account.timezone)) if alert.account else ZoneInfo("UTC")
    lines = []
    if alert.resolved_at is not None:
        lines += [
            f"Resolved: {alert.resolution}.",
            f"It was: {alert.reason}.",
            "",
            f"Opened {_when(alert.opened_at, tz)}, resolved {_when(alert.resolved_at, tz)}.",
        ]
    else:
        lines += [alert.reason + ".", "", f"What to do: {alert.advice}" if alert.advice else "", ""]
        lines.append(f"Opened {_when(alert.opened_at, tz)}. You get one more mail when it is resolved.")
    if alert.figures:
        lines += ["", "Figures:"] + [f"  {key}: {value}" for key, value in alert.figures.items()]
    link = _link(alert)
    if link:
        lines += ["", link]
    lines += [
        "",
        "You get this because you look after this account. Turn alert mail off for yourself on the "
        "Alerts page.",
    ]
    return "\n".join(lines)


def _when(moment: datetime | None, tz: ZoneInfo) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(tz).strftime(f"%Y-%m-%d %H:%M ({tz.key})")


def _link(alert: Alert) -> str:
    base = settings.RINGPOOL_ALERT_LINK_BASE_URL.rstrip("/")
    if not base:
        return ""
    if alert.pool_id:
        return base + reverse("pool-health", args=[alert.pool_id])
    return base + reverse("alert-list")


def alert_digests_send(*, now: datetime) -> int:
    """The daily digest: to each person who asked for it (`User.alert_digest`), the alerts they would
    be mailed about that are open now or resolved in the last day. Nobody gets an empty digest."""
    since = now - timedelta(days=1)
    recent = list(
        Alert.objects.filter(opened_at__isnull=False)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=since))
        .select_related("account", "pool")
        .order_by("resolved_at", "-opened_at")
    )
    managers = set(account_managers().values_list("pk", flat=True))
    supers: dict[int, set[int]] = {}
    for user_id, account_id in Membership.objects.filter(role=Role.SUPER_USER).values_list(
        "user_id", "account_id"
    ):
        supers.setdefault(user_id, set()).add(account_id)
    messages = []
    for person in User.objects.filter(is_active=True, alert_digest=True).exclude(email=""):
        theirs = [
            alert
            for alert in recent
            if person.pk in managers or alert.account_id in supers.get(person.pk, set())
        ]
        if theirs:
            messages.append(_digest(person, theirs, now))
    if messages:
        get_connection(fail_silently=False).send_messages(messages)
    return len(messages)


def _digest(person: User, alerts: list[Alert], now: datetime) -> EmailMessage:
    still_open = [alert for alert in alerts if alert.resolved_at is None]
    lines = [f"{len(still_open)} open, {len(alerts) - len(still_open)} resolved in the last day.", ""]
    for alert in alerts:
        tz = ZoneInfo(str(alert.account.timezone)) if alert.account else ZoneInfo("UTC")
        what = alert.pool.name if alert.pool else (alert.account.name if alert.account else "the system")
        if alert.resolved_at:
            state = f"resolved {_when(alert.resolved_at, tz)}"
        else:
            state = f"open since {_when(alert.opened_at, tz)}"
        lines += [f"- {alert.get_kind_display()} — {what} ({state})", f"  {alert.reason}."]
        if alert.advice and not alert.resolved_at:
            lines.append(f"  What to do: {alert.advice}")
    lines += ["", "Turn the digest off for yourself on the Alerts page."]
    subject = f"[RingPool] Alerts digest {now:%Y-%m-%d}: {len(still_open)} open"
    return EmailMessage(subject=subject, body="\n".join(lines), to=[person.email])
