"""Latencies as the exact search adds them: whole picoseconds (1e-9 ms), each span rounded up.

The tables record 6-7 decimals of a millisecond, so a measured span is an exact number of
picoseconds; a predicted or calibrated one is rounded up by under 1 ps. Integers add exactly in any
order, so two networks of equal latency compare equal, and a budget given as a latency the search
printed (rounded up to the picosecond) fits the network it was printed for.
"""

from __future__ import annotations

import math

PICOSECOND_MS = 1e-9
PICOSECONDS_PER_MS = 10**9


def picoseconds(span_ms: dict) -> dict:
    """Span latencies (ms) in whole picoseconds, each rounded up."""
    return {k: math.ceil(v * PICOSECONDS_PER_MS - 1e-3) for k, v in span_ms.items()}


def limit_picoseconds(budget_ms: float, outside_ms: float) -> int:
    """What a budget leaves the chain after the fixed part and overhead, in whole picoseconds."""
    return math.floor((budget_ms - outside_ms) * PICOSECONDS_PER_MS + 1e-3)


def ceil_ps(latency_ms: float) -> float:
    """A latency to print, rounded up to the picosecond: given back as a budget, it fits."""
    return math.ceil(latency_ms * PICOSECONDS_PER_MS - 1e-6) / PICOSECONDS_PER_MS
