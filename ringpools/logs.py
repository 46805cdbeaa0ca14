"""Logging of the public endpoints: a client's mistakes are answered, not logged.

Django logs every 4xx answer at WARNING (`django.request`). On the visitor API that is one line per
bad request or per refusal of a flood (429): a client inventing requests would write the log, not
only read answers. The answer itself says what was wrong; server errors (5xx) are still logged.
"""

from __future__ import annotations

import logging

from ringpools.errors import is_public


class PublicClientErrors(logging.Filter):
    """Drops django.request records of 4xx answers to the public endpoints."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        request = getattr(record, "request", None)
        if status is None or request is None or not 400 <= status < 500:
            return True
        return not is_public(str(getattr(request, "path", "")))
