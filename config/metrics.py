"""The product's Prometheus metrics (prometheus_client), added up across every web and worker process.

prometheus_client's multiprocess mode: each process writes its counts to small memory-mapped files in
RINGPOOL_METRICS_DIR (PROMETHEUS_MULTIPROC_DIR), and `/metrics` (scaling/metrics.py) sums them at each
scrape, with the figures read from the database then (outbox backlog, open alerts, last runs). The
directory must be emptied when the deployment (re)starts — bin/demo does — as prometheus_client asks.
Counting costs the hot path one locked write to a mapped page per metric (bench/handout.py).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram  # the settings set PROMETHEUS_MULTIPROC_DIR

HANDOUTS = Counter(
    "ringpool_handouts", "Numbers shown to visitors by the API, by kind (promo, overflow, ...)", ["kind"]
)
RATE_LIMITED = Counter("ringpool_rate_limit_refusals", "Visitor API requests refused with 429")
HANDOUT_BUSY = Counter(
    "ringpool_handout_busy", "Hand-outs answered 503 busy: every free number locked by other claims"
)
HANDOUT_SECONDS = Histogram(
    "ringpool_handout_seconds",
    "Time to answer a number request (the view, from the rate limit to the answer)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
JOB_SECONDS = Histogram(
    "ringpool_job_seconds",
    "Periodic task durations by task and outcome (grow and prune passes among them)",
    ["task", "outcome"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900),
)
CARRIER_ORDERS = Counter(
    "ringpool_carrier_orders",
    "Carrier purchases and releases finished, by kind and result",
    ["kind", "result"],
)
