from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, cast

from django.contrib import admin
from django.db.models import Model, OuterRef, QuerySet, Subquery
from django.forms import ModelForm
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from simple_history.admin import SimpleHistoryAdmin

from accounts.access import signed_in_user
from accounts.display import figures_table, person_name
from ringpools.admin import RingPoolAdmin
from ringpools.admin_tools import (
    COST_CURRENCY,
    AccountTimesMixin,
    LargeTableAdmin,
    PhoneSearchMixin,
    ReadOnlyFactsAdmin,
    cut_cell,
    money,
    phone_cell,
    short_label,
)
from ringpools.choices import NumberRole, NumberState
from ringpools.models import RingPool
from scaling.admin.dashboard import pool_dashboard
from scaling.admin.prune import PrunePreviewAdminMixin
from scaling.applicability import pool_applicability, pools_with_applicability
from scaling.choices import EventKind, ScalingPolicy, Scope, Trigger
from scaling.growth.outlook import growth_outlook
from scaling.growth.run import pace_of
from scaling.health.charts import pool_health_charts
from scaling.lab.whatif import pool_recommendation
from scaling.models import AutoScalingSettings, CarrierOrder, InventoryNumber, MonthlyPrune, ScalingEvent
from scaling.services import POOL_SETTINGS, ringpool_create, ringpool_update
from scaling.templatetags.words import FIGURE_WORDS

# A reason in a list row: about two lines of its column at 1,366 px.
LIST_REASON_CHARS = 48


class LatestEvent(Protocol):
    """The pool list's annotations of each pool's latest scaling event."""

    last_event_kind: str | None
    last_event_at: datetime | None


@admin.register(RingPool)
class ScalingRingPoolAdmin(PrunePreviewAdminMixin, RingPoolAdmin):
    """The pool list, and each pool's page as an audit dashboard above its settings."""

    list_display: tuple[str, ...] = (*RingPoolAdmin.list_display, "auto_scaling", "last_scaling_event")
    change_form_template = "admin/scaling/pool_audit_change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[RingPool]:
        latest = ScalingEvent.objects.filter(pool=OuterRef("pk")).order_by("-created_at", "-id")
        return pools_with_applicability(super().get_queryset(request)).annotate(
            last_event_kind=Subquery(latest.values("kind")[:1]),
            last_event_at=Subquery(latest.values("created_at")[:1]),
        )

    def has_delete_permission(self, request: HttpRequest, obj: RingPool | None = None) -> bool:
        # A pool ends by being deactivated; deleting it would orphan its audit trail (protected anyway).
        return False

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Model | None = None,
    ) -> TemplateResponse:
        if isinstance(obj, RingPool) and obj.pk:
            now = timezone.now()
            context["dashboard"] = pool_dashboard(pool=obj, now=now)
            # The growth job's own outlook (the same rule and facts the grow pass uses); the page lists
            # the pool's latest events itself.
            with timezone.override(self.account_zone(obj)):  # its times in the account's zone
                context["growth"] = growth_outlook(pool=obj, now=now, events=0)
            context["prune_panel"] = self.prune_panel(obj)
            context["health_charts"] = pool_health_charts(pool=obj, now=now, days=7)
            context["recommendation"] = pool_recommendation(pool=obj, now=now)
            context["currency"] = COST_CURRENCY
            context["numbers_list_url"] = (
                reverse("admin:ringpools_promonumber_changelist") + f"?pool__id__exact={obj.pk}"
            )
            context["events_list_url"] = (
                reverse("admin:scaling_scalingevent_changelist") + f"?pool__id__exact={obj.pk}"
            )
            for number in context["dashboard"].numbers:  # short labels keep each row on one line
                number.role_label = short_label(NumberRole, number.role)
                number.state_label = short_label(NumberState, number.state)
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="auto-scaling")
    def auto_scaling(self, pool: RingPool) -> str:
        verdict = pool_applicability(pool)
        if verdict.applies:
            return format_html('<span class="scaling-on">{}</span>', "on")
        return format_html('<span class="scaling-off">off</span> <small>({})</small>', verdict.reason)

    @admin.display(ordering="last_event_at", description="last scaling event")
    def last_scaling_event(self, pool: RingPool) -> str:
        latest = cast(LatestEvent, pool)
        if not latest.last_event_kind:
            return "—"
        return format_html(
            "{} <small>{}</small>",
            short_label(EventKind, latest.last_event_kind),
            self.time_cell(pool, latest.last_event_at),
        )

    def save_model(self, request: HttpRequest, obj: RingPool, form: ModelForm, change: bool) -> None:
        # Pools are created and changed only through the services, which apply defaults and audit;
        # the form has validated the fields already (RingPool.clean included).
        if change:
            changes = {f: form.cleaned_data[f] for f in form.changed_data if f in _pool_fields()}
            ringpool_update(pool=RingPool.objects.get(pk=obj.pk), actor=signed_in_user(request), **changes)
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
            actor=signed_in_user(request),
            **options,
        )
        obj.pk, obj.key = created.pk, created.key


_CREATE_OPTIONS = ("lease_seconds", "min_size", "max_size", "is_active", "allowed_origins")


def _pool_fields() -> set[str]:
    return {f.removesuffix("_id") for f in POOL_SETTINGS}


@admin.register(AutoScalingSettings)
class AutoScalingSettingsAdmin(AccountTimesMixin, SimpleHistoryAdmin):
    # Short columns: the fields' own labels are sentences, and seven of them overflowed 1,366 px.
    list_display = (
        "account",
        "new_pools",
        "overflow_number",
        "scope_short",
        "pace",
        "policy_short",
        "updated",
    )
    list_filter = ("scope", "enable_for_new_pools", "include_overflow_number", "policy")
    list_select_related = ("account",)
    raw_id_fields = ("account",)
    filter_horizontal = ("campaigns", "destination_numbers")
    search_fields = ("account__name",)
    readonly_fields = ("updated",)

    @admin.display(ordering="updated_at", description="updated")
    def updated(self, settings: AutoScalingSettings) -> str:
        return self.time_cell(settings, settings.updated_at)

    @admin.display(boolean=True, ordering="enable_for_new_pools", description="on for new pools")
    def new_pools(self, settings: AutoScalingSettings) -> bool:
        return settings.enable_for_new_pools

    @admin.display(boolean=True, ordering="include_overflow_number", description="overflow number")
    def overflow_number(self, settings: AutoScalingSettings) -> bool:
        return settings.include_overflow_number

    @admin.display(ordering="scope", description="scope")
    def scope_short(self, settings: AutoScalingSettings) -> str:
        return short_label(Scope, settings.scope)

    @admin.display(description="growth pace")
    def pace(self, settings: AutoScalingSettings) -> str:
        return pace_of(settings).describe()

    @admin.display(ordering="policy", description="policy")
    def policy_short(self, settings: AutoScalingSettings) -> str:
        return short_label(ScalingPolicy, settings.policy)


@admin.register(ScalingEvent)
class ScalingEventAdmin(AccountTimesMixin, PhoneSearchMixin, ReadOnlyFactsAdmin, LargeTableAdmin):
    """The audit trail: readable by staff, never added, changed or deleted here."""

    list_display = ("created", "pool", "kind_label", "trigger_label", "phone", "reason_cut", "actor_name")
    list_filter = ("kind", "trigger")
    list_select_related = ("pool", "account", "number", "actor")
    search_fields = ("reason", "pool__name", "account__name")
    phone_search_fields = ("number__number",)
    date_hierarchy = "created_at"
    fields = (
        "created",
        "account",
        "pool",
        "phone",
        "kind_label",
        "trigger_label",
        "reason",
        "figures_shown",
        "actor_name",
    )
    readonly_fields = fields

    @admin.display(ordering="created_at", description="when")
    def created(self, event: ScalingEvent) -> str:
        return self.time_cell(event, event.created_at)

    @admin.display(ordering="kind", description="event")
    def kind_label(self, event: ScalingEvent) -> str:
        return short_label(EventKind, event.kind)

    @admin.display(ordering="trigger", description="trigger")
    def trigger_label(self, event: ScalingEvent) -> str:
        return short_label(Trigger, event.trigger)

    @admin.display(ordering="number__number", description="number")
    def phone(self, event: ScalingEvent) -> str:
        return phone_cell(event.number.number) if event.number else "—"

    @admin.display(description="reason")
    def reason_cut(self, event: ScalingEvent) -> SafeString | str:
        """Two lines at most in the list; the whole reason on hover and on the event's page."""
        return cut_cell(event.reason, LIST_REASON_CHARS)

    @admin.display(ordering="actor", description="by")
    def actor_name(self, event: ScalingEvent) -> str:
        return person_name(event.actor)

    @admin.display(description="figures")
    def figures_shown(self, event: ScalingEvent) -> SafeString | str:
        return figures_table(event.figures, FIGURE_WORDS)


@admin.register(InventoryNumber)
class InventoryNumberAdmin(AccountTimesMixin, PhoneSearchMixin, admin.ModelAdmin):
    account_path = "sold_to"  # sold numbers show the buyer's zone; numbers for sale, UTC
    list_display = ("phone", "number_type", "area_code", "region", "cost", "sold_to", "sold")
    list_filter = ("number_type", ("sold_to", admin.EmptyFieldListFilter))
    list_select_related = ("sold_to",)
    raw_id_fields = ("sold_to",)
    search_fields = ("area_code", "region")
    phone_search_fields = ("number",)

    @admin.display(ordering="number", description="number")
    def phone(self, number: InventoryNumber) -> str:
        return phone_cell(number.number)

    @admin.display(ordering="monthly_cost", description="monthly cost")
    def cost(self, number: InventoryNumber) -> str:
        return money(number.monthly_cost)

    @admin.display(ordering="sold_at", description="sold")
    def sold(self, number: InventoryNumber) -> str:
        return self.time_cell(number, number.sold_at)


@admin.register(CarrierOrder)
class CarrierOrderAdmin(AccountTimesMixin, ReadOnlyFactsAdmin, LargeTableAdmin):
    """The carrier outbox: what was bought or released, and what still waits for the carrier."""

    list_display = ("created", "kind", "state", "pool", "number", "attempts", "last_error", "finished")
    list_filter = ("kind", "state", "trigger")
    list_select_related = ("pool", "account", "number")
    search_fields = ("request_id", "carrier_ref", "pool__name", "account__name", "last_error")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in CarrierOrder._meta.fields]

    @admin.display(ordering="created_at", description="created")
    def created(self, order: CarrierOrder) -> str:
        return self.time_cell(order, order.created_at)

    @admin.display(ordering="finished_at", description="finished")
    def finished(self, order: CarrierOrder) -> str:
        return self.time_cell(order, order.finished_at) if order.finished_at else "—"


@admin.register(MonthlyPrune)
class MonthlyPruneAdmin(AccountTimesMixin, ReadOnlyFactsAdmin, LargeTableAdmin):
    """One decision per pool and month: what the month-end prune removed, or why it skipped the pool."""

    list_display = ("month", "pool", "account", "outcome", "removed", "reason", "decided")
    list_filter = ("outcome", "month")
    list_select_related = ("pool", "account")
    search_fields = ("pool__name", "account__name", "reason")
    readonly_fields = [f.name for f in MonthlyPrune._meta.fields]

    @admin.display(ordering="decided_at", description="decided")
    def decided(self, prune: MonthlyPrune) -> str:
        return self.time_cell(prune, prune.decided_at)


from scaling.admin import alerts, jobs  # noqa: E402,F401  (register the alerts and periodic jobs' pages)
