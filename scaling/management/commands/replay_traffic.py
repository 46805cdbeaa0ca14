from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from scaling.choices import ScalingPolicy
from scaling.growth.run import pace_of
from scaling.lab.replay import LabPolicy, ReplayResult, replay
from scaling.lab.traffic import TraceError, TrafficModel, trace_read, visitors_draw
from scaling.models import AutoScalingSettings

DEFAULT_START = "1995-07-01T00:00:00Z"


class Command(BaseCommand):
    help = (
        "Replay a traffic trace (requests per second, whitespace-separated) through one pool under a "
        "policy, minute by minute, with the product's own growth rule, prune rule and hand-out order. "
        "Traffic model: visitors per minute drawn binomially from the minute's requests (one per "
        "--hits-per-visit on average, --seed); each visitor holds its number for its visit "
        "(exponential, mean --visit-minutes) plus the lease (--lease-minutes); --call-share of them "
        "call once, at a uniform moment of their hold. The pool starts with --start-size numbers and no "
        "maximum unless --max-size; the month-end prune runs on each month's last local day; each number "
        "is billed per started 30 days from its purchase until released. Prints overflow % "
        "(overflows / (overflows + presentations)), number-months billed, number-days, and numbers "
        "added and removed per month; with --json the last line is one JSON object."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("trace", help="the trace file: plain, .gz, .bz2, .xz or a one-file tar archive")
        parser.add_argument(
            "--policy",
            default=ScalingPolicy.SEED.value,
            help="seed (the seed's rule, the default), adaptive, or an account's slug (its settings: pace, "
            "policy, time zone)",
        )
        parser.add_argument("--hits-per-visit", type=float, default=10.0, help="requests per visitor (10)")
        parser.add_argument("--seed", type=int, default=1, help="the random generator's seed (1)")
        parser.add_argument("--start-size", type=int, default=5, help="numbers the pool starts with (5)")
        parser.add_argument("--max-size", type=int, default=None, help="the pool's maximum size (none)")
        parser.add_argument("--min-size", type=int, default=1, help="the pool's minimum size (1)")
        parser.add_argument("--repeat", type=int, default=1, help="play the trace this many times (1)")
        parser.add_argument(
            "--start", default=DEFAULT_START, help=f"the trace's first instant ({DEFAULT_START})"
        )
        parser.add_argument("--timezone", default=None, help="the pool's time zone for month ends (UTC)")
        parser.add_argument("--visit-minutes", type=float, default=4.0, help="mean visit (4)")
        parser.add_argument(
            "--lease-minutes", type=float, default=30.0, help="the lease after the visit (30)"
        )
        parser.add_argument("--call-share", type=float, default=0.03, help="visitors who call (0.03)")
        parser.add_argument("--json", action="store_true", help="end with one line of JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        start = parse_datetime(options["start"])
        if start is None or start.tzinfo is None:
            raise CommandError(f"--start {options['start']!r} is not an ISO-8601 moment with its zone")
        for name in ("start_size", "repeat", "min_size"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        if options["max_size"] is not None and options["max_size"] < options["start_size"]:
            raise CommandError("--max-size must be at least --start-size")
        if not 0 <= options["call_share"] <= 1:
            raise CommandError("--call-share must be between 0 and 1")
        if options["hits_per_visit"] < 1 or options["visit_minutes"] <= 0 or options["lease_minutes"] < 0:
            raise CommandError(
                "--hits-per-visit must be at least 1, --visit-minutes above 0, --lease-minutes 0 or more"
            )
        policy, zone = self._policy(options)
        try:
            tz = ZoneInfo(options["timezone"]) if options["timezone"] else zone
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise CommandError(f"--timezone {options['timezone']!r} is not a time zone") from error
        path = Path(options["trace"])
        try:
            requests = trace_read(path)
        except TraceError as error:
            raise CommandError(str(error)) from error
        model = TrafficModel(
            hits_per_visit=options["hits_per_visit"],
            visit_minutes=options["visit_minutes"],
            lease_minutes=options["lease_minutes"],
            call_share=options["call_share"],
            seed=options["seed"],
        )
        visitors = visitors_draw(requests, model, repeat=options["repeat"])
        times = f" x {options['repeat']}" if options["repeat"] > 1 else ""
        self.stderr.write(
            f"{path.name}: {requests.size:,} seconds, {int(requests.sum()):,} requests{times} -> "
            f"{len(visitors):,} visitors; replaying under {policy.name} ..."
        )
        result = replay(
            visitors,
            policy=policy,
            start=start,
            tz=tz,
            start_size=options["start_size"],
            progress=self._progress if sys.stderr.isatty() else None,
        )
        self.stdout.write(summary(result, start=start))
        if options["json"]:
            self.stdout.write(json.dumps(result.as_json(), sort_keys=True))

    def _policy(self, options: dict[str, Any]) -> tuple[LabPolicy, ZoneInfo]:
        name = options["policy"]
        sizes = {
            "min_size": options["min_size"],
            "max_size": options["max_size"],
            "lease": timedelta(minutes=options["lease_minutes"]),
        }
        if name == ScalingPolicy.SEED:
            return LabPolicy("seed", **sizes), ZoneInfo("UTC")
        if name == ScalingPolicy.ADAPTIVE:
            return LabPolicy("adaptive", adaptive=True, **sizes), ZoneInfo("UTC")
        settings = AutoScalingSettings.objects.select_related("account").filter(account__slug=name).first()
        if settings is None:
            raise CommandError(f"--policy {name!r}: not seed, adaptive, or the slug of an account")
        adaptive = settings.policy == ScalingPolicy.ADAPTIVE
        label = (
            f"{settings.account.name} ({'adaptive' if adaptive else 'seed'}, {pace_of(settings).describe()})"
        )
        return (
            LabPolicy(label, pace=pace_of(settings), adaptive=adaptive, **sizes),
            ZoneInfo(str(settings.account.timezone)),
        )

    def _progress(self, share: float) -> None:
        self.stderr.write(f"\r  {share:5.0%}", ending="")


def months_between(first: datetime, last: datetime) -> list[date]:
    """The calendar months (their first days, UTC) from `first` to `last`, both included."""
    month, months = first.astimezone(UTC).date().replace(day=1), []
    while month <= last.astimezone(UTC).date():
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def summary(result: ReplayResult, *, start: datetime) -> str:
    """The replay's figures for people: the totals, then numbers added and removed per month."""
    lines = [
        f"Policy: {result.policy}; {result.days:.1f} days from {start.astimezone(UTC):%Y-%m-%d %H:%M} UTC, "
        f"a pool of {result.start_size} numbers at the start",
        f"Visitors: {result.visitors:,} ({result.presentations:,} shown a promo number, "
        f"{result.overflows:,} turned away, {result.calls:,} calls)",
        f"Overflow: {result.overflow_pct:.2f} %",
        f"Billed: {result.number_months:,} number-months ({result.number_days:,.0f} number-days); "
        f"size {result.final_size} at the end, {result.largest_size} at most",
        "Numbers added and removed per month:",
    ]
    for month in sorted(
        {*months_between(start, start + timedelta(days=result.days)), *result.added, *result.removed}
    ):
        lines.append(f"  {month:%Y-%m}  +{result.added[month]:<6} -{result.removed[month]}")
    speed = result.days * 1440 / max(result.elapsed, 1e-9)
    lines.append(f"Replayed in {result.elapsed:.1f} s ({speed:,.0f} simulated minutes per second)")
    return "\n".join(lines)
