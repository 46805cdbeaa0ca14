"""Signed-in pages are private: no shared cache (a proxy, a CDN) and no browser history keeps them."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_cache_control


class SignedInPagesPrivate:
    """`Cache-Control: private, no-store` on every page answered to a request with a session cookie,
    unless the view said otherwise (admin's never_cache already says more). Judged by the cookie, not
    by `request.user`: reading the user would cost a query on pages that did not need one, and fail
    with the database down. The public endpoints say their own caching (the tag is public), so a
    response that names one is left as it is."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if settings.SESSION_COOKIE_NAME in request.COOKIES and not response.has_header("Cache-Control"):
            patch_cache_control(response, private=True, no_store=True)
        return response
