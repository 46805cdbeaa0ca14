"""The README's second-terminal commands, run the way it shows them: `bin/manage …` beside the demo,
from a shell that has none of the test settings (no DEBUG, no keys, no database URL)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What a newcomer's shell does not have: everything the test run itself sets.
NOT_IN_A_NEW_SHELL = {
    "SECRET_KEY",
    "RINGPOOL_ENCRYPTION_KEYS",
    "DEBUG",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "SECURE_SSL_REDIRECT",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "DJANGO_SETTINGS_MODULE",
    "RINGPOOL_DATA_DIR",
}

pytestmark = [pytest.mark.own_settings]


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A new user's environment, with the demo's data in its own folder (not the checkout's data/),
    migrated and seeded through bin/manage as bin/demo does."""
    data = tmp_path_factory.mktemp("demo-data")
    env = {k: v for k, v in os.environ.items() if k not in NOT_IN_A_NEW_SHELL}
    env["RINGPOOL_DATA_DIR"] = str(data)
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        done = bin_manage(env, *command)
        assert done.returncode == 0, done.stderr
    return env


def bin_manage(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bin/manage", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_test_call_as_the_readme_shows_it(shell):
    done = bin_manage(shell, "test_call", "rp_demo_local")
    assert done.returncode == 0, done.stderr
    assert "Call " in done.stdout and "to (805) " in done.stdout and "forwarded to +1" in done.stdout
    # A number, as printed in the call line, works too.
    number = done.stdout.split(" to ", 1)[1].split(":", 1)[0]
    again = bin_manage(shell, "test_call", number)
    assert again.returncode == 0 and f"to {number}:" in again.stdout, again.stderr


def test_test_call_names_what_it_could_not_find(shell):
    done = bin_manage(shell, "test_call", "rp_no_such_pool")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "No promo number 'rp_no_such_pool' (nor a pool with that key)" in done.stderr


def test_grow_and_prune_dry_runs_as_the_readme_shows_them(shell):
    grow = bin_manage(shell, "grow_ringpools", "--dry-run")
    assert grow.returncode == 0, grow.stderr
    assert "dry run" in grow.stdout.lower()
    prune = bin_manage(shell, "prune_ringpools", "--dry-run", "-v", "2")
    assert prune.returncode == 0, prune.stderr
    assert "Acme Home Services" in prune.stdout


def test_simulate_visitors_reaches_the_running_demo(shell):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    web = subprocess.Popen(
        ["bin/manage", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=shell,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "the demo's web app did not start"
                time.sleep(0.3)
        done = bin_manage(
            shell,
            "simulate_visitors",
            "--base-url",
            f"http://127.0.0.1:{port}",
            "--every",
            "0.2",
            "--duration",
            "3",
            "--report-every",
            "1",
        )
    finally:
        web.terminate()
        web.wait(timeout=30)
    assert done.returncode == 0, done.stderr
    # The visitors reached the real API: some were given a promo number.
    given = [int(m) for m in re.findall(r"given a promo number: (\d+)", done.stdout)]
    assert given and max(given) > 0, done.stdout


def test_without_bin_manage_the_error_points_to_it(shell):
    """The README's commands typed as plain manage.py, with the production settings: the error says
    what to do for the demo, not only how to make a production key."""
    done = subprocess.run(
        [sys.executable, "manage.py", "test_call", "rp_demo_local"],
        cwd=ROOT,
        env=shell,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "bin/manage" in done.stderr
