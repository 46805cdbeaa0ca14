"""How the back office shows a moment: in the zone of the account a row belongs to, with the zone named."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, tzinfo
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

EMPTY = "—"


def zone_of(account_timezone: tzinfo | str | None) -> tzinfo:
    if account_timezone is None or account_timezone == "":
        return UTC
    if isinstance(account_timezone, str):
        return zoneinfo.ZoneInfo(account_timezone)
    return account_timezone


def zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or str(zone)


def local_time_text(
    moment: datetime | None, account_timezone: tzinfo | str | None, *, time_only: bool = False
) -> str:
    """'2026-11-28 16:30 PST' in the account's zone; UTC where no account applies."""
    if moment is None:
        return EMPTY
    local = moment.astimezone(zone_of(account_timezone))
    return f"{local:%H:%M} {local.tzname()}" if time_only else f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def local_time(
    moment: datetime | None, account_timezone: tzinfo | str | None, *, time_only: bool = False
) -> SafeString | str:
    """The local time, with the zone's name and the UTC time on hover, in a <time> element.
    `time_only` for moments within the next hours (a lease's end), the full date staying on hover."""
    if moment is None:
        return EMPTY
    zone = zone_of(account_timezone)
    return format_html(
        '<time datetime="{}" title="{} {} · {} UTC">{}</time>',
        moment.astimezone(UTC).isoformat(),
        local_time_text(moment, zone),
        zone_name(zone),
        f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}",
        local_time_text(moment, zone, time_only=time_only),
    )


SYSTEM = "the system"


def person_name(user: Any) -> str:
    """Who did something, the same everywhere: their full name or username; "the system" for the
    product's own jobs (no user)."""
    if user is None:
        return SYSTEM
    return user.get_full_name() or user.get_username()


# Figures people do not read: database ids and the carrier's idempotency keys.
_HIDDEN_FIGURES = {"request_id", "removed_ids"}


def figures_table(
    figures: dict[str, Any] | None, words: dict[str, dict[str, str]] | None = None
) -> SafeString | str:
    """An event's figures as a small two-column table, keys in words; `words` maps a key's coded
    values to words (e.g. the prune rule's codes)."""
    rows = [
        (key.replace("_", " "), _figure_value((words or {}).get(key, {}).get(str(value), value)))
        for key, value in (figures or {}).items()
        if key not in _HIDDEN_FIGURES
    ]
    if not rows:
        return EMPTY
    return format_html(
        '<table class="figures">{}</table>',
        format_html_join("", '<tr><th scope="row">{}</th><td>{}</td></tr>', rows),
    )


def _figure_value(value: Any) -> str:
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_figure_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_figure_value(v) for v in value)
    return str(value)
