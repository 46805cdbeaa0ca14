"""The carrier outbox: purchases and releases that survive time-outs, crashes and retries.

Each carrier call is bracketed by database writes and never made inside a transaction:
 1. the intent is committed as a pending `CarrierOrder` (held by its writer through `claimed_until`);
 2. the carrier is called;
 3. the answer is recorded: the number joins its pool (or leaves it), the order is done.
An order left pending (a time-out that may have hidden a success, a crash between 1 and 3, a
database failure at 3) is taken up by `carrier_orders_reconcile` once its claim has lapsed: a purchase
is looked up at the carrier under its request id and finished — or recorded as never made — and a
release is sent again. A reconciliation never buys: a purchase the carrier has no record of is
closed, and growth decides afresh on its next pass.

Processes take an order by compare-and-swap on `claimed_until` ("another process got there first"
when no row changes), so two passes never call the carrier twice for one order, and no database lock
is held while the carrier answers.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User
from config import metrics
from config.history import history_by, history_dated
from ringpools.choices import NumberRole, NumberState
from ringpools.models import PromoNumber, RingPool
from scaling.audit import (
    AuditEntry,
    reason_cut,
    scaling_event_record,
    scaling_events_insert_sql,
    scaling_events_record,
)
from scaling.choices import EventKind, OrderKind, OrderState, Trigger
from scaling.models import CarrierOrder
from scaling.supply.carrier import (
    Carrier,
    CarrierError,
    NumberUnavailableError,
    PurchasedNumber,
    TransientCarrierError,
    get_carrier,
)
from scaling.supply.choice import MATCH_WORDS, NumberChoice, SharedSearch, number_choose

log = logging.getLogger(__name__)

# How long a process may work on an order before another pass may take it over, by default
# (RINGPOOL_CARRIER_CLAIM_SECONDS). Longer than an attempt's carrier calls may take.
CLAIM_FOR = timedelta(minutes=2)
# An order handed to a worker through the queue is not handed out again for this long.
QUEUED_FOR = timedelta(minutes=10)
MAX_RETRY_DELAY = timedelta(hours=1)
# Why a purchase waits when no number at all was offered (the alert "no number at the carrier" reads it).
NO_NUMBER_TO_OFFER = "the carrier has no number to offer"


def claim_for() -> timedelta:
    return timedelta(seconds=settings.RINGPOOL_CARRIER_CLAIM_SECONDS)


class _Clock:
    """`now` moving on with the real time a batch takes: a claim taken two minutes into a batch
    lasts its two minutes from then, not from the batch's start (tests pass the start)."""

    def __init__(self, start: datetime) -> None:
        self.start, self.started = start, time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.started)


def retry_delay(attempts: int) -> timedelta:
    """Back-off after the `attempts`-th failed attempt: 1, 2, 4, … minutes, at most an hour."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), MAX_RETRY_DELAY)


def new_request_id(pool_id: int) -> str:
    return f"ringpool-{pool_id}-{uuid.uuid4().hex[:20]}"


# --- Purchases -------------------------------------------------------------------------------------

# A pending purchase records the intent only; the number is chosen when the order is carried out.
# `reason` may hold MATCH_SLOT, filled in with how the number matched ("same area code", ...).
MATCH_SLOT = "{match}"
# An attempt tries this many numbers sold to another buyer between search and purchase, then waits.
# (Eight workers buying in one area collide on about a third of their tries: ten in a row is rare.)
CHOICES_PER_ATTEMPT = 10


def purchase_orders_queue(
    *,
    pool: RingPool,
    figures: Sequence[dict[str, Any]],
    trigger: str,
    reason: str,
    role: str = NumberRole.ROTATING,
    actor: User | None = None,
    now: datetime | None = None,
) -> list[CarrierOrder]:
    """Record the intent to buy one number per item of `figures` for the pool: pending orders that
    nobody holds yet. Joins the caller's transaction, so growth commits its decision with its orders
    (one record: a decision without its orders, or orders without their decision, cannot exist).
    `purchase_order_run` carries each out, in a Celery task or inline."""
    now = now or timezone.now()
    return CarrierOrder.objects.bulk_create(
        CarrierOrder(
            kind=OrderKind.PURCHASE,
            account_id=pool.account_id,
            pool=pool,
            role=role,
            request_id=new_request_id(pool.pk),
            trigger=trigger,
            reason=reason_cut(reason),
            figures=step,
            actor=actor,
            created_at=now,
        )
        for step in figures
    )


def purchase_order_run(
    order: CarrierOrder,
    *,
    carrier: Carrier | None = None,
    now: datetime | None = None,
    search: SharedSearch | None = None,
) -> CarrierOrder:
    """Carry out a pending purchase: take it (compare-and-swap), find whether an earlier attempt
    already bought it, else choose a number and buy it under the order's request id, then record it.
    Call it outside any transaction. Returns the order: done, failed, or still pending (the carrier
    did not answer, or had nothing to sell: retried with back-off by reconciliation)."""
    now = now or timezone.now()
    if not _claim(order, now):
        return order
    carrier = carrier or get_carrier()
    return _purchase_attempt(order, carrier=carrier, now=now, search=search or SharedSearch(carrier))


def _purchase_attempt(
    order: CarrierOrder, *, carrier: Carrier, now: datetime, search: SharedSearch
) -> CarrierOrder:
    pool = RingPool.objects.get(pk=order.pool_id)
    clock = _Clock(now)
    try:
        if order.attempts > 1:
            # An earlier attempt may have bought it and died (or lost the answer): never buy twice.
            found = carrier.find_purchased(friendly_name=order.request_id)
            if found is not None:
                return _purchase_complete(order, found, now=now, reconciled=True)
        unwanted = _why_not_wanted(pool, order.role)
        if unwanted:
            return _fail(order, EventKind.FAILED, f"not bought: {unwanted}", now)
        taken: list[str] = []
        for _ in range(CHOICES_PER_ATTEMPT):
            choice = number_choose(pool=pool, carrier=carrier, exclude=taken, search=search)
            if choice is None:
                return _purchase_not_now(order, NO_NUMBER_TO_OFFER, now)
            if not _offer_record(order, choice, clock):
                return order
            try:
                bought = carrier.purchase(
                    choice.available, account_id=pool.account_id, friendly_name=order.request_id
                )
            except NumberUnavailableError:
                taken.append(choice.available.number)  # another buyer got it first: choose another
                search.discard(choice.available.number)
                continue
            return _purchase_complete(order, bought, now=now)
        return _purchase_not_now(
            order, f"the carrier sold {len(taken)} numbers offered to others meanwhile", now
        )
    except TransientCarrierError as error:
        log.warning("Purchase %s got no answer (%s); it will be tried again", order.request_id, error)
        return _purchase_not_now(order, f"the carrier did not answer: {error}", now, transient=True)
    except CarrierError as error:
        return _purchase_not_now(order, f"carrier refused the purchase: {error}", now)


def purchase_order_adopt(order: CarrierOrder, bought: PurchasedNumber, *, now: datetime) -> bool:
    """Finish a pending purchase with the number the carrier lists under its request id, unless a
    live process holds the order (it will record the number itself). True when the order is done."""
    if not _claim(order, now):
        return False
    return _purchase_complete(order, bought, now=now, reconciled=True).state == OrderState.DONE


def _offer_record(order: CarrierOrder, choice: NumberChoice, clock: _Clock) -> bool:
    """What this attempt is buying, on the order before the carrier is asked (the admin shows it).
    False when another process took the order over: then nothing is bought."""
    available = choice.available
    order.offer = {
        "number": available.number,
        "number_type": available.number_type,
        "area_code": available.area_code,
        "region": available.region,
        "monthly_cost": str(available.monthly_cost),
        "match": choice.match,
    }
    # Each number tried renews the claim (an attempt may try ten, each call up to the carrier's
    # time-out); when the claim was lost meanwhile, this attempt buys nothing.
    renewed = clock.now() + claim_for()
    if not CarrierOrder.objects.filter(_still_ours(order)).update(offer=order.offer, claimed_until=renewed):
        return False
    order.claimed_until = renewed
    return True


def _purchase_not_now(
    order: CarrierOrder, why: str, now: datetime, *, transient: bool = False
) -> CarrierOrder:
    """Nothing bought this time. Growth's orders (and any order after a time-out) stay pending and are
    tried again with back-off: a due growth is never dropped. Staff's and set-up's purchases fail at
    once, with the reason, as the person asking expects. A FAILED event is written when the reason
    changes, not at every retry."""
    if not transient and order.trigger != Trigger.GROWTH:
        return _fail(order, EventKind.FAILED, why, now)
    told = reason_cut(why) == order.last_error
    order = _postpone(order, CarrierError(why), now)
    if not told:
        retry_at = _iso(order.next_attempt_at)
        figures = {
            **order.figures,
            "request_id": order.request_id,
            "transient": transient,
            "retry_at": retry_at,
        }
        _event(order, EventKind.FAILED, why, figures, None, now)
    return order


def _purchase_complete(
    order: CarrierOrder, bought: PurchasedNumber, *, now: datetime, reconciled: bool = False
) -> CarrierOrder:
    """Put the bought number in its pool — or, if the pool no longer wants it, or the order was closed
    meanwhile (this process was frozen past its claim and another finished the order), release it."""
    try:
        with transaction.atomic():
            locked = CarrierOrder.objects.select_for_update().get(pk=order.pk)
            if locked.state != OrderState.PENDING and locked.carrier_ref == bought.carrier_ref:
                return locked  # another process recorded this very number
            # Completions into one pool queue here, so the size check below sees the others' numbers.
            pool = RingPool.objects.select_for_update().get(pk=locked.pool_id)
            if locked.state != OrderState.PENDING:
                # Bought under an order already closed: an orphan the moment it was bought.
                release = orphan_adopt_for_release(
                    pool=pool,
                    bought=bought,
                    trigger=locked.trigger,
                    why=f"bought under order {locked.request_id} after it was closed",
                    now=now,
                )
            else:
                release = _purchase_record(locked, bought, pool=pool, now=now, reconciled=reconciled)
    except DatabaseError:
        # Bought but not recorded: the order stays pending and reconciliation puts the number in place.
        log.exception("Recording purchase %s failed; reconciliation will finish it", order.request_id)
        return order
    if release is not None:
        _release_run(release, carrier=None, now=now)
    return locked


def _purchase_record(
    locked: CarrierOrder, bought: PurchasedNumber, *, pool: RingPool, now: datetime, reconciled: bool
) -> CarrierOrder | None:
    """The number joins its pool and the order is done; returns a release order when the pool no
    longer wants the number (the caller sends it after the commit)."""
    unwanted = _why_not_wanted(pool, locked.role)
    number = _number_from(bought, pool=pool, role=locked.role, unwanted=bool(unwanted), now=now)
    history_by(number, locked.actor)
    with history_dated(number, now):
        number.save()
    locked.number = number
    locked.carrier_ref = bought.carrier_ref
    _finish(locked, OrderState.DONE, now)
    figures = {
        **locked.figures,
        "request_id": locked.request_id,
        "carrier_ref": bought.carrier_ref,
        "area_code": bought.area_code,
        "region": bought.region,
        "match": locked.offer.get("match", ""),
    }
    if unwanted:
        release = _release_order_create(
            number=number,
            pool_id=pool.pk,
            trigger=locked.trigger,
            reason=f"bought but {unwanted}",
            now=now,
        )
        _event(
            locked,
            EventKind.RECONCILED,
            f"bought but {unwanted}: releasing it",
            figures,
            number.pk,
            now,
        )
    else:
        figures["reconciled"] = reconciled
        match = MATCH_WORDS.get(locked.offer.get("match", ""), "as found at the carrier")
        reason = locked.reason.replace(MATCH_SLOT, match)
        reason += " (found at the carrier on reconciliation)" if reconciled else ""
        _event(locked, EventKind.NUMBER_ADDED, reason, figures, number.pk, now)
        release = None
    return release


def _number_from(
    bought: PurchasedNumber, *, pool: RingPool, role: str, unwanted: bool, now: datetime
) -> PromoNumber:
    return PromoNumber(
        account_id=pool.account_id,
        pool=pool,
        role=role,
        number=bought.number,
        number_type=bought.number_type,
        area_code=bought.area_code,
        region=bought.region,
        state=NumberState.RELEASING if unwanted else NumberState.ACTIVE,
        acquired_at=now,
        carrier_ref=bought.carrier_ref,
        monthly_cost=bought.monthly_cost,
    )


def orphan_adopt_for_release(
    *, pool: RingPool, bought: PurchasedNumber, trigger: str, why: str, now: datetime
) -> CarrierOrder | None:
    """A number the carrier bills us for that is in no pool: record it (never in rotation), queue its
    release and say so in the pool's audit trail. Inside the caller's transaction. None when we already
    hold a record of that number (nothing to adopt)."""
    if PromoNumber.objects.filter(carrier_ref=bought.carrier_ref, state__in=NumberState.held()).exists():
        return None
    number = _number_from(bought, pool=pool, role=NumberRole.ROTATING, unwanted=True, now=now)
    number.save()
    release = _release_order_create(
        number=number, pool_id=pool.pk, trigger=trigger, reason=f"orphan: {why}", now=now
    )
    scaling_event_record(
        account_id=pool.account_id,
        pool_id=pool.pk,
        number_id=number.pk,
        kind=EventKind.RECONCILED,
        trigger=trigger,
        reason=f"found at the carrier in no pool ({why}): releasing it",
        figures={"carrier_ref": bought.carrier_ref, "friendly_name": bought.friendly_name},
        now=now,
    )
    return release


def _why_not_wanted(pool: RingPool, role: str) -> str:
    if not pool.is_active:
        return "the pool is inactive"
    held = pool.numbers.filter(state=NumberState.ACTIVE, role=role)
    if role == NumberRole.OVERFLOW:
        return "the pool already has an overflow number" if held.exists() else ""
    return "the pool is at its maximum size" if held.count() >= pool.max_size else ""


# --- Releases --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Removal:
    """One number to take out of a pool, with the reason and figures its audit event records."""

    number_id: int
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


Wanted = dict[int, tuple[int, Removal]]  # number id -> (its pool's id, the removal)


class StillUnused(NamedTuple):
    """A guard on a release: only numbers still unused — rotating, not pinned, free at `free_at`, not
    presented since `presented_before` nor called since `called_before` (never is fine). The
    month-end prune removes only the numbers it found unused, if nobody used them since it looked."""

    free_at: datetime
    presented_before: datetime
    called_before: datetime

    def q(self) -> Q:
        """The guard in the ORM (the SQL statement spells the same in `_STILL_UNUSED_SQL`)."""
        return Q(
            Q(last_presented_at__isnull=True) | Q(last_presented_at__lt=self.presented_before),
            Q(last_called_at__isnull=True) | Q(last_called_at__lt=self.called_before),
            role=NumberRole.ROTATING,
            pinned_at__isnull=True,
            busy_until__lte=self.free_at,
        )


class QueuedRelease(NamedTuple):
    """A release order as written (not read back: a month-end prune writes 100,000 of them, and a
    model object costs more to build than its row costs to write)."""

    order_id: int
    pool_id: int
    number_id: int
    request_id: str


def numbers_release_begin(
    *,
    pool: RingPool,
    removals: Sequence[Removal],
    trigger: str,
    actor: User | None = None,
    now: datetime | None = None,
) -> list[CarrierOrder]:
    """Take numbers of one pool out of rotation at once and queue their release to the carrier.

    Atomic (joins the caller's transaction, so a prune can write its monthly record with it): the
    numbers become `releasing` — no visitor can be handed them from this moment — each gets a pending
    release order and a NUMBER_REMOVED event. Numbers no longer active are skipped. The carrier is
    called afterwards by `carrier_orders_run` (or by reconciliation), outside any transaction.
    Returns the orders, read back.
    """
    queued = pools_numbers_release_begin(removals={pool: removals}, trigger=trigger, actor=actor, now=now)
    return carrier_orders_of([release.order_id for release in queued])


def pools_numbers_release_begin(
    *,
    removals: Mapping[RingPool, Sequence[Removal]],
    trigger: str,
    actor: User | None = None,
    now: datetime | None = None,
    only: StillUnused | None = None,
) -> list[QueuedRelease]:
    """`numbers_release_begin` for several pools at once, in a constant number of statements (the
    month-end prune removes numbers of thousands of pools), by number. With `only`, numbers used
    since (see StillUnused) are left as they are, in the same statement that takes the others."""
    now = now or timezone.now()
    pools = {pool.pk: pool for pool in removals}
    wanted: Wanted = {
        removal.number_id: (pool.pk, removal) for pool, items in removals.items() for removal in items
    }
    if not wanted:
        return []
    begin = release_begin_sql if connection.vendor == "postgresql" else release_begin_orm
    return begin(
        wanted,
        account_of={pk: pool.account_id for pk, pool in pools.items()},
        trigger=trigger,
        actor=actor,
        now=now,
        only=only,
    )


# The twins: one for PostgreSQL, one for any database. They write the same rows (tests/scaling/supply
# compares them over random stories on PostgreSQL, where both run).
def release_begin_orm(
    wanted: Wanted,
    *,
    account_of: dict[int, int],
    trigger: str,
    actor: User | None,
    now: datetime,
    only: StillUnused | None = None,
) -> list[QueuedRelease]:
    """The release's first half through the ORM, a few statements per call."""
    with transaction.atomic():
        leaving = PromoNumber.objects.filter(pk__in=wanted, state=NumberState.ACTIVE)
        numbers = [
            number
            for number in (leaving if only is None else leaving.filter(only.q()))
            .select_for_update(of=("self",))
            .only("pk", "pool_id", "role", "carrier_ref")  # no phone parsing: a prune removes thousands
            .order_by("pk")
            if number.pool_id == wanted[number.pk][0]
        ]
        PromoNumber.objects.filter(pk__in=[n.pk for n in numbers]).update(state=NumberState.RELEASING)
        orders = CarrierOrder.objects.bulk_create(
            [
                _release_order(
                    number=number,
                    pool_id=wanted[number.pk][0],
                    account_id=account_of[wanted[number.pk][0]],
                    trigger=trigger,
                    reason=wanted[number.pk][1].reason,
                    actor=actor,
                    now=now,
                )
                for number in numbers
            ]
        )
        scaling_events_record(
            AuditEntry(
                account_id=order.account_id,
                pool_id=order.pool_id,
                number_id=number.pk,
                kind=EventKind.NUMBER_REMOVED,
                trigger=trigger,
                reason=order.reason,
                figures={**wanted[number.pk][1].figures, "request_id": order.request_id},
                actor=actor,
                now=now,
            )
            for number, order in zip(numbers, orders, strict=True)
        )
    return [
        QueuedRelease(order.pk, order.pool_id, number.pk, order.request_id)
        for number, order in zip(numbers, orders, strict=True)
    ]


_N = PromoNumber._meta.db_table
_O = CarrierOrder._meta.db_table

# Each number's NUMBER_REMOVED event, written beside its release order (rows of `gone` and `orders`).
# (Each carries its request id from `gone`: joining the two CTEs instead made PostgreSQL compare every
# row with every other, a nested loop over CTE scans: 0.3 s for a batch of 1,350 removals.)
_RELEASE_EVENTS = scaling_events_insert_sql(
    "SELECT g.account_id, g.pool_id, g.id, %(removed)s::text, %(trigger)s::text, g.reason, "
    "g.figures || jsonb_build_object('request_id', g.request_id), %(actor)s::bigint, "
    "%(now)s::timestamptz FROM gone g"
)

# StillUnused.q() in SQL; without a guard (%(free_at)s NULL) every active number named may go.
_STILL_UNUSED_SQL = """%(free_at)s::timestamptz IS NULL OR (
        n.role = %(rotating)s AND n.pinned_at IS NULL AND n.busy_until <= %(free_at)s
        AND (n.last_presented_at IS NULL OR n.last_presented_at < %(presented_before)s)
        AND (n.last_called_at IS NULL OR n.last_called_at < %(called_before)s))"""

# `pools_numbers_release_begin` on PostgreSQL: the same rows as the ORM steps below it (numbers still
# active become releasing; one pending release order and one NUMBER_REMOVED event each), written by
# the server in one statement instead of one Python object per row.
_RELEASE_BEGIN_SQL = f"""
WITH wanted AS (
    -- One JSON document for the batch: json.dumps in C, where text arrays cost a regex per element.
    SELECT * FROM jsonb_to_recordset(%(wanted)s::jsonb)
        AS w(id bigint, pool_id bigint, reason text, figures jsonb)
), gone AS (
    UPDATE {_N} n SET state = %(releasing)s
    FROM wanted w
    WHERE n.id = w.id AND n.pool_id = w.pool_id AND n.state = %(active)s
      AND ({_STILL_UNUSED_SQL})
    -- The request id (the carrier's idempotency key) drawn here: one Python uuid4 per number cost
    -- the prune a second, mostly in handing the GIL around os.urandom.
    RETURNING n.id, n.pool_id, n.account_id, n.role, n.carrier_ref, w.reason, w.figures,
              'ringpool-' || n.pool_id || '-' || left(replace(gen_random_uuid()::text, '-', ''), 20)
              AS request_id
), orders AS (
    INSERT INTO {_O} (kind, state, account_id, pool_id, number_id, role, request_id, offer, carrier_ref,
                      trigger, reason, figures, actor_id, attempts, last_error, created_at)
    SELECT %(release)s, %(pending)s, g.account_id, g.pool_id, g.id, g.role, g.request_id, '{{}}'::jsonb,
           g.carrier_ref, %(trigger)s, g.reason, '{{}}'::jsonb, %(actor)s::bigint, 0, '', %(now)s
    FROM gone g
    RETURNING id, pool_id, number_id, request_id
), events AS (
    {_RELEASE_EVENTS}
    RETURNING 1
)
SELECT o.id, o.pool_id, o.number_id, o.request_id FROM orders o ORDER BY o.number_id
"""


def release_begin_sql(
    wanted: Wanted,
    *,
    account_of: dict[int, int],
    trigger: str,
    actor: User | None,
    now: datetime,
    only: StillUnused | None = None,
) -> list[QueuedRelease]:
    """The release's first half on PostgreSQL: one statement however many numbers."""
    ids = sorted(wanted)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _RELEASE_BEGIN_SQL,
            {
                "wanted": json.dumps(
                    [
                        {
                            "id": pk,
                            "pool_id": wanted[pk][0],
                            "reason": reason_cut(wanted[pk][1].reason),
                            "figures": wanted[pk][1].figures,
                        }
                        for pk in ids
                    ]
                ),
                "releasing": NumberState.RELEASING,
                "active": NumberState.ACTIVE,
                "release": OrderKind.RELEASE,
                "pending": OrderState.PENDING,
                "removed": EventKind.NUMBER_REMOVED,
                "trigger": trigger,
                "actor": actor.pk if actor else None,
                "now": now,
                "rotating": NumberRole.ROTATING,
                **(only._asdict() if only else dict.fromkeys(StillUnused._fields)),
            },
        )
        return [QueuedRelease(*row) for row in cursor.fetchall()]


def _release_order(
    *,
    number: PromoNumber,
    pool_id: int,
    account_id: int,
    trigger: str,
    reason: str,
    now: datetime,
    actor: Any = None,
) -> CarrierOrder:
    """A release order of `number`, not saved yet (the ORM paths; the PostgreSQL batch writes the same
    columns in one statement, release_begin_sql)."""
    return CarrierOrder(
        kind=OrderKind.RELEASE,
        account_id=account_id,
        pool_id=pool_id,
        number=number,
        role=number.role,
        request_id=new_request_id(pool_id),
        carrier_ref=number.carrier_ref,
        trigger=trigger,
        reason=reason_cut(reason),
        actor=actor,
        created_at=now,
    )


def _release_order_create(
    *, number: PromoNumber, pool_id: int, trigger: str, reason: str, now: datetime
) -> CarrierOrder:
    order = _release_order(
        number=number, pool_id=pool_id, account_id=number.account_id, trigger=trigger, reason=reason, now=now
    )
    order.save(force_insert=True)
    return order


def _release_run(order: CarrierOrder, *, carrier: Carrier | None, now: datetime) -> CarrierOrder:
    if not _claim(order, now):
        return order
    return _release_send(order, carrier=carrier, now=now)


def _release_send(order: CarrierOrder, *, carrier: Carrier | None, now: datetime) -> CarrierOrder:
    try:
        (carrier or get_carrier()).release(order.carrier_ref)
    except CarrierError as error:
        # Retried until it succeeds; meanwhile the number stays out of rotation (state `releasing`).
        if not isinstance(error, TransientCarrierError):
            _event(order, EventKind.FAILED, f"carrier refused the release: {error}", {}, order.number_id, now)
        return _postpone(order, error, now)
    with transaction.atomic():
        locked = CarrierOrder.objects.select_for_update().get(pk=order.pk)
        if locked.state != OrderState.PENDING:
            return locked
        if locked.number_id is not None:
            PromoNumber.objects.filter(pk=locked.number_id, state=NumberState.RELEASING).update(
                state=NumberState.RELEASED, released_at=now
            )
        _finish(locked, OrderState.DONE, now)
        _event(locked, EventKind.NUMBER_RELEASED, "released to the carrier", {}, locked.number_id, now)
    return locked


# --- Running and reconciling -----------------------------------------------------------------------


def carrier_orders_run(
    *, orders: Sequence[CarrierOrder], carrier: Carrier | None = None, now: datetime | None = None
) -> list[CarrierOrder]:
    """Carry out pending orders now, one after the other (outside any transaction); an order another
    process holds is skipped. Returns the orders as they ended."""
    now = now or timezone.now()
    carrier = carrier or get_carrier()
    search = SharedSearch(carrier)  # one search serves the orders of one area
    clock = _Clock(now)
    return [carrier_order_run(order, carrier=carrier, now=clock.now(), search=search) for order in orders]


def carrier_order_run(
    order: CarrierOrder,
    *,
    carrier: Carrier | None = None,
    now: datetime | None = None,
    search: SharedSearch | None = None,
) -> CarrierOrder:
    now = now or timezone.now()
    if order.kind == OrderKind.RELEASE:
        return _release_run(order, carrier=carrier, now=now)
    return purchase_order_run(order, carrier=carrier, now=now, search=search)


def carrier_orders_of(ids: Sequence[int]) -> list[CarrierOrder]:
    """The orders of these ids, with their numbers, in the order given."""
    found = CarrierOrder.objects.select_related("number").in_bulk(ids)
    return [found[pk] for pk in ids if pk in found]


def carrier_orders_due(*, now: datetime) -> Any:
    """Pending orders nobody is working on whose back-off is over, oldest first."""
    return (
        CarrierOrder.objects.filter(state=OrderState.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        # Never tried (or their worker died) first: PostgreSQL would sort the NULLs last.
        .order_by(F("next_attempt_at").asc(nulls_first=True), "id")
    )


def carrier_orders_dispatch(*, now: datetime, limit: int = 5000) -> list[int]:
    """The due orders' ids, each marked as handed to a worker (`next_attempt_at` moved QUEUED_FOR on),
    so the next minute's pass does not hand them out again while they wait in the queue. A worker
    takes an order whatever its `next_attempt_at`; one whose message was lost is due again after
    QUEUED_FOR, and one whose worker died once its claim lapses."""
    with transaction.atomic():
        ids = list(carrier_orders_due(now=now).values_list("pk", flat=True)[:limit])
        CarrierOrder.objects.filter(pk__in=ids, state=OrderState.PENDING).update(
            next_attempt_at=now + QUEUED_FOR
        )
    return ids


def carrier_orders_reconcile(
    *, carrier: Carrier | None = None, now: datetime | None = None, limit: int = 200
) -> list[CarrierOrder]:
    """Finish what earlier passes left pending, here and now. Returns the orders it took up, as they
    ended (an order another process holds is left to it)."""
    now = now or timezone.now()
    carrier = carrier or get_carrier()
    search = SharedSearch(carrier)
    clock = _Clock(now)
    finished = []
    for order in carrier_orders_due(now=now).select_related("number")[:limit]:
        try:
            finished.append(carrier_order_run(order, carrier=carrier, now=clock.now(), search=search))
        except Exception:
            # One order's trouble must not starve the others; its claim lapses and it is tried again.
            log.exception("Carrier order %s failed unexpectedly", order.request_id)
    return finished


def _claim(order: CarrierOrder, now: datetime) -> bool:
    taken = (
        CarrierOrder.objects.filter(pk=order.pk, state=OrderState.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + claim_for(), next_attempt_at=None, attempts=F("attempts") + 1)
    )
    if taken:
        # The row as it is now: another process may have attempted it since this copy was read, and
        # whether an earlier attempt may have bought it is decided on the real count. Its
        # `claimed_until` is this holder's token: every later write of the attempt is conditioned on it.
        order.refresh_from_db(fields=["attempts", "last_error", "offer", "claimed_until", "next_attempt_at"])
    return taken == 1


def _still_ours(order: CarrierOrder) -> Q:
    """The order, pending and still held by this attempt (a process frozen past its claim writes
    nothing once another took it over)."""
    return Q(pk=order.pk, state=OrderState.PENDING, claimed_until=order.claimed_until)


def _postpone(order: CarrierOrder, error: Exception, now: datetime) -> CarrierOrder:
    last_error = reason_cut(str(error))
    next_attempt_at = now + retry_delay(order.attempts)
    owned = _still_ours(order) if order.claimed_until else Q(pk=order.pk, state=OrderState.PENDING)
    if not CarrierOrder.objects.filter(owned).update(
        last_error=last_error, next_attempt_at=next_attempt_at, claimed_until=None
    ):
        return order  # another process holds it now: its attempt decides
    order.last_error, order.next_attempt_at, order.claimed_until = last_error, next_attempt_at, None
    return order


def _fail(order: CarrierOrder, kind: str, reason: str, now: datetime) -> CarrierOrder:
    with transaction.atomic():
        locked = CarrierOrder.objects.select_for_update().get(pk=order.pk)
        if locked.state != OrderState.PENDING or locked.claimed_until != order.claimed_until:
            return locked  # finished, or held by another process now
        locked.last_error = reason_cut(reason)
        _finish(locked, OrderState.FAILED, now)
        _event(locked, kind, reason, {**locked.figures, "request_id": locked.request_id}, None, now)
    return locked


def _finish(order: CarrierOrder, state: str, now: datetime) -> None:
    order.state = state
    order.finished_at = now
    order.claimed_until = None
    order.save(update_fields=["state", "finished_at", "claimed_until", "number", "carrier_ref", "last_error"])
    counted = metrics.CARRIER_ORDERS.labels(order.kind, state)
    transaction.on_commit(counted.inc)


def _event(
    order: CarrierOrder, kind: str, reason: str, figures: dict[str, Any], number_id: int | None, now: datetime
) -> None:
    scaling_event_record(
        account_id=order.account_id,
        pool_id=order.pool_id,
        number_id=number_id,
        kind=kind,
        trigger=order.trigger,
        reason=reason,
        figures=figures,
        actor=order.actor,
        now=now,
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
