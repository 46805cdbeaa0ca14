"""Alerts (issue 20): each condition at its edges in controlled time — opens once, stays open without a
new mail, resolves once, reopens as a new episode — and the mail people get."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import IntegrityError, transaction
from django.test import override_settings
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.choices import Role
from ringpools.choices import NumberRole, NumberState
from ringpools.figures import hour_of
from ringpools.models import PoolHourlyFigures
from scaling.alerts.conditions import alerts_check
from scaling.alerts.mail import alert_mail_body, alert_mails_send
from scaling.choices import AlertKind, AlertSeverity, OrderKind, OrderState, Trigger
from scaling.models import Alert, BeatProcess, CarrierOrder, JobRun, MonthlyPrune, PoolGrowth
from scaling.supply.outbox import NO_NUMBER_TO_OFFER
from tests import factories

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)


def check(at: datetime, *, beat: bool = True) -> tuple[list[Alert], int]:
    """One check at `at`, as the periodic task runs it (with a Beat leading, unless `beat` is False):
    returns the open alerts and the mails sent."""
    if beat:
        BeatProcess.objects.update_or_create(
            holder="test:1:beat", defaults={"started_at": at, "seen_at": at, "leading_since": at}
        )
    with time_machine.travel(at, tick=False):
        alerts_check(now=at)
        sent = alert_mails_send(now=at)
    return list(Alert.objects.filter(opened_at__isnull=False, resolved_at__isnull=True)), sent


def full_pool(size: int = 3, **options):
    """A pool at its maximum size, every number active, with a super user and a member."""
    pool = factories.RingPoolFactory(max_size=size, **options)
    for _ in range(size):
        factories.PromoNumberFactory(pool=pool, acquired_at=T0 - timedelta(days=3), monthly_cost="1.50")
    factories.MembershipFactory(account=pool.account, role=Role.SUPER_USER, user__email="boss@customer.test")
    factories.MembershipFactory(account=pool.account, role=Role.MEMBER, user__email="member@customer.test")
    return pool


def overflowed(pool, at: datetime, count: int = 5, presented: int = 10) -> None:
    shard = PoolHourlyFigures.objects.filter(pool=pool, hour=hour_of(at)).count()  # a row per writer
    factories.PoolHourlyFiguresFactory(
        pool=pool, hour=hour_of(at), shard=shard, presentations=presented, overflows=count
    )
    type(pool).objects.filter(pk=pool.pk).update(last_overflow_at=at)


def test_a_pool_at_its_cap_that_turns_visitors_away_opens_one_alert_mailed_once_then_resolves_once():
    manager = factories.StaffFactory(email="manager@platform.test")
    pool = full_pool()
    overflowed(pool, T0, count=12, presented=36)

    opened, sent = check(T0)
    assert [(a.kind, a.pool_id) for a in opened] == [(AlertKind.AT_CAP, pool.pk)]
    alert = opened[0]
    assert "maximum size of 3" in alert.reason and "12 visitors" in alert.reason and "25%" in alert.reason
    assert alert.figures["overflows_last_hour"] == 12 and alert.figures["monthly_cost_each"] == "1.50"
    assert (
        "1 more number costs about $1.50 a month" in alert.advice
    )  # a fifth of 3, rounded up: 1 more number
    # The account's super user and the account managers; not the member.
    assert sorted(m.to[0] for m in mail.outbox) == ["boss@customer.test", manager.email]
    assert (
        sent == 2
        and mail.outbox[0].subject == f"[RingPool] Alert: At its maximum size while overflowing — {pool.name}"
    )

    # Still overflowing ten minutes later: the same episode, no new mail.
    overflowed(pool, T0 + timedelta(minutes=10), count=3)
    again, sent = check(T0 + timedelta(minutes=10))
    assert [a.pk for a in again] == [alert.pk] and sent == 0 and len(mail.outbox) == 2

    # No overflow for over an hour (the figures read the current and previous hour): resolved, once.
    quiet = T0 + timedelta(hours=2, minutes=1)
    assert check(quiet) == ([], 2)
    resolved = Alert.objects.get(pk=alert.pk)
    assert resolved.resolved_at == quiet and "turned no visitor away" in resolved.resolution
    assert mail.outbox[-1].subject.startswith("[RingPool] Resolved: ")
    assert check(quiet + timedelta(minutes=1)) == ([], 0)

    # Overflowing again: a new episode, mailed again.
    overflowed(pool, quiet + timedelta(minutes=2))
    reopened, sent = check(quiet + timedelta(minutes=2))
    assert len(reopened) == 1 and reopened[0].pk != alert.pk and sent == 2
    assert Alert.objects.filter(kind=AlertKind.AT_CAP).count() == 2


def test_below_the_cap_or_under_the_threshold_no_alert():
    pool = full_pool()
    overflowed(pool, T0, count=2)
    with override_settings(RINGPOOL_ALERT_AT_CAP_OVERFLOWS=3):
        assert check(T0) == ([], 0)
    with override_settings(RINGPOOL_ALERT_AT_CAP_OVERFLOWS=2):
        assert len(check(T0)[0]) == 1
    # Raising the cap resolves it at the next check.
    type(pool).objects.filter(pk=pool.pk).update(max_size=10)
    with override_settings(RINGPOOL_ALERT_AT_CAP_OVERFLOWS=2):
        assert check(T0 + timedelta(minutes=1))[0] == []


def test_the_database_refuses_a_second_unresolved_episode():
    pool = full_pool()
    overflowed(pool, T0)
    check(T0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(
            kind=AlertKind.AT_CAP, subject=f"pool:{pool.pk}", reason="x", first_seen_at=T0, seen_at=T0
        )


def test_growth_behind_opens_only_after_its_grace_and_leaves_nothing_when_it_ends_sooner():
    pool = factories.RingPoolFactory(max_size=10)
    factories.PromoNumberFactory(pool=pool)
    PoolGrowth.objects.create(
        pool=pool, scaling_on_since=T0 - timedelta(days=1), last_grown_at=T0 - timedelta(hours=1)
    )
    type(pool).objects.filter(pk=pool.pk).update(last_overflow_at=T0)

    assert check(T0) == ([], 0)
    pending = Alert.objects.get(kind=AlertKind.GROWTH_BEHIND)
    assert pending.opened_at is None  # pending: shown to nobody, mailed to nobody
    assert check(T0 + timedelta(minutes=9, seconds=59)) == ([], 0)
    opened, _ = check(T0 + timedelta(minutes=10))
    assert [a.kind for a in opened] == [AlertKind.GROWTH_BEHIND] and opened[0].first_seen_at == T0

    # It grew: resolved. Due again, and grown within the grace: no episode at all.
    PoolGrowth.objects.filter(pool=pool).update(last_grown_at=T0 + timedelta(minutes=11))
    assert check(T0 + timedelta(minutes=12))[0] == []
    type(pool).objects.filter(pk=pool.pk).update(last_overflow_at=T0 + timedelta(minutes=20))
    check(T0 + timedelta(minutes=20))
    PoolGrowth.objects.filter(pool=pool).update(last_grown_at=T0 + timedelta(minutes=21))
    check(T0 + timedelta(minutes=22))
    assert list(Alert.objects.values_list("kind", flat=True)) == [AlertKind.GROWTH_BEHIND]  # the first only


def test_an_adaptive_pool_waiting_for_a_shortage_is_not_behind_until_it_has_one():
    pool = factories.RingPoolFactory(max_size=100, created_at=T0 - timedelta(days=60))
    factories.AutoScalingSettingsFactory(account=pool.account, policy="adaptive")
    for _ in range(30):  # a shortage: 2 visitors turned away (4 % of 30)
        factories.PromoNumberFactory(pool=pool, acquired_at=T0 - timedelta(days=60))
    PoolGrowth.objects.create(
        pool=pool, scaling_on_since=T0 - timedelta(days=1), last_grown_at=T0 - timedelta(hours=1)
    )
    type(pool).objects.filter(pk=pool.pk).update(last_overflow_at=T0)
    figures = PoolHourlyFigures.objects.create(pool=pool, hour=hour_of(T0), overflows=1, turned_away=1)
    check(T0)
    check(T0 + timedelta(minutes=30))
    assert not Alert.objects.filter(kind=AlertKind.GROWTH_BEHIND).exists()
    PoolHourlyFigures.objects.filter(pk=figures.pk).update(overflows=2, turned_away=2)
    check(T0 + timedelta(minutes=31))
    assert Alert.objects.get(kind=AlertKind.GROWTH_BEHIND).opened_at is None  # due now: pending its grace


def purchase(pool, **fields) -> CarrierOrder:
    defaults = dict(
        kind=OrderKind.PURCHASE,
        state=OrderState.PENDING,
        account=pool.account,
        pool=pool,
        role=NumberRole.ROTATING,
        request_id=f"ringpool-{pool.pk}-{CarrierOrder.objects.count():020d}",
        trigger=Trigger.GROWTH,
        created_at=T0,
    )
    return CarrierOrder.objects.create(**{**defaults, **fields})


def test_the_carrier_with_no_number_and_with_only_toll_free_numbers():
    pool = factories.RingPoolFactory(area_code="805")
    waiting = purchase(pool, last_error=NO_NUMBER_TO_OFFER, attempts=2)
    opened, _ = check(T0)
    assert [a.kind for a in opened] == [AlertKind.NO_NUMBER] and "no number to offer" in opened[0].reason

    CarrierOrder.objects.filter(pk=waiting.pk).update(
        state=OrderState.DONE,
        finished_at=T0 + timedelta(minutes=5),
        offer={"match": "toll_free_fallback", "number_type": "toll_free"},
    )
    opened, _ = check(T0 + timedelta(minutes=5))
    assert [a.kind for a in opened] == [AlertKind.NO_LOCAL_NUMBER] and "805" in opened[0].reason
    assert Alert.objects.get(kind=AlertKind.NO_NUMBER).resolved_at == T0 + timedelta(minutes=5)

    # The next purchase found a local number again.
    purchase(
        pool, state=OrderState.DONE, finished_at=T0 + timedelta(minutes=30), offer={"match": "area_code"}
    )
    assert check(T0 + timedelta(minutes=30))[0] == []


def test_carrier_orders_failing_for_longer_than_the_threshold():
    pool = factories.RingPoolFactory()
    purchase(pool, last_error="carrier refused the purchase: 401 unauthorized", attempts=4)
    assert check(T0 + timedelta(minutes=29, seconds=59))[0] == []
    opened, _ = check(T0 + timedelta(minutes=30))
    assert [a.kind for a in opened] == [AlertKind.CARRIER_FAILING]
    assert opened[0].account_id == pool.account_id and "401 unauthorized" in opened[0].reason


def test_the_outbox_backed_up_past_its_threshold_is_a_system_alert_for_the_account_managers_only():
    factories.StaffFactory(email="manager@platform.test")
    pool = full_pool()
    purchase(pool)  # no error yet: simply waiting (no worker)
    assert check(T0 + timedelta(minutes=59))[0] == []
    opened, sent = check(T0 + timedelta(minutes=60))
    assert [(a.kind, a.subject, a.account_id) for a in opened] == [(AlertKind.OUTBOX_BACKLOG, "system", None)]
    assert sent == 1 and mail.outbox[0].to == ["manager@platform.test"]


def test_beat_silent_and_a_periodic_task_late():
    beat = BeatProcess.objects.create(holder="host:1:a", started_at=T0, seen_at=T0, leading_since=T0)
    check = lambda at: globals()["check"](at, beat=False)  # noqa: E731  (this test's Beat is its own)
    every_hour = CrontabSchedule.objects.create(minute="7", hour="*", timezone="UTC")
    PeriodicTask.objects.create(
        name="Compact", task="ringpools.tasks.compact_hourly_figures", crontab=every_hour
    )
    JobRun.objects.create(task="ringpools.tasks.compact_hourly_figures", last_started_at=T0.replace(minute=7))

    BeatProcess.objects.filter(pk=beat.pk).update(seen_at=T0 + timedelta(hours=1, minutes=11))
    # Due at 16:07, late after the 5-minute margin.
    assert check(T0 + timedelta(hours=1, minutes=11, seconds=59))[0] == []
    opened, _ = check(T0 + timedelta(hours=1, minutes=12))
    assert [(a.kind, a.subject) for a in opened] == [
        (AlertKind.JOB_LATE, "task:ringpools.tasks.compact_hourly_figures")
    ]
    assert "was due 5 min ago and has not run (last started 1 h 5 min ago)" in opened[0].reason

    # Beat unseen for over 120 s: the Beat alert, and the task alert gives way to it.
    opened, _ = check(T0 + timedelta(hours=1, minutes=13, seconds=1))
    assert [a.kind for a in opened] == [AlertKind.BEAT_DOWN]


@pytest.mark.parametrize(
    ("zone", "first_local_day_utc"),
    [
        ("America/Los_Angeles", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
        ("Asia/Tokyo", datetime(2026, 11, 30, 15, 0, tzinfo=UTC)),
    ],
)
def test_a_month_end_prune_that_did_not_run_on_the_last_local_day(zone, first_local_day_utc):
    account = factories.AccountFactory(timezone=zone)
    pool = factories.RingPoolFactory(account=account, created_at=datetime(2026, 11, 5, tzinfo=UTC))
    # Still the last local day: nothing is missed yet.
    assert check(first_local_day_utc - timedelta(seconds=1))[0] == []
    opened, _ = check(first_local_day_utc)
    missed = [a for a in opened if a.kind == AlertKind.PRUNE_MISSED]
    assert [a.subject for a in missed] == [f"account:{account.pk}:2026-11"]
    assert (
        "November 2026" in missed[0].reason and "prune_ringpools --at 2026-11-30T12:00:00" in missed[0].advice
    )

    MonthlyPrune.objects.create(
        account=account,
        pool=pool,
        month=datetime(2026, 11, 1).date(),
        outcome="skipped",
        decided_at=first_local_day_utc,
        run=uuid.uuid4(),
    )
    check(first_local_day_utc + timedelta(hours=1))
    assert Alert.objects.get(pk=missed[0].pk).resolved_at is not None


def test_a_suggestion_when_a_pool_without_auto_scaling_overflows_for_an_hour():
    pool = factories.RingPoolFactory(auto_scaling_enabled=False)
    factories.PromoNumberFactory(pool=pool)
    overflowed(pool, T0, count=6, presented=94)  # 6%: above the 5% threshold
    assert check(T0)[0] == []
    overflowed(pool, T0 + timedelta(hours=1))
    opened, _ = check(T0 + timedelta(hours=1))
    assert [(a.kind, a.severity) for a in opened] == [(AlertKind.OVERFLOW_MANUAL, AlertSeverity.SUGGESTION)]


def test_people_who_turned_alert_mail_off_get_none_and_a_failing_mail_server_retries(monkeypatch):
    factories.StaffFactory(email="manager@platform.test", alert_emails=False)
    pool = full_pool()
    overflowed(pool, T0)

    def refuse(self, messages):
        raise ConnectionRefusedError("mail server down")

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", refuse)
    assert check(T0)[1] == 0
    monkeypatch.undo()
    # The next check sends it: to the super user only.
    assert check(T0 + timedelta(minutes=1))[1] == 1
    assert [m.to for m in mail.outbox] == [["boss@customer.test"]]


def test_the_mail_says_when_in_the_accounts_zone_and_what_to_do():
    pool = full_pool(account=factories.AccountFactory(timezone="Europe/Berlin"))
    overflowed(pool, T0)
    with override_settings(RINGPOOL_ALERT_LINK_BASE_URL="https://app.example.com"):
        check(T0)
        body = alert_mail_body(Alert.objects.get())
    assert "Opened 2026-11-18 16:00 (Europe/Berlin)" in body
    assert "What to do: Raise the maximum size" in body
    assert f"https://app.example.com/pools/{pool.pk}/health/" in body
    assert "overflows_last_hour: 5" in body


def test_an_episode_resolved_before_its_opening_mail_went_out_is_told_in_one_mail(monkeypatch):
    factories.StaffFactory(email="manager@platform.test")
    pool = full_pool()
    overflowed(pool, T0)
    monkeypatch.setattr(
        "django.core.mail.backends.locmem.EmailBackend.send_messages",
        lambda self, m: (_ for _ in ()).throw(OSError("down")),
    )
    check(T0)
    monkeypatch.undo()
    type(pool).objects.filter(pk=pool.pk).update(max_size=10)
    check(T0 + timedelta(minutes=1))
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["[RingPool] Resolved", "[RingPool] Resolved"]
    alert = Alert.objects.get()
    assert alert.mailed_open_at and alert.mailed_resolved_at
    assert check(T0 + timedelta(minutes=2))[1] == 0


def test_only_active_numbers_count_toward_the_cap():
    pool = full_pool()
    number = pool.numbers.first()
    type(number).objects.filter(pk=number.pk).update(state=NumberState.RELEASING)
    overflowed(pool, T0)
    assert check(T0)[0] == []


def test_the_daily_digest_goes_to_those_who_asked_for_it_with_what_they_would_be_mailed_about():
    from scaling.alerts.mail import alert_digests_send

    pool = full_pool()
    overflowed(pool, T0)
    check(T0)  # opens the cap alert
    other = factories.RingPoolFactory(name="Elsewhere")
    factories.MembershipFactory(
        account=other.account, role=Role.SUPER_USER, user__email="them@other.test", user__alert_digest=True
    )
    boss = pool.account.memberships.get(role=Role.SUPER_USER).user
    type(boss).objects.filter(pk=boss.pk).update(alert_digest=True)
    manager = factories.StaffFactory(email="manager@platform.test", alert_digest=True)
    mail.outbox.clear()

    assert alert_digests_send(now=T0 + timedelta(hours=2)) == 2
    by_address = {m.to[0]: m for m in mail.outbox}
    assert set(by_address) == {"boss@customer.test", manager.email}  # not the other account's super user
    digest = by_address["boss@customer.test"]
    assert digest.subject == "[RingPool] Alerts digest 2026-11-18: 1 open"
    assert f"At its maximum size while overflowing — {pool.name} (open since 2026-11-18 07:00" in digest.body
    assert "What to do: Raise the maximum size" in digest.body

    # Resolved more than a day ago: no longer in it, and nobody gets an empty digest.
    type(pool).objects.filter(pk=pool.pk).update(max_size=10)
    check(T0 + timedelta(hours=3))
    mail.outbox.clear()
    assert alert_digests_send(now=T0 + timedelta(hours=26)) == 2  # resolved 23 hours before
    assert alert_digests_send(now=T0 + timedelta(hours=28)) == 0


def test_the_digest_task_sends_in_its_hour_once(monkeypatch, settings):
    from scaling import tasks

    settings.RINGPOOL_ALERT_DIGEST_HOUR_UTC = 8
    pool = full_pool()
    overflowed(pool, T0)
    check(T0)
    factories.StaffFactory(email="manager@platform.test", alert_digest=True)
    with time_machine.travel(datetime(2026, 11, 19, 7, 3, tzinfo=UTC), tick=False):
        assert tasks.send_alert_digests() == 0
    with time_machine.travel(datetime(2026, 11, 19, 8, 3, tzinfo=UTC), tick=False):
        assert tasks.send_alert_digests() == 1
        JobRun.objects.create(
            task="scaling.tasks.send_alert_digests",
            last_succeeded_at=datetime(2026, 11, 19, 8, 3, tzinfo=UTC),
        )
    with time_machine.travel(datetime(2026, 11, 19, 8, 40, tzinfo=UTC), tick=False):
        assert tasks.send_alert_digests() == 0  # a redelivery within the hour
