"""The hand-out order (SPEC §3.3) as one comparable key: the free number with the least rank is the
one handed out.

A free number that has rested at least the cool-down ranks by how long it has served the pool
(oldest `acquired_at` first), ahead of every number still resting, which rank by how long ago they
were released (oldest `busy_until` first); the id settles ties. Keeping use on the longest-serving
numbers leaves a grown pool's surplus idle, where the month-end prune (and the adaptive policy's
renewal release) can find it.

The ORM steps choose with it (ringpools.handout_steps); PostgreSQL's statement spells the same order
in SQL, and the twin tests hold the two to the same answers. The policy lab (scaling.lab) keeps its
free numbers in heaps ordered by it. Values may be datetimes or plain seconds, as long as one call's
values are of one kind.
"""

from __future__ import annotations

from typing import Any, TypeVar

Moment = TypeVar("Moment", bound=Any)

RESTED = 0
RESTING = 1


def handout_rank(
    *, number_id: int, acquired_at: Moment, busy_until: Moment | None, rested_before: Moment
) -> tuple[int, Moment, int]:
    """The rank of a free number (`busy_until` at or before now; None: never held)."""
    if busy_until is None or busy_until <= rested_before:
        return (RESTED, acquired_at, number_id)
    return (RESTING, busy_until, number_id)
