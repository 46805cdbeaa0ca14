"""The one writer of the audit trail (`ScalingEvent`): every number added or removed, every skip and
failure, with the reason and the figures behind it. Append-only: nothing here edits or deletes.

Every writer passes `now` (a pass decides at one moment, the demo replays the past, a batch shares
one instant) and the reason is cut to the column's length here, once. Three doors, one table:
 - `scaling_event_record`: one event, now;
 - `scaling_events_record`: many at once (a prune's batch of skipped pools);
 - `scaling_events_insert_sql`: the INSERT of the PostgreSQL batch statements that write events in
   the same statement as the rows they explain (`supply.outbox`), built from the same column list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from accounts.models import User
from scaling.models import ScalingEvent

REASON_LENGTH: int = ScalingEvent._meta.get_field("reason").max_length or 300


def reason_cut(reason: str) -> str:
    """The reason as the trail keeps it (the column's length at most)."""
    return reason[:REASON_LENGTH]


@dataclass(frozen=True)
class AuditEntry:
    """One event to record, before it is written."""

    account_id: int
    pool_id: int
    kind: str
    trigger: str
    reason: str
    now: datetime
    number_id: int | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    actor: User | None = None

    def row(self) -> ScalingEvent:
        return ScalingEvent(
            account_id=self.account_id,
            pool_id=self.pool_id,
            number_id=self.number_id,
            kind=self.kind,
            trigger=self.trigger,
            reason=reason_cut(self.reason),
            figures=self.figures,
            actor=self.actor,
            created_at=self.now,
        )


def scaling_event_record(
    *,
    account_id: int,
    pool_id: int,
    kind: str,
    trigger: str,
    reason: str,
    now: datetime,
    number_id: int | None = None,
    figures: dict[str, Any] | None = None,
    actor: User | None = None,
) -> ScalingEvent:
    """Record one event (joins the caller's transaction, if any)."""
    event = AuditEntry(
        account_id=account_id,
        pool_id=pool_id,
        kind=kind,
        trigger=trigger,
        reason=reason,
        now=now,
        number_id=number_id,
        figures=dict(figures or {}),
        actor=actor,
    ).row()
    event.save(force_insert=True)
    return event


def scaling_events_record(entries: Iterable[AuditEntry]) -> list[ScalingEvent]:
    """Record many events in one statement per thousand."""
    return ScalingEvent.objects.bulk_create([entry.row() for entry in entries], batch_size=1000)


_FIELDS = ("account", "pool", "number", "kind", "trigger", "reason", "figures", "actor", "created_at")
_COLUMN_OF = {field.name: field.column for field in ScalingEvent._meta.concrete_fields}
_COLUMNS = tuple(str(_COLUMN_OF[name]) for name in _FIELDS)


def scaling_events_insert_sql(select: str) -> str:
    """`INSERT INTO <the events table> (<its columns>) <select>`: for a statement that writes events
    beside the rows they explain. `select` yields the columns in the order of `_COLUMNS` (account,
    pool, number, kind, trigger, reason, figures, actor, created_at), typed; the reason is cut here."""
    values = ", ".join(
        f"left(e.{name}, {REASON_LENGTH})" if name == "reason" else f"e.{name}" for name in _FIELDS
    )
    return (
        f"INSERT INTO {ScalingEvent._meta.db_table} ({', '.join(_COLUMNS)}) "
        f"SELECT {values} FROM ({select}) AS e ({', '.join(_FIELDS)})"
    )
