"""The hard invariant under real concurrency: many clients at once, each on its own PostgreSQL connection."""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from django.test import Client

from ringpools import handout
from ringpools.models import Lease
from tests.factories import PromoNumberFactory, RingPoolFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
CLIENTS = 40


def hammer(pool_key: str, visitors: list[str]) -> list[dict]:
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
                    data=json.dumps({"visitor_id": visitor}),
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


def test_200_simultaneous_visitors_share_50_numbers_without_a_double_hold(implementation):
    pool = RingPoolFactory()
    for _ in range(50):
        PromoNumberFactory(pool=pool)
    answers = hammer(pool.key, [f"visitor-{i:05d}" for i in range(200)])
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
