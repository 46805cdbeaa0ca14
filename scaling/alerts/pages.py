"""What the customer's pages show of alerts: the open episodes of an account, problems first, each with
the page where it is acted on."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, IntegerField, Value, When
from django.urls import reverse

from accounts.models import Account
from scaling.choices import AlertKind, AlertSeverity
from scaling.models import Alert

# Where a condition is acted on, in the customer area (the others are the account manager's to act on).
_ACT_ON = {
    AlertKind.OVERFLOW_MANUAL: ("auto-scaling-settings", "Change the auto-scaling scope"),
    AlertKind.PRUNE_MISSED: ("pool-list", "See the pools"),
}


@dataclass(frozen=True)
class Banner:
    alert: Alert
    link: str
    link_label: str


def account_open_alerts(account: Account) -> list[Alert]:
    problems_first = Case(
        When(severity=AlertSeverity.PROBLEM, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    return list(
        Alert.objects.filter(account=account, opened_at__isnull=False, resolved_at__isnull=True)
        .select_related("pool")
        .annotate(rank=problems_first)
        .order_by("rank", "-opened_at", "-id")
    )


def account_banners(account: Account) -> list[Banner]:
    """The banners of the account's open alerts."""
    banners = []
    for alert in account_open_alerts(account):
        if alert.kind in _ACT_ON:
            name, label = _ACT_ON[AlertKind(alert.kind)]
            link = reverse(name)
        elif alert.pool_id:
            link, label = reverse("pool-health", args=[alert.pool_id]), "See the pool's health"
        else:
            link, label = reverse("alert-list"), "See the alert"
        banners.append(Banner(alert, link, label))
    return banners
