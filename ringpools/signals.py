"""django-cors-headers asks, per API request, whether the Origin may call it: each pool lists its own."""

from __future__ import annotations

from corsheaders.signals import check_request_enabled
from django.db import Error as DatabaseFailure
from django.dispatch import receiver
from django.http import HttpRequest
from django.urls import Resolver404, resolve

from ringpools.middleware import DATABASE_FAILED
from ringpools.selectors import handout_pool, origin_allowed


@receiver(check_request_enabled)
def allow_pool_origins(sender: object, request: HttpRequest, **kwargs: object) -> bool:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    # Only the API: the tag is served to any origin and needs no preflight.
    key = match.kwargs.get("pool_key")
    if not key or match.url_name not in ("ringpool-numbers", "ringpool-release"):
        return False
    try:
        pool = handout_pool(key)
    except DatabaseFailure:
        # Runs in the CORS middleware, outside the view's error handling: no CORS, and the request
        # marked so that it is answered with the JSON 503 (ringpools.middleware).
        setattr(request, DATABASE_FAILED, True)
        return False
    return pool is not None and origin_allowed(pool, request.headers.get("origin", ""))
