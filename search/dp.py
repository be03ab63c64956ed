"""Stage 1 of the two-stage dynamic program (Kim et al., ICML 2023), and what a solution is.

Stage 1: ``T_opt(a, b)``, the fastest split of the linear segment ``[a, b)`` into legal spans
(a shortest path over spans). Stage 2, over cut positions ``0 = c_0 < … < c_k = L`` (a kept
activation at each inner cut), maximises ``Σ importance(c_i, c_i+1)`` subject to
``Σ T_opt(c_i, c_i+1) ≤ budget``: Kim et al. discretise the latency; this project keeps the
non-dominated (latency, importance) states instead, exact (:mod:`.pareto`, :func:`.run.solve_dp`).
"""

from __future__ import annotations

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
