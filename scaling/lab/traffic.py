"""Traffic for the policy lab: a trace of requests per second, and the visitors drawn from it.

The traffic model (stated in `replay_traffic --help` and docs/policy-lab.md):
 - visitors per minute are drawn binomially from the minute's requests, one visitor per
   `hits_per_visit` requests on average, each arriving at a uniform moment of its minute;
 - a visitor holds the number it is shown for its visit (exponential, mean `visit_minutes`) plus the
   lease (`lease_minutes`): the page renews the lease while it is open, so the number was last
   presented when the visit ended;
 - `call_share` of the visitors shown a number call it once, at a uniform moment of their hold.
The trace may be played `repeat` times end to end; every draw comes from one seeded generator.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

SECONDS_PER_MINUTE = 60


class TraceError(ValueError):
    """A trace that cannot be read as requests per second."""


@dataclass(frozen=True)
class TrafficModel:
    hits_per_visit: float = 10.0
    visit_minutes: float = 4.0
    lease_minutes: float = 30.0
    call_share: float = 0.03
    seed: int = 1


@dataclass(frozen=True)
class Visitors:
    """The visitors of a replay, in arrival order; times in seconds from the trace's first instant.
    `calls_at` is NaN for a visitor who does not call."""

    arrives: NDArray[np.float64]
    leaves: NDArray[np.float64]  # end of the visit: the number's last presentation
    holds_until: NDArray[np.float64]  # end of the lease after the visit
    calls_at: NDArray[np.float64]
    seconds: int  # length of the replayed traffic

    def __len__(self) -> int:
        return len(self.arrives)


def trace_read(path: Path) -> NDArray[np.int64]:
    """Requests per second from a whitespace-separated file: plain, .gz, .bz2, .xz, or a tar archive
    (.tbz2, .tar.gz, ...) holding one such file."""
    try:
        text = _trace_text(path)
    except (OSError, tarfile.TarError, EOFError, lzma.LZMAError) as error:
        raise TraceError(f"cannot read {path}: {error}") from error
    try:
        counts = np.array(text.split(), dtype=np.int64)
    except ValueError as error:
        raise TraceError(f"{path} is not whitespace-separated request counts: {error}") from error
    if counts.size == 0:
        raise TraceError(f"{path} holds no request counts")
    if (counts < 0).any():
        raise TraceError(f"{path} holds a negative request count")
    return counts


def _trace_text(path: Path) -> bytes:
    name = path.name.lower()
    if name.endswith((".tbz2", ".tar.bz2", ".tgz", ".tar.gz", ".tar.xz", ".tar")):
        with tarfile.open(path) as archive:
            files = [member for member in archive.getmembers() if member.isfile()]
            if len(files) != 1:
                raise TraceError(f"{path} holds {len(files)} files; a trace archive holds one")
            extracted = archive.extractfile(files[0])
            assert extracted is not None  # a regular file
            return extracted.read()
    if name.endswith(".bz2"):
        return bz2.decompress(path.read_bytes())
    if name.endswith(".gz"):
        return gzip.decompress(path.read_bytes())
    if name.endswith(".xz"):
        return lzma.decompress(path.read_bytes())
    return path.read_bytes()


def visitors_draw(requests: NDArray[np.int64], model: TrafficModel, *, repeat: int = 1) -> Visitors:
    """The visitors of `requests` (per second) played `repeat` times, under `model`."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    if model.hits_per_visit < 1:
        raise ValueError("hits per visit must be at least 1")
    rng = np.random.default_rng(model.seed)
    played = np.tile(requests, repeat)
    minutes = -(-played.size // SECONDS_PER_MINUTE)
    padded = np.zeros(minutes * SECONDS_PER_MINUTE, dtype=np.int64)
    padded[: played.size] = played
    per_minute = padded.reshape(minutes, SECONDS_PER_MINUTE).sum(axis=1)
    visitors = rng.binomial(per_minute, 1.0 / model.hits_per_visit)
    minute_of = np.repeat(np.arange(minutes, dtype=np.float64), visitors)
    arrives = np.sort(minute_of * SECONDS_PER_MINUTE + rng.uniform(0, SECONDS_PER_MINUTE, minute_of.size))
    return _visits(arrives, model, rng, seconds=int(played.size))


def visitors_from_hours(counts: list[int], model: TrafficModel) -> Visitors:
    """Visitors from a pool's recorded hours (visitors per hour, oldest first): each hour's visitors
    at uniform moments of it, holding and calling as in `visitors_draw`."""
    rng = np.random.default_rng(model.seed)
    per_hour = np.array(counts, dtype=np.int64)
    hour_of = np.repeat(np.arange(per_hour.size, dtype=np.float64), per_hour)
    arrives = np.sort(hour_of * 3600 + rng.uniform(0, 3600, hour_of.size))
    return _visits(arrives, model, rng, seconds=int(per_hour.size * 3600))


def _visits(
    arrives: NDArray[np.float64], model: TrafficModel, rng: np.random.Generator, *, seconds: int
) -> Visitors:
    """The visits of visitors arriving at `arrives`: each visit's length, its hold, and its call."""
    leaves = arrives + rng.exponential(model.visit_minutes * SECONDS_PER_MINUTE, arrives.size)
    holds_until = leaves + model.lease_minutes * SECONDS_PER_MINUTE
    calls = rng.random(arrives.size) < model.call_share
    calls_at = np.where(calls, arrives + rng.random(arrives.size) * (holds_until - arrives), np.nan)
    return Visitors(arrives, leaves, holds_until, calls_at, seconds=seconds)
