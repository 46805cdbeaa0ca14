"""The hand-out's steps (see ringpools.handout): one PostgreSQL statement, or the same decisions
through the ORM on any other database (the SQLite demo). Both take an Ask and return a Step."""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Greatest

from ringpools.choices import NumberRole, NumberState
from ringpools.models import Lease, PromoNumber
from ringpools.selectors import HandoutPool

# Numbers found rested and flagged by one claim at most; more wait for the next claims.
BACKLOG_FLAGGED = 32
# A second live lease of one visitor (migrations 0005, 0006): the only conflict a claim expects.
ONE_LEASE_PER_VISITOR = "lease_one_per_visitor"


class Outcome(StrEnum):
    KEPT = "kept"  # the live lease was extended a moment ago: same number, nothing written
    RENEWED = "renewed"
    CLAIMED = "claimed"
    ENDED = "ended"  # the live lease's number left service: the lease ended; ask again
    CONFLICT = "conflict"  # another request of this visitor leased a number first; ask again
    BUSY = "busy"  # free numbers exist but other claims hold their locks this instant; ask again
    REFUSED = "refused"  # a new number was needed but the caller may not claim one
    UNHELD = "unheld"  # (a renewal's statement) no live lease, and free numbers exist: ask with a claim
    NONE = "none"  # no free number: overflow


@dataclass(frozen=True)
class Ask:
    """One visitor's request, as both step implementations take it."""

    pool: HandoutPool
    visitor_id: str
    page_url: str
    params: dict[str, Any]
    now: datetime
    expires: datetime
    rested_before: datetime
    fresh_until: datetime  # a live lease ending after this was extended a moment ago
    may_claim: bool
    # The caller says the visitor id was made just now (the tag's first request with a new id): try a
    # claim first. A hint only: a visitor who holds a lease gets CONFLICT and is asked the whole way.
    new_visitor: bool = False
    # The caller says the visitor holds a number (the tag renewing): renew without preparing a claim.
    # A hint only: a visitor who holds none gets UNHELD (or the overflow, when no number is free).
    renewal: bool = False


@dataclass(frozen=True)
class Step:
    outcome: Outcome
    number: str | None = None
    lease_id: int | None = None
    expires_at: datetime | None = None  # KEPT: the lease's expiry, left as it is
    number_id: int | None = None  # KEPT: its last_presented_at goes with the figures


# --- PostgreSQL: one statement ---------------------------------------------------------------------


def _literal(value: str) -> str:
    # Choice values go into the text (not parameters) so the planner can match the partial indexes.
    if not re.fullmatch(r"[a-z_]+", value):
        raise ValueError(f"not a plain choice value: {value!r}")
    return f"'{value}'"


_L = Lease._meta.db_table
_N = PromoNumber._meta.db_table
_ROTATING = (
    f"n.pool_id = %(p)s AND n.state = {_literal(NumberState.ACTIVE)} "
    f"AND n.role = {_literal(NumberRole.ROTATING)}"
)
# A renewal keeps the number only while it is still this lease's, active and rotating in this pool.
_USABLE = (
    f"n.state = {_literal(NumberState.ACTIVE)} AND n.role = {_literal(NumberRole.ROTATING)} "
    "AND n.pool_id = l.pool_id AND n.busy_until = l.expires_at"
)

# Parameters, one letter each to keep the text under 4 KB (below): p pool, v visitor, t now,
# e the lease's new expiry, r rested before (now - cool-down), f fresh until (a lease ending after
# this was extended a moment ago), m may claim, u page URL, j params.

# The visitor's live lease: `fresh` if it was extended a moment ago (kept: no lock, no write); else
# `cur`, locked, renewed while its number is usable, ended if the number left service.
_LEASE_PARTS = f"""
fresh AS (
    SELECT l.id, l.expires_at, n.id AS number_id, n.number
    FROM {_L} l JOIN {_N} n ON n.id = l.number_id
    WHERE l.pool_id = %(p)s AND l.visitor_id = %(v)s AND l.expires_at >= %(f)s
      AND {_USABLE}
    ORDER BY l.expires_at DESC
    LIMIT 1
), cur AS (
    SELECT l.id, n.id AS number_id, coalesce(({_USABLE}), false) AS usable
    FROM {_L} l JOIN {_N} n ON n.id = l.number_id
    WHERE l.pool_id = %(p)s AND l.visitor_id = %(v)s AND l.expires_at > %(t)s
      AND NOT EXISTS (SELECT 1 FROM fresh)
    ORDER BY l.expires_at DESC
    LIMIT 1
    FOR UPDATE OF l, n
), renewed AS (
    UPDATE {_N} n SET busy_until = %(e)s, last_presented_at = %(t)s
    FROM cur WHERE n.id = cur.number_id AND cur.usable
    RETURNING n.number, cur.id AS lease_id
), renewed_lease AS (
    UPDATE {_L} l SET expires_at = %(e)s, released_at = NULL
    FROM renewed WHERE l.id = renewed.lease_id
), ended AS (
    UPDATE {_L} l SET expires_at = GREATEST(%(t)s, l.started_at)
    FROM cur WHERE l.id = cur.id AND NOT cur.usable
    RETURNING l.id
)"""

# A claim, when `wanted` has a row: a number in the order of SPEC §3.3, leased (DO NOTHING on a conflict
# with the visitor's other request, which may have leased one first: the one arbiter, so PostgreSQL
# checks no other constraint twice; a number held twice would be an error, never a quiet retry) and
# marked busy; the rested numbers found on the way are flagged.
_CLAIM_PARTS = f"""
backlog AS (
    SELECT n.id, n.acquired_at FROM {_N} n
    WHERE {_ROTATING} AND NOT n.rested AND n.busy_until <= %(r)s
      AND EXISTS (SELECT 1 FROM wanted)
    ORDER BY n.busy_until, n.id
    LIMIT {BACKLOG_FLAGGED}
    FOR UPDATE SKIP LOCKED
), first_rested AS (
    SELECT n.id, n.acquired_at FROM {_N} n
    WHERE {_ROTATING} AND n.rested AND n.busy_until <= %(r)s
      AND EXISTS (SELECT 1 FROM wanted)
    ORDER BY n.acquired_at, n.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), released_longest_ago AS (
    SELECT n.id FROM {_N} n
    WHERE {_ROTATING} AND NOT n.rested AND n.busy_until <= %(t)s
      AND EXISTS (SELECT 1 FROM wanted)
      AND NOT EXISTS (SELECT 1 FROM backlog) AND NOT EXISTS (SELECT 1 FROM first_rested)
    ORDER BY n.busy_until, n.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), candidate AS (
    SELECT id FROM (
        SELECT id, acquired_at, 0 AS tier FROM first_rested
        UNION ALL SELECT id, acquired_at, 0 FROM backlog
        UNION ALL SELECT id, NULL, 1 FROM released_longest_ago
    ) c
    ORDER BY tier, acquired_at, id
    LIMIT 1
), new_lease AS (
    INSERT INTO {_L} (pool_id, number_id, visitor_id, page_url, params, started_at, expires_at)
    SELECT %(p)s, id, %(v)s, %(u)s, %(j)s, %(t)s, %(e)s FROM candidate
    ON CONFLICT ON CONSTRAINT {ONE_LEASE_PER_VISITOR} DO NOTHING
    RETURNING id, number_id
), claimed AS (
    UPDATE {_N} n SET busy_until = %(e)s, last_presented_at = %(t)s, rested = false
    FROM new_lease WHERE n.id = new_lease.number_id
    RETURNING n.number, new_lease.id AS lease_id
), flagged AS (
    UPDATE {_N} n SET rested = true
    FROM backlog WHERE n.id = backlog.id AND n.id NOT IN (SELECT id FROM candidate)
)"""

# Any free number of the pool, locked by a claim this instant or not (a plain read does not skip locks).
_FREE_EXISTS = f"""(SELECT 1 FROM {_N} n WHERE {_ROTATING} AND n.rested AND n.busy_until <= %(t)s
              ORDER BY n.acquired_at, n.id LIMIT 1) IS NOT NULL
          OR (SELECT 1 FROM {_N} n WHERE {_ROTATING} AND NOT n.rested AND n.busy_until <= %(t)s
              ORDER BY n.busy_until, n.id LIMIT 1) IS NOT NULL"""

# No claim made: a candidate means the visitor's other request leased first (ask again); free numbers
# that SKIP LOCKED passed over mean other claims hold them this instant (ask again); else overflow.
_UNCLAIMED = f"""
        WHEN EXISTS (SELECT 1 FROM candidate) THEN '{Outcome.CONFLICT}'
        WHEN {_FREE_EXISTS}
            THEN '{Outcome.BUSY}'
        ELSE '{Outcome.NONE}'"""

# Keep, renew or end the visitor's live lease; or (no live lease) claim. One row: (number, lease id,
# kept lease's expiry, kept number's id, outcome).
HOLD_SQL = f"""
WITH {_LEASE_PARTS}, wanted AS (
    SELECT 1 WHERE %(m)s AND NOT EXISTS (SELECT 1 FROM cur) AND NOT EXISTS (SELECT 1 FROM fresh)
), {_CLAIM_PARTS}
SELECT
    coalesce(fresh.number, renewed.number, claimed.number),
    coalesce(fresh.id, renewed.lease_id, claimed.lease_id),
    fresh.expires_at,
    fresh.number_id,
    CASE
        WHEN fresh.id IS NOT NULL THEN '{Outcome.KEPT}'
        WHEN renewed.lease_id IS NOT NULL THEN '{Outcome.RENEWED}'
        WHEN claimed.lease_id IS NOT NULL THEN '{Outcome.CLAIMED}'
        WHEN EXISTS (SELECT 1 FROM ended) THEN '{Outcome.ENDED}'
        WHEN NOT %(m)s THEN '{Outcome.REFUSED}'{_UNCLAIMED}
    END
FROM (SELECT 1) AS one LEFT JOIN fresh ON true LEFT JOIN renewed ON true LEFT JOIN claimed ON true
"""
# A new visitor's claim (Ask.new_visitor, and the caller may claim): the claim alone, without the
# lease parts' locking lookup and three writes that find nothing (about a tenth of the statement's
# database time). A visitor who holds a live lease after all (a wrong hint) locks and writes nothing:
# one unlocked probe finds the lease, the answer is CONFLICT, and the hand-out asks with HOLD_SQL.
CLAIM_SQL = f"""
WITH held AS (
    SELECT 1 FROM {_L} l WHERE l.pool_id = %(p)s AND l.visitor_id = %(v)s AND l.expires_at > %(t)s
    LIMIT 1
), wanted AS (
    SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM held)
), {_CLAIM_PARTS}
SELECT
    claimed.number,
    claimed.lease_id,
    NULL::timestamptz,
    NULL::bigint,
    CASE
        WHEN claimed.lease_id IS NOT NULL THEN '{Outcome.CLAIMED}'
        WHEN EXISTS (SELECT 1 FROM held) THEN '{Outcome.CONFLICT}'{_UNCLAIMED}
    END
FROM (SELECT 1) AS one LEFT JOIN claimed ON true
"""
# A renewal (Ask.renewal): the lease parts alone, without the claim's nodes to start (about a third
# of a kept renewal's database time). No live lease: the overflow if no number is free at all (one
# statement for an overflowing visitor's keep-alive in a rush), else UNHELD and the hand-out asks with
# HOLD_SQL, which claims.
RENEW_SQL = f"""
WITH {_LEASE_PARTS}
SELECT
    coalesce(fresh.number, renewed.number),
    coalesce(fresh.id, renewed.lease_id),
    fresh.expires_at,
    fresh.number_id,
    CASE
        WHEN fresh.id IS NOT NULL THEN '{Outcome.KEPT}'
        WHEN renewed.lease_id IS NOT NULL THEN '{Outcome.RENEWED}'
        WHEN EXISTS (SELECT 1 FROM ended) THEN '{Outcome.ENDED}'
        WHEN NOT %(m)s THEN '{Outcome.REFUSED}'
        WHEN {_FREE_EXISTS} THEN '{Outcome.UNHELD}'
        ELSE '{Outcome.NONE}'
    END
FROM (SELECT 1) AS one LEFT JOIN fresh ON true LEFT JOIN renewed ON true
"""
# The BUSY probes look for free numbers that SKIP LOCKED passed over. Every probe is ordered like its
# index, so that index is what the plan reads (an exhausted pool's probe is one index page, not a scan
# of the pool), in a generic plan as in a custom one.
# One line, no comments: psycopg caches the conversion of statements shorter than 4 KB only.
HOLD_SQL = re.sub(r"\s+", " ", HOLD_SQL).strip()
CLAIM_SQL = re.sub(r"\s+", " ", CLAIM_SQL).strip()
RENEW_SQL = re.sub(r"\s+", " ", RENEW_SQL).strip()
assert max(map(len, (HOLD_SQL, CLAIM_SQL, RENEW_SQL))) < 4096, (len(HOLD_SQL), len(CLAIM_SQL), len(RENEW_SQL))


class _PostgresSteps:
    @staticmethod
    def hold(ask: Ask) -> Step:
        from psycopg.types.json import Jsonb

        args = {
            "p": ask.pool.id,
            "v": ask.visitor_id,
            "t": ask.now,
            "e": ask.expires,
            "r": ask.rested_before,
            "f": ask.fresh_until,
            "m": ask.may_claim,
            "u": ask.page_url,
            "j": Jsonb(ask.params),
        }
        # Prepared once per connection (planning this statement costs more than running it). PostgreSQL
        # re-plans a prepared statement whenever the statistics of its tables change, so a plan made
        # while the tables were small does not outlive their growth; every probe is ordered like its
        # index, so generic and custom plans read the same indexes. Django's cursors bind on the
        # client and cannot prepare: this one binds on the server. Django turns psycopg's preparing
        # off (prepare_threshold None); a threshold no statement reaches keeps its automatic
        # preparing off and lets this explicit one through.
        database = connections[DEFAULT_DB_ALIAS]  # once: each `connection.x` is a thread-local lookup
        with database.wrap_database_errors:
            database.ensure_connection()
            cursor = _hold_cursor(database.connection)
            cursor.execute(_statement(ask), args, prepare=True)
            number, lease_id, expires_at, number_id, outcome = cursor.fetchone()
        return Step(Outcome(outcome), number, lease_id, expires_at, number_id)


def _statement(ask: Ask) -> str:
    """The statement for what the caller says of the visitor (hints, see Ask): a claim for a new
    visitor, a renewal for a keep-alive, the whole hand-out otherwise."""
    if ask.new_visitor and ask.may_claim:
        return CLAIM_SQL
    if ask.renewal:
        return RENEW_SQL
    return HOLD_SQL


_hold_cursors: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _hold_cursor(raw: Any) -> Any:
    """The hand-out's server-binding cursor on this psycopg connection, made once per connection."""
    cursor = _hold_cursors.get(raw)
    if cursor is None or cursor.closed:
        import psycopg

        if raw.prepare_threshold is None:
            raw.prepare_threshold = 2**31
        cursor = _hold_cursors[raw] = psycopg.Cursor(raw)
    return cursor


# --- Any database: the same steps through the ORM -------------------------------------------------


class _OrmSteps:
    @staticmethod
    @transaction.atomic
    def hold(ask: Ask) -> Step:
        fresh = (
            Lease.objects.filter(
                pool_id=ask.pool.id,
                visitor_id=ask.visitor_id,
                expires_at__gte=ask.fresh_until,
                number__state=NumberState.ACTIVE,
                number__role=NumberRole.ROTATING,
                number__pool_id=ask.pool.id,
                number__busy_until=F("expires_at"),
            )
            .order_by("-expires_at")
            .values("id", "expires_at", "number_id", "number__number")
            .first()
        )
        if fresh is not None:
            return Step(
                Outcome.KEPT, fresh["number__number"], fresh["id"], fresh["expires_at"], fresh["number_id"]
            )
        lease = (
            Lease.objects.filter(pool_id=ask.pool.id, visitor_id=ask.visitor_id, expires_at__gt=ask.now)
            .order_by("-expires_at")
            .select_for_update()  # locks the number row too: the join is an inner one
            .values("id", "expires_at", "number_id", "number__number", "number__state", "number__role")
            .annotate(number_pool_id=F("number__pool_id"), number_busy_until=F("number__busy_until"))
            .first()
        )
        if lease is not None:
            usable = (
                lease["number__state"] == NumberState.ACTIVE
                and lease["number__role"] == NumberRole.ROTATING
                and lease["number_pool_id"] == ask.pool.id
                and lease["number_busy_until"] == lease["expires_at"]
            )
            if not usable:
                Lease.objects.filter(id=lease["id"]).update(
                    expires_at=Greatest(Value(ask.now), F("started_at"))
                )
                return Step(Outcome.ENDED)
            PromoNumber.objects.filter(id=lease["number_id"]).update(
                busy_until=ask.expires, last_presented_at=ask.now
            )
            Lease.objects.filter(id=lease["id"]).update(expires_at=ask.expires, released_at=None)
            return Step(Outcome.RENEWED, lease["number__number"], lease["id"])
        if not ask.may_claim:
            return Step(Outcome.REFUSED)
        number = _OrmSteps.candidate(ask)
        if number is None:
            free = _rotating(ask).filter(busy_until__lte=ask.now).exists()
            return Step(Outcome.BUSY if free else Outcome.NONE)
        # ON CONFLICT DO NOTHING, as the statement does: a plain INSERT racing another request of this
        # visitor would wait on it while it waits on us (deadlock) under lease_one_per_visitor.
        Lease.objects.bulk_create(
            [
                Lease(
                    pool_id=ask.pool.id,
                    number_id=number["id"],
                    visitor_id=ask.visitor_id,
                    page_url=ask.page_url,
                    params=ask.params,
                    started_at=ask.now,
                    expires_at=ask.expires,
                )
            ],
            ignore_conflicts=True,
        )
        lease_id = (
            Lease.objects.filter(number_id=number["id"], visitor_id=ask.visitor_id, started_at=ask.now)
            .values_list("id", flat=True)
            .first()
        )
        if lease_id is None:  # this visitor's other request leased a number first
            return Step(Outcome.CONFLICT)
        PromoNumber.objects.filter(id=number["id"]).update(
            busy_until=ask.expires, last_presented_at=ask.now, rested=False
        )
        return Step(Outcome.CLAIMED, number["number"], lease_id)

    @staticmethod
    def candidate(ask: Ask) -> dict[str, Any] | None:
        """The number to claim, locked; flags the numbers found rested on the way."""
        skip_locked = connection.features.has_select_for_update_skip_locked
        fields = ("id", "number", "acquired_at")
        backlog = list(
            _rotating(ask)
            .filter(rested=False, busy_until__lte=ask.rested_before)
            .order_by("busy_until", "id")
            .select_for_update(skip_locked=skip_locked)
            .values(*fields)[:BACKLOG_FLAGGED]
        )
        first_rested = (
            _rotating(ask)
            .filter(rested=True, busy_until__lte=ask.rested_before)
            .order_by("acquired_at", "id")
            .select_for_update(skip_locked=skip_locked)
            .values(*fields)
            .first()
        )
        rested = [*backlog, *([first_rested] if first_rested else [])]
        if rested:
            chosen = min(rested, key=lambda n: (n["acquired_at"], n["id"]))
        else:
            chosen = (
                _rotating(ask)
                .filter(rested=False, busy_until__lte=ask.now)
                .order_by("busy_until", "id")
                .select_for_update(skip_locked=skip_locked)
                .values(*fields)
                .first()
            )
        flagged = [n["id"] for n in backlog if n is not chosen]
        if flagged:
            PromoNumber.objects.filter(id__in=flagged).update(rested=True)
        return chosen


def _rotating(ask: Ask) -> QuerySet[PromoNumber]:
    return PromoNumber.objects.filter(pool_id=ask.pool.id, state=NumberState.ACTIVE, role=NumberRole.ROTATING)
