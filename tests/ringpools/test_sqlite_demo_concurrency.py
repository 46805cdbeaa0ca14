"""The demo's SQLite database under several writing processes (like gunicorn's workers in bin/demo):
IMMEDIATE transactions serialise the hand-outs, so no number is ever held twice there either."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 6
VISITORS_EACH = 8
NUMBERS = 20

SETUP = f"""
from accounts.models import Account
from ringpools.models import Campaign, DestinationNumber, PromoNumber, RingPool
from django.utils import timezone
account = Account.objects.create(name="A", slug="a")
pool = RingPool.objects.create(account=account, name="P", key="rp_sqlite",
    campaign=Campaign.objects.create(account=account, name="C"),
    destination_number=DestinationNumber.objects.create(account=account, number="+18055550100"))
for n in range({NUMBERS}):
    PromoNumber.objects.create(account=account, pool=pool, number=f"+1805555{{n + 110:04d}}",
                               number_type="local", acquired_at=timezone.now())
"""

CLAIM = f"""
import sys
from ringpools.handout import present_number
from ringpools.selectors import handout_pool
pool = handout_pool("rp_sqlite")
for v in range({VISITORS_EACH}):
    shown = present_number(pool=pool, visitor_id=f"visitor-{{sys.argv[1]}}-{{v}}")
    print(shown.kind, shown.number)
"""


def manage(env: dict, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def test_several_processes_on_the_demo_database_never_share_a_number(tmp_path):
    env = {
        **os.environ,
        "DEBUG": "1",
        "RINGPOOL_DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "RINGPOOL_POOL_CACHE_SECONDS": "0",
    }
    for args in (("migrate", "--noinput", "-v0"), ("shell", "--no-imports", "-c", SETUP)):
        done = manage(env, *args)
        _, err = done.communicate(timeout=120)
        assert done.returncode == 0, err
    claimers = [
        manage(env, "shell", "--no-imports", "-c", CLAIM.replace("sys.argv[1]", repr(str(i))))
        for i in range(PROCESSES)
    ]
    answers = []
    for claimer in claimers:
        out, err = claimer.communicate(timeout=120)
        assert claimer.returncode == 0, err
        answers += [line.split() for line in out.splitlines()]
    promo = [number for kind, number in answers if kind == "promo"]
    assert len(answers) == PROCESSES * VISITORS_EACH
    assert len(promo) == NUMBERS and len(set(promo)) == NUMBERS
    assert sum(1 for kind, _ in answers if kind == "destination") == PROCESSES * VISITORS_EACH - NUMBERS
