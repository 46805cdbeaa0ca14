"""The policy lab's table: the seed's rule, three faster paces and the adaptive policy, replayed over
the NASA-HTTP 1995 trace played three times (176 days, one visitor per 10 requests) through the
product's own rules (scaling.lab), for three seeds; and the replay's speed.

    python bench/policy_lab.py [--trace bench/traces/nasa-http-1995-per-second.tbz2] [--repeat 3]
                               [--seeds 1,2,3] [--json] [--robustness | --held-out]

No database: the replay keeps one pool in memory. Prints per seed the overflow %, number-months
billed, and both as ratios to the seed's rule of the same seed (the same visitors); then the replay's
speed (simulated minutes per second) per policy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from scaling.choices import GrowthMode  # noqa: E402
from scaling.growth.rule import GrowthPace  # noqa: E402
from scaling.lab.replay import LabPolicy, replay  # noqa: E402
from scaling.lab.traffic import TrafficModel, trace_read, visitors_draw  # noqa: E402

POLICIES = (
    LabPolicy("the seed's rule: 1 per 5 min on overflow, month-end prune"),
    LabPolicy(
        "percentage pace, 2 % per 5 min, cap 5",
        pace=GrowthPace(mode=GrowthMode.PERCENTAGE, percent=2, cap_per_interval=5),
    ),
    LabPolicy(
        "percentage pace, 5 % per 5 min, cap 50",
        pace=GrowthPace(mode=GrowthMode.PERCENTAGE, percent=5, cap_per_interval=50),
    ),
    LabPolicy("1 per minute", pace=GrowthPace(interval=timedelta(minutes=1))),
    LabPolicy("adaptive: fast while learning or regrowing, release at renewal", adaptive=True),
)
START = datetime(1995, 7, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trace", default=str(ROOT / "bench" / "traces" / "nasa-http-1995-per-second.tbz2"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument(
        "--robustness",
        action="store_true",
        help="instead: the seed's rule and the adaptive policy on the trace cut, scaled and shifted",
    )
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="instead: the same on traffics measured only after the policy's parameters were chosen",
    )
    args = parser.parse_args()
    if args.robustness or args.held_out:
        robustness(Path(args.trace), held_out=args.held_out)
        return
    began = time.perf_counter()
    requests = trace_read(Path(args.trace))
    read = time.perf_counter() - began
    name, total = Path(args.trace).name, int(requests.sum())
    print(f"{name}: {requests.size:,} seconds, {total:,} requests, read in {read:.1f} s")
    rows: list[dict[str, object]] = []
    speeds: dict[str, list[float]] = {policy.name: [] for policy in POLICIES}
    for seed in (int(s) for s in args.seeds.split(",")):
        drawn = visitors_draw(requests, TrafficModel(seed=seed), repeat=args.repeat)
        results = [replay(drawn, policy=policy, start=START, tz=UTC) for policy in POLICIES]
        base = results[0]
        print(f"\nseed {seed}: {len(drawn):,} visitors over {base.days:.0f} days")
        print(f"  {'policy':<62} {'overflow':>9} {'number-months':>14} {'x overflow':>11} {'x months':>9}")
        for result in results:
            ratio_overflow = result.overflow_pct / base.overflow_pct if base.overflow_pct else 0.0
            ratio_months = result.number_months / base.number_months
            print(
                f"  {result.policy:<62} {result.overflow_pct:>8.2f}% {result.number_months:>14,} "
                f"{ratio_overflow:>10.2f}x {ratio_months:>8.3f}x"
            )
            speeds[result.policy].append(result.days * 1440 / result.elapsed)
            rows.append(
                {"seed": seed, **result.as_json(), "x_overflow": ratio_overflow, "x_months": ratio_months}
            )
    print("\nreplay speed (simulated minutes per second, per seed):")
    for name, values in speeds.items():
        print(f"  {name:<62} " + "  ".join(f"{v:,.0f}" for v in values))
    print(f"\ntotal {time.perf_counter() - began:.1f} s")
    if args.json:
        print(json.dumps(rows))


def robustness(trace: Path, *, held_out: bool = False) -> None:
    """The adaptive policy on traffic it was not tuned on (docs/policy-lab.md); `held_out`: on the
    traffics first measured after its parameters were chosen."""
    import numpy as np

    requests = trace_read(trace)
    half, day = requests.size // 2, 86400
    cases = [(f"NASA x3, seed {seed}", requests, 3, 10.0, seed) for seed in (1, 2, 3)] + [
        ("first half (29 days) x6", requests[:half], 6, 10.0, 1),
        ("second half x6", requests[half:], 6, 10.0, 1),
        ("NASA x3, twice the visitors (5 hits per visit)", requests, 3, 5.0, 1),
        ("NASA x3, half the visitors (20)", requests, 3, 20.0, 1),
        ("NASA x3, a tenth (100)", requests, 3, 100.0, 1),
        ("NASA x3, shifted 12 hours", np.roll(requests, 12 * 3600), 3, 10.0, 1),
        ("NASA x3, shifted 3.5 days", np.roll(requests, int(3.5 * 86400)), 3, 10.0, 1),
        ("NASA once, 58 days", requests, 1, 10.0, 1),
        ("first 40 days x4", requests[: 40 * 86400], 4, 10.0, 1),
        ("last 40 days x4", requests[-40 * 86400 :], 4, 10.0, 1),
        ("first 20 days x9 (the spike every 20 days)", requests[: 20 * 86400], 9, 10.0, 1),
        ("days 10-45 x5 (the spike in the first week)", requests[10 * 86400 : 45 * 86400], 5, 10.0, 1),
    ]
    if held_out:
        cases = [(f"NASA x3, seed {seed}", requests, 3, 10.0, seed) for seed in (4, 5)] + [
            (f"NASA x3, {hits:g} hits per visit", requests, 3, hits, 1) for hits in (7.0, 15.0, 50.0)
        ]
        cases += [
            ("NASA x3, shifted 1 day", np.roll(requests, day), 3, 10.0, 1),
            ("NASA x3, shifted 5 days", np.roll(requests, 5 * day), 3, 10.0, 1),
            ("days 15-45 x6 (a 30-day cycle)", requests[15 * day : 45 * day], 6, 10.0, 1),
            ("first half x6, seed 2", requests[:half], 6, 10.0, 2),
            ("second half x6, 30 hits per visit", requests[half:], 6, 30.0, 1),
            ("NASA x2", requests, 2, 10.0, 1),
        ]
    seed_rule, adaptive = POLICIES[0], POLICIES[-1]
    heading = f"{'traffic':<48} {'seed: overflow, months':>24} {'adaptive: overflow, months':>28}"
    print(f"{heading} {'x overflow':>11} {'x months':>9}")
    for name, trace_requests, repeat, hits, seed in cases:
        drawn = visitors_draw(trace_requests, TrafficModel(seed=seed, hits_per_visit=hits), repeat=repeat)
        a = replay(drawn, policy=seed_rule, start=START, tz=UTC)
        b = replay(drawn, policy=adaptive, start=START, tz=UTC)
        seed_figures = f"{a.overflow_pct:>13.3f}%, {a.number_months:>7,}"
        adaptive_figures = f"{b.overflow_pct:>17.3f}%, {b.number_months:>7,}"
        ratios = f"{b.overflow_pct / a.overflow_pct:>10.2f}x {b.number_months / a.number_months:>8.3f}x"
        print(f"{name:<48} {seed_figures} {adaptive_figures} {ratios}")


if __name__ == "__main__":
    main()
