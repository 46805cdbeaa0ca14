from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from ringpools.admin_tools import LargeTableAdmin, PhoneSearchMixin
from ringpools.choices import NumberState
from ringpools.models import (
    Call,
    Campaign,
    DestinationNumber,
    Lease,
    PoolHourlyFigures,
    PromoNumber,
    RingPool,
)
from ringpools.selectors import pools_with_figures


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "is_active", "created_at")
    list_filter = ("is_active",)
    list_select_related = ("account",)
    raw_id_fields = ("account",)
    search_fields = ("name", "account__name")


@admin.register(DestinationNumber)
class DestinationNumberAdmin(PhoneSearchMixin, admin.ModelAdmin):
    list_display = ("number", "label", "account")
    list_select_related = ("account",)
    raw_id_fields = ("account",)
    search_fields = ("label", "account__name")
    phone_search_fields = ("number",)


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


class RingPoolAdmin(SimpleHistoryAdmin):
    """The pool list of the back office. scaling.admin extends it with the auto-scaling columns."""

    list_display = (
        "name",
        "account",
        "campaign",
        "number_type",
        "size",
        "leased_now",
        "overflows_24h",
        "is_active",
    )
    list_filter = ("number_type", "is_active", "overflow_mode", "auto_scaling_enabled")
    list_select_related = ("account", "campaign", "destination_number")
    search_fields = ("name", "key", "campaign__name", "account__name")
    raw_id_fields = ("account", "campaign", "destination_number")
    readonly_fields = ("key", "last_overflow_at", "created_at", "overflow_number_display")
    fieldsets = (
        (None, {"fields": ("account", "campaign", "destination_number", "name", "key", "is_active")}),
        (
            "Numbers",
            {"fields": ("number_type", "area_code", "region", "min_size", "max_size", "lease_seconds")},
        ),
        ("Overflow", {"fields": ("overflow_mode", "overflow_number_display", "last_overflow_at")}),
        ("Auto-scaling", {"fields": ("auto_scaling_enabled",)}),
        ("Web", {"fields": ("allowed_origins", "created_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[RingPool]:
        now = timezone.now()
        return pools_with_figures(super().get_queryset(request), since=now - timedelta(hours=24), now=now)

    @admin.display(ordering="size", description="size")
    def size(self, pool: RingPool) -> int:
        return pool.size

    @admin.display(ordering="leased_now", description="leased now")
    def leased_now(self, pool: RingPool) -> int:
        return pool.leased_now

    @admin.display(ordering="overflows_24h", description="overflows (24 h)")
    def overflows_24h(self, pool: RingPool) -> int:
        return pool.overflows_24h

    @admin.display(description="overflow number")
    def overflow_number_display(self, pool: RingPool) -> str:
        number = pool.overflow_number if pool.pk else None
        return number.number.as_national if number else "—"


class PromoNumberStateFilter(admin.SimpleListFilter):
    title = "availability"
    parameter_name = "availability"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("leased", "Leased now"), ("free", "Free now"), ("unassigned", "In no pool")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        active = queryset.filter(state=NumberState.ACTIVE)
        if self.value() == "leased":
            return active.filter(busy_until__gt=now)
        if self.value() == "free":
            return active.exclude(busy_until__gt=now).filter(pool__isnull=False)
        if self.value() == "unassigned":
            return active.filter(pool__isnull=True)
        return queryset


@admin.register(PromoNumber)
class PromoNumberAdmin(PhoneSearchMixin, SimpleHistoryAdmin):
    list_display = (
        "number",
        "pool",
        "account",
        "role",
        "number_type",
        "area_code",
        "state",
        "last_presented_at",
        "last_called_at",
        "monthly_cost",
    )
    list_filter = ("state", "role", "number_type", PromoNumberStateFilter)
    list_select_related = ("pool", "account")
    raw_id_fields = ("account", "pool")
    search_fields = ("pool__name", "account__name", "carrier_ref", "area_code")
    phone_search_fields = ("number",)
    # Pool membership and state change only through the scaling services (audited).
    readonly_fields = (
        "pool",
        "role",
        "state",
        "released_at",
        "last_presented_at",
        "last_called_at",
        "busy_until",
    )
    fields = (
        "account",
        "number",
        "number_type",
        "area_code",
        "region",
        "carrier_ref",
        "monthly_cost",
        "acquired_at",
        *readonly_fields,
    )


@admin.register(Lease)
class LeaseAdmin(LargeTableAdmin):
    list_display = ("number", "pool", "visitor_id", "started_at", "expires_at", "released_at", "page_url")
    list_filter = (LeaseStateFilter,)
    list_select_related = ("number", "pool")
    raw_id_fields = ("pool", "number")
    search_fields = ("visitor_id", "page_url")
    date_hierarchy = "started_at"


@admin.register(Call)
class CallAdmin(PhoneSearchMixin, LargeTableAdmin):
    list_display = ("received_at", "to_number", "from_number", "pool", "attribution", "is_overflow", "lease")
    list_filter = ("attribution", "is_overflow")
    list_select_related = ("pool", "lease")
    raw_id_fields = ("account", "pool", "number", "lease")
    search_fields = ("call_sid",)
    phone_search_fields = ("to_number", "from_number")
    date_hierarchy = "received_at"

    # Calls come from the carrier, figures from the hand-out: records to read, not to write.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Call | None = None) -> bool:
        return False


@admin.register(PoolHourlyFigures)
class PoolHourlyFiguresAdmin(LargeTableAdmin):
    list_display = ("hour", "pool", "shard", "presentations", "overflows", "calls")
    list_select_related = ("pool",)
    raw_id_fields = ("pool",)
    search_fields = ("pool__name",)
    date_hierarchy = "hour"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: PoolHourlyFigures | None = None) -> bool:
        return False
