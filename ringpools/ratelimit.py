"""Rate limits of the public visitor API (SPEC §3.8): one client must not drain a pool.

Three limits over a sliding window of RINGPOOL_RATE_LIMIT_WINDOW_SECONDS: all requests per client
address, all requests per visitor id of a pool, and new visitors given a number per client address —
the tightest, since new-visitor claims are what drain a pool. Sliding: a request is allowed when fewer
than the limit were allowed in the window that ends at its moment, so a client stays within its limit
over any window, not only over the clock's minutes (a fixed window let one take 30 claims at the end
of a minute and 30 more at the start of the next). Each limit keeps the moments of what it allowed,
at most its limit of them: a sorted set per key in Redis, a deque here. A request over either of the
first two is refused before the hand-out runs (the pool's settings are read first, from a per-process
cache; requests for unknown pool keys are answered 404 without counting); a request over the third is
refused only if it would need a new number (the hand-out is told it may not claim, and changes nothing).

The logs live in Redis when RINGPOOL_RATE_LIMIT_URL is a redis:// URL (shared by every web process),
in this process otherwise (the demo), or nowhere ("off"). With Redis, a process lets the first request
of a client address and visitor id it has not seen lately through on its own count and sends that
moment with its next call; any other request is one script call, one round trip. Most visitors make
one or two requests a window, so most requests cost no round trip, and a client can exceed a limit by
at most one request per web process and window.

A Redis that is slow or gone must not take the API with it: each call waits at most
RINGPOOL_RATE_LIMIT_REDIS_TIMEOUT_SECONDS, and after a failure the process stops asking Redis for
RINGPOOL_RATE_LIMIT_REDIS_COOL_OFF_SECONDS and counts in its own memory instead (a circuit breaker):
per-process limits, which still stop one client draining a pool. One log line when such an episode
starts and one when Redis answers again.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.http import HttpRequest

from accounts.throttle import client_ip, counted_address

log = logging.getLogger(__name__)
PREFIX = "ringpool:rl:"
MAX_PENDING = 1000  # moments kept for the next call while Redis does not answer
# Moments a process sends at most with one call: a request first seen takes the round trip once this
# many wait, so a burst of new clients reaches Redis in batches.
SEND_BATCH = 256
# Clients and visitors a process remembers having seen in one window; past this, every request pays
# the round trip (a flood of made-up addresses is counted exactly, and memory stays bounded).
SEEN_LIMIT = 100_000


@dataclass(frozen=True)
class Verdict:
    allowed: bool  # False: refuse the request now
    may_claim: bool  # False: refuse it if it needs a new number
    retry_after: int  # seconds until the limit that refused it allows one more


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
    return counted_address(address) or address[:64] or "unknown"


@dataclass(frozen=True)
class _Limits:
    window: float
    by_address: int
    by_visitor: int
    claims: int

    @classmethod
    def now(cls) -> _Limits:  # read per call: a test or a deploy may change them
        return cls(
            window=float(max(settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS, 1)),
            by_address=settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_ADDRESS,
            by_visitor=settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR,
            claims=settings.RINGPOOL_RATE_LIMIT_NEW_VISITORS_PER_ADDRESS,
        )


def _seconds(wait: float) -> int:
    """Retry-After: whole seconds, at least one."""
    return max(1, math.ceil(wait))


def _wait(moments: deque[float], limit: int, window: float, now: float) -> float:
    """How long until a log full at `limit` allows one more: until the moment that makes it full
    leaves the window. 0 when it is not full."""
    if len(moments) < limit:
        return 0.0
    if limit <= 0:
        return window
    return moments[len(moments) - limit] + window - now


class LocalLimiter:
    """The logs in this process: the demo's single web process, and the fallback while Redis is out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, deque[float]] = {}
        self._swept_at = 0.0

    def _log(self, key: str, since: float) -> deque[float]:
        moments = self._logs.get(key)
        if moments is None:
            moments = self._logs[key] = deque()
        while moments and moments[0] <= since:
            moments.popleft()
        return moments

    def _sweep(self, now: float, window: float) -> None:
        """Once a window, forget the keys with nothing left in it (bounded memory under a flood)."""
        if now - self._swept_at < window:
            return
        self._swept_at = now
        self._logs = {key: m for key, m in self._logs.items() if m and m[-1] > now - window}

    @staticmethod
    def _add(moments: deque[float], now: float) -> None:
        if moments and now < moments[-1]:  # a thread that took its moment before another's
            bisect.insort(moments, now)
        else:
            moments.append(now)

    def check(self, *, address: str, visitor: str, now: float) -> Verdict:
        limits = _Limits.now()
        since = now - limits.window
        with self._lock:
            self._sweep(now, limits.window)
            by_address = self._log(f"a:{address}", since)
            by_visitor = self._log(f"v:{visitor}", since)
            claims = self._log(f"c:{address}", since)
            wait = max(
                _wait(by_address, limits.by_address, limits.window, now),
                _wait(by_visitor, limits.by_visitor, limits.window, now),
            )
            allowed = wait == 0
            if allowed:
                self._add(by_address, now)
                self._add(by_visitor, now)
                wait = _wait(claims, limits.claims, limits.window, now)
            may_claim = len(claims) < limits.claims
        return Verdict(allowed=allowed, may_claim=may_claim, retry_after=_seconds(wait))

    def claimed(self, *, address: str, now: float) -> None:
        since = now - _Limits.now().window
        with self._lock:
            self._add(self._log(f"c:{address}", since), now)

    def reset(self) -> None:
        with self._lock:
            self._logs, self._swept_at = {}, 0.0


# One call per request. Adds the moments this process allowed on its own since its last call (first
# sights, claims), drops what left the window, and allows the request if both request logs have room,
# adding its moment to both. KEYS: requests by address, by visitor, claims by address, then one key
# per pending moment; ARGV: now, window, the three limits, this request's member, then (moment,
# member) per pending moment. Returns: allowed, may claim, seconds until allowed, until it may claim.
COUNT_SCRIPT = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local since, ttl = now - window, math.ceil(window * 1000)
for i = 4, #KEYS do
    local j = 7 + (i - 4) * 2
    redis.call('ZADD', KEYS[i], ARGV[j], ARGV[j + 1])
    redis.call('PEXPIRE', KEYS[i], ttl)
end
local function wait(key, limit)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', since)
    local n = redis.call('ZCARD', key)
    if n < limit then return 0 end
    if limit <= 0 then return window end
    local full = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    return tonumber(full[2]) + window - now
end
local wait_request = math.max(wait(KEYS[1], tonumber(ARGV[3])), wait(KEYS[2], tonumber(ARGV[4])))
local wait_claim = wait(KEYS[3], tonumber(ARGV[5]))
if wait_request == 0 then
    for i = 1, 2 do
        redis.call('ZADD', KEYS[i], now, ARGV[6])
        redis.call('PEXPIRE', KEYS[i], ttl)
    end
end
local allowed, may_claim = wait_request == 0 and 1 or 0, wait_claim == 0 and 1 or 0
return {allowed, may_claim, tostring(wait_request), tostring(wait_claim)}
"""


class RedisLimiter:
    """The logs in Redis, shared by every web process: one script call (EVALSHA) per request.

    One command rather than a pipeline: the client's cost per request is what the rate limit adds to
    the hand-out, and a pipeline's bookkeeping cost several times the round trip. All keys of one call
    must live on one Redis node: Redis Cluster is not supported.
    """

    def __init__(self, url: str) -> None:
        import redis

        timeout = settings.RINGPOOL_RATE_LIMIT_REDIS_TIMEOUT_SECONDS
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._redis = client
        self._script = client.register_script(COUNT_SCRIPT)
        # One connection of this process, used directly: the client's per-command machinery (a
        # connection pool checkout, retries, reply callbacks) cost more than the round trip.
        self._connection = client.connection_pool.make_connection()
        self._lock = threading.Lock()
        # Moments not yet in Redis, sent with this process's next call: claims (no second round trip
        # per claim) and the requests let through on first sight.
        self._pending: list[tuple[str, float, str]] = []
        # Addresses and visitors this process has counted in the current stretch of one window.
        self._stretch = -1
        self._seen: set[str] = set()
        # Members must be unique within a key: this process's token and a counter.
        self._token = secrets.token_hex(4)
        self._serial = itertools.count()
        # The circuit breaker: while `_open_until` (time.monotonic) is ahead, Redis is not asked and
        # `_fallback` counts; `_failing_since` marks an episode, logged at its start and its end.
        self._fallback = LocalLimiter()
        self._open_until = 0.0
        self._failing_since: float | None = None

    def _member(self) -> str:
        return f"{self._token}:{next(self._serial)}"

    def check(self, *, address: str, visitor: str, now: float) -> Verdict:
        limits = _Limits.now()
        by_address, by_visitor = f"{PREFIX}a:{address}", f"{PREFIX}v:{visitor}"
        claims = f"{PREFIX}c:{address}"
        with self._lock:
            if time.monotonic() < self._open_until:
                return self._fallback.check(address=address, visitor=visitor, now=now)
            stretch = int(now // limits.window)
            if stretch > self._stretch:  # only forward: a late thread must not forget the current one
                self._stretch, self._seen = stretch, set()
            first_sight = (
                stretch == self._stretch
                and by_address not in self._seen
                and by_visitor not in self._seen
                and len(self._seen) < SEEN_LIMIT
            )
            if stretch == self._stretch and len(self._seen) < SEEN_LIMIT:
                self._seen.update((by_address, by_visitor))
            member = self._member()
            if first_sight and len(self._pending) < SEND_BATCH:
                # Neither was counted here lately: allowed on this process's word, its moment sent
                # with the next call. Other processes' counts are unknown until then, so each process
                # lets at most one request of a client or visitor through unseen per window.
                self._pending += [(by_address, now, member), (by_visitor, now, member)]
                return Verdict(allowed=True, may_claim=True, retry_after=1)
            pending, self._pending = self._pending, []
            keys = [by_address, by_visitor, claims, *(key for key, _, _ in pending)]
            args: list[object] = [
                now,
                limits.window,
                limits.by_address,
                limits.by_visitor,
                limits.claims,
                member,
            ]
            for _, moment, each in pending:
                args += [moment, each]
            try:
                allowed, may_claim, wait_request, wait_claim = self._count(keys, args)
            except Exception as error:  # redis.RedisError, OSError: count here for a while
                # Not sent: kept for the call after the cool-off (bounded; moments that have left
                # the window by then are dropped by the script). A reply that timed out after Redis
                # ran the script counts them twice: early refusals, never a hole.
                self._pending = (pending + self._pending)[:MAX_PENDING]
                self._trip(error)
                return self._fallback.check(address=address, visitor=visitor, now=now)
            if self._failing_since is not None:
                log.warning(
                    "Redis answers the rate limits again after %.0f s; limits are shared again",
                    time.monotonic() - self._failing_since,
                )
                self._failing_since = None
        wait = float(wait_request) if not allowed else float(wait_claim)
        return Verdict(allowed=bool(allowed), may_claim=bool(may_claim), retry_after=_seconds(wait))

    def _trip(self, error: Exception) -> None:
        cool_off = settings.RINGPOOL_RATE_LIMIT_REDIS_COOL_OFF_SECONDS
        self._open_until = time.monotonic() + cool_off
        if self._failing_since is None:  # once per episode, not once a request
            self._failing_since = time.monotonic()
            log.warning(
                "rate limits counted in this process (Redis: %s); Redis asked again every %s s",
                error,
                cool_off,
            )

    def _count(self, keys: list[str], args: list[object]) -> list:
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
        with self._lock:
            if time.monotonic() < self._open_until:
                self._fallback.claimed(address=address, now=now)
                return
            if len(self._pending) < MAX_PENDING:
                self._pending.append((f"{PREFIX}c:{address}", now, self._member()))

    def reset(self) -> None:
        keys = list(self._redis.scan_iter(match=f"{PREFIX}*", count=1000))
        if keys:
            self._redis.delete(*keys)
        self._fallback.reset()


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
