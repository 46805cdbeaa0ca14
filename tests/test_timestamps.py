"""PostgreSQL timestamps read through the fast loader (config/timestamps.py) are what Django's own
loader gives: the same instants, in UTC, to the microsecond; what it cannot parse goes to Django's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import DataError, connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

TEXTS = [
    "2026-11-30 20:00:00+00",
    "2026-03-29 01:30:00.123456+01",
    "2026-10-25 01:59:59.999999-07",
    "1890-01-01 00:00:00+00",
    "9999-12-30 23:59:59.999999+00",  # the last day but one: the last is year 10000 east of UTC
    "2000-01-01 00:00:00+05:30",
]


def read(texts: list[str], zone: str = "UTC") -> list[datetime]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('TimeZone', %s, true)", [zone])  # this transaction only
        cursor.execute("SELECT unnest(%s::timestamptz[])", [texts])
        return [row[0] for row in cursor.fetchall()]


def test_the_loader_in_use_is_the_fast_one():
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(1184, 0)  # timestamptz, text
    assert loader.__name__ == "UtcTimestamptzLoader"


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles", "Asia/Kolkata", "Australia/Lord_Howe"])
def test_instants_are_read_exactly_in_utc_whatever_the_sessions_zone(zone):
    got = read(TEXTS, zone)
    expected = [datetime.fromisoformat(text).astimezone(UTC) for text in TEXTS]
    assert got == expected
    assert all(value.tzinfo is UTC for value in got)


def test_a_stored_instant_round_trips_to_the_microsecond():
    now = datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz, %s::timestamptz + interval '1 microsecond'", [now, now])
        stored, later = cursor.fetchone()
    assert stored == now and later - stored == timedelta(microseconds=1)


def test_what_python_cannot_hold_fails_as_with_djangos_loader():
    with pytest.raises(DataError, match="before year 1"):
        read(["0044-03-15 12:00:00+00 BC"])
