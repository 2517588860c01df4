"""Side-by-side timing: several callables run in interleaved rounds (A, B, A, B, ... after a
warm-up), and the statistics of per-round ratios. Pure Python + numpy (no paddle), so any
predictor-like callable can be timed and tested.

Why rounds: on a shared machine the load drifts by 2-3x within minutes; models timed one after the
other then differ by the drift, not by themselves. Within one short round every model sees about the
same load, so the ratio of two models' round medians holds even when both absolute figures move."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: Percentiles of per-round ratios reported as a speed-up's interval.
INTERVAL_PERCENTILES = (10, 90)


def timed_rounds(
    calls: Sequence[Callable[[], object]], *, warmup: int, iterations: int, per_round: int
) -> list[list[list[float]]]:
    """times[model][round] = milliseconds of each of that round's calls. Every model is warmed up
    first; each round then runs `per_round` calls of every model in turn, the order reversed on
    every other round so that no model always runs right after another (caches, turbo)."""
    for call in calls:
        for _ in range(warmup):
            call()
    times: list[list[list[float]]] = [[] for _ in calls]
    order = list(range(len(calls)))
    done = 0
    while done < iterations:
        n = min(max(1, per_round), iterations - done)
        for m in order:
            acc = []
            for _ in range(n):
                t = time.perf_counter()
                calls[m]()
                acc.append((time.perf_counter() - t) * 1000)
            times[m].append(acc)
        order.reverse()
        done += n
    return times


def round_medians(rounds: list[list[float]]) -> list[float]:
    """One figure per round: the median of its calls (robust to a single preempted call)."""
    return [round(float(np.median(r)), 4) for r in rounds]


@dataclass(frozen=True)
class RatioInterval:
    """The median of per-round ratios a/b and their p10-p90 spread."""

    median: float
    low: float
    high: float
    rounds: int

    @property
    def relative_width(self) -> float:
        """(high - low) / median: how much the rounds disagree, as a fraction of the figure."""
        return (self.high - self.low) / self.median if self.median > 0 else float("inf")

    def to_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "low": self.low, "high": self.high, "rounds": self.rounds}


def ratio_interval(a: Sequence[float], b: Sequence[float], nd: int = 3) -> RatioInterval | None:
    """Per-round ratios a[i] / b[i] of two models timed in the same rounds (a speed-up when a is
    the baseline's round medians and b a compressed model's); None unless the rounds pair up."""
    if not a or len(a) != len(b) or min(b) <= 0:
        return None
    ratios = np.asarray(a, np.float64) / np.asarray(b, np.float64)
    lo, hi = np.percentile(ratios, INTERVAL_PERCENTILES)
    return RatioInterval(
        median=round(float(np.median(ratios)), nd),
        low=round(float(lo), nd),
        high=round(float(hi), nd),
        rounds=len(ratios),
    )
