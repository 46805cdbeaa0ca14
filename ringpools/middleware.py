"""What the CORS middleware would answer on its own, answered as the API would (SPEC §3.7).

A preflight for an unknown pool or endpoint, or from an origin the pool does not list, gets the same
JSON 404 or 403 its request would (django-cors-headers would answer an empty 200 without CORS headers,
which a browser reports as a CORS failure with no reason): `ApiPreflights`, before CorsMiddleware.

django-cors-headers answers preflights itself and asks `ringpools.signals` whether the Origin may
call: that lookup of the pool runs outside any view. When it finds the database down it marks the
request, and this middleware (placed before CorsMiddleware) turns the answer into the JSON 503 every
public endpoint gives then.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ringpools.api import unavailable
from ringpools.errors import Format, format_of
from ringpools.views import preflight_refusal

DATABASE_FAILED = "_ringpool_database_failed"


class PublicEndpointsUnavailable:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, DATABASE_FAILED, False) and response.status_code != 503:
            return unavailable()
        return response


class ApiPreflights:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.method == "OPTIONS"
            and "access-control-request-method" in request.headers
            and format_of(request.path) is Format.JSON
        ):
            refused = preflight_refusal(request)
            if refused is not None:
                return refused
        return self.get_response(request)
