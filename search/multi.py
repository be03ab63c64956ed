"""One network for several devices: the most important one that meets a latency budget on each.

The problems (one a device: that device's span latencies, fixed part and call overhead) share one
chain space and one importance table. A kept set of activations cuts the chain into linear
segments; on device d a segment costs ``T_d(a, b)``, *that device's* fastest split into legal
spans (stage 1, per device), and the network ``fixed_d + overhead_d + Σ T_d``.

**One network, merged per device.** What ships is one set of kept activations and one finetuned
checkpoint (the weights depend only on the kept activations); each device gets it merged along
its own fastest split of every segment, so a segment may be one 15x15 conv on the GPU and two
convs on the CPU (``DevicePlan.spans``). This is optimal on every device, and it keeps a
segment's cost on one device independent of the others, which makes the search exact. (One
split for all devices would be one model file, but a slower network on every device but one.)

Stage 2 keeps the non-dominated (latency per device, objective) states (:mod:`.pareto`).
``rounding="none"`` (default): no latency grid. Span latencies are taken in whole picoseconds
(1e-9 ms: the tables record 6-7 decimals of a ms, so nothing changes; a predicted latency is
rounded up by under 1 ps), so every sum is an exact integer: float addition in another order
would make equal latencies differ by an ulp and put spurious points on the surface.
``rounding="grid"``: each segment's latency rounded up to each device's grid, the step chosen as
:func:`.run.solve_dp` does (at most 0.5% of each budget); with one device, ``solve_dp``'s answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import DepthshrinkError, OutOfReach
from .budget import Budget
from .dp import _split, fastest_splits
from .pareto import ParetoDP
from .problem import SearchProblem
from .run import MAX_BINS, ROUNDING_SHARE

ROUNDING = ("none", "grid")
PICOSECOND_MS = 1e-9  # rounding="none": span latencies in whole picoseconds


@dataclass(frozen=True)
class SurfacePoint:
    """A network on the trade-off surface: no other is faster on every device and as important."""

    kept_activations: tuple[int, ...]
    latency_ms: tuple[float, ...]  # predicted, one a device, fixed part and overhead included
    objective: float


@dataclass(frozen=True)
class DevicePlan:
    """The chosen network on one device: its merge, its latency, and the device alone."""

    label: str                                 # device, backend, precision, batch size
    budget_ms: float
    latency_ms: float                          # predicted, fixed part and overhead included
    original_ms: float
    fastest_ms: float                          # the lowest this device reaches with these scores
    spans: tuple[tuple[int, int], ...]         # this device's fastest split of every segment
    span_latency_ms: tuple[float, ...]
    step_ms: float | None                      # grid step, None: no rounding
    alone: SurfacePoint | None                 # the best network for this budget alone, None: none fits


@dataclass(frozen=True)
class MultiResult:
    kept_activations: tuple[int, ...]
    removed_activations: tuple[int, ...]
    segments: tuple[tuple[int, int], ...]      # linear segments [a, b) between kept activations
    objective: float
    devices: tuple[DevicePlan, ...]
    surface: tuple[SurfacePoint, ...]          # every non-dominated network, highest objective first
    chosen: int | None                         # index in surface (None: the original network)
    rounding: str                              # said in one line, for the masks file
    note: str = ""

    def surface_rows(self) -> list[dict]:
        """The surface as rows for ``pandas.DataFrame(...).to_csv``: one latency column a device."""
        return [{"objective": p.objective,
                 **{f"latency_ms:{d.label}": round(ms, 6) for d, ms in zip(self.devices, p.latency_ms)},
                 "kept_activations": " ".join(map(str, p.kept_activations)),
                 "removed_activations": len(self.kept_activations) + len(self.removed_activations)
                 - len(p.kept_activations), "chosen": int(k == self.chosen)}
                for k, p in enumerate(self.surface)]


def solve_multi(problems: Sequence[SearchProblem], budgets: Sequence[Budget], rounding: str = "none") -> MultiResult:
    """The most important network meeting ``budgets[d]`` on ``problems[d]``'s device for every d.

    Raises :class:`OutOfReach` naming every device's fastest achievable latency when no network
    meets all budgets (and saying so when each budget alone could be met).
    """
    _check(problems, budgets, rounding)
    first = problems[0]
    layers, sites = first.space.num_layers, sorted(set(first.cut_positions))
    bounds = [0, *sites, layers]
    budget_ms = [b.resolve_ms(p.original_ms) for p, b in zip(problems, budgets)]
    outside = [p.fixed_ms + p.overhead_ms for p in problems]
    if rounding == "grid":
        stage1 = [fastest_splits(layers, p.span_ms) for p in problems]
        steps = [max(ROUNDING_SHARE * b / (len(sites) + 1), (max(b, p.original_ms) - o) / MAX_BINS)
                 for p, b, o in zip(problems, budget_ms, outside)]
        cost = [np.ceil(best / step - 1e-9) for (best, _), step in zip(stage1, steps)]
        limits = np.array([np.floor((b - o) / step + 1e-9) for b, o, step in zip(budget_ms, outside, steps)])
        segment, scale = [best for best, _ in stage1], 1.0  # the chain's ms: Σ segment * scale
    else:  # whole picoseconds: integers, so every sum is exact whatever its order
        stage1 = [fastest_splits(layers, {k: math.ceil(v / PICOSECOND_MS - 1e-3) for k, v in p.span_ms.items()})
                  for p in problems]
        steps = [None] * len(problems)
        cost = [best for best, _ in stage1]
        limits = np.array([math.floor((b - o) / PICOSECOND_MS + 1e-3) for b, o in zip(budget_ms, outside)])
        segment, scale = cost, PICOSECOND_MS
    dp = ParetoDP(bounds, cost, first.importance)
    labels = _labels(problems)

    def point(state: int) -> SurfacePoint:
        segments = dp.segments(state)
        return SurfacePoint(tuple(b for _, b in segments[:-1]),
                            tuple(_chain(ms, segments) * scale + o for ms, o in zip(segment, outside)),
                            float(dp.surface_value[state]))

    surface = tuple(point(k) for k in range(len(dp.surface_value)))
    fastest = [min((p.latency_ms[d] for p in surface), default=None) for d in range(len(problems))]
    alone = []
    for d in range(len(problems)):
        only = np.full(len(problems), np.inf)
        only[d] = limits[d]
        state = dp.best_within(only)
        alone.append(None if state is None else surface[state])
    if all(b >= p.original_ms for p, b in zip(problems, budget_ms)):
        singles = tuple((p, p + 1) for p in range(layers))  # every layer its own conv, as solve_dp
        per_device = [(singles, tuple(p.span_ms[s] for s in singles)) for p in problems]
        note = ("every budget is at or above its device's original network's predicted latency: "
                "the original network is returned, every activation kept")
        return _result(problems, labels, budget_ms, tuple(sites), list(zip(bounds, bounds[1:])), 0.0,
                       per_device, fastest, steps, alone, surface, None, note)
    state = dp.best_within(limits)
    if state is None:
        raise OutOfReach(_refusal(labels, budget_ms, fastest, alone))
    segments = dp.segments(state)
    per_device = []
    for p, (best, previous) in zip(problems, stage1):
        spans = tuple(s for a, b in segments for s in _split(previous, a, b))
        per_device.append((spans, tuple(p.span_ms[s] for s in spans)))
    return _result(problems, labels, budget_ms, surface[state].kept_activations, segments,
                   surface[state].objective, per_device, fastest, steps, alone, surface, state, "")


def _result(problems, labels, budget_ms, kept, segments, objective, per_device, fastest, steps, alone,
            surface, chosen, note) -> MultiResult:
    sites = sorted(set(problems[0].cut_positions))
    devices = []
    for d, p in enumerate(problems):
        spans, span_ms = per_device[d]
        chain = 0.0
        for latency in span_ms:
            chain += latency
        devices.append(DevicePlan(labels[d], budget_ms[d], p.fixed_ms + p.overhead_ms + chain, p.original_ms,
                                  fastest[d], spans, span_ms, steps[d], alone[d]))
    rounding = ("none: no latency grid, span latencies in whole picoseconds (1e-9 ms) and sums exact"
                if steps[0] is None else
                "each segment rounded up to each device's grid (step_ms per device)")
    return MultiResult(tuple(kept), tuple(s for s in sites if s not in set(kept)), tuple(segments),
                       objective, tuple(devices), surface, chosen, rounding, note)


def _chain(best: np.ndarray, segments: list[tuple[int, int]]) -> float:
    total = 0.0  # added in chain order, as the DP adds them
    for a, b in segments:
        total += float(best[a, b])
    return total


def _check(problems: Sequence[SearchProblem], budgets: Sequence[Budget], rounding: str) -> None:
    if not problems or len(problems) != len(budgets):
        raise DepthshrinkError(f"give one latency budget a device: {len(problems)} table(s), "
                               f"{len(budgets)} budget(s)")
    if rounding not in ROUNDING:
        raise DepthshrinkError(f"rounding must be one of {ROUNDING}, got {rounding!r}")
    first = problems[0]
    for d, p in enumerate(problems[1:], start=2):
        if p.space.num_layers != first.space.num_layers or p.cut_positions != first.cut_positions:
            raise DepthshrinkError(f"device {d}'s problem is for another chain space "
                                   f"({p.space.num_layers} layers, not {first.space.num_layers})")
        if p.importance != first.importance:
            raise DepthshrinkError(f"device {d}'s problem has other importance scores: "
                                   "every device must share one importance table")


def _labels(problems: Sequence[SearchProblem]) -> list[str]:
    labels = []
    for d, p in enumerate(problems, start=1):
        s = p.setting
        parts = [str(s[k]) for k in ("device", "backend", "precision") if s.get(k)]
        parts += [f"b{s['batch_size']}"] if s.get("batch_size") else []
        label = " ".join(parts) or f"device {d}"
        labels.append(label if label not in labels else f"{label} #{d}")
    return labels


def _refusal(labels, budget_ms, fastest, alone) -> str:
    if all(f is None for f in fastest):
        return "no network fits: no allowed network (no scored segments)"
    each = "; ".join(f"{label}: budget {b:.3f} ms, fastest achievable {f:.3f} ms"
                     + ("" if a is not None else " (out of reach even alone)")
                     for label, b, f, a in zip(labels, budget_ms, fastest, alone))
    together = (" each budget alone can be met, but no network meets them all at once:"
                if all(a is not None for a in alone) else "")
    return f"no network fits every budget:{together} {each}"
