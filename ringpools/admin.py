from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol, cast

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from ringpools import phone
from ringpools.admin_tools import (
    COST_CURRENCY,
    EMPTY,
    AccountTimesMixin,
    CsvExportMixin,
    PhoneSearchMixin,
    ShortChoicesFilter,
    iso,
    national,
    phone_cell,
    short_label,
)
from ringpools.choices import NumberRole, NumberState, NumberType
from ringpools.models import (
    Campaign,
    DestinationNumber,
    PromoNumber,
    RingPool,
)
from ringpools.sample_calls import sample_call_place
from ringpools.selectors import pools_with_figures

# Leases, calls and hourly figures: read-only facts, registered from their own module.
from ringpools import admin_facts  # noqa: F401  isort: skip


class PoolRow(Protocol):
    """The annotations the pool list's queryset puts on each pool."""

    size: int
    overflow_e164: str | None
    leased_now: int
    overflows_24h: int


@admin.register(Campaign)
class CampaignAdmin(AccountTimesMixin, admin.ModelAdmin):
    list_display = ("name", "account", "is_active", "created")
    list_filter = ("is_active",)
    list_select_related = ("account",)
    raw_id_fields = ("account",)
    search_fields = ("name", "account__name")
    readonly_fields = ("created_at",)

    @admin.display(ordering="created_at", description="created")
    def created(self, campaign: Campaign) -> str:
        return self.time_cell(campaign, campaign.created_at)


@admin.register(DestinationNumber)
class DestinationNumberAdmin(AccountTimesMixin, PhoneSearchMixin, admin.ModelAdmin):
    list_display = ("phone", "label", "account")
    list_select_related = ("account",)
    raw_id_fields = ("account",)
    search_fields = ("label", "account__name")
    phone_search_fields = ("number",)

    @admin.display(ordering="number", description="number")
    def phone(self, destination: DestinationNumber) -> str:
        return phone_cell(destination.number)


class RingPoolAdmin(AccountTimesMixin, CsvExportMixin, SimpleHistoryAdmin):
    """The pool list of the back office. scaling.admin extends it with auto-scaling and the audit page."""

    list_display: tuple[str, ...] = ("pool_name", "account", "type", "numbers", "leased_now", "overflows_24h")
    list_filter = ("number_type", "is_active", "overflow_mode", "auto_scaling_enabled")
    list_select_related = ("account", "campaign", "destination_number")
    search_fields = ("name", "key", "campaign__name", "account__name")
    raw_id_fields = ("account", "campaign", "destination_number")
    readonly_fields = ("key", "last_overflow", "created", "overflow_number_display")
    fieldsets = (
        (None, {"fields": ("account", "campaign", "destination_number", "name", "key", "is_active")}),
        (
            "Numbers",
            {"fields": ("number_type", "area_code", "region", "min_size", "max_size", "lease_seconds")},
        ),
        ("Overflow", {"fields": ("overflow_mode", "overflow_number_display", "last_overflow")}),
        ("Auto-scaling", {"fields": ("auto_scaling_enabled",)}),
        ("Web", {"fields": ("allowed_origins", "created")}),
    )
    csv_columns = (
        ("id", lambda p: p.pk),
        ("key", lambda p: p.key),
        ("name", lambda p: p.name),
        ("account", lambda p: p.account.name),
        ("campaign", lambda p: p.campaign.name),
        ("number type", lambda p: p.number_type),
        ("numbers in rotation", lambda p: p.size),
        ("overflow number", lambda p: p.overflow_e164 or ""),
        ("leased now", lambda p: p.leased_now),
        ("overflows 24h", lambda p: p.overflows_24h),
        ("min size", lambda p: p.min_size),
        ("max size", lambda p: p.max_size),
        ("auto-scaling enabled", lambda p: p.auto_scaling_enabled),
        ("active", lambda p: p.is_active),
        ("last overflow (UTC)", lambda p: iso(p.last_overflow_at)),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[RingPool]:
        now = timezone.now()
        overflow = PromoNumber.objects.filter(
            pool=OuterRef("pk"), role=NumberRole.OVERFLOW, state=NumberState.ACTIVE
        ).values("number")[:1]
        return pools_with_figures(
            super().get_queryset(request), since=now - timedelta(hours=24), now=now
        ).annotate(overflow_e164=Subquery(overflow))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[RingPool], search_term: str
    ) -> tuple[QuerySet[RingPool], bool]:
        """Also the pool holding a number typed in any format (one row per pool: no join)."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        try:
            e164 = phone.to_e164(search_term.strip()) if len(search_term.strip()) >= 7 else None
        except phone.InvalidPhoneNumber:
            e164 = None
        if e164:
            holds = PromoNumber.objects.filter(pool=OuterRef("pk"), number=e164)
            results = results | queryset.filter(Exists(holds))
        return results, may_have_duplicates

    @admin.display(ordering="name", description="pool")
    def pool_name(self, pool: RingPool) -> str:
        if pool.is_active:
            return pool.name
        return format_html('{} <small class="inactive">(inactive)</small>', pool.name)

    @admin.display(ordering="number_type", description="type")
    def type(self, pool: RingPool) -> str:
        return NumberType(pool.number_type).label

    @admin.display(ordering="size", description="numbers")
    def numbers(self, pool: RingPool) -> str:
        row = cast(PoolRow, pool)
        if row.overflow_e164:
            return format_html(
                '{} <small title="overflow number {} ({})">+ overflow</small>',
                row.size,
                national(row.overflow_e164),
                str(row.overflow_e164),
            )
        return str(row.size)

    @admin.display(ordering="leased_now", description="in use now")
    def leased_now(self, pool: RingPool) -> int:
        return cast(PoolRow, pool).leased_now

    @admin.display(ordering="overflows_24h", description="overflows 24 h")
    def overflows_24h(self, pool: RingPool) -> int:
        return cast(PoolRow, pool).overflows_24h

    @admin.display(description="overflow number")
    def overflow_number_display(self, pool: RingPool) -> str:
        number = pool.overflow_number if pool.pk else None
        return phone_cell(number.number) if number else EMPTY

    @admin.display(description="last overflow")
    def last_overflow(self, pool: RingPool) -> str:
        return self.time_cell(pool, pool.last_overflow_at)

    @admin.display(description="created")
    def created(self, pool: RingPool) -> str:
        return self.time_cell(pool, pool.created_at)


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


def in_use_until(number: PromoNumber, now: datetime | None = None) -> datetime | None:
    """When a visitor holds the number, until when; never a placeholder date for a free number."""
    now = now or timezone.now()
    return number.busy_until if number.busy_until > now and number.state == NumberState.ACTIVE else None


@admin.register(PromoNumber)
class PromoNumberAdmin(AccountTimesMixin, CsvExportMixin, PhoneSearchMixin, SimpleHistoryAdmin):
    """Numbers come from the carrier and change pool or state only through the scaling services (audited):
    every field is read-only here."""

    list_display = (
        "phone",
        "pool",
        "role_short",
        "state_label",
        "in_use",
        "last_presented",
        "last_called",
        "cost",
    )
    list_filter = ("state", ("role", ShortChoicesFilter), "number_type", PromoNumberStateFilter)
    list_select_related = ("pool", "account")
    search_fields = ("pool__name", "account__name", "carrier_ref", "area_code")
    phone_search_fields = ("number",)
    actions = ["place_test_call"]
    fields = (
        "phone",
        "account",
        "pool",
        "role",
        "state",
        "number_type",
        "area_code",
        "region",
        "carrier_ref",
        "cost",
        "acquired",
        "released",
        "in_use",
        "last_presented",
        "last_called",
    )
    readonly_fields = fields
    csv_columns = (
        ("number", lambda n: str(n.number)),
        ("pool", lambda n: n.pool.name if n.pool else ""),
        ("account", lambda n: n.account.name),
        ("role", lambda n: n.role),
        ("state", lambda n: n.state),
        ("number type", lambda n: n.number_type),
        ("area code", lambda n: n.area_code),
        ("in use until (UTC)", lambda n: iso(in_use_until(n))),
        ("last presented (UTC)", lambda n: iso(n.last_presented_at)),
        ("last called (UTC)", lambda n: iso(n.last_called_at)),
        ("acquired (UTC)", lambda n: iso(n.acquired_at)),
        ("released (UTC)", lambda n: iso(n.released_at)),
        ("monthly cost", lambda n: n.monthly_cost),
        ("currency", lambda n: COST_CURRENCY),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PromoNumber | None = None) -> bool:
        return False

    @admin.display(ordering="number", description="number")
    def phone(self, number: PromoNumber) -> str:
        return phone_cell(number.number)

    @admin.display(ordering="role", description="role")
    def role_short(self, number: PromoNumber) -> str:
        return short_label(NumberRole, number.role)

    @admin.display(ordering="state", description="state")
    def state_label(self, number: PromoNumber) -> str:
        return short_label(NumberState, number.state)

    @admin.display(ordering="busy_until", description="in use until")
    def in_use(self, number: PromoNumber) -> str:
        # A lease lasts a day at most: the time says it (the full date is on hover).
        return self.time_cell(number, in_use_until(number), time_only=True)

    @admin.display(ordering="last_presented_at", description="last presented")
    def last_presented(self, number: PromoNumber) -> str:
        return self.time_cell(number, number.last_presented_at)

    @admin.display(ordering="last_called_at", description="last called")
    def last_called(self, number: PromoNumber) -> str:
        return self.time_cell(number, number.last_called_at)

    @admin.display(ordering="acquired_at", description="acquired")
    def acquired(self, number: PromoNumber) -> str:
        return self.time_cell(number, number.acquired_at)

    @admin.display(ordering="released_at", description="released")
    def released(self, number: PromoNumber) -> str:
        return self.time_cell(number, number.released_at)

    @admin.display(ordering="monthly_cost", description=f"{COST_CURRENCY}/month")
    def cost(self, number: PromoNumber) -> str:
        # The currency is in the column's title: the list stays one line a row at 1,366 px.
        return f"{number.monthly_cost:,.2f}"

    def has_test_call_permission(self, request: HttpRequest) -> bool:
        # A test call records a Call in the customer's data: superusers only (the demo's staff login).
        return request.user.is_superuser

    @admin.action(description="Place a test call to the selected numbers", permissions=["test_call"])
    def place_test_call(self, request: HttpRequest, queryset: QuerySet[PromoNumber]) -> None:
        for number in queryset.select_related("account")[:10]:
            result = sample_call_place(number=number)
            if result.call is None:
                self.message_user(
                    request,
                    f"Test call to {national(number.number)}: the webhook answered {result.status_code}.",
                    messages.ERROR,
                )
                continue
            url = reverse("admin:ringpools_call_change", args=[result.call.pk])
            self.message_user(
                request,
                format_html(
                    'Test call to {}: <a href="{}">{}</a>.',
                    national(number.number),
                    url,
                    result.call.get_attribution_display(),
                ),
                messages.SUCCESS,
            )
