"""Alerts in admin: the "needs attention" list across accounts (open episodes first), filterable by
condition, account and state; and the count of open alerts on the admin index."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.utils import timezone
from django.utils.timesince import timesince

from ringpools.admin_tools import ReadOnlyFactsAdmin
from scaling.models import Alert


class AlertStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("open", "Open (needs attention)"),
            ("resolved", "Resolved"),
            ("pending", "Pending (in grace)"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Alert]) -> QuerySet[Alert]:
        if self.value() == "open":
            return queryset.filter(opened_at__isnull=False, resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        if self.value() == "pending":
            return queryset.filter(opened_at__isnull=True)
        return queryset


@admin.register(Alert)
class AlertAdmin(ReadOnlyFactsAdmin):
    list_display = ("kind", "severity", "about", "reason", "opened", "state")
    list_filter = (AlertStateFilter, "kind", "severity", "account")
    search_fields = ("reason", "subject", "pool__name", "account__name")
    list_select_related = ("account", "pool")
    ordering = ("resolved_at", "-opened_at", "-id")  # open ones (no resolution) first

    @admin.display(description="about")
    def about(self, alert: Alert) -> str:
        if alert.pool:
            return f"{alert.account} · {alert.pool.name}"
        return str(alert.account) if alert.account else "the system"

    @admin.display(ordering="opened_at", description="opened")
    def opened(self, alert: Alert) -> str:
        return f"{timesince(alert.opened_at, timezone.now())} ago" if alert.opened_at else "pending"

    @admin.display(description="state")
    def state(self, alert: Alert) -> str:
        if alert.resolved_at:
            return f"resolved {timesince(alert.resolved_at, timezone.now())} ago: {alert.resolution}"
        return "open" if alert.opened_at else "pending"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        if not request.GET:  # the list people come to: what needs attention now
            return HttpResponseRedirect(f"{request.path}?state=open")
        return super().changelist_view(request, extra_context)


def needs_attention(limit: int = 10) -> dict[str, Any]:
    """The admin index's "needs attention" block: open alerts, newest first."""
    open_alerts = Alert.objects.filter(opened_at__isnull=False, resolved_at__isnull=True)
    return {
        "count": open_alerts.count(),
        "alerts": list(open_alerts.select_related("account", "pool").order_by("-opened_at")[:limit]),
    }
