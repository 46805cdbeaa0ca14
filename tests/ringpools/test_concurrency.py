"""The hard invariant under real concurrency: many clients at once, each on its own PostgreSQL connection."""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from ringpools import handout
from ringpools.models import Lease, PromoNumber
from tests.factories import PromoNumberFactory, RingPoolFactory
from tests.row_locks import numbers_locked

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
CLIENTS = 40
SAME_VISITOR = 50  # simultaneous requests of one visitor (tabs opened at once, a retrying tag)
ROUNDS = 20  # enough to catch a one-in-ten race
# What the tag may say of a visitor. The claim alone (CLAIM_SQL, for a visitor said to be new) and the
# whole hand-out share the claim and its busy probes; the renewal alone (RENEW_SQL, for a keep-alive)
# probes for free numbers before the whole hand-out claims. Tests marked `hints` run every way in.
HINTS = {"plain": {}, "said-new": {"new_visitor": True}, "keepalive": {"keepalive": True}}
# The ORM steps take no hints: their plain case covers them, and their hinted copies are not made.
hints = pytest.mark.parametrize(
    ("implementation", "hint"),
    [("database", hint) for hint in HINTS] + [("orm", "plain")],
    indirect=["implementation"],
)


@pytest.fixture(autouse=True)
def _no_rate_limits(settings) -> None:
    # These tests send hundreds of requests from one address on purpose.
    settings.RINGPOOL_RATE_LIMIT_URL = "off"


def hammer(pool_key: str, visitors: list[str], **hint: bool) -> list[dict]:
    """Every visitor asks once, CLIENTS at a time, all released together by a barrier."""
    barrier = threading.Barrier(CLIENTS)
    chunks = [visitors[i::CLIENTS] for i in range(CLIENTS)]

    def client_thread(chunk: list[str]) -> list[dict]:
        client = Client()
        answers = []
        try:
            barrier.wait()
            for visitor in chunk:
                response = client.post(
                    f"/api/v1/ringpools/{pool_key}/numbers",
                    data=json.dumps({"visitor_id": visitor, **hint}),
                    content_type="application/json",
                )
                assert response.status_code == 200, response.content
                answers.append(response.json())
        finally:
            connections.close_all()
        return answers

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [answer for answers in pool.map(client_thread, chunks) for answer in answers]


def overlapping_leases() -> int:
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT count(*) FROM ringpools_lease a JOIN ringpools_lease b
              ON a.number_id = b.number_id AND a.id < b.id
             AND a.started_at < b.expires_at AND b.started_at < a.expires_at""")
        return cursor.fetchone()[0]


@pytest.fixture(params=["database", "orm"])
def implementation(request, monkeypatch) -> str:
    if request.param == "orm":
        monkeypatch.setattr(handout, "steps_for_database", lambda: handout._OrmSteps)
    return request.param


@hints
def test_200_simultaneous_visitors_share_50_numbers_without_a_double_hold(implementation, hint):
    pool = RingPoolFactory()
    for _ in range(50):
        PromoNumberFactory(pool=pool)
    answers = hammer(pool.key, [f"visitor-{i:05d}" for i in range(200)], **HINTS[hint])
    kinds = Counter(answer["kind"] for answer in answers)
    promo = [answer["number"] for answer in answers if answer["kind"] == "promo"]
    assert kinds == {"promo": 50, "destination": 150}
    assert len(set(promo)) == 50
    assert Lease.objects.count() == 50
    assert overlapping_leases() == 0


def test_returning_and_new_visitors_at_once_keep_their_numbers_and_never_share(implementation):
    pool = RingPoolFactory()
    for _ in range(30):
        PromoNumberFactory(pool=pool)
    returning = [f"returning-{i:04d}" for i in range(20)]
    first = {a["number"] for a in hammer(pool.key, returning)}
    assert len(first) == 20
    mixed = returning * 3 + [f"newcomer-{i:04d}" for i in range(60)]
    answers = hammer(pool.key, mixed)
    promo = Counter(a["number"] for a in answers if a["kind"] == "promo")
    # The 20 returning visitors keep their 20 numbers (3 answers each); 10 newcomers get the other 10.
    assert sum(promo.values()) == 70
    assert {n for n, c in promo.items() if c == 3} == first
    assert overlapping_leases() == 0


def ask_all_at_once(pool_key: str, bodies: list[dict], executor: ThreadPoolExecutor) -> list[dict]:
    """One request per body, each from its own thread and connection, released together."""
    barrier = threading.Barrier(len(bodies))

    def one(body: dict) -> dict:
        barrier.wait()
        response = Client().post(
            f"/api/v1/ringpools/{pool_key}/numbers", data=json.dumps(body), content_type="application/json"
        )
        assert response.status_code == 200, response.content
        return response.json()

    return list(executor.map(one, bodies))


@pytest.fixture
def executor():
    with ThreadPoolExecutor(SAME_VISITOR) as threads:
        yield threads
        # Each thread closes its own connection, or the test database cannot be dropped.
        barrier = threading.Barrier(SAME_VISITOR)
        list(threads.map(lambda _: (barrier.wait(), connections.close_all()), range(SAME_VISITOR)))


def live_leases(visitor: str) -> list[Lease]:
    return list(Lease.objects.filter(visitor_id=visitor, expires_at__gt=timezone.now()))


@hints
def test_simultaneous_first_requests_of_one_visitor_end_with_one_lease_and_no_overflow(
    implementation, executor, hint
):
    # said-new: every request says the visitor id was made just now (the tag's hint); all but one
    # are wrong by the time they run, and must find the winner's lease. keepalive: every request
    # says the visitor holds a number, which none does until one of them claims it.
    pool = RingPoolFactory()
    for _ in range(ROUNDS + 1):
        PromoNumberFactory(pool=pool)
    for round_ in range(ROUNDS):
        visitor = f"new-visitor-{round_:04d}"
        body = {"visitor_id": visitor, **HINTS[hint]}
        answers = ask_all_at_once(pool.key, [body] * SAME_VISITOR, executor)
        assert {a["kind"] for a in answers} == {"promo"}, f"round {round_}: an overflow with numbers free"
        assert len({a["number"] for a in answers}) == 1, f"round {round_}: several numbers"
        assert len(live_leases(visitor)) == 1
    assert overlapping_leases() == 0


def test_simultaneous_renewals_of_one_lease_keep_the_number_and_never_overflow(implementation, executor):
    pool = RingPoolFactory()
    for _ in range(3):
        PromoNumberFactory(pool=pool)
    mine = Client().post(
        f"/api/v1/ringpools/{pool.key}/numbers",
        data=json.dumps({"visitor_id": "returning-0001"}),
        content_type="application/json",
    )
    number = mine.json()["number"]
    body = {"visitor_id": "returning-0001", "keepalive": True}
    for round_ in range(ROUNDS // 4):
        # Extended five minutes ago: every renewal of the storm takes the locked, writing path.
        lease = Lease.objects.get(visitor_id="returning-0001")
        older = lease.expires_at - timedelta(minutes=5)
        PromoNumber.objects.filter(pk=lease.number_id).update(busy_until=older)
        Lease.objects.filter(pk=lease.pk).update(expires_at=older)
        answers = ask_all_at_once(pool.key, [body] * SAME_VISITOR, executor)
        assert {(a["kind"], a["number"]) for a in answers} == {("promo", number)}, f"round {round_}"
    assert len(live_leases("returning-0001")) == 1
    assert Lease.objects.get(visitor_id="returning-0001").expires_at > timezone.now() + timedelta(minutes=29)


def test_visitors_racing_for_the_last_number_get_it_once_and_the_rest_overflow(implementation, executor):
    pool = RingPoolFactory()
    PromoNumberFactory(pool=pool)
    answers = ask_all_at_once(
        pool.key, [{"visitor_id": f"racer-{i:04d}"} for i in range(SAME_VISITOR)], executor
    )
    assert Counter(a["kind"] for a in answers) == {"promo": 1, "destination": SAME_VISITOR - 1}


def ask_one(pool_key: str, visitor: str, **hint: bool):
    return Client().post(
        f"/api/v1/ringpools/{pool_key}/numbers",
        data=json.dumps({"visitor_id": visitor, **hint}),
        content_type="application/json",
    )


@hints
def test_free_numbers_locked_by_other_claims_answer_busy_never_overflow(implementation, hint, monkeypatch):
    from ringpools.figures import handout_figures
    from ringpools.models import PoolHourlyFigures

    monkeypatch.setattr(handout, "BUSY_PATIENCE_SECONDS", 0.3)
    pool = RingPoolFactory()
    PromoNumberFactory(pool=pool)
    with numbers_locked(pool):
        response = ask_one(pool.key, "patient-0001", **HINTS[hint])
    assert response.status_code == 503
    assert response.json()["error"] == "busy"
    assert response["Retry-After"] == "1"
    assert not Lease.objects.filter(pool=pool).exists()
    handout_figures.flush()
    assert not PoolHourlyFigures.objects.filter(pool=pool, overflows__gt=0).exists()
    pool.refresh_from_db()
    assert pool.last_overflow_at is None


@hints
def test_a_claim_waits_out_another_claims_lock_and_gets_the_number(implementation, hint):
    pool = RingPoolFactory()
    number = PromoNumberFactory(pool=pool)
    with numbers_locked(pool, for_seconds=0.3):  # the other claim ends (and took nothing)
        response = ask_one(pool.key, "patient-0002", **HINTS[hint])
    assert response.status_code == 200
    assert (response.json()["kind"], response.json()["number"]) == ("promo", number.number)


@hints
def test_free_numbers_not_yet_rested_and_locked_by_other_claims_answer_busy(
    implementation, hint, monkeypatch
):
    """The second probe: free numbers released within the cool-down (not flagged rested)."""
    from ringpools.figures import handout_figures

    monkeypatch.setattr(handout, "BUSY_PATIENCE_SECONDS", 0.3)
    pool = RingPoolFactory()
    PromoNumberFactory(pool=pool, rested=False, busy_until=timezone.now() - timedelta(minutes=1))
    with numbers_locked(pool):
        response = ask_one(pool.key, "patient-0003", **HINTS[hint])
    assert (response.status_code, response.json()["error"]) == (503, "busy")
    handout_figures.flush()
    pool.refresh_from_db()
    assert pool.last_overflow_at is None and not Lease.objects.filter(pool=pool).exists()


@hints
def test_a_claim_flags_at_most_32_rested_numbers_and_skips_those_other_claims_hold(implementation, hint):
    from ringpools.handout_steps import BACKLOG_FLAGGED

    pool = RingPoolFactory()
    rested_long_ago = timezone.now() - timedelta(hours=2)
    numbers = [
        PromoNumberFactory(pool=pool, rested=False, busy_until=rested_long_ago + timedelta(seconds=i))
        for i in range(BACKLOG_FLAGGED + 8)
    ]
    held = numbers[:5]  # the five rested longest, locked by another claim in flight
    with numbers_locked(pool, pks=[n.pk for n in held]):
        answer = ask_one(pool.key, "flagger-0001", **HINTS[hint]).json()
    assert answer["kind"] == "promo"
    flags = dict(PromoNumber.objects.filter(pool=pool).values_list("pk", "rested"))
    assert not any(flags[n.pk] for n in held)  # skipped, not waited for
    assert sum(flags.values()) == BACKLOG_FLAGGED - 1  # 32 taken up, one of them claimed
    # Unflagged past the held five: the one claimed, and the three beyond the 32 (the next claim's).
    assert sum(1 for n in numbers[5:] if not flags[n.pk]) == 1 + len(numbers) - 5 - BACKLOG_FLAGGED
