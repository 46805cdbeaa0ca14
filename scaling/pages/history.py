"""The change history of an account's auto-scaling settings, read from simple-history's records.

Each record is a full snapshot (selections included); an entry is the difference between a record and
the one before it, in the words of the settings page.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from accounts.display import person_name
from accounts.models import Account, User
from scaling.choices import ScalingPolicy, Scope
from scaling.models import AutoScalingSettings

_History = AutoScalingSettings.history.model
LABELS = {
    "enable_for_new_pools": "Enable auto-scaling for each new RingPool",
    "include_overflow_number": "Include an overflow number in each new RingPool",
    "scope": "Scope",
    "campaigns": "Selected campaigns",
    "destination_numbers": "Selected destination numbers",
    "policy": "Scaling policy (set by RingPool staff)",
}


@dataclass(frozen=True)
class Change:
    label: str
    before: str
    after: str


@dataclass(frozen=True)
class HistoryEntry:
    when: datetime
    who: User | None
    created: bool
    changes: list[Change]

    @property
    def who_name(self) -> str:
        return person_name(self.who)


def settings_history(*, account: Account, limit: int = 20) -> list[HistoryEntry]:
    """The latest changes, newest first. Three queries, whatever the length of the history."""
    records = list(
        _History.objects.filter(account=account)
        .select_related("history_user")
        .order_by("-history_date", "-history_id")[: limit + 1]
    )
    ids = [r.history_id for r in records]
    # The selections each record saw, from simple-history's snapshot tables (one query each).
    selections: dict[tuple[str, int], list[str]] = defaultdict(list)
    for name, related in (("campaigns", "campaign"), ("destination_numbers", "destinationnumber")):
        rows = _History._meta.get_field(f"historicalautoscalingsettings_{name}").related_model.objects
        for row in rows.filter(history_id__in=ids).select_related(related):
            selections[(name, row.history_id)].append(str(getattr(row, related)))
    entries = []
    for newer, older in zip(records, [*records[1:], None], strict=True):
        if older is None and len(records) > limit:
            break  # the record before the oldest shown one was only read to compare against
        now = _snapshot(newer, selections)
        if older is None:
            entries.append(HistoryEntry(newer.history_date, newer.history_user, True, []))
            continue
        then = _snapshot(older, selections)
        changes = [
            Change(LABELS[name], describe_value(name, then[name]), describe_value(name, now[name]))
            for name in LABELS
            if then[name] != now[name]
        ]
        if changes:
            entries.append(HistoryEntry(newer.history_date, newer.history_user, False, changes))
    return entries


def _snapshot(record: Any, selections: dict[tuple[str, int], list[str]]) -> dict[str, Any]:
    return {
        "enable_for_new_pools": record.enable_for_new_pools,
        "include_overflow_number": record.include_overflow_number,
        "scope": record.scope,
        "campaigns": sorted(selections[("campaigns", record.history_id)]),
        "destination_numbers": sorted(selections[("destination_numbers", record.history_id)]),
        "policy": record.policy,
    }


def describe_value(name: str, value: Any) -> str:
    """A setting's value in the words of the page."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if name == "scope":
        return Scope(value).label if value in Scope.values else str(value)
    if name == "policy":
        return str(ScalingPolicy(value).label).split(" (")[0] if value in ScalingPolicy.values else str(value)
    if isinstance(value, list):
        return ", ".join(value) if value else "none"
    return str(value)
