from __future__ import annotations

import json
import logging
import time

from csp.decorators import csp_exempt
from django.conf import settings
from django.db import Error as DatabaseFailure
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from config import metrics
from ringpools import phone
from ringpools.api import (
    ApiError,
    busy,
    database_errors_as_503,
    error_response,
    parse_number_request,
    rate_limited,
    read_json_body,
    unavailable,
    visitor_id_from,
)
from ringpools.errors import script_response
from ringpools.handout import (
    ClaimRefused,
    HandoutBusy,
    present_number,
    release_lease,
)
from ringpools.models import RingPool
from ringpools.ratelimit import client_address, limiter
from ringpools.selectors import HandoutPool, handout_pool, origin_allowed

log = logging.getLogger(__name__)


def _pool_or_error(request: HttpRequest, pool_key: str) -> HandoutPool:
    pool = handout_pool(pool_key)
    if pool is None:
        raise ApiError(404, "pool_not_found", "No active RingPool has this key.")
    origin = request.headers.get("origin")
    # Browsers send Origin on every cross-origin POST; refuse the ones the pool does not list, so a
    # page elsewhere cannot drain the pool even though CORS would stop it reading the answer.
    if origin and origin != _own_origin(request) and not origin_allowed(pool, origin):
        raise ApiError(403, "origin_not_allowed", f"{origin} is not an allowed origin of this RingPool.")
    return pool


def _not_post(request: HttpRequest, pool_key: str) -> JsonResponse:
    # A preflight reaches the view only when CORS did not answer it: say why (404, 403, or 503 from
    # the decorator when the pool cannot be read).
    if request.method == "OPTIONS":
        try:
            _pool_or_error(request, pool_key)
        except ApiError as error:
            return error.response()
    response = error_response(405, "method_not_allowed", "Use POST.")
    response["Allow"] = "POST, OPTIONS"
    return response


def preflight_refusal(request: HttpRequest) -> HttpResponse | None:
    """A CORS preflight of the API answered as the request itself would be, when that is a refusal:
    the 404 of an unknown pool or endpoint, the 403 of an origin the pool does not list, the 503 of a
    database that cannot answer. None: django-cors-headers answers it, with the pool's CORS headers.
    A preflight without an Origin is no browser's: a 204, with what the endpoint allows."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        match = None
    if match is None or match.url_name not in ("ringpool-numbers", "ringpool-release"):
        return api_not_found(request)
    try:
        _pool_or_error(request, match.kwargs["pool_key"])
    except ApiError as error:
        return error.response()
    except DatabaseFailure:
        return unavailable()
    if not request.headers.get("origin"):
        return HttpResponse(status=204, headers={"Allow": "POST, OPTIONS"})
    return None


def _own_origin(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


@csrf_exempt
@database_errors_as_503
def numbers(request: HttpRequest, pool_key: str) -> HttpResponse:
    """POST /api/v1/ringpools/<key>/numbers: the number this visitor sees (SPEC §9)."""
    if request.method != "POST":
        return _not_post(request, pool_key)
    try:
        pool = _pool_or_error(request, pool_key)
        data = read_json_body(request)
        asked = parse_number_request(data)
    except ApiError as error:
        return error.response()
    limits, address, now = limiter(), client_address(request), time.time()
    verdict = limits.check(address=address, visitor=f"{pool.id}:{asked.visitor_id}", now=now)
    if not verdict.allowed:
        metrics.RATE_LIMITED.inc()
        return rate_limited(verdict.retry_after)
    try:
        shown = present_number(
            pool=pool,
            visitor_id=asked.visitor_id,
            page_url=asked.page_url,
            params=asked.params,
            keepalive=asked.keepalive,
            may_claim=verdict.may_claim,
            new_visitor=asked.new_visitor,
        )
    except ClaimRefused:
        metrics.RATE_LIMITED.inc()
        return rate_limited(verdict.retry_after)
    except HandoutBusy:
        metrics.HANDOUT_BUSY.inc()
        log.warning("hand-out of pool %s: free numbers stayed locked or requests kept colliding", pool.id)
        return busy()
    if shown.claimed:
        limits.claimed(address=address, now=now)
    answer = {
        "number": shown.number,
        "display": phone.display(shown.number),
        "kind": shown.kind,
        "expires_at": shown.expires_at.isoformat() if shown.expires_at else None,
    }
    metrics.HANDOUTS.labels(shown.kind).inc()
    metrics.HANDOUT_SECONDS.observe(time.time() - now)
    # Plain strings only: json.dumps without JsonResponse's encoder class, on every hand-out.
    return HttpResponse(
        json.dumps(answer), content_type="application/json", headers={"Cache-Control": "no-store"}
    )


@csrf_exempt
@database_errors_as_503
def release(request: HttpRequest, pool_key: str) -> JsonResponse:
    """POST /api/v1/ringpools/<key>/numbers/release: the page is going away (the tag's beacon).

    Accepts text/plain as well, the type `navigator.sendBeacon` sends without a CORS preflight.
    """
    if request.method != "POST":
        return _not_post(request, pool_key)
    try:
        pool = _pool_or_error(request, pool_key)
        data = read_json_body(request, allow_text_plain=True)
        visitor_id = visitor_id_from(data)
    except ApiError as error:
        return error.response()
    verdict = limiter().check(
        address=client_address(request), visitor=f"{pool.id}:{visitor_id}", now=time.time()
    )
    if not verdict.allowed:
        return rate_limited(verdict.retry_after)
    released = release_lease(pool=pool, visitor_id=visitor_id)
    return JsonResponse({"released": released}, headers={"Cache-Control": "no-store"})


# The public endpoints below answer cross-site callers without a session: no CSRF check (which would
# answer Django's HTML 403 instead of their JSON or JavaScript).
@csrf_exempt
def api_not_found(request: HttpRequest) -> JsonResponse:
    return error_response(404, "not_found", "No such endpoint: see /api/v1/ringpools/<key>/numbers.")


@csrf_exempt
def tag(request: HttpRequest, pool_key: str) -> HttpResponse:
    """GET /tag/<key>.js: the script landing pages include. Always JavaScript, even as an error."""
    if request.method not in ("GET", "HEAD"):
        response = script_response("use GET", 405)
        response["Allow"] = "GET, HEAD"
        return response
    try:
        pool = handout_pool(pool_key)
    except DatabaseFailure:
        log.exception("%r failed on the database", request.path)
        response = script_response("unavailable, the page keeps its number", 503)
        response["Retry-After"] = "30"
        return response
    if pool is None:
        return script_response("no active pool with this key", 404)
    script = render_to_string(
        "ringpools/tag.js",
        {
            "pool_key": pool.key,
            "api_url": request.build_absolute_uri(f"/api/v1/ringpools/{pool.key}/numbers"),
        },
    )
    response = HttpResponse(script, content_type="text/javascript; charset=utf-8")
    # Served to the whole internet: let browsers and CDNs keep it for a while, revalidating.
    response["Cache-Control"] = "public, max-age=300, stale-while-revalidate=86400"
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _get_or_head(request: HttpRequest) -> JsonResponse | None:
    """The health checks' answer to any other method: a JSON 405 (Django's is an empty HTML one)."""
    if request.method in ("GET", "HEAD"):
        return None
    response = error_response(405, "method_not_allowed", "Use GET or HEAD.")
    response["Allow"] = "GET, HEAD"
    return response


@csrf_exempt
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers; 503 otherwise."""
    if (refused := _get_or_head(request)) is not None:
        return refused
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # any database failure means "not healthy", never a 500
        return JsonResponse({"status": "unavailable", "detail": type(error).__name__}, status=503)
    return JsonResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@csrf_exempt
def livez(request: HttpRequest) -> JsonResponse:
    """A constant answer: the process is up. The benchmark's baseline."""
    if (refused := _get_or_head(request)) is not None:
        return refused
    return JsonResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


# The pool the demo page shows when none is chosen: the one the README's walkthrough uses.
DEMO_LANDING_POOL = "rp_demo_local"


# The demo page stands for a customer's own landing page, with its inline style and script: not ours
# to hold to the product's Content-Security-Policy.
@csp_exempt()
@require_safe
def demo_landing(request: HttpRequest) -> HttpResponse:
    """A landing page that uses the tag: the demo's way to see a number swapped (DEBUG or staff only)."""
    if not (settings.DEBUG or request.user.is_staff):
        return HttpResponse(status=404)
    pools = list(
        RingPool.objects.filter(is_active=True)
        .select_related("destination_number", "campaign")
        .order_by("account_id", "name")[:20]
    )
    asked = request.GET.get("pool") or DEMO_LANDING_POOL
    chosen = next((p for p in pools if p.key == asked), pools[0] if pools else None)
    return render(request, "ringpools/demo_landing.html", {"pool": chosen, "pools": pools})
