"""Logs people can use: each record carries the request it belongs to (`request_id`, `pool_key`),
optionally as one JSON object per line (LOG_FORMAT=json, python-json-logger) for log collectors; and
repeated identical warnings and errors are collapsed, so an outage writes a line per kind of failure
per LOG_REPEAT_SECONDS, not one per request (a 15-second database outage wrote 114,000 lines).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

_request_id: ContextVar[str] = ContextVar("request_id", default="")
_pool_key: ContextVar[str] = ContextVar("pool_key", default="")


class RequestContext:
    """Middleware: the request's id (the proxy's X-Request-ID when it is a sane token, else a new
    one), echoed in the answer's X-Request-ID, and the pool key of the endpoint, for every log line
    written while the request is served."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        sent = request.headers.get("X-Request-ID", "")
        request_id = sent if 8 <= len(sent) <= 64 and sent.replace("-", "").isalnum() else uuid.uuid4().hex
        tokens = _request_id.set(request_id), _pool_key.set("")
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(tokens[0])
            _pool_key.reset(tokens[1])
        response["X-Request-ID"] = request_id
        return response

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if key := kwargs.get("pool_key"):
            _pool_key.set(str(key)[:64])


class RequestFields(logging.Filter):
    """Adds `request_id`, `pool_key` and `outcome` (given as `extra`, else "") to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        record.pool_key = _pool_key.get()
        if not hasattr(record, "outcome"):
            record.outcome = ""
        return True


class CollapseRepeats(logging.Filter):
    """Lets the first of identical warnings and errors (same logger, level, message template and
    exception type) through per window of LOG_REPEAT_SECONDS; the next one after the window says how
    many were left out. Per process; remembers at most MAX_KINDS kinds."""

    MAX_KINDS = 1000

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[Any, ...], list[float]] = OrderedDict()  # key -> [start, left out]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        error = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        key = (record.name, record.levelno, str(record.msg), error)
        now = time.monotonic()
        window = float(getattr(settings, "LOG_REPEAT_SECONDS", 60))
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < window:
                seen[1] += 1
                return False
            left_out = int(seen[1]) if seen else 0
            self._seen[key] = [now, 0]
            self._seen.move_to_end(key)
            while len(self._seen) > self.MAX_KINDS:
                self._seen.popitem(last=False)
        if left_out:
            record.msg = f"{record.msg} [{left_out} identical left out in the {window:.0f} s before]"
        return True
