"""The inventory carrier with a fault, for the fault suite's real processes.

A process started with RINGPOOL_CARRIER=tests.faulty_carrier.FaultyCarrier and RINGPOOL_FAULT=<point>:<what>
meets the fault once at <point> (the first process to get there, among all started with the same
RINGPOOL_FAULT_MARK file): KILL (SIGKILL itself), STOP (SIGSTOP itself: frozen until SIGCONT), STALL
(sleep 60 s, a task that is running when its worker is killed), or TRANSIENT (a time-out, a 429).
Points: find_available (the search, after the decision), purchase (before buying), purchase_after
(bought, before the answer), release (before releasing), release_after (released, before the answer).
Everything else is the real inventory carrier.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from scaling.supply.carrier import AvailableNumber, PurchasedNumber, TransientCarrierError
from scaling.supply.inventory import InventoryCarrier


def _fault(point: str) -> None:
    wanted, _, what = os.environ.get("RINGPOOL_FAULT", "").partition(":")
    if wanted != point:
        return
    try:  # once: the first process to get here, by an exclusive create of the mark
        os.close(os.open(os.environ["RINGPOOL_FAULT_MARK"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    if what == "KILL":
        os.kill(os.getpid(), signal.SIGKILL)
    elif what == "STOP":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif what == "STALL":
        time.sleep(60)
    elif what == "TRANSIENT":
        raise TransientCarrierError(f"429 Too Many Requests (fault at {point})")


class FaultyCarrier(InventoryCarrier):
    def offers(self, **criteria: Any) -> list[AvailableNumber]:
        _fault("find_available")
        return super().offers(**criteria)

    def purchase(self, available: AvailableNumber, *, account_id: int, friendly_name: str) -> PurchasedNumber:
        _fault("purchase")
        bought = super().purchase(available, account_id=account_id, friendly_name=friendly_name)
        _fault("purchase_after")
        return bought

    def release(self, carrier_ref: str) -> None:
        _fault("release")
        super().release(carrier_ref)
        _fault("release_after")
