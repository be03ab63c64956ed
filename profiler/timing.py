"""The timing protocol shared by every backend: warm-up by time, then runs until both a minimum
count and a minimum measuring time are reached; median with p10/p90 (trtexec's defaults are
200 ms warm-up, ≥ 10 runs and ≥ 3 s).

On a shared machine (a cloud VM) the speed changes in phases that last seconds: a neighbour's
load, the host's clock. One timing window lands in one phase, so two measurements of the same
configuration minutes apart disagree. With ``passes`` > 1 a list of workloads is timed in that
many interleaved passes (each pass gets its share of the warm-up, measuring time and runs) and every
workload keeps its fastest pass: interference only ever slows a run down.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

GPU_PRECISIONS = ("fp32", "tf32", "fp16")  # fp32 with TF32 off; tf32; fp16
WINDOW_MS = 0.5    # a GPU timing is a window of back-to-back calls with at least this much work
MAX_CALLS = 64     # and at most this many calls (one CUDA graph)


def calls_per_window(one_call_ms: float) -> int:
    """How many back-to-back calls make one GPU timing window: the launch of a graph or the event
    pair (µs) is then negligible against the work, as inside a network."""
    return max(1, min(MAX_CALLS, math.ceil(WINDOW_MS / max(one_call_ms, 1e-6))))


@dataclass(frozen=True)
class TimingProtocol:
    warmup_ms: float = 200.0
    min_runs: int = 10
    min_time_ms: float = 1000.0
    max_runs: int = 100_000
    passes: int = 1

    def __post_init__(self) -> None:
        if self.passes < 1:
            raise ValueError(f"a timing protocol needs at least one pass, not {self.passes}")

    def one_pass(self) -> TimingProtocol:
        """The protocol of one of ``passes`` passes: its share of the warm-up, measuring time and runs."""
        return replace(self, warmup_ms=self.warmup_ms / self.passes, min_time_ms=self.min_time_ms / self.passes,
                       min_runs=math.ceil(self.min_runs / self.passes), passes=1)


@dataclass(frozen=True)
class Timing:
    latency_ms: float      # median
    latency_p10_ms: float
    latency_p90_ms: float
    runs: int
    warmup_ms: float

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: above ~0.1 the entry is noisy."""
        return (self.latency_p90_ms - self.latency_p10_ms) / self.latency_ms

    def minus(self, overhead_ms: float) -> Timing:
        """The same timing less a fixed overhead (never below 1% of what was measured)."""
        def net(value: float) -> float:
            return max(value - overhead_ms, 0.01 * value)
        return Timing(net(self.latency_ms), net(self.latency_p10_ms), net(self.latency_p90_ms),
                      self.runs, self.warmup_ms)

    def scaled(self, factor: float) -> Timing:
        return Timing(self.latency_ms * factor, self.latency_p10_ms * factor, self.latency_p90_ms * factor,
                      self.runs, self.warmup_ms)

    @classmethod
    def fastest(cls, timings: Sequence[Timing]) -> Timing:
        """The timing with the lowest median, counting the runs and warm-up of all of them."""
        best = min(timings, key=lambda t: t.latency_ms)
        return replace(best, runs=sum(t.runs for t in timings), warmup_ms=sum(t.warmup_ms for t in timings))

    @classmethod
    def from_samples(cls, samples_ms: list[float], warmup_ms: float) -> Timing:
        p10, median, p90 = np.percentile(samples_ms, [10, 50, 90])
        return cls(float(median), float(p10), float(p90), len(samples_ms), warmup_ms)


def measure(run_timed: Callable[[], float], protocol: TimingProtocol = TimingProtocol()) -> Timing:
    """Time repeated runs under ``protocol``; ``run_timed`` runs once and returns its milliseconds.
    Several passes of one workload run back to back, the fastest kept (:func:`interleaved`
    spreads the passes of several workloads over time)."""
    if protocol.passes > 1:
        return Timing.fastest([measure(run_timed, protocol.one_pass()) for _ in range(protocol.passes)])
    start = time.perf_counter()
    while (time.perf_counter() - start) * 1e3 < protocol.warmup_ms:
        run_timed()
    warmup_ms = (time.perf_counter() - start) * 1e3
    samples: list[float] = []
    began = time.perf_counter()
    while len(samples) < protocol.max_runs and (
            len(samples) < protocol.min_runs or (time.perf_counter() - began) * 1e3 < protocol.min_time_ms):
        samples.append(run_timed())
    return Timing.from_samples(samples, warmup_ms)


Item = TypeVar("Item")


def interleaved(items: Sequence[Item], time_one: Callable[[Item, TimingProtocol], Timing],
                protocol: TimingProtocol, after_each: Callable[[Item], None] | None = None,
                earlier: Callable[[Item], Sequence[Timing]] | None = None) -> list[Timing]:
    """Time every item in ``protocol.passes`` passes over the whole list (item 1, 2, …, 1, 2, …);
    each item's fastest pass. ``after_each`` is called after every single timing (progress).
    ``earlier`` gives the passes an item already has (a resumed session): only the rest are run."""
    per_pass = protocol.one_pass()
    timings: list[list[Timing]] = [list(earlier(item))[:protocol.passes] if earlier else [] for item in items]
    for number in range(protocol.passes):
        for item, kept in zip(items, timings):
            if len(kept) > number:
                continue
            kept.append(time_one(item, per_pass))
            if after_each is not None:
                after_each(item)
    return [Timing.fastest(kept) for kept in timings]


def host_timed(run_once: Callable[[], object]) -> Callable[[], float]:
    """Wrap a call that finishes its work before returning, timing it with the host clock."""
    def run_timed() -> float:
        t0 = time.perf_counter_ns()
        run_once()
        return (time.perf_counter_ns() - t0) / 1e6
    return run_timed
