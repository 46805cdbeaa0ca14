"""Admin helpers shared by the apps' admin modules."""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import phonenumbers
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection, models
from django.db.models import Q, QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.display import EMPTY, local_time, zone_name, zone_of
from ringpools import phone

if TYPE_CHECKING:
    from django.template.response import _TemplateForResponseT


class PhoneSearchMixin:
    """Search that finds a number however it is typed: "(805) 555-0100", "805.555.0100", "+18055550100"."""

    phone_search_fields: tuple[str, ...] = ()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)  # type: ignore[misc]
        term = search_term.strip()
        digits = re.sub(r"\D", "", term)
        if not self.phone_search_fields or len(digits) < 3:
            return results, may_have_duplicates
        try:
            wanted = phone.to_e164(term)
        except phone.InvalidPhoneNumber:
            wanted = None
        match = Q()
        for field in self.phone_search_fields:
            match |= Q(**{f"{field}__contains": digits})
            if wanted:
                match |= Q(**{field: wanted})
        return results | queryset.filter(match), may_have_duplicates


class EstimatedCountPaginator(Paginator):
    """On PostgreSQL an unfiltered list of a huge table is counted from the planner's estimate, not
    by a COUNT(*) that reads every row on every page view."""

    def __init__(self, *args: Any, estimate: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.estimate = estimate

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if self.estimate and isinstance(queryset, QuerySet) and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [queryset.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] > 10_000:
                return int(row[0])
        return super().count


# Query parameters of a list that page or sort it without filtering it.
_NOT_FILTERS = {"p", "o"}


class LargeTableAdmin(admin.ModelAdmin):
    """For tables that grow without bound: no full COUNT(*) on every page."""

    show_full_result_count = False
    list_per_page = 50
    paginator = EstimatedCountPaginator

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Paginator:
        return self.paginator(
            queryset,
            per_page,
            orphans,
            allow_empty_first_page,
            estimate=set(request.GET) <= _NOT_FILTERS,
        )


# --- how rows are shown ---------------------------------------------------------------------------

# The carrier bills numbers in US dollars (Twilio prices US numbers in USD); costs are shown with it.
COST_CURRENCY = "USD"


def national(e164: object) -> str:
    """A number in its country's national format: '(805) 555-0102', '020 7946 0018'."""
    raw = str(e164 or "")
    if not raw:
        return EMPTY
    try:
        parsed = phone.parse(raw)
    except phone.InvalidPhoneNumber:
        return raw
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)


def phone_cell(e164: object) -> SafeString | str:
    """National format on the page, E.164 on hover (exports use E.164)."""
    if not e164:
        return EMPTY
    return format_html('<span class="phone" title="{}">{}</span>', str(e164), national(e164))


def cut_cell(text: str, chars: int) -> SafeString | str:
    """A long text cut at a word for a list cell, whole in its tooltip."""
    if len(text) <= chars:
        return text
    cut = text[: chars - 1].rsplit(" ", 1)[0].rstrip(" ,;:(") + "…"
    return format_html('<span title="{}">{}</span>', text, cut)


def money(amount: Decimal | int | None) -> str:
    return EMPTY if amount is None else f"{Decimal(amount):,.2f} {COST_CURRENCY}"


def short_label(choices: type[models.TextChoices], value: str) -> str:
    """A choice's label without its explanation in brackets: 'Rotating (shown to …)' → 'Rotating'."""
    try:
        label = str(choices(value).label)
    except ValueError:
        return value
    return label.split(" (")[0]


class ShortChoicesFilter(admin.ChoicesFieldListFilter):
    """A choices filter that shows the short labels, like the list's columns."""

    def choices(self, changelist: Any) -> Any:
        for choice in super().choices(changelist):
            yield {**choice, "display": str(choice["display"]).split(" (")[0]}


class AccountTimesMixin:
    """Rows that belong to an account show their times in its zone, named; change pages say which zone.

    `account_path` leads from the row to its account ("account", "pool__account"); it must be in
    list_select_related so a list costs no query per row.
    """

    account_path: str = "account"
    change_form_template: ClassVar[_TemplateForResponseT | None] = "admin/account_times_change_form.html"

    def account_zone(self, obj: models.Model | None) -> tzinfo:
        target: object = obj
        for step in self.account_path.split("__"):
            target = getattr(target, step, None) if target is not None else None
        return zone_of(getattr(target, "timezone", None))

    def time_cell(
        self, obj: models.Model, moment: datetime | None, *, time_only: bool = False
    ) -> SafeString | str:
        return local_time(moment, self.account_zone(obj), time_only=time_only)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: models.Model | None = None,
    ) -> TemplateResponse:
        zone = self.account_zone(obj)
        context["times_zone"] = zone_name(zone)
        response = super().render_change_form(request, context, add, change, form_url, obj)  # type: ignore[misc]
        # Read-only dates on the page are rendered in the account's zone, so render here, inside it.
        with timezone.override(zone):
            return response.render()


class ReadOnlyFactsAdmin(admin.ModelAdmin):
    """Facts (calls, leases, figures, the audit trail) are viewed, filtered and searched, never written here,
    whoever asks: superusers included."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- CSV export of a filtered list ----------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?[0-9][0-9.]*$")


def csv_safe(value: object) -> object:
    """A cell a spreadsheet will not run as a formula (a name typed as '=HYPERLINK(…)')."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


class CsvExportMixin:
    """An "Export CSV" button on the list: every row of the filtered, searched and sorted list."""

    change_list_template = "admin/csv_export_change_list.html"
    csv_columns: tuple[tuple[str, Callable[[Any], object]], ...] = ()

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta  # type: ignore[attr-defined]
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.csv_export_view),  # type: ignore[attr-defined]
            name=f"{opts.app_label}_{opts.model_name}_export",
        )
        return [export, *super().get_urls()]  # type: ignore[misc]

    def csv_export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        if not self.has_view_or_change_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)  # type: ignore[attr-defined]
        rows = changelist.queryset.iterator(chunk_size=2000)
        writer = csv.writer(_Echo())
        lines = itertools.chain(
            [writer.writerow([header for header, _ in self.csv_columns])],
            (writer.writerow([csv_safe(value(row)) for _, value in self.csv_columns]) for row in rows),
        )
        name = self.model._meta.verbose_name_plural.replace(" ", "-")  # type: ignore[attr-defined]
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}-{timezone.now():%Y%m%d-%H%M}.csv"'
        return response


def iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat() if moment else ""
