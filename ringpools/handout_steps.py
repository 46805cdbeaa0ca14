"""The hand-out's steps (see ringpools.handout): one PostgreSQL statement, or the same decisions
through the ORM on any other database (the SQLite demo). Both take an Ask and return a Step."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Greatest

from ringpools.choices import NumberRole, NumberState
from ringpools.models import Lease, PromoNumber
from ringpools.order import handout_rank
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


# The statements' source: commented, with readable parameter names (ringpools/handout.sql).
SOURCE = Path(__file__).with_name("handout.sql")
# The executed text names each parameter by one letter: psycopg caches the conversion of statements
# shorter than PREPARE_LIMIT bytes only, and the hand-out's statement is close to it.
PARAMETERS = {
    "pool": "p",
    "visitor": "v",
    "now": "t",
    "expires": "e",
    "rested_before": "r",
    "fresh_until": "f",
    "may_claim": "m",
    "page_url": "u",
    "params": "j",
}
PREPARE_LIMIT = 4096


class HandoutSqlError(ImproperlyConfigured):
    """ringpools/handout.sql cannot give the hand-out's statements; the message says where and why."""


def _literal(value: str) -> str:
    # Choice values go into the text (not parameters) so the planner can match the partial indexes.
    if not re.fullmatch(r"[a-z_]+", value):
        raise HandoutSqlError(f"not a plain choice value: {value!r}")
    return f"'{value}'"


def _placeholders() -> dict[str, str]:
    values = {
        "lease_table": Lease._meta.db_table,
        "number_table": PromoNumber._meta.db_table,
        "state_active": _literal(NumberState.ACTIVE),
        "role_rotating": _literal(NumberRole.ROTATING),
        "backlog_flagged": str(BACKLOG_FLAGGED),
        "one_lease_per_visitor": ONE_LEASE_PER_VISITOR,
    }
    values.update({f"outcome_{outcome.name.lower()}": _literal(outcome.value) for outcome in Outcome})
    return values


_BLOCK = re.compile(r"^-- (statement|fragment): ([a-z_]+)[ \t]*$", re.M)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PARAMETER = re.compile(r"%\((\w*)\)s")


def statements_from(source: str, *, where: str = "handout.sql") -> dict[str, str]:
    """The executed text of each `-- statement: NAME` block of `source`: fragments and placeholders
    filled in, comments removed, parameters renamed by PARAMETERS, on one line, shorter than
    PREPARE_LIMIT bytes. Raises HandoutSqlError, naming the block, for anything else."""
    marks = list(_BLOCK.finditer(source))
    blocks: dict[tuple[str, str], str] = {}
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        key = (mark[1], mark[2])
        if key in blocks:
            raise HandoutSqlError(f"{where}: {mark[1]} {mark[2]!r} is defined twice")
        body = source[mark.end() : following.start() if following else len(source)]
        blocks[key] = re.sub(r"--[^\n]*", "", body).strip()
    values = _placeholders()

    def expand(kind: str, name: str, seen: tuple[str, ...]) -> str:
        def fill(match: re.Match[str]) -> str:
            token = match[1]
            if token.startswith("fragment:"):
                fragment = token.removeprefix("fragment:")
                if ("fragment", fragment) not in blocks:
                    raise HandoutSqlError(f"{where}: {kind} {name!r} uses an unknown fragment {fragment!r}")
                if fragment in seen:
                    raise HandoutSqlError(f"{where}: fragment {fragment!r} includes itself")
                return expand("fragment", fragment, (*seen, fragment))
            if token not in values:
                known = ", ".join(sorted(values))
                raise HandoutSqlError(
                    f"{where}: {kind} {name!r} has an unknown placeholder {{{token}}} (known: {known})"
                )
            return values[token]

        return _PLACEHOLDER.sub(fill, blocks[(kind, name)])

    def rename(name: str) -> Callable[[re.Match[str]], str]:
        def short(match: re.Match[str]) -> str:
            if match[1] not in PARAMETERS:
                known = ", ".join(PARAMETERS)
                raise HandoutSqlError(
                    f"{where}: statement {name!r} has an unknown parameter %({match[1]})s (known: {known})"
                )
            return f"%({PARAMETERS[match[1]]})s"

        return short

    executed = {}
    for kind, name in blocks:
        if kind != "statement":
            continue
        text = re.sub(r"\s+", " ", _PARAMETER.sub(rename(name), expand(kind, name, ()))).strip()
        size = len(text.encode())
        if size >= PREPARE_LIMIT:
            raise HandoutSqlError(
                f"{where}: statement {name!r} is {size} bytes once derived; psycopg prepares statements "
                f"shorter than {PREPARE_LIMIT} bytes only (shorten it, or give a parameter a shorter name)"
            )
        executed[name] = text
    return executed


def _load() -> tuple[str, str, str]:
    executed = statements_from(SOURCE.read_text(encoding="utf-8"), where=str(SOURCE))
    missing = {"hold", "claim", "renew"} - executed.keys()
    if missing:
        raise HandoutSqlError(f"{SOURCE}: no statement {', '.join(sorted(missing))}")
    return executed["hold"], executed["claim"], executed["renew"]


# Keep, renew or end the visitor's live lease, or claim (HOLD); a new visitor's claim alone (CLAIM); a
# renewal alone (RENEW). Each answers one row: (number, lease id, kept lease's expiry, kept number's id,
# outcome). What each does, and why, is told beside its text in handout.sql.
HOLD_SQL, CLAIM_SQL, RENEW_SQL = _load()


class _PostgresSteps:
    @staticmethod
    def hold(ask: Ask) -> Step:
        from psycopg.types.json import Jsonb

        args = {
            PARAMETERS["pool"]: ask.pool.id,
            PARAMETERS["visitor"]: ask.visitor_id,
            PARAMETERS["now"]: ask.now,
            PARAMETERS["expires"]: ask.expires,
            PARAMETERS["rested_before"]: ask.rested_before,
            PARAMETERS["fresh_until"]: ask.fresh_until,
            PARAMETERS["may_claim"]: ask.may_claim,
            PARAMETERS["page_url"]: ask.page_url,
            PARAMETERS["params"]: Jsonb(ask.params),
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
        # The visitor's live leases in this pool (one, but for a race SQLite cannot refuse), newest
        # first, their number rows locked too (the join is an inner one): one query for both checks.
        leases = list(
            Lease.objects.filter(pool_id=ask.pool.id, visitor_id=ask.visitor_id, expires_at__gt=ask.now)
            .order_by("-expires_at")
            .select_for_update()
            .values("id", "expires_at", "number_id", "number__number", "number__state", "number__role")
            .annotate(number_pool_id=F("number__pool_id"), number_busy_until=F("number__busy_until"))
        )

        def usable(lease: dict[str, Any]) -> bool:
            return bool(
                lease["number__state"] == NumberState.ACTIVE
                and lease["number__role"] == NumberRole.ROTATING
                and lease["number_pool_id"] == ask.pool.id
                and lease["number_busy_until"] == lease["expires_at"]
            )

        fresh = next(
            (lease for lease in leases if lease["expires_at"] >= ask.fresh_until and usable(lease)), None
        )
        if fresh is not None:
            return Step(
                Outcome.KEPT, fresh["number__number"], fresh["id"], fresh["expires_at"], fresh["number_id"]
            )
        if leases:
            lease = leases[0]
            if not usable(lease):
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
        fields = ("id", "number", "acquired_at", "busy_until")
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
        candidates = [*backlog, *([first_rested] if first_rested else [])]
        if not candidates:  # none rested: the one released longest ago
            resting_first = (
                _rotating(ask)
                .filter(rested=False, busy_until__lte=ask.now)
                .order_by("busy_until", "id")
                .select_for_update(skip_locked=skip_locked)
                .values(*fields)
                .first()
            )
            candidates = [resting_first] if resting_first else []
        chosen = min(
            candidates,
            key=lambda n: handout_rank(
                number_id=n["id"],
                acquired_at=n["acquired_at"],
                busy_until=n["busy_until"],
                rested_before=ask.rested_before,
            ),
            default=None,
        )
        flagged = [n["id"] for n in backlog if n is not chosen]
        if flagged:
            PromoNumber.objects.filter(id__in=flagged).update(rested=True)
        return chosen


def _rotating(ask: Ask) -> QuerySet[PromoNumber]:
    return PromoNumber.objects.filter(pool_id=ask.pool.id, state=NumberState.ACTIVE, role=NumberRole.ROTATING)
