"""The carrier's own list of the platform's numbers, compared with ours (the reconcile pass, hourly).

Orders reconcile what they know of; this finds what no order knows: a number bought by a process that
died or froze after its order was closed (an orphan, billed forever if nobody looks), and a number in
a pool that the carrier no longer holds (a phantom: visitors would be shown a number that does not
ring). What it finds, it puts right, with an event in the pool's trail:
- a number bought under an order still pending is adopted: the order is finished with it now;
- a number bought under RingPool's name that is in no pool is recorded and released;
- a number of ours in rotation the carrier does not list is taken out of its pool.
Numbers the carrier account holds that RingPool did not buy (no `ringpool-` name) are left alone and
counted: they are not ours to release.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from ringpools.choices import NumberState
from ringpools.models import PromoNumber, RingPool
from scaling.audit import scaling_event_record
from scaling.choices import EventKind, OrderKind, OrderState, Trigger
from scaling.models import CarrierOrder
from scaling.supply.carrier import Carrier, PurchasedNumber, get_carrier
from scaling.supply.outbox import (
    carrier_orders_run,
    orphan_adopt_for_release,
    purchase_order_adopt,
)

log = logging.getLogger(__name__)

OUR_NAME = re.compile(r"^ringpool-(?P<pool>\d+)-[0-9a-f]+$")
# A number bought or released this recently may not be recorded yet on one side: judged next time.
SETTLE = timedelta(minutes=10)


@dataclass
class NumbersReport:
    held_at_carrier: int = 0
    adopted: list[str] = field(default_factory=list)  # finished a pending order with them
    released: list[str] = field(default_factory=list)  # orphans: recorded and released
    phantoms: list[str] = field(default_factory=list)  # ours in rotation, unknown to the carrier
    foreign: int = 0  # held by the carrier account, not bought by RingPool: left alone

    @property
    def changed(self) -> int:
        return len(self.adopted) + len(self.released) + len(self.phantoms)

    def summary(self) -> str:
        return (
            f"{self.held_at_carrier} numbers at the carrier; adopted {len(self.adopted)}, "
            f"released {len(self.released)} orphans, took {len(self.phantoms)} phantoms out of their pools, "
            f"left {self.foreign} not bought by RingPool alone"
        )


def carrier_numbers_reconcile(
    *, carrier: Carrier | None = None, now: datetime | None = None
) -> NumbersReport:
    """Compare the carrier's list with ours and put right what differs (see the module's words).
    A carrier error while listing ends the pass before anything is concluded."""
    now = now or timezone.now()
    carrier = carrier or get_carrier()
    held = list(carrier.list_purchased())
    report = NumbersReport(held_at_carrier=len(held))
    # Ours: held, or released so recently that the carrier's list may predate the release.
    ours = set(
        PromoNumber.objects.filter(Q(state__in=NumberState.held()) | Q(released_at__gte=now - SETTLE))
        .exclude(carrier_ref="")
        .values_list("carrier_ref", flat=True)
    )
    releases: list[CarrierOrder] = []
    for bought in held:
        if bought.carrier_ref in ours:
            continue
        try:
            release = _unknown_number(bought, report=report, now=now)
        except DatabaseError:
            # One number's trouble must not stop the pass (the phantoms below included).
            log.exception("Reconciling carrier number %s failed", bought.number)
            continue
        if release is not None:
            releases.append(release)
            report.released.append(bought.number)
    carrier_orders_run(orders=releases, carrier=carrier, now=now)
    report.phantoms = _phantoms_remove(held, now=now)
    return report


def _unknown_number(bought: PurchasedNumber, *, report: NumbersReport, now: datetime) -> CarrierOrder | None:
    """A number the carrier lists that no pool of ours holds: adopted by its pending order, or
    recorded and queued for release; None when it is not RingPool's, or a live attempt records it."""
    named = OUR_NAME.match(bought.friendly_name)
    if named is None:
        report.foreign += 1
        return None
    order = CarrierOrder.objects.filter(request_id=bought.friendly_name, kind=OrderKind.PURCHASE).first()
    if order is not None and order.state == OrderState.PENDING:
        if purchase_order_adopt(order, bought, now=now):
            report.adopted.append(bought.number)
        return None  # or a live attempt holds it: it records the number itself
    pool = RingPool.objects.filter(pk=order.pool_id if order else int(named["pool"])).first()
    if pool is None:
        report.foreign += 1
        log.warning(
            "Carrier number %s is named for pool %s, which does not exist", bought.number, named["pool"]
        )
        return None
    why = (
        f"bought under order {order.request_id}, which is {order.get_state_display().lower()}"
        if order
        else "bought under a name no order of ours has"
    )
    with transaction.atomic():
        RingPool.objects.select_for_update().get(pk=pool.pk)
        return orphan_adopt_for_release(pool=pool, bought=bought, trigger=Trigger.RECONCILE, why=why, now=now)


def _phantoms_remove(held: list[PurchasedNumber], *, now: datetime) -> list[str]:
    """Numbers in rotation whose carrier reference the carrier does not list: out of their pools."""
    at_carrier = {bought.carrier_ref for bought in held}
    candidates = (
        PromoNumber.objects.filter(state=NumberState.ACTIVE, acquired_at__lt=now - SETTLE)
        .exclude(carrier_ref="")
        .only("pk", "number", "carrier_ref", "pool_id", "account_id")
    )
    gone = []
    for number in candidates.iterator(2000):
        if number.carrier_ref in at_carrier or number.pool_id is None:
            continue
        with transaction.atomic():
            if not PromoNumber.objects.filter(pk=number.pk, state=NumberState.ACTIVE).update(
                state=NumberState.RELEASED, released_at=now
            ):
                continue
            scaling_event_record(
                account_id=number.account_id,
                pool_id=number.pool_id,
                number_id=number.pk,
                kind=EventKind.RECONCILED,
                trigger=Trigger.RECONCILE,
                reason="the carrier no longer holds this number: taken out of the pool",
                figures={"carrier_ref": number.carrier_ref},
                now=now,
            )
        gone.append(str(number.number))
    return gone
