"""Rate limits of the public visitor API (SPEC §3.8): one client must not drain a pool.

Three counters per fixed window (RINGPOOL_RATE_LIMIT_WINDOW_SECONDS): all requests per client
address, all requests per visitor id of a pool, and new visitors given a number per client address —
the tightest, since new-visitor claims are what drain a pool. A request over either of the first two
is refused before the hand-out runs (the pool's settings are read first, from a per-process cache;
requests for unknown pool keys are answered 404 without counting); a request over the third is
refused only if it would need a new number (the hand-out is told it may not claim, and changes
nothing).

The counters live in Redis when RINGPOOL_RATE_LIMIT_URL is a redis:// URL (shared by every web
process), in this process otherwise (the demo), or nowhere ("off"). With Redis, a process lets the
first request of a client address and visitor id it has not seen in the window through on its own
count and sends that count with its next call; any other request is one script call, one round trip.
Most visitors make one or two requests a window, so most requests cost no round trip, and a client
can exceed a limit by at most one request per web process and window. A Redis that cannot answer
lets requests through: the limiter must never take the product down with it.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.http import HttpRequest

from accounts.throttle import client_ip

log = logging.getLogger(__name__)
PREFIX = "ringpool:rl:"
MAX_PENDING = 1000  # counters kept for the next call while Redis does not answer
# Counters a process sends at most with one call: a request first seen takes the round trip once this
# many wait, so a burst of new clients reaches Redis in batches.
SEND_BATCH = 256
# Clients and visitors a process remembers having seen in one window; past this, every request pays
# the round trip (a flood of made-up addresses is counted exactly, and memory stays bounded).
SEEN_LIMIT = 100_000


@dataclass(frozen=True)
class Verdict:
    allowed: bool  # False: refuse the request now
    may_claim: bool  # False: refuse it if it needs a new number
    retry_after: int  # seconds until the window turns


class Limiter(Protocol):
    def check(self, *, address: str, visitor: str, now: float) -> Verdict: ...

    def claimed(self, *, address: str, now: float) -> None: ...

    def reset(self) -> None: ...


def client_address(request: HttpRequest) -> str:
    """The client's address: the X-Forwarded-For entry appended by the outermost trusted proxy.

    Entries to its left were written by the client and prove nothing; with no trusted proxy
    (RINGPOOL_TRUSTED_PROXY_HOPS=0) the header is ignored. IPv6 clients are counted per /64, the
    block one subscriber gets, or a single client could use a fresh address per request.
    """
    address = client_ip(request)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _window(now: float) -> tuple[int, int]:
    seconds = max(settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS, 1)
    window = int(now // seconds)
    return window, max(1, math.ceil((window + 1) * seconds - now))


def _verdict(requests_by_address: int, requests_by_visitor: int, claims: int, retry_after: int) -> Verdict:
    allowed = (
        requests_by_address <= settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_ADDRESS
        and requests_by_visitor <= settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR
    )
    may_claim = claims < settings.RINGPOOL_RATE_LIMIT_NEW_VISITORS_PER_ADDRESS
    return Verdict(allowed=allowed, may_claim=may_claim, retry_after=retry_after)


class LocalLimiter:
    """Counters in this process: enough for the demo's single web process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window = -1
        self._counts: dict[str, int] = {}

    def _add(self, window: int, key: str, amount: int) -> int:
        if window != self._window:
            self._window, self._counts = window, {}  # old windows are over: forget them
        self._counts[key] = self._counts.get(key, 0) + amount
        return self._counts[key]

    def check(self, *, address: str, visitor: str, now: float) -> Verdict:
        window, retry_after = _window(now)
        with self._lock:
            by_address = self._add(window, f"a:{address}", 1)
            by_visitor = self._add(window, f"v:{visitor}", 1)
            claims = self._add(window, f"c:{address}", 0)
        return _verdict(by_address, by_visitor, claims, retry_after)

    def claimed(self, *, address: str, now: float) -> None:
        window, _ = _window(now)
        with self._lock:
            self._add(window, f"c:{address}", 1)

    def reset(self) -> None:
        with self._lock:
            self._window, self._counts = -1, {}


# One call per request: count the request by address and by visitor, add the claims this process
# made since its last call, read the address's claims. KEYS: by address, by visitor, claims, then
# pending claim counters; ARGV: the counters' time to live, then the pending claims' counts.
COUNT_SCRIPT = """
local ttl = tonumber(ARGV[1])
for i = 4, #KEYS do
    redis.call('INCRBY', KEYS[i], ARGV[i - 2])
    redis.call('EXPIRE', KEYS[i], ttl)
end
local by_address = redis.call('INCR', KEYS[1])
if by_address == 1 then redis.call('EXPIRE', KEYS[1], ttl) end
local by_visitor = redis.call('INCR', KEYS[2])
if by_visitor == 1 then redis.call('EXPIRE', KEYS[2], ttl) end
return {by_address, by_visitor, tonumber(redis.call('GET', KEYS[3]) or '0')}
"""


class RedisLimiter:
    """Counters in Redis, shared by every web process: one script call (EVALSHA) per request.

    One command rather than a pipeline of five: the client's cost per request is what the rate limit
    adds to the hand-out, and a pipeline's bookkeeping cost several times the round trip. All keys of
    one call must live on one Redis node: Redis Cluster is not supported.
    """

    def __init__(self, url: str) -> None:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._redis = client
        self._script = client.register_script(COUNT_SCRIPT)
        # One connection of this process, used directly: the client's per-command machinery (a
        # connection pool checkout, retries, reply callbacks) cost more than the round trip.
        self._connection = client.connection_pool.make_connection()
        self._lock = threading.Lock()
        self._warned_at = 0.0
        # Counts not yet in Redis, sent with this process's next call: claims (no second round trip
        # per claim) and the requests let through on first sight. Only the current window's.
        self._pending: dict[str, int] = {}
        # Addresses and visitors this process has counted in the current window.
        self._window = -1
        self._seen: set[str] = set()

    def _keys(self, window: int, address: str) -> tuple[str, str]:
        return f"{PREFIX}{window}:a:{address}", f"{PREFIX}{window}:c:{address}"

    def check(self, *, address: str, visitor: str, now: float) -> Verdict:
        window, retry_after = _window(now)
        by_address, claims = self._keys(window, address)
        by_visitor = f"{PREFIX}{window}:v:{visitor}"
        ttl = 2 * max(settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS, 1)
        with self._lock:
            self._turn(window)
            # A request of a window this process has left (a thread that started before the turn)
            # is counted in Redis, never on sight.
            first_sight = (
                window == self._window and by_address not in self._seen and by_visitor not in self._seen
            )
            if window == self._window and len(self._seen) < SEEN_LIMIT:
                self._seen.update((by_address, by_visitor))
            else:
                first_sight = False
            if first_sight and len(self._pending) < SEND_BATCH:
                # Neither was counted here this window: count one request of each, to be sent with
                # the next call. Other processes' counts are unknown until then, so each process
                # lets at most one request of a client or visitor through unseen per window.
                for key in (by_address, by_visitor):
                    self._pending[key] = self._pending.get(key, 0) + 1
                return _verdict(1, 1, 0, retry_after)
            pending, self._pending = self._pending, {}
            keys = [by_address, by_visitor, claims, *pending]
            try:
                counted_address, counted_visitor, counted_claims = self._count(keys, [ttl, *pending.values()])
            except Exception as error:  # redis.RedisError, OSError: let the request through
                # Not counted yet: send them with the next call (this window's only, as verdicts read
                # no other; bounded, so an outage leaves no backlog behind it). A reply that timed
                # out after Redis ran the script counts them twice: early refusals, never a hole.
                for key, count in pending.items():
                    if len(self._pending) < MAX_PENDING:
                        self._pending[key] = self._pending.get(key, 0) + count
                self._warn(error)
                return Verdict(allowed=True, may_claim=True, retry_after=retry_after)
        return _verdict(counted_address, counted_visitor, counted_claims, retry_after)

    def _turn(self, window: int) -> None:
        """A new window: forget who was seen, and counts no verdict will read again. Only forward:
        a late call with an earlier moment must not wipe the current window's counts."""
        if window > self._window:
            current = f"{PREFIX}{window}:"
            self._window, self._seen = window, set()
            self._pending = {key: n for key, n in self._pending.items() if key.startswith(current)}

    def _count(self, keys: list[str], args: list[int]) -> list[int]:
        """EVALSHA on this process's connection; the script is loaded when Redis does not know it."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import NoScriptError

        connection = self._connection
        try:
            # A connection Redis closed (a restart, an idle timeout) reads as ready: open a new one
            # rather than lose this request's count on it.
            # (Only an open one: can_read() would connect, and a Redis that is down would then be
            # tried twice per request. redis-py has no public "is connected".)
            if getattr(connection, "_sock", None) is not None and connection.can_read(timeout=0):
                connection.disconnect()
        except (OSError, ConnectionError, RedisConnectionError):
            connection.disconnect()
        try:
            try:
                connection.send_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
                return connection.read_response()
            except NoScriptError:  # a restarted or flushed Redis
                self._redis.script_load(COUNT_SCRIPT)
                connection.send_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
                return connection.read_response()
        except BaseException:
            connection.disconnect()  # a reply may still be on its way: the next call reconnects
            raise

    def claimed(self, *, address: str, now: float) -> None:
        window, _ = _window(now)
        _, claims = self._keys(window, address)
        with self._lock:
            self._turn(window)
            self._pending[claims] = self._pending.get(claims, 0) + 1

    def reset(self) -> None:
        keys = list(self._redis.scan_iter(match=f"{PREFIX}*", count=1000))
        if keys:
            self._redis.delete(*keys)

    def _warn(self, error: Exception) -> None:
        if time.monotonic() - self._warned_at > 60:  # once a minute, not once a request
            self._warned_at = time.monotonic()
            log.warning("rate limits not counted (Redis: %s); requests let through", error)


class NoLimiter:
    def check(self, *, address: str, visitor: str, now: float) -> Verdict:
        return Verdict(allowed=True, may_claim=True, retry_after=0)

    def claimed(self, *, address: str, now: float) -> None:
        pass

    def reset(self) -> None:
        pass


_limiters: dict[str, Limiter] = {}


def limiter() -> Limiter:
    """The limiter RINGPOOL_RATE_LIMIT_URL names, one per process."""
    url = settings.RINGPOOL_RATE_LIMIT_URL
    found = _limiters.get(url)
    if found is None:
        if url.startswith(("redis://", "rediss://", "unix://")):
            found = RedisLimiter(url)
        elif url == "off":
            found = NoLimiter()
        else:
            found = LocalLimiter()
        _limiters[url] = found
    return found


def rate_limits_reset() -> None:
    """Forget this process's own counters (tests). Shared Redis counters expire with their window."""
    for each in _limiters.values():
        if isinstance(each, LocalLimiter):
            each.reset()
