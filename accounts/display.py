"""How the back office shows a moment: in the zone of the account a row belongs to, with the zone named."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, tzinfo

from django.utils.html import format_html
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
