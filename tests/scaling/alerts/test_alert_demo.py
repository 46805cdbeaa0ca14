"""The demo shows alerts (issue 20): `seed_demo` leaves one pool at its cap with an open alert, made by
the real hand-out and the real check, and its mail goes out (on the console in the demo)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core import mail

from scaling.choices import AlertKind
from scaling.models import Alert
from tests.demo import seed_demo

pytestmark = pytest.mark.django_db


def test_seed_demo_leaves_one_pool_at_its_cap_with_an_open_alert_mailed_once():
    out = StringIO()
    out.write(seed_demo())
    alert = Alert.objects.get()
    assert alert.kind == AlertKind.AT_CAP and alert.is_open and alert.pool.key == "rp_demo_capped"
    assert alert.figures["size"] == alert.figures["max_size"] == 3
    assert alert.figures["overflows_last_hour"] == 9
    # The account's super user and the demo's two back-office people.
    assert sorted(m.to[0] for m in mail.outbox) == [
        "admin@example.com",
        "alice@example.com",
        "staff@example.com",
    ]
    assert "Alert opened: Storm Repair — Ventura" in out.getvalue()

    seed_demo()  # run again: nothing new
    assert Alert.objects.count() == 1 and len(mail.outbox) == 3
