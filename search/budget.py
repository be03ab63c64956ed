"""Latency budgets as users write them: ``5ms``, ``5 ms``, ``4500us``, ``0.005s`` or ``1.6x``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import DepthshrinkError

ACCEPTED = "5ms, 5 ms, 4500us, 0.005s (absolute) or 1.6x (speed-up over the original network)"
_UNITS_MS = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "s": 1e3}  # micro sign and Greek mu
MAX_BUDGET = 1e9  # ms (11.6 days) or a speed-up: beyond any network, and within the search's picosecond integers


@dataclass(frozen=True)
class Budget:
    """An absolute latency (``latency_ms``) or a speed-up over the original (``speedup``)."""

    latency_ms: float | None = None
    speedup: float | None = None

    def resolve_ms(self, original_ms: float) -> float:
        return self.latency_ms if self.latency_ms is not None else original_ms / self.speedup

    def __str__(self) -> str:
        return f"{self.latency_ms:g} ms" if self.latency_ms is not None else f"{self.speedup:g}x"


def parse_budget(text: str) -> Budget:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|us|µs|μs|s|x|×)\s*", str(text).lower())
    if not match:
        raise DepthshrinkError(f"cannot read latency budget {text!r}: write it as {ACCEPTED}")
    value, unit = float(match.group(1)), match.group(2).replace("×", "x")
    if not value * _UNITS_MS.get(unit, 1.0) <= MAX_BUDGET:  # inf and beyond: no search's integers hold it
        raise DepthshrinkError(f"latency budget {text!r} is too large: at most {MAX_BUDGET:g} ms or {MAX_BUDGET:g}x")
    if value <= 0:
        raise DepthshrinkError(f"latency budget must be positive, got {text!r}")
    if unit == "x":
        if value < 1:  # "0.8x" read as a speed-up asks for a network slower than the original
            raise DepthshrinkError(f"latency budget {text!r} is a speed-up below 1 (a network slower than the "
                                   f"original): for {value:.0%} of the original's latency write {1 / value:.3g}x")
        return Budget(speedup=value)
    return Budget(latency_ms=value * _UNITS_MS[unit])
