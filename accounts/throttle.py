"""The client's address as the trusted proxies report it: sign-in throttling (django-axes) counts
failures against it, and the visitor API's rate limits build on it."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The address the trusted proxies saw, never a value the client could have written itself.

    Each trusted proxy appends the address it received the request from to X-Forwarded-For, so the
    client's address is the n-th entry from the right; entries further left are the client's own words.
    """
    hops = settings.RINGPOOL_TRUSTED_PROXY_HOPS
    if hops > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= hops:
            return _without_port(forwarded[-hops])
    return request.META.get("REMOTE_ADDR", "")


def _without_port(address: str) -> str:
    """'203.0.113.7:5678' and '[2001:db8::1]:443', as some proxies write them, name the client only;
    a port would give each connection a budget of its own."""
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    if address.count(":") == 1:
        return address.split(":", 1)[0]
    return address
