"""Rate limits (SPEC §3.8): one client cannot drain a pool or renew in a storm; refusals change nothing."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from ringpools.models import Lease, PromoNumber
from tests.factories import PromoNumberFactory, RingPoolFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def limits(settings):
    settings.RINGPOOL_RATE_LIMIT_NEW_VISITORS_PER_ADDRESS = 3
    settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_ADDRESS = 50
    settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR = 5
    settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS = 60
    return settings


@pytest.fixture
def pool():
    pool = RingPoolFactory()
    for _ in range(10):
        PromoNumberFactory(pool=pool)
    return pool


def ask(client: Client, pool, visitor: str, **headers):
    return client.post(
        f"/api/v1/ringpools/{pool.key}/numbers",
        data=json.dumps({"visitor_id": visitor, "keepalive": False}),
        content_type="application/json",
        headers=headers,
    )


def assert_rate_limited(response) -> None:
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_new_visitors_from_one_address_beyond_the_limit_get_429_and_the_pool_stays_intact(
    client, limits, pool
):
    for i in range(3):
        assert ask(client, pool, f"inventor-{i:04d}").json()["kind"] == "promo"
    refused = ask(client, pool, "inventor-0003")
    assert_rate_limited(refused)
    assert Lease.objects.count() == 3
    assert PromoNumber.objects.filter(pool=pool, busy_until__gt=timezone.now()).count() == 3
    # A visitor who already holds a number keeps renewing it: only new claims are refused.
    assert ask(client, pool, "inventor-0000").json()["kind"] == "promo"


def test_renewals_of_one_visitor_beyond_its_limit_get_429(client, limits, pool):
    for _ in range(5):
        assert ask(client, pool, "renewer-0001").status_code == 200
    assert_rate_limited(ask(client, pool, "renewer-0001"))
    assert Lease.objects.count() == 1


def test_a_flood_is_refused_without_a_log_line_per_request(client, limits, pool, caplog):
    """A client sending thousands of refused requests must not write thousands of log lines; errors
    of the back office are still logged."""
    caplog.set_level(logging.WARNING)
    for _ in range(20):
        ask(client, pool, "renewer-0002")
    assert not [r for r in caplog.records if r.name == "django.request"]
    assert client.get("/no-such-page/").status_code == 404  # outside the public endpoints
    assert [r for r in caplog.records if r.name == "django.request"]


def test_all_requests_of_one_address_are_limited(client, limits, pool):
    limits.RINGPOOL_RATE_LIMIT_REQUESTS_PER_ADDRESS = 4
    for i in range(4):
        ask(client, pool, f"visitor-{i:04d}")
    assert_rate_limited(ask(client, pool, "visitor-0000"))


def test_a_spoofed_forwarded_for_buys_no_fresh_budget_without_a_trusted_proxy(client, limits, pool):
    limits.RINGPOOL_TRUSTED_PROXY_HOPS = 0
    for i in range(3):
        ask(client, pool, f"inventor-{i:04d}", X_Forwarded_For=f"198.51.100.{i}")
    assert_rate_limited(ask(client, pool, "inventor-0003", X_Forwarded_For="198.51.100.99"))


def test_behind_one_trusted_proxy_the_address_it_appended_is_the_client(client, limits, pool):
    limits.RINGPOOL_TRUSTED_PROXY_HOPS = 1
    for i in range(3):
        # The client writes what it likes on the left; the balancer appends the address it saw.
        ask(client, pool, f"inventor-{i:04d}", X_Forwarded_For=f"10.0.0.{i}, 203.0.113.7")
    assert_rate_limited(ask(client, pool, "inventor-0003", X_Forwarded_For="10.9.9.9, 203.0.113.7"))
    assert ask(client, pool, "neighbour-0001", X_Forwarded_For="203.0.113.8").json()["kind"] == "promo"


def test_a_port_written_by_the_proxy_buys_no_fresh_budget(client, limits, pool):
    limits.RINGPOOL_TRUSTED_PROXY_HOPS = 1
    for i in range(3):
        ask(client, pool, f"inventor-{i:04d}", X_Forwarded_For=f"203.0.113.9:{40000 + i}")
    assert_rate_limited(ask(client, pool, "inventor-0003", X_Forwarded_For="203.0.113.9:50000"))
    assert_rate_limited(ask(client, pool, "inventor-0004", X_Forwarded_For="203.0.113.9"))
    for i in range(3):
        ask(client, pool, f"sixer-{i:04d}", X_Forwarded_For=f"[2001:db8:9:9::1]:{40000 + i}")
    assert_rate_limited(ask(client, pool, "sixer-0003", X_Forwarded_For="[2001:db8:9:9::2]:443"))


def test_ipv6_clients_are_counted_per_64_block(client, limits, pool):
    limits.RINGPOOL_TRUSTED_PROXY_HOPS = 1
    for i in range(3):
        ask(client, pool, f"inventor-{i:04d}", X_Forwarded_For=f"2001:db8:1:2::{i + 1:x}")
    assert_rate_limited(ask(client, pool, "inventor-0003", X_Forwarded_For="2001:db8:1:2:ffff::1"))


def test_the_release_beacon_is_limited_per_visitor_too(client, limits, pool):
    ask(client, pool, "leaver-0001")
    for _ in range(4):
        client.post(
            f"/api/v1/ringpools/{pool.key}/numbers/release",
            data=json.dumps({"visitor_id": "leaver-0001"}),
            content_type="text/plain",
        )
    response = client.post(
        f"/api/v1/ringpools/{pool.key}/numbers/release",
        data=json.dumps({"visitor_id": "leaver-0001"}),
        content_type="text/plain",
    )
    assert_rate_limited(response)


def test_limits_off_let_everything_through(client, limits, pool):
    limits.RINGPOOL_RATE_LIMIT_URL = "off"
    assert all(ask(client, pool, f"visitor-{i:04d}").status_code == 200 for i in range(8))


def test_the_limit_holds_over_any_window_not_only_the_clocks_minutes(client, limits, pool):
    """Three claims in the last second of a minute and none more in the minute that ends a second into
    the next: a fixed window would have allowed three more right after the turn."""
    with time_machine.travel(datetime(2026, 12, 3, 12, 0, 59, 500_000, tzinfo=UTC), tick=False) as clock:
        for i in range(3):
            assert ask(client, pool, f"inventor-{i:04d}").json()["kind"] == "promo"
        clock.move_to(datetime(2026, 12, 3, 12, 1, 0, 500_000, tzinfo=UTC))
        refused = ask(client, pool, "inventor-0003")
        assert refused.status_code == 429
        assert int(refused["Retry-After"]) == 59  # when the first of the three leaves the window
        clock.move_to(datetime(2026, 12, 3, 12, 1, 59, 400_000, tzinfo=UTC))
        assert ask(client, pool, "inventor-0003").status_code == 429
        clock.move_to(datetime(2026, 12, 3, 12, 1, 59, 600_000, tzinfo=UTC))  # exactly 60 s after
        assert ask(client, pool, "inventor-0003").json()["kind"] == "promo"
        assert ask(client, pool, "inventor-0004").json()["kind"] == "promo"
        assert ask(client, pool, "inventor-0005").json()["kind"] == "promo"
        assert ask(client, pool, "inventor-0006").status_code == 429
    assert Lease.objects.count() == 6


def test_refused_requests_spend_no_budget(client, limits, pool):
    """A client that keeps knocking while refused is allowed again as soon as its window has room."""
    with time_machine.travel(datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC), tick=False) as clock:
        for _ in range(5):
            assert ask(client, pool, "renewer-0009").status_code == 200
        for second in range(1, 60):
            clock.move_to(datetime(2026, 12, 3, 12, 0, second, tzinfo=UTC))
            assert ask(client, pool, "renewer-0009").status_code == 429
        clock.move_to(datetime(2026, 12, 3, 12, 1, 0, 1, tzinfo=UTC))
        assert ask(client, pool, "renewer-0009").status_code == 200


COUNT_IN_ANOTHER_PROCESS = """
import django, json, sys
django.setup()
from ringpools.ratelimit import RedisLimiter
limiter = RedisLimiter(sys.argv[1])
verdicts = [limiter.check(address=sys.argv[4], visitor="1:visitor-" + sys.argv[4], now=float(sys.argv[2]))
            for _ in range(int(sys.argv[3]))]
print(json.dumps([v.allowed for v in verdicts]))
"""


@pytest.fixture
def shared(settings):
    """The Redis of the rate limits, and a client name no other test counts under."""
    import redis

    settings.RINGPOOL_RATE_LIMIT_URL = settings.CELERY_BROKER_URL
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def fresh_address() -> str:
    n = time.time_ns()
    return f"10.{n % 200}.{(n // 200) % 250}.{(n // 50_000) % 250}"


@pytest.mark.redis
def test_two_web_processes_share_the_limits_through_redis(settings, shared):
    """Two processes of their own, each counting requests of one client: the budget is one."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR": "6",
        "RINGPOOL_RATE_LIMIT_REQUESTS_PER_ADDRESS": "1000",
        "RINGPOOL_RATE_LIMIT_WINDOW_SECONDS": "3600",
    }
    moment, address = str(time.time()), fresh_address()
    code = "import django; django.setup()\n" + COUNT_IN_ANOTHER_PROCESS
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, settings.CELERY_BROKER_URL, moment, "5", address],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    allowed = []
    for process in processes:
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        allowed += json.loads(out)
    assert allowed.count(True) == 6 and allowed.count(False) == 4


CLAIM_IN_ANOTHER_PROCESS = """
import django, json, sys
django.setup()
from ringpools.ratelimit import RedisLimiter
limiter = RedisLimiter(sys.argv[1])
now, address = float(sys.argv[2]), sys.argv[5]
verdicts = []
for _ in range(int(sys.argv[3])):
    verdict = limiter.check(address=address, visitor="1:visitor-" + sys.argv[4], now=now)
    verdicts.append(verdict.may_claim)
    if verdict.may_claim:
        limiter.claimed(address=address, now=now)
limiter.check(address=address, visitor="1:visitor-" + sys.argv[4], now=now)  # sends the last claim
print(json.dumps(verdicts))
"""


@pytest.mark.redis
def test_new_visitor_claims_are_counted_across_web_processes(settings, shared):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "RINGPOOL_RATE_LIMIT_NEW_VISITORS_PER_ADDRESS": "4",
        "RINGPOOL_RATE_LIMIT_WINDOW_SECONDS": "3600",
    }
    moment, address = str(time.time()), fresh_address()
    answers = []
    for name in ("first", "second"):  # one after the other: the second sees every claim of the first
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                CLAIM_IN_ANOTHER_PROCESS,
                settings.CELERY_BROKER_URL,
                moment,
                "3",
                name,
                address,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        answers.append(json.loads(done.stdout))
    assert answers == [[True, True, True], [True, False, False]]


@pytest.mark.redis
def test_the_shared_limit_slides_too(settings, shared):
    """In Redis as here: claims at the end of one minute still count a second into the next, and
    the answer says how long until one more is allowed."""
    from ringpools.ratelimit import RedisLimiter

    settings.RINGPOOL_RATE_LIMIT_NEW_VISITORS_PER_ADDRESS = 3
    settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS = 60
    limiter, address = RedisLimiter(settings.CELERY_BROKER_URL), fresh_address()
    start = (int(time.time() // 60) + 1) * 60 - 0.5
    for n in range(3):
        assert limiter.check(address=address, visitor=f"1:v-{address}-{n}", now=start).may_claim
        limiter.claimed(address=address, now=start)
    # A second into the next minute this process has not seen the client lately: its first request
    # passes on sight (the bound: one per process and window); the next one asks Redis.
    assert limiter.check(address=address, visitor=f"1:v-{address}-3", now=start + 1).allowed
    later = limiter.check(address=address, visitor=f"1:v-{address}-3", now=start + 1)
    assert later.allowed and not later.may_claim and later.retry_after == 59
    again = limiter.check(address=address, visitor=f"1:v-{address}-3", now=start + 60)
    assert again.may_claim  # the three left the window exactly 60 s after they were made
    assert shared.zcard(f"ringpool:rl:c:{address}") == 0
    assert 0 < shared.pttl(f"ringpool:rl:a:{address}") <= 60_000  # logs expire with their window


@pytest.mark.redis
def test_a_first_request_is_counted_here_and_reaches_redis_with_the_next_call(settings, shared):
    """Most visitors ask once or twice a window: their first request costs no round trip to Redis.
    Another web process, which has not seen the visitor, lets one request through on its own count
    too; then the shared count refuses. A client exceeds a limit by one request per process at most."""
    from ringpools.ratelimit import PREFIX, RedisLimiter

    settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR = 2
    settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS = 3600
    one, other = RedisLimiter(settings.CELERY_BROKER_URL), RedisLimiter(settings.CELERY_BROKER_URL)
    moment, address, elsewhere = time.time(), fresh_address(), fresh_address()
    visitor, bystander = f"1:visitor-{time.time_ns()}", f"1:bystander-{time.time_ns()}"
    key = f"{PREFIX}v:{visitor}"
    assert one.check(address=address, visitor=visitor, now=moment).allowed
    assert one.check(address=elsewhere, visitor=bystander, now=moment).allowed
    assert shared.zcard(key) == 0  # not sent yet
    assert one.check(address=address, visitor=visitor, now=moment).allowed  # seen: asks Redis
    assert shared.zcard(key) == 2
    assert shared.zcard(f"{PREFIX}v:{bystander}") == 1  # sent along
    assert shared.zcard(f"{PREFIX}a:{address}") == 2
    assert other.check(address=address, visitor=visitor, now=moment).allowed  # first sight there
    assert not other.check(address=address, visitor=visitor, now=moment).allowed
    assert not one.check(address=address, visitor=visitor, now=moment).allowed
    assert shared.zcard(key) == 3  # refusals are not logged: a log never holds more than its limit + 1


@pytest.mark.redis
def test_first_requests_reach_redis_in_batches(settings, shared):
    """A burst of new clients is not held back in one process: every SEND_BATCH of them is sent."""
    from ringpools.ratelimit import PREFIX, SEND_BATCH, RedisLimiter

    settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS = 3600
    limiter = RedisLimiter(settings.CELERY_BROKER_URL)
    moment, tag = time.time(), time.time_ns()
    for n in range(SEND_BATCH // 2 + 1):  # two moments each: address and visitor
        address = f"10.{tag % 200}.{n // 250}.{n % 250}"
        assert limiter.check(address=address, visitor=f"1:v-{tag}-{n}", now=moment).allowed
    # The last one found the batch full and took the call, with all the others.
    sent = [shared.zcard(f"{PREFIX}v:1:v-{tag}-{n}") for n in range(SEND_BATCH // 2 + 1)]
    assert sent == [1] * (SEND_BATCH // 2 + 1)


@pytest.mark.redis
def test_the_counting_script_is_loaded_again_after_redis_forgot_it(settings, shared):
    """A restarted or flushed Redis knows no scripts: counting goes on, nothing is let through unseen."""
    from ringpools.ratelimit import RedisLimiter

    settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR = 3
    settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS = 3600
    limiter = RedisLimiter(settings.CELERY_BROKER_URL)
    moment, address = time.time(), fresh_address()
    visitor = f"1:visitor-{time.time_ns()}"
    assert limiter.check(address=address, visitor=visitor, now=moment).allowed
    shared.script_flush()
    verdicts = [limiter.check(address=address, visitor=visitor, now=moment).allowed for _ in range(3)]
    assert verdicts == [True, True, False]


@pytest.mark.redis
def test_a_dropped_redis_connection_is_made_again_and_no_request_goes_uncounted(settings, shared):
    from ringpools.ratelimit import RedisLimiter

    settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR = 2
    settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS = 3600
    limiter = RedisLimiter(settings.CELERY_BROKER_URL)
    moment, address = time.time(), fresh_address()
    visitor = f"1:visitor-{time.time_ns()}"
    assert limiter.check(address=address, visitor=visitor, now=moment).allowed
    own = limiter._connection
    own.send_command("CLIENT", "ID")
    shared.client_kill_filter(_id=own.read_response())
    time.sleep(0.05)
    verdicts = [limiter.check(address=address, visitor=visitor, now=moment).allowed for _ in range(2)]
    assert verdicts == [True, False]  # the second and third requests, both counted


class HangingRedis:
    """A server that accepts connections and never answers: a Redis stuck on a slow disk, or a
    network that drops replies. Counts the connections and the bytes it was sent."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.server.getsockname()[1]}/0"
        self.connections: list[socket.socket] = []
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.05)
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
                connection.setblocking(False)
                self.connections.append(connection)
            except TimeoutError:
                pass
            for connection in self.connections:
                with contextlib.suppress(BlockingIOError, OSError):
                    self.received += len(connection.recv(65536))

    def received_more_than(self, count: int, *, within: float = 3.0) -> bool:
        """Whether more than `count` bytes arrive within `within` seconds (this server's thread reads
        them every 50 ms or so, later on a loaded machine)."""
        deadline = time.monotonic() + within
        while self.received <= count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.received > count

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self.connections:
            connection.close()
        self.server.close()


@pytest.fixture
def hanging_redis():
    server = HangingRedis()
    yield server
    server.close()


def test_a_hanging_redis_is_asked_once_per_cool_off_and_the_limits_hold_in_this_process(
    settings, hanging_redis, caplog
):
    from ringpools.ratelimit import RedisLimiter

    settings.RINGPOOL_RATE_LIMIT_NEW_VISITORS_PER_ADDRESS = 3
    settings.RINGPOOL_RATE_LIMIT_REDIS_TIMEOUT_SECONDS = 0.05
    settings.RINGPOOL_RATE_LIMIT_REDIS_COOL_OFF_SECONDS = 0.5
    caplog.set_level(logging.WARNING, logger="ringpools.ratelimit")
    limiter, now = RedisLimiter(hanging_redis.url), time.time()
    may_claim = []
    for n in range(50):
        verdict = limiter.check(address="203.0.113.5", visitor=f"1:hang-{n}", now=now)
        may_claim.append(verdict.may_claim)
        if verdict.allowed and verdict.may_claim:
            limiter.claimed(address="203.0.113.5", now=now)
    # The first request is let through unseen; the second asks Redis, waits its timeout, and opens
    # the breaker: the process counts alone, and one client still cannot drain a pool.
    assert may_claim.count(True) == 4  # one on first sight, three counted here
    assert hanging_redis.received_more_than(0)  # the one question it was asked
    sent_while_open = hanging_redis.received
    assert len(hanging_redis.connections) == 1
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "counted in this process" in warnings[0]
    time.sleep(0.6)  # the cool-off is over: the next request asks Redis again, once
    limiter.check(address="203.0.113.5", visitor="1:hang-again", now=now)
    limiter.check(address="203.0.113.5", visitor="1:hang-again", now=now)
    assert hanging_redis.received_more_than(sent_while_open)
    assert len(caplog.records) == 1  # the same episode: no second line


@pytest.mark.redis
def test_redis_answering_again_ends_the_episode_with_one_line_and_shared_counts(
    settings, shared, caplog, monkeypatch
):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from ringpools.ratelimit import RedisLimiter

    settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR = 100
    settings.RINGPOOL_RATE_LIMIT_REDIS_COOL_OFF_SECONDS = 0.2
    caplog.set_level(logging.WARNING, logger="ringpools.ratelimit")
    limiter, address = RedisLimiter(settings.CELERY_BROKER_URL), fresh_address()
    visitor, now = f"1:visitor-{time.time_ns()}", time.time()

    def down(*args, **kwargs):
        raise RedisConnectionError("Redis is down")

    monkeypatch.setattr(limiter._connection, "send_command", down)
    for _ in range(5):
        assert limiter.check(address=address, visitor=visitor, now=now).allowed
    monkeypatch.undo()
    time.sleep(0.25)
    assert limiter.check(address=address, visitor=visitor, now=now).allowed
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "again" in lines[1]
    # The moment let through unseen before the outage reached Redis with the call after it.
    assert shared.zcard(f"ringpool:rl:v:{visitor}") == 2
