"""Admin helpers shared by the apps' admin modules."""

from __future__ import annotations

import re

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from ringpools import phone


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

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and connection.vendor == "postgresql" and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [queryset.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] > 10_000:
                return int(row[0])
        return super().count


class LargeTableAdmin(admin.ModelAdmin):
    """For tables that grow without bound: no full COUNT(*) on every page."""

    show_full_result_count = False
    list_per_page = 50
    paginator = EstimatedCountPaginator
