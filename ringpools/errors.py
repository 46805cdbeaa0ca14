"""What the web tier answers when no view does: each public endpoint in its own format, never Django's
HTML page, and never a traceback in the log for a client's mistake (SPEC §3.7, §9).

Django answers some requests before or around the views: a Host header it refuses (DisallowedHost,
a SuspiciousOperation logged with its traceback), a path no URL matches (404), an exception no view
caught (500). Here each gets the format of the endpoint it was meant for, judged from the path as a
client may have written it (`/API//v1/…` is still the API): JSON for the API, the webhook and the
health checks, JavaScript for the tag. The customer pages keep HTML, and a database that cannot answer
gets the designed 503 page rather than a 500 (`ServiceUnavailable`).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from enum import Enum

from django.core.exceptions import DisallowedHost
from django.db import Error as DatabaseFailure
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template.loader import render_to_string

from ringpools.api import error_response

log = logging.getLogger(__name__)


class Format(Enum):
    JSON = "json"
    JAVASCRIPT = "javascript"
    PAGE = "page"  # the customer pages and the back office: HTML


_JSON_PATHS = re.compile(r"^/(?:api|webhooks)(?:/|$)|^/(?:healthz|livez|readyz|metrics)/?$")
_TAG_PATHS = re.compile(r"^/tag(?:/|$)")


def format_of(path: str) -> Format:
    """The format of the endpoint a path was meant for, however it is cased or slashed."""
    meant = re.sub(r"/{2,}", "/", path).lower()
    if _JSON_PATHS.match(meant):
        return Format.JSON
    if _TAG_PATHS.match(meant):
        return Format.JAVASCRIPT
    return Format.PAGE


def is_public(path: str) -> bool:
    return format_of(path) is not Format.PAGE


def script_response(comment: str, status: int) -> HttpResponse:
    """The tag's way of answering an error: a script that does nothing, with the reason in a comment."""
    return HttpResponse(
        f"/* RingPool: {comment} */\n", status=status, content_type="text/javascript; charset=utf-8"
    )


def _answer(request: HttpRequest, status: int, code: str, detail: str, page: str) -> HttpResponse:
    found = format_of(request.path)
    if found is Format.JSON:
        return error_response(status, code, detail)
    if found is Format.JAVASCRIPT:
        return script_response(detail, status)
    # Rendered without the request: no context processor may touch the session or the database.
    return HttpResponse(
        render_to_string(page, {"status": status, "detail": detail}),
        status=status,
        content_type="text/html; charset=utf-8",
    )


class HostChecked:
    """First of all middleware: a Host header Django would refuse is answered here, a 400 in the
    endpoint's format, logged as one line. (Django would raise DisallowedHost from the first
    `get_host()` and log a traceback per request: any client could fill the log at will.)"""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        try:
            request.get_host()
        except DisallowedHost:
            host = request.META.get("HTTP_X_FORWARDED_HOST") or request.META.get("HTTP_HOST", "")
            # %r and a bound: no raw bytes and no kilobyte of a client's text in one line.
            log.warning(
                "Refused a request for the host %r (not in ALLOWED_HOSTS) to %r", host[:80], request.path[:80]
            )
            response = _answer(
                request, 400, "bad_host", "The Host header names no site served here.", "400.html"
            )
            # Logged above: Django's "Bad Request" line would be a second one (its own flag for that).
            response._has_been_logged = True  # type: ignore[attr-defined]
            return response
        return self.get_response(request)


class ServiceUnavailable:
    """A database that cannot answer gives the designed 503 (the page, or the endpoint's JSON),
    logged as one line, not an HTML 500 with a traceback per request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DatabaseFailure):
            return None
        log.error(
            "%r answered 503: the database failed (%s: %s)",
            request.path[:80],
            type(exception).__name__,
            str(exception)[:200],
        )
        return unavailable_page(request)


def unavailable_page(request: HttpRequest) -> HttpResponse:
    response = _answer(
        request,
        503,
        "unavailable",
        "The service cannot answer right now; try again shortly.",
        "503.html",
    )
    response["Retry-After"] = "30"
    response["Cache-Control"] = "no-store"
    return response


# Django's error handlers (config/urls.py names them): the same formats for what reaches them.
def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if format_of(request.path) is Format.JSON:
        return error_response(404, "not_found", "No such endpoint: see /api/v1/ringpools/<key>/numbers.")
    return _answer(request, 404, "not_found", "No such page.", "404.html")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _answer(request, 400, "bad_request", "The request cannot be read.", "400.html")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if format_of(request.path) is Format.PAGE:
        # The customer area's own 403 page (it draws the sign-in link, which needs the request).
        from django.shortcuts import render

        return render(request, "403.html", {"exception": str(exception or "")}, status=403)
    return _answer(request, 403, "forbidden", "This request is not allowed.", "403.html")


def server_error(request: HttpRequest) -> HttpResponse:
    """Last resort for an exception no view caught: a failing database is a 503 (it will pass), any
    other exception a 500 in the endpoint's format. Django has logged it already."""
    if isinstance(sys.exc_info()[1], DatabaseFailure):
        return unavailable_page(request)
    return _answer(
        request, 500, "server_error", "Something went wrong on our side; it has been logged.", "500.html"
    )
