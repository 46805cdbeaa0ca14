"""Admin of the facts the hand-out and the webhook record: leases, calls, hourly figures. Read-only for
everyone; times in the account's zone; calls with their attribution."""

from __future__ import annotations

from typing import Protocol, cast

from django.contrib import admin
from django.db.models import Exists, F, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from ringpools.admin_tools import (
    EMPTY,
    AccountTimesMixin,
    LargeTableAdmin,
    PhoneSearchMixin,
    ReadOnlyFactsAdmin,
    ShortChoicesFilter,
    phone_cell,
    short_label,
)
from ringpools.choices import CallAttribution
from ringpools.models import Call, Lease, PoolHourlyFigures


class LeaseStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "held"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("now", "Held now"), ("ended", "Ended")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        if self.value() == "now":
            return queryset.filter(expires_at__gt=now)
        if self.value() == "ended":
            return queryset.filter(expires_at__lte=now)
        return queryset


class FiguresRow(Protocol):
    """The sums the hourly figures' list puts on each row (its shards added up)."""

    presentations_total: int
    overflows_total: int
    calls_total: int


@admin.register(Lease)
class LeaseAdmin(AccountTimesMixin, PhoneSearchMixin, ReadOnlyFactsAdmin, LargeTableAdmin):
    account_path = "pool__account"
    list_display = ("phone", "pool", "visitor_id", "started", "expires", "released", "page")
    list_filter = (LeaseStateFilter,)
    list_select_related = ("number", "pool__account")
    search_fields = ("visitor_id", "page_url")
    phone_search_fields = ("number__number",)
    date_hierarchy = "started_at"
    fields = ("phone", "pool", "visitor_id", "page_url", "parameters", "started", "expires", "released")
    readonly_fields = fields

    @admin.display(ordering="number__number", description="number")
    def phone(self, lease: Lease) -> str:
        return phone_cell(lease.number.number)

    @admin.display(ordering="started_at", description="started")
    def started(self, lease: Lease) -> str:
        return self.time_cell(lease, lease.started_at)

    @admin.display(ordering="expires_at", description="expires")
    def expires(self, lease: Lease) -> str:
        return self.time_cell(lease, lease.expires_at)

    @admin.display(ordering="released_at", description="goodbye")
    def released(self, lease: Lease) -> str:
        return self.time_cell(lease, lease.released_at)

    @admin.display(description="landing page")
    def page(self, lease: Lease) -> str:
        return landing_page_cell(lease.page_url)

    @admin.display(description="parameters")
    def parameters(self, lease: Lease) -> str:
        return parameters_html(lease.params)


def landing_page_cell(url: str) -> str:
    """The page's path, cut short (the whole address on hover and on the call's page)."""
    if not url:
        return EMPTY
    shown = url.split("://", 1)[-1]
    shown = shown[shown.find("/") :] if "/" in shown else shown
    return format_html('<span title="{}">{}</span>', url, shown[:28] + ("…" if len(shown) > 28 else ""))


def parameters_html(params: dict | None) -> str:
    if not params:
        return EMPTY
    return format_html(
        "<ul class='params'>{}</ul>",
        format_html_join("", "<li><code>{}</code> = {}</li>", ((k, v) for k, v in sorted(params.items()))),
    )


@admin.register(Call)
class CallAdmin(AccountTimesMixin, PhoneSearchMixin, ReadOnlyFactsAdmin, LargeTableAdmin):
    list_display = ("received", "to", "caller", "pool", "attribution_label", "visitor", "page")
    list_filter = (("attribution", ShortChoicesFilter), "is_overflow")
    list_select_related = ("pool", "lease", "account")
    search_fields = ("call_sid", "lease__visitor_id")
    phone_search_fields = ("to_number", "from_number")
    date_hierarchy = "received_at"
    fields = (
        "received",
        "to",
        "caller",
        "pool",
        "attribution_label",
        "late",
        "visitor",
        "landing_page",
        "parameters",
        "lease_link",
        "forwarded",
        "status",
        "call_sid",
    )
    readonly_fields = fields

    @admin.display(ordering="received_at", description="received")
    def received(self, call: Call) -> str:
        return self.time_cell(call, call.received_at)

    @admin.display(ordering="to_number", description="to")
    def to(self, call: Call) -> str:
        return phone_cell(call.to_number)

    @admin.display(ordering="from_number", description="from")
    def caller(self, call: Call) -> str:
        return phone_cell(call.from_number)

    @admin.display(ordering="attribution", description="attribution")
    def attribution_label(self, call: Call) -> str:
        return short_label(CallAttribution, call.attribution)

    @admin.display(boolean=True, description="late call")
    def late(self, call: Call) -> bool:
        return call.is_late

    @admin.display(ordering="lease__visitor_id", description="visitor")
    def visitor(self, call: Call) -> str:
        return call.lease.visitor_id if call.lease else EMPTY

    @admin.display(description="landing page")
    def page(self, call: Call) -> str:
        return landing_page_cell(call.lease.page_url) if call.lease else EMPTY

    @admin.display(description="landing page")
    def landing_page(self, call: Call) -> str:
        return (
            format_html("<code>{}</code>", call.lease.page_url)
            if call.lease and call.lease.page_url
            else EMPTY
        )

    @admin.display(description="page parameters (UTM …)")
    def parameters(self, call: Call) -> str:
        return parameters_html(call.lease.params) if call.lease else EMPTY

    @admin.display(description="lease")
    def lease_link(self, call: Call) -> str:
        if call.lease is None:
            return EMPTY
        return format_html(
            '<a href="{}">held {} → {}</a>',
            reverse("admin:ringpools_lease_change", args=[call.lease_id]),
            self.time_cell(call, call.lease.started_at),
            self.time_cell(call, call.lease.expires_at),
        )

    @admin.display(description="forwarded to")
    def forwarded(self, call: Call) -> str:
        return phone_cell(call.forwarded_to)


@admin.register(PoolHourlyFigures)
class PoolHourlyFiguresAdmin(AccountTimesMixin, ReadOnlyFactsAdmin, LargeTableAdmin):
    """One row per pool and hour: the shard rows the hand-out writes to are summed, never shown."""

    account_path = "pool__account"
    list_display = ("hour_local", "pool", "presentations_sum", "overflows_sum", "calls_sum")
    list_select_related = ("pool__account",)
    search_fields = ("pool__name",)
    date_hierarchy = "hour"
    ordering = ("-hour", "pool_id")
    fields = ("hour_local", "pool", "presentations_sum", "overflows_sum", "calls_sum")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[PoolHourlyFigures]:
        same_hour = PoolHourlyFigures.objects.filter(pool=OuterRef("pool"), hour=OuterRef("hour")).order_by()
        lower_shard = same_hour.filter(shard__lt=OuterRef("shard"))

        def total(field: str) -> Coalesce:
            return Coalesce(
                Subquery(same_hour.values("pool").annotate(t=Sum(field)).values("t")[:1]), F(field)
            )

        # The lowest shard of each (pool, hour) stands for the hour, carrying the sums of all its shards.
        return (
            super()
            .get_queryset(request)
            .exclude(Exists(lower_shard))
            .annotate(
                presentations_total=total("presentations"),
                overflows_total=total("overflows"),
                calls_total=total("calls"),
            )
        )

    @admin.display(ordering="hour", description="hour")
    def hour_local(self, figures: PoolHourlyFigures) -> str:
        return self.time_cell(figures, figures.hour)

    @admin.display(ordering="presentations_total", description="presentations")
    def presentations_sum(self, figures: PoolHourlyFigures) -> int:
        return cast(FiguresRow, figures).presentations_total

    @admin.display(ordering="overflows_total", description="overflows")
    def overflows_sum(self, figures: PoolHourlyFigures) -> int:
        return cast(FiguresRow, figures).overflows_total

    @admin.display(ordering="calls_total", description="calls")
    def calls_sum(self, figures: PoolHourlyFigures) -> int:
        return cast(FiguresRow, figures).calls_total
