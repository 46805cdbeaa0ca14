"""Rate limits (SPEC §3.8): one client cannot drain a pool or renew in a storm; refusals change nothing."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
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


COUNT_IN_ANOTHER_PROCESS = """
import json, sys
from ringpools.ratelimit import RedisLimiter
limiter = RedisLimiter(sys.argv[1])
verdicts = [limiter.check(address="203.0.113.50", visitor="1:visitor-x", now=float(sys.argv[2]))
            for _ in range(int(sys.argv[3]))]
print(json.dumps([v.allowed for v in verdicts]))
"""


@pytest.mark.redis
def test_two_web_processes_share_the_limits_through_redis(settings):
    """Two processes of their own, each counting requests of one client: the budget is one."""
    import time

    import redis

    url = settings.CELERY_BROKER_URL
    settings.RINGPOOL_RATE_LIMIT_URL = url
    for key in redis.Redis.from_url(url).scan_iter(match="ringpool:rl:*"):
        redis.Redis.from_url(url).delete(key)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR": "6",
        "RINGPOOL_RATE_LIMIT_REQUESTS_PER_ADDRESS": "1000",
        "RINGPOOL_RATE_LIMIT_WINDOW_SECONDS": "3600",
    }
    moment = str(time.time())
    code = "import django; django.setup()\n" + COUNT_IN_ANOTHER_PROCESS
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, url, moment, "5"],
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
now = float(sys.argv[2])
verdicts = []
for _ in range(int(sys.argv[3])):
    verdict = limiter.check(address="203.0.113.60", visitor="1:visitor-" + sys.argv[4], now=now)
    verdicts.append(verdict.may_claim)
    if verdict.may_claim:
        limiter.claimed(address="203.0.113.60", now=now)
limiter.check(address="203.0.113.60", visitor="1:visitor-" + sys.argv[4], now=now)  # sends the last claim
print(json.dumps(verdicts))
"""


@pytest.mark.redis
def test_new_visitor_claims_are_counted_across_web_processes(settings):
    import time

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "RINGPOOL_RATE_LIMIT_NEW_VISITORS_PER_ADDRESS": "4",
        "RINGPOOL_RATE_LIMIT_WINDOW_SECONDS": "3600",
    }
    moment = str(time.time() + 7200)  # a window no other test has counted in
    answers = []
    for name in ("first", "second"):  # one after the other: the second sees every claim of the first
        done = subprocess.run(
            [sys.executable, "-c", CLAIM_IN_ANOTHER_PROCESS, settings.CELERY_BROKER_URL, moment, "3", name],
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
def test_a_first_request_is_counted_here_and_reaches_redis_with_the_next_call(settings):
    """Most visitors ask once or twice a window: their first request costs no round trip to Redis.
    Another web process, which has not seen the visitor, lets one request through on its own count
    too; then the shared count refuses. A client exceeds a limit by one request per process at most."""
    import time

    import redis

    from ringpools.ratelimit import PREFIX, RedisLimiter

    settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR = 2
    settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS = 3600
    shared = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    one, other = RedisLimiter(settings.CELERY_BROKER_URL), RedisLimiter(settings.CELERY_BROKER_URL)
    moment = time.time() + 5 * 3600  # a window no other test counts in
    window = int(moment // 3600)
    visitor, bystander = f"1:visitor-{time.time_ns()}", f"1:bystander-{time.time_ns()}"
    key = f"{PREFIX}{window}:v:{visitor}"
    assert one.check(address="203.0.113.80", visitor=visitor, now=moment).allowed
    assert one.check(address="203.0.113.81", visitor=bystander, now=moment).allowed
    assert shared.get(key) is None  # not sent yet
    assert one.check(address="203.0.113.80", visitor=visitor, now=moment).allowed  # seen: asks Redis
    assert int(shared.get(key)) == 2
    assert int(shared.get(f"{PREFIX}{window}:v:{bystander}")) == 1  # sent along
    assert int(shared.get(f"{PREFIX}{window}:a:203.0.113.80")) == 2
    assert other.check(address="203.0.113.80", visitor=visitor, now=moment).allowed  # first sight there
    assert not other.check(address="203.0.113.80", visitor=visitor, now=moment).allowed
    assert not one.check(address="203.0.113.80", visitor=visitor, now=moment).allowed
    assert int(shared.get(key)) == 5


@pytest.mark.redis
def test_a_late_call_from_an_ended_window_does_not_forget_the_current_one(settings):
    """With threads, a claim may be reported after another request turned the window: the visitors
    seen in the new window stay seen (their next request is counted in Redis)."""
    import time

    from ringpools.ratelimit import RedisLimiter

    settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR = 1
    settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS = 60
    limiter = RedisLimiter(settings.CELERY_BROKER_URL)
    later = (int(time.time() // 60) + 20_000) * 60 + 1  # windows no other test counts in
    visitor = f"1:visitor-{time.time_ns()}"
    assert limiter.check(address="203.0.113.90", visitor=visitor, now=later).allowed  # first sight
    limiter.claimed(address="203.0.113.91", now=later - 60)  # a request of the window before
    assert not limiter.check(address="203.0.113.90", visitor=visitor, now=later).allowed


@pytest.mark.redis
def test_first_requests_reach_redis_in_batches(settings):
    """A burst of new clients is not held back in one process: every SEND_BATCH of them is sent."""
    import time

    import redis

    from ringpools.ratelimit import PREFIX, SEND_BATCH, RedisLimiter

    settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS = 3600
    shared = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    limiter = RedisLimiter(settings.CELERY_BROKER_URL)
    moment = time.time() + 6 * 3600
    window, tag = int(moment // 3600), time.time_ns()
    for n in range(SEND_BATCH // 2 + 1):  # two counters each: address and visitor
        address = f"10.9.{n // 250}.{n % 250}"
        assert limiter.check(address=address, visitor=f"1:v-{tag}-{n}", now=moment).allowed
    # The last one found the batch full and took the call, with all the others.
    sent = [shared.get(f"{PREFIX}{window}:v:1:v-{tag}-{n}") for n in range(SEND_BATCH // 2 + 1)]
    assert sent == [b"1"] * (SEND_BATCH // 2 + 1)


@pytest.mark.redis
def test_the_counting_script_is_loaded_again_after_redis_forgot_it(settings):
    """A restarted or flushed Redis knows no scripts: counting goes on, nothing is let through unseen."""
    import time

    import redis

    from ringpools.ratelimit import RedisLimiter

    settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR = 3
    settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS = 3600
    limiter = RedisLimiter(settings.CELERY_BROKER_URL)
    moment = time.time() + 3 * 3600  # a window no other test counts in
    visitor = f"1:visitor-{time.time_ns()}"
    assert limiter.check(address="203.0.113.70", visitor=visitor, now=moment).allowed
    redis.Redis.from_url(settings.CELERY_BROKER_URL).script_flush()
    verdicts = [limiter.check(address="203.0.113.70", visitor=visitor, now=moment).allowed for _ in range(3)]
    assert verdicts == [True, True, False]


@pytest.mark.redis
def test_a_dropped_redis_connection_is_made_again_and_no_request_goes_uncounted(settings):
    import time

    import redis

    from ringpools.ratelimit import RedisLimiter

    settings.RINGPOOL_RATE_LIMIT_REQUESTS_PER_VISITOR = 2
    settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS = 3600
    limiter = RedisLimiter(settings.CELERY_BROKER_URL)
    moment = time.time() + 4 * 3600
    visitor = f"1:visitor-{time.time_ns()}"
    assert limiter.check(address="203.0.113.71", visitor=visitor, now=moment).allowed
    own = limiter._connection
    own.send_command("CLIENT", "ID")
    redis.Redis.from_url(settings.CELERY_BROKER_URL).client_kill_filter(_id=own.read_response())
    time.sleep(0.05)
    verdicts = [limiter.check(address="203.0.113.71", visitor=visitor, now=moment).allowed for _ in range(2)]
    assert verdicts == [True, False]  # the second and third requests, both counted


@pytest.mark.redis
def test_claims_made_while_redis_is_down_count_in_their_window_only(settings, monkeypatch):
    import time

    import redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    from ringpools.ratelimit import PREFIX, RedisLimiter

    settings.RINGPOOL_RATE_LIMIT_NEW_VISITORS_PER_ADDRESS = 3
    settings.RINGPOOL_RATE_LIMIT_WINDOW_SECONDS = 60
    limiter = RedisLimiter(settings.CELERY_BROKER_URL)
    address = f"198.51.100.{time.time_ns() % 250}"
    start = (int(time.time() // 60) + 10_000) * 60  # windows no other test counts in

    def down(*args, **kwargs):
        raise RedisConnectionError("Redis is down")

    monkeypatch.setattr(limiter._connection, "send_command", down)
    calls = []
    monkeypatch.setattr(limiter, "_warn", calls.append)
    for minute in range(30):  # half an hour of outage: every request let through, two claims a minute
        now = start + minute * 60 + 1
        for visitor in ("1:visitor-down", "1:visitor-down-again"):  # the second one asks Redis
            assert limiter.check(address=address, visitor=visitor, now=now).may_claim
            limiter.claimed(address=address, now=now)
    assert len(calls) == 30  # one call a minute failed: the first request of each was counted here
    now = start + 29 * 60 + 30  # Redis is back within the last minute of the outage
    monkeypatch.undo()
    limiter.claimed(address=address, now=now)
    # This minute's three claims reach Redis with the next request: the new-visitor budget is spent.
    assert limiter.check(address=address, visitor="1:visitor-back", now=now).may_claim is False
    shared = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    written = [key.decode() for key in shared.scan_iter(match=f"{PREFIX}*:c:{address}")]
    assert written == [f"{PREFIX}{start // 60 + 29}:c:{address}"]  # ended minutes were not replayed
