"""Start-up and operations: settings from the environment, demo data, periodic-task registration."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.models import Account, Membership, User
from config.schedules import SCHEDULES
from ringpools.models import Campaign, DestinationNumber, PromoNumber, RingPool
from scaling.models import AutoScalingSettings, InventoryNumber, ScalingEvent
from tests.demo import seed_demo

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "a-long-random-production-secret-" + "x" * 40,
    "RINGPOOL_ENCRYPTION_KEYS": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
    "ALLOWED_HOSTS": "ringpool.example.com",
    "DATABASE_URL": "sqlite:///:memory:",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "EMAIL_URL": "smtp+tls://mailer:mail-password@smtp.example.com:587",
}


def run(command: list[str], **env: str) -> subprocess.CompletedProcess:
    test_only = {
        "SECRET_KEY",
        "RINGPOOL_ENCRYPTION_KEYS",
        "DEBUG",
        "DATABASE_URL",
        "SECURE_SSL_REDIRECT",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
        "CELERY_BROKER_URL",
    }
    clean = {k: v for k, v in os.environ.items() if k not in test_only}
    return subprocess.run(command, cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", *args], **env)


@pytest.mark.parametrize(
    "process",
    [
        ("web (gunicorn imports config.wsgi)", [sys.executable, "-c", "import config.wsgi"]),
        ("worker", [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo"]),
        ("beat", [sys.executable, "-m", "celery", "-A", "config", "beat"]),
        ("deployment check", [sys.executable, "manage.py", "check", "--deploy"]),
    ],
    ids=lambda p: p[0],
)
@pytest.mark.own_settings
def test_production_processes_without_a_secret_key_refuse_to_start(process, tmp_path):
    env = {k: v for k, v in PRODUCTION.items() if k not in {"SECRET_KEY", "CELERY_BROKER_URL"}}
    env.update(RINGPOOL_DATA_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert manage("migrate", "--noinput", "-v0", **env).returncode == 0  # Beat reads its schedule first
    result = run(process[1], **env)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stdout + result.stderr


def test_development_commands_run_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = manage("makemigrations", "--check", "--dry-run", **env)
    assert result.returncode == 0, result.stderr


def test_production_settings_pass_the_deployment_checklist():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_debug_settings_start_without_any_service(tmp_path):
    result = manage("check", DEBUG="1", RINGPOOL_DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr


def snapshot() -> dict[str, list]:
    return {
        "accounts": list(Account.objects.values_list("slug", "name")),
        "people": list(User.objects.order_by("username").values_list("username", "is_staff")),
        "memberships": list(
            Membership.objects.order_by("user__username").values_list("user__username", "role")
        ),
        "campaigns": list(Campaign.objects.order_by("name").values_list("name", flat=True)),
        "destinations": list(DestinationNumber.objects.order_by("number").values_list("number", flat=True)),
        "pools": list(
            RingPool.objects.order_by("key").values_list("key", "name", "number_type", "overflow_mode")
        ),
        "numbers": list(PromoNumber.objects.order_by("number").values_list("number", "pool__key", "role")),
        "inventory": list(InventoryNumber.objects.order_by("number").values_list("number", "sold_to")),
        "events": [ScalingEvent.objects.count()],
    }


@pytest.mark.django_db
def test_seed_demo_twice_gives_the_same_data():
    out = StringIO()
    out.write(seed_demo())
    first = snapshot()
    seed_demo()
    assert snapshot() == first
    printed = out.getvalue()
    assert "alice" in printed and "super_user" in printed and "staff" in printed
    assert "rp_demo_local" in printed and "rp_demo_tollfree" in printed
    roles = dict(first["memberships"])
    assert roles == {"alice": "super_user", "manny": "manager", "mia": "member"}
    assert ("staff", True) in first["people"]
    types = {pool[2] for pool in first["pools"]}
    assert types == {"local", "toll_free"}
    assert all(PromoNumber.objects.filter(pool__key=key[0]).count() >= 2 for key in first["pools"])
    assert InventoryNumber.objects.filter(sold_to__isnull=True).exists()


@pytest.mark.django_db
def test_register_schedules_creates_the_product_schedules_once_and_keeps_staff_edits():
    call_command("register_schedules", stdout=StringIO())
    assert set(PeriodicTask.objects.values_list("task", flat=True)) >= {s.task for s in SCHEDULES}
    entry = PeriodicTask.objects.get(name=SCHEDULES[0].name)
    # Staff move the job to minute 30 and switch it off in admin; a deploy re-runs the command.
    entry.crontab = CrontabSchedule.objects.create(minute="30", hour="*")
    entry.enabled = False
    entry.save()
    out = StringIO()
    call_command("register_schedules", stdout=out)
    entry.refresh_from_db()
    assert (entry.crontab.minute, entry.enabled) == ("30", False)
    assert PeriodicTask.objects.filter(name=SCHEDULES[0].name).count() == 1
    assert "unchanged" in out.getvalue()


@pytest.mark.django_db
def test_register_schedules_brings_a_renamed_task_up_to_date():
    call_command("register_schedules", stdout=StringIO())
    PeriodicTask.objects.filter(name=SCHEDULES[0].name).update(task="old.module.task")
    call_command("register_schedules", stdout=StringIO())
    assert PeriodicTask.objects.get(name=SCHEDULES[0].name).task == SCHEDULES[0].task


@pytest.mark.django_db
def test_every_account_gets_auto_scaling_settings_with_the_documented_defaults():
    seed_demo()
    settings = AutoScalingSettings.objects.get(account__slug="acme")
    assert (settings.enable_for_new_pools, settings.include_overflow_number, settings.scope) == (
        True,
        True,
        "all",
    )
    assert (settings.growth_step, settings.growth_interval_minutes) == (1, 5)
