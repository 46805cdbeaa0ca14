"""Admin helpers shared by the apps' admin modules."""

from __future__ import annotations

import re

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

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


class LargeTableAdmin(admin.ModelAdmin):
    """For tables that grow without bound: no full COUNT(*) on every page."""

    show_full_result_count = False
    list_per_page = 50
