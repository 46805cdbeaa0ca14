"""Moments in words relative to a decision or a check ("3 min 10 s ago", "in 4 min", "for 2 h 5 min"):
true in every time zone. A clock time written into a reason would be in one zone, inside pages whose
reader is in another; the page shows the record's own time in its reader's zone. Pure: no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta


def ago(moment: datetime, now: datetime) -> str:
    seconds = round((now - moment).total_seconds())
    if seconds == 0:
        return "just now"
    return (
        f"{span(timedelta(seconds=abs(seconds)))} ago"
        if seconds > 0
        else f"in {span(timedelta(seconds=-seconds))}"
    )


def span(length: timedelta) -> str:
    """A duration in its two largest units: "45 s", "3 min 10 s", "2 h 5 min", "1 day 3 h"."""
    seconds = max(0, round(length.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        parts = [f"{days} day{'s' if days != 1 else ''}", f"{hours} h" if hours else ""]
    elif hours:
        parts = [f"{hours} h", f"{minutes} min" if minutes else ""]
    elif minutes:
        parts = [f"{minutes} min", f"{secs} s" if secs else ""]
    else:
        parts = [f"{secs} s"]
    return " ".join(part for part in parts if part)
