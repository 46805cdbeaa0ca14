"""The client's address as the trusted proxies report it: sign-in throttling (django-axes) counts
failures against it, and the visitor API's rate limits build on it."""

from __future__ import annotations

import ipaddress

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


def counted_address(address: str) -> str | None:
    """The address as limits count it, or None when it is not an IP address.

    IPv6 clients are counted per /64, the block one subscriber gets (else a single client could use a
    fresh address per request), written as the block's first address; an IPv4-mapped IPv6 address is
    its IPv4 address.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


def sign_in_address(request: HttpRequest) -> str:
    """What sign-in throttling (django-axes, AXES_CLIENT_IP_CALLABLE) counts failures against: always
    an IP address, as axes stores it in an IP field. A trusted proxy that reports no address
    (`unknown`, as proxies may write) counts as the proxy itself (REMOTE_ADDR): those clients share one
    count, which errs towards locking a guesser out, never towards a 500."""
    return (
        counted_address(client_ip(request))
        or counted_address(request.META.get("REMOTE_ADDR", ""))
        or "0.0.0.0"
    )
