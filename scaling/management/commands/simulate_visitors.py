from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

RENEW_EVERY = 60.0  # seconds, as the tag renews a visible page's number


class Command(BaseCommand):
    help = (
        "Demo: send simulated visitors to a pool through the real HTTP API (as the tag would), so the pool "
        "runs out of numbers, visitors are shown the overflow, and auto-scaling grows it (watch the pool "
        "in admin). Visitors who got a number keep it by renewing once a minute."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pool", default="rp_demo_local", help="the pool's public key")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="where the web app answers")
        parser.add_argument("--every", type=float, default=2.0, help="seconds between two new visitors")
        parser.add_argument("--duration", type=float, default=20 * 60, help="seconds to run (default 20 min)")
        parser.add_argument("--report-every", type=float, default=60.0, help="seconds between two summaries")

    def handle(self, *args: Any, **options: Any) -> None:
        url = f"{options['base_url'].rstrip('/')}/api/v1/ringpools/{options['pool']}/numbers"
        page_url = f"{options['base_url'].rstrip('/')}/demo/?utm_source=simulate_visitors"
        holders: dict[str, float] = {}  # visitor id → when its number was last renewed
        kinds: Counter[str] = Counter()
        started = last_report = time.monotonic()
        self.stdout.write(f"Sending a new visitor every {options['every']}s to {url} (Ctrl-C stops)")
        try:
            while time.monotonic() - started < options["duration"]:
                now = time.monotonic()
                visitor = "sim-" + secrets.token_hex(6)
                kind = self._ask(url, visitor, page_url, keepalive=False)
                kinds[kind] += 1
                if kind == "promo":
                    holders[visitor] = now
                for holder, renewed in list(holders.items()):
                    if now - renewed >= RENEW_EVERY:
                        if self._ask(url, holder, page_url, keepalive=True) == "promo":
                            holders[holder] = now
                        else:
                            del holders[holder]
                if now - last_report >= options["report_every"]:
                    self._report(now - started, kinds, len(holders))
                    kinds.clear()
                    last_report = now
                time.sleep(max(0.0, options["every"] - (time.monotonic() - now)))
        except KeyboardInterrupt:
            pass
        self._report(time.monotonic() - started, kinds, len(holders))

    def _ask(self, url: str, visitor: str, page_url: str, *, keepalive: bool) -> str:
        body = json.dumps({"visitor_id": visitor, "page_url": page_url, "params": {}, "keepalive": keepalive})
        request = urllib.request.Request(
            url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)["kind"]
        except urllib.error.HTTPError as error:
            if error.code == 429:
                time.sleep(float(error.headers.get("Retry-After") or 1))
                return "rate_limited"
            raise CommandError(f"{url} answered {error.code}: {error.read()[:200]!r}") from error
        except urllib.error.URLError as error:
            raise CommandError(f"{url} does not answer ({error.reason}): is bin/demo running?") from error

    def _report(self, elapsed: float, kinds: Counter[str], holding: int) -> None:
        turned_away = kinds["overflow"] + kinds["destination"]
        self.stdout.write(
            f"[{elapsed / 60:5.1f} min] new visitors: {sum(kinds.values())}, given a promo number: "
            f"{kinds['promo']}, shown the overflow: {turned_away}; visitors holding a number: {holding}"
        )
