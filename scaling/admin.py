from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import OuterRef, QuerySet, Subquery
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime
from simple_history.admin import SimpleHistoryAdmin

from ringpools.admin import RingPoolAdmin
from ringpools.admin_tools import LargeTableAdmin
from ringpools.models import RingPool
from scaling.admin_prune import PrunePreviewAdminMixin
from scaling.models import AutoScalingSettings, InventoryNumber, ScalingEvent
from scaling.selectors import pool_applicability, pools_with_applicability
from scaling.services import POOL_SETTINGS, ringpool_create, ringpool_update


@admin.register(RingPool)
class ScalingRingPoolAdmin(PrunePreviewAdminMixin, RingPoolAdmin):
    list_display = (*RingPoolAdmin.list_display, "auto_scaling", "last_scaling_event")

    def get_queryset(self, request: HttpRequest) -> QuerySet[RingPool]:
        latest = ScalingEvent.objects.filter(pool=OuterRef("pk")).order_by("-created_at", "-id")
        return pools_with_applicability(super().get_queryset(request)).annotate(
            last_event_kind=Subquery(latest.values("kind")[:1]),
            last_event_at=Subquery(latest.values("created_at")[:1]),
        )

    @admin.display(description="auto-scaling")
    def auto_scaling(self, pool: RingPool) -> str:
        verdict = pool_applicability(pool)
        if verdict.applies:
            return mark_safe('<span style="color:#1a7f37">on</span>')
        return format_html('<span style="color:#8c959f">off</span> <small>({})</small>', verdict.reason)

    @admin.display(ordering="last_event_at", description="last scaling event")
    def last_scaling_event(self, pool: RingPool) -> str:
        if not getattr(pool, "last_event_kind", None):
            return "—"
        label = dict(ScalingEvent._meta.get_field("kind").choices).get(
            pool.last_event_kind, pool.last_event_kind
        )
        return format_html("{} <small>{}</small>", label, f"{localtime(pool.last_event_at):%Y-%m-%d %H:%M}")

    def save_model(self, request: HttpRequest, obj: RingPool, form: ModelForm, change: bool) -> None:
        # Pools are created and changed only through the services, which apply defaults and audit;
        # the form has validated the fields already (RingPool.clean included).
        if change:
            changes = {f: form.cleaned_data[f] for f in form.changed_data if f in _pool_fields()}
            ringpool_update(pool=RingPool.objects.get(pk=obj.pk), actor=request.user, **changes)
            return
        options = {f: form.cleaned_data[f] for f in _CREATE_OPTIONS if f in form.cleaned_data}
        created = ringpool_create(
            account=obj.account,
            campaign=obj.campaign,
            destination_number=obj.destination_number,
            name=obj.name,
            number_type=obj.number_type,
            area_code=obj.area_code,
            region=obj.region,
            actor=request.user,
            **options,
        )
        obj.pk, obj.key = created.pk, created.key


_CREATE_OPTIONS = ("lease_seconds", "min_size", "max_size", "is_active", "allowed_origins")


def _pool_fields() -> set[str]:
    return {f.removesuffix("_id") for f in POOL_SETTINGS}


@admin.register(AutoScalingSettings)
class AutoScalingSettingsAdmin(SimpleHistoryAdmin):
    list_display = (
        "account",
        "enable_for_new_pools",
        "include_overflow_number",
        "scope",
        "growth_step",
        "growth_interval_minutes",
        "updated_at",
    )
    list_filter = ("scope", "enable_for_new_pools", "include_overflow_number")
    list_select_related = ("account",)
    raw_id_fields = ("account",)
    filter_horizontal = ("campaigns", "destination_numbers")
    search_fields = ("account__name",)


@admin.register(ScalingEvent)
class ScalingEventAdmin(LargeTableAdmin):
    """The audit trail: readable by staff, never added, changed or deleted here."""

    list_display = ("created_at", "pool", "account", "kind", "trigger", "number", "reason", "actor")
    list_filter = ("kind", "trigger")
    list_select_related = ("pool", "account", "number", "actor")
    search_fields = ("reason", "pool__name", "account__name", "number__number")
    date_hierarchy = "created_at"
    readonly_fields = (
        "created_at",
        "account",
        "pool",
        "number",
        "kind",
        "trigger",
        "reason",
        "figures",
        "actor",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(InventoryNumber)
class InventoryNumberAdmin(admin.ModelAdmin):
    list_display = ("number", "number_type", "area_code", "region", "monthly_cost", "sold_to", "sold_at")
    list_filter = ("number_type", ("sold_to", admin.EmptyFieldListFilter))
    list_select_related = ("sold_to",)
    raw_id_fields = ("sold_to",)
    search_fields = ("number", "area_code", "region")
