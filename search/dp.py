"""The exact two-stage dynamic program (Kim et al., ICML 2023), in numpy only.

Stage 1: ``T_opt(a, b)``, the fastest split of the linear segment ``[a, b)`` into legal spans
(a shortest path over spans). Stage 2: over cut positions ``0 = c_0 < … < c_k = L`` (a kept
activation at each inner cut) and discretised latency, maximise ``Σ importance(c_i, c_i+1)``
subject to ``Σ T_opt(c_i, c_i+1) ≤ budget``. Segment latencies are rounded *up* to the grid,
so a solution that fits on the grid fits for real; one run gives the whole frontier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segment:
    start: int
    end: int
    spans: tuple[tuple[int, int], ...]  # the fastest split into legal spans
    latency_ms: float
    importance: float


@dataclass(frozen=True)
class Solution:
    segments: tuple[Segment, ...]
    latency_ms: float   # the chain's: Σ T_opt of the segments, exact
    importance: float

    @property
    def cuts(self) -> list[int]:
        return [s.start for s in self.segments[1:]]

    @property
    def spans(self) -> list[tuple[int, int]]:
        return [span for segment in self.segments for span in segment.spans]


def fastest_splits(num_layers: int, span_ms: dict[tuple[int, int], float]) -> tuple[np.ndarray, np.ndarray]:
    """Stage 1: ``T[a, b]`` (inf when unreachable) and the last span's start for every a < b."""
    best = np.full((num_layers + 1, num_layers + 1), np.inf)
    previous = np.full((num_layers + 1, num_layers + 1), -1, dtype=np.int64)
    ending = {}
    for (s, e), latency in span_ms.items():
        ending.setdefault(e, []).append((s, latency))
    for a in range(num_layers + 1):
        best[a, a] = 0.0
        for b in range(a + 1, num_layers + 1):
            for s, latency in ending.get(b, ()):
                if s >= a and best[a, s] + latency < best[a, b]:
                    best[a, b] = best[a, s] + latency
                    previous[a, b] = s
    return best, previous


def _split(previous: np.ndarray, a: int, b: int) -> tuple[tuple[int, int], ...]:
    spans = []
    while b > a:
        s = int(previous[a, b])
        spans.append((s, b))
        b = s
    return tuple(reversed(spans))


class TwoStageDP:
    """Solve once, then read any point of the importance–latency frontier.

    ``cut_positions`` are the inner positions where a kept activation may end a segment;
    ``importance`` maps ``(a, b)`` to the estimated quality change of making ``[a, b)`` linear
    (a pair absent from it is not allowed, unless no cut position lies strictly inside).
    """

    def __init__(self, num_layers: int, span_ms: dict[tuple[int, int], float], cut_positions: list[int],
                 importance: dict[tuple[int, int], float], step_ms: float, max_ms: float) -> None:
        self.num_layers, self.step_ms = num_layers, step_ms
        self.best, self.previous = fastest_splits(num_layers, span_ms)
        self.cuts = [0, *sorted(set(cut_positions)), num_layers]
        self.importance = dict(importance)
        for a, b in zip(self.cuts, self.cuts[1:]):  # nothing removed: no change
            self.importance.setdefault((a, b), 0.0)
        self.bins = int(math.ceil(max_ms / step_ms)) + 1
        self._solve()

    def _cost(self, a: int, b: int) -> int | None:
        latency = self.best[a, b]
        if not np.isfinite(latency):
            return None
        return int(math.ceil(latency / self.step_ms - 1e-9))

    def _solve(self) -> None:
        n = len(self.cuts)
        value = np.full((n, self.bins), -np.inf)
        value[0, :] = 0.0  # "latency at most t" semantics: monotone in t
        parent = np.full((n, self.bins), -1, dtype=np.int64)
        for j in range(1, n):
            b = self.cuts[j]
            for i in range(j):
                a = self.cuts[i]
                gain = self.importance.get((a, b))
                cost = self._cost(a, b)
                if gain is None or cost is None or cost >= self.bins:
                    continue
                candidate = np.full(self.bins, -np.inf)
                candidate[cost:] = value[i, :self.bins - cost] + gain
                better = candidate > value[j] + 1e-12
                value[j, better] = candidate[better]
                parent[j, better] = i
        self.value, self.parent = value, parent

    def best_within(self, chain_budget_ms: float) -> Solution | None:
        """The most important solution whose chain latency fits ``chain_budget_ms``, or None."""
        t = min(int(math.floor(chain_budget_ms / self.step_ms + 1e-9)), self.bins - 1)
        if t < 0 or not np.isfinite(self.value[-1, t]):
            return None
        target = self.value[-1, t]
        t = int(np.argmax(self.value[-1, :t + 1] >= target - 1e-12))  # ties: the fastest
        return self._backtrack(t)

    def _backtrack(self, t: int) -> Solution:
        segments, j = [], len(self.cuts) - 1
        while j > 0:
            i = int(self.parent[j, t])
            a, b = self.cuts[i], self.cuts[j]
            segments.append(Segment(a, b, _split(self.previous, a, b), float(self.best[a, b]),
                                    self.importance[(a, b)]))
            t -= self._cost(a, b)
            j = i
        segments.reverse()
        return Solution(tuple(segments), sum(s.latency_ms for s in segments), sum(s.importance for s in segments))

    def fastest_ms(self) -> float | None:
        """The lowest chain latency any allowed solution reaches (on the grid)."""
        finite = np.flatnonzero(np.isfinite(self.value[-1]))
        return None if finite.size == 0 else self._backtrack(int(finite[0])).latency_ms

    def frontier(self) -> list[Solution]:
        """Every solution where more latency buys more importance, fastest first."""
        points, last = [], -np.inf
        for t in range(self.bins):
            v = self.value[-1, t]
            if np.isfinite(v) and v > last + 1e-12:
                points.append(self._backtrack(t))
                last = v
        return points
