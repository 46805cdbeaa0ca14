"""The demo data for tests: `seed_demo` with a few days of history (the rush three days ago, its
growth; a second or so), or the whole month `bin/demo` plays (about ten seconds on SQLite)."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

# Enough for the rush three days ago (scaling.management.commands.seed_demo.STORIES) and its growth.
SHORT_DAYS = 4


def seed_demo(days: int | None = SHORT_DAYS) -> str:
    """Run `seed_demo` (`days=None`: its default history); returns what it printed."""
    out = StringIO()
    call_command("seed_demo", *(["--days", str(days)] if days is not None else []), stdout=out)
    return out.getvalue()
