"""The public visitor API: validation of what landing pages send, and JSON errors for everything else."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from django.db import Error as DatabaseFailure
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
MAX_PARAMS_BYTES = 4 * 1024
MAX_PARAMS_KEYS = 50
MAX_PAGE_URL = 2048
VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{8,128}")


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail

    def response(self) -> JsonResponse:
        return error_response(self.status, self.code, self.detail)


def error_response(status: int, code: str, detail: str) -> JsonResponse:
    response = JsonResponse({"error": code, "detail": detail}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def database_errors_as_503(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A database that cannot answer gives a JSON 503, never an HTML 500: the tag keeps the number the
    page was written with and asks again on its next renewal; the carrier retries its webhook."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except DatabaseFailure:  # django.db.Error: OperationalError, InterfaceError, ...
            # %r: no raw bytes in the log. Repeats are collapsed (config/logs.py): an outage writes a
            # line per minute, not one per request.
            log.exception("%r failed on the database", request.path, extra={"outcome": "503 unavailable"})
            return unavailable()

    return wrapper


def unavailable() -> JsonResponse:
    return error_response(503, "unavailable", "The service cannot answer right now; try again shortly.")


def busy() -> JsonResponse:
    """The hand-out found free numbers but could not take one in time (a rush on the last numbers)."""
    response = error_response(503, "busy", "Every free number is being handed out right now; try again.")
    response["Retry-After"] = "1"
    return response


def rate_limited(retry_after: int) -> JsonResponse:
    response = error_response(
        429, "rate_limited", f"Too many requests from this client; try again in {retry_after} seconds."
    )
    response["Retry-After"] = str(retry_after)
    return response


@dataclass(frozen=True)
class NumberRequest:
    visitor_id: str
    page_url: str
    params: dict[str, Any]
    keepalive: bool
    new_visitor: bool  # the tag made the visitor id just now (a hint: see handout.present_number)


def read_json_body(request: HttpRequest, *, allow_text_plain: bool = False) -> dict[str, Any]:
    """The request's JSON object, or an ApiError saying exactly what is wrong with it."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"The body may be at most {MAX_BODY_BYTES} bytes.")
    content_type = request.content_type or ""
    accepted = {"application/json"} | ({"text/plain"} if allow_text_plain else set())
    if content_type not in accepted:
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    body = body_of(request, MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"The body may be at most {MAX_BODY_BYTES} bytes.")
    try:
        data = json.loads(body.decode("utf-8"), parse_float=_finite_float, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError is a ValueError; so are huge integers
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    except RecursionError:  # nesting a few thousand deep fits in 16 KB
        raise ApiError(400, "invalid_json", "The body is nested too deeply.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    if not _valid_text(data):
        raise ApiError(400, "invalid_json", "Text in the body must be valid Unicode (no lone surrogates).")
    return data


def is_chunked(request: HttpRequest) -> bool:
    """A body sent with Transfer-Encoding: chunked carries no Content-Length, and Django then reads it
    as empty; the WSGI server (gunicorn) decodes the chunks, so the body is read from its stream."""
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower() and not request.META.get(
        "CONTENT_LENGTH"
    )


def body_of(request: HttpRequest, limit: int) -> bytes:
    """At most `limit` bytes of the request's body, however it was framed; an ApiError when the
    framing breaks (a bad chunk size, a body shorter than its Content-Length): OSErrors of the server's
    stream and Django's UnreadablePostError."""
    try:
        if is_chunked(request):
            return request.META["wsgi.input"].read(limit)
        return request.read(limit)
    except OSError:
        raise ApiError(400, "unreadable_body", "The body ends before its framing says it should.") from None


def _valid_text(data: Any) -> bool:
    """False when a string anywhere is not encodable: JSON allows lone surrogates (\\ud800), UTF-8,
    the log and PostgreSQL's jsonb do not. A loop, not recursion: the body may be nested deeply."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return True


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")  # PostgreSQL's jsonb has no Infinity
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def visitor_id_from(data: dict[str, Any]) -> str:
    visitor_id = data.get("visitor_id")
    if visitor_id is None or visitor_id == "":
        raise ApiError(400, "missing_visitor_id", "visitor_id is required.")
    if not isinstance(visitor_id, str) or not VISITOR_ID.fullmatch(visitor_id):
        raise ApiError(
            400, "invalid_visitor_id", "visitor_id must be 8 to 128 characters of A-Z, a-z, 0-9, _ and -."
        )
    return visitor_id


def parse_number_request(data: dict[str, Any]) -> NumberRequest:
    visitor_id = visitor_id_from(data)
    page_url = data.get("page_url")
    if page_url is None:
        page_url = ""
    if not isinstance(page_url, str) or len(page_url) > MAX_PAGE_URL:
        raise ApiError(
            400, "invalid_page_url", f"page_url must be a URL of at most {MAX_PAGE_URL} characters."
        )
    if "\x00" in page_url:
        raise ApiError(400, "invalid_page_url", "page_url must not contain NUL characters.")
    try:
        scheme = urlsplit(page_url).scheme if page_url else "https"
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https"):
        raise ApiError(400, "invalid_page_url", "page_url must be an http or https URL.")
    params = data.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ApiError(400, "invalid_params", "params must be a JSON object of names to values.")
    # Counted as stored: UTF-8 bytes, not the \\uXXXX escapes json.dumps would write for non-ASCII.
    if (
        len(params) > MAX_PARAMS_KEYS
        or len(json.dumps(params, ensure_ascii=False).encode()) > MAX_PARAMS_BYTES
    ):
        raise ApiError(
            400, "params_too_large", f"params may hold {MAX_PARAMS_KEYS} names and {MAX_PARAMS_BYTES} bytes."
        )
    if any(isinstance(v, dict | list) for v in params.values()):
        raise ApiError(400, "invalid_params", "params values must be strings, numbers, booleans or null.")
    if any("\x00" in k or (isinstance(v, str) and "\x00" in v) for k, v in params.items()):
        raise ApiError(400, "invalid_params", "params must not contain NUL characters.")
    keepalive = data.get("keepalive", False)
    if not isinstance(keepalive, bool):
        raise ApiError(400, "invalid_keepalive", "keepalive must be true or false.")
    new_visitor = data.get("new_visitor", False)
    if not isinstance(new_visitor, bool):
        raise ApiError(400, "invalid_new_visitor", "new_visitor must be true or false.")
    return NumberRequest(
        visitor_id=visitor_id, page_url=page_url, params=params, keepalive=keepalive, new_visitor=new_visitor
    )
