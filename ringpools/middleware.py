"""The JSON 503 for what the CORS middleware answers on its own (SPEC §3.7).

django-cors-headers answers preflights itself and asks `ringpools.signals` whether the Origin may
call: that lookup of the pool runs outside any view. When it finds the database down it marks the
request, and this middleware (placed before CorsMiddleware) turns the answer into the JSON 503 every
public endpoint gives then.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ringpools.api import unavailable

DATABASE_FAILED = "_ringpool_database_failed"


class PublicEndpointsUnavailable:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, DATABASE_FAILED, False) and response.status_code != 503:
            return unavailable()
        return response
