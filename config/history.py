"""django-simple-history's two per-instance switches, in one place (they are attributes the library
reads, not fields, so the type checker cannot see them on the models)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Model


def history_by(instance: Model, actor: AbstractBaseUser | None) -> None:
    """The next save of `instance` records `actor` as who made the change."""
    setattr(instance, "_history_user", actor)  # noqa: B010  simple-history's documented attribute


@contextmanager
def history_dated(instance: Model, at: datetime | None) -> Iterator[None]:
    """Saves of `instance` inside the block date their history entry `at` (None: the moment of the
    save): a service told the moment it acts at dates its history too. Later saves are not."""
    if at is None:
        yield
        return
    setattr(instance, "_history_date", at)  # noqa: B010  simple-history's documented attribute
    try:
        yield
    finally:
        delattr(instance, "_history_date")


@contextmanager
def history_skipped(instance: Model) -> Iterator[None]:
    """Saves of `instance` inside the block write no history entry of their own."""
    setattr(instance, "skip_history_when_saving", True)  # noqa: B010  simple-history's documented switch
    try:
        yield
    finally:
        delattr(instance, "skip_history_when_saving")
