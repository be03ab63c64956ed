"""One network for several devices: the most important one that meets a latency budget on each.

The problems (one a device: that device's span latencies, fixed part and call overhead) share one
chain space and one importance table. A solution is a set of kept activations, which cuts the
chain into linear segments, and *one* split of every linear segment into legal spans, common to
all devices; on device d it costs ``fixed_d + overhead_d + Σ`` its spans' latencies on d.

**Why one split for all devices.** What ships is one set of kept activations and one finetuned
checkpoint, and the weights depend on the split: before finetuning, all zero padding of each
merge span is moved onto the span's first conv (padding does not commute with bias), so the
trained network computes exactly what the merged one does only for the split it was trained
with. Two devices merging a segment along different splits cannot both be served exactly by one
checkpoint. So a segment's cost is no longer each device's own fastest split: stage 1 keeps, for
every segment, the *front* of its splits (the non-dominated latency vectors over devices, each
with its spans), and stage 2 extends the non-dominated (latency per device, objective) states by
each option of the next segment's front (:mod:`.pareto`). Both stages drop only states that
another matches or beats on every device, so the search is exact. With one device a front is the
fastest split: :func:`.run.solve_dp` is this search with one device. The surface may hold one kept set
several times, split differently: a trade-off between devices. Among networks of equal
objective within the budgets, the one with the most slack is chosen (lowest largest share of a
budget used); ``DevicePlan.alone`` is the best network for that device's budget alone.

``rounding="none"`` (default): no latency grid. Span latencies are taken in whole picoseconds
(1e-9 ms: the tables record 6-7 decimals of a ms, so nothing changes; a predicted or calibrated
latency is rounded up by under 1 ps), so every sum is an exact integer: float addition in another
order would make equal latencies differ by an ulp and put spurious points on the surface. The
latencies reported are these sums (plus the fixed part and overhead), so a network's reported
latency, given back as the budget, fits it (the table's own float sum differs by under 1 ps a span).
``rounding="grid"``: each segment's split latency rounded up to each device's grid, the step
chosen so that rounding costs at most 0.5% of each budget; latencies reported are then the
table's: each segment's spans, then the segments, added in chain order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..contracts.setting import setting_label
from ..errors import DepthshrinkError, OutOfReach
from .budget import Budget
from .pareto import ParetoDP, non_dominated, split_fronts
from .problem import SearchProblem
from .units import PICOSECOND_MS, ceil_ps, limit_picoseconds, picoseconds

ROUNDING = ("none", "grid")
ROUNDING_SHARE = 0.005  # rounding="grid": rounding may cost at most this share of the budget
MAX_BINS = 200_000      # a coarser grid beyond this (the rounding share then grows, and is stated)
SpanKey = tuple[int, int]


@dataclass(frozen=True)
class SurfacePoint:
    """A network on the trade-off surface: no other is as fast on every device and as important."""

    kept_activations: tuple[int, ...]
    spans: tuple[SpanKey, ...]        # its common split: the merged convs, on every device
    latency_ms: tuple[float, ...]  # predicted, one a device, fixed part and overhead included
    objective: float


@dataclass(frozen=True)
class DevicePlan:
    """The chosen network on one device: its latency, and the device alone."""

    label: str                                 # device, backend, precision, batch size
    budget_ms: float
    latency_ms: float                          # predicted, fixed part and overhead included
    original_ms: float
    fastest_ms: float | None                   # the lowest this device reaches with these scores
    span_latency_ms: tuple[float, ...]         # of MultiResult.spans, on this device
    step_ms: float | None                      # grid step, None: no rounding
    alone: SurfacePoint | None                 # the best network for this budget alone, None: none fits


@dataclass(frozen=True)
class MultiResult:
    """The chosen network: one kept set and one split (``spans``), the same on every device."""

    kept_activations: tuple[int, ...]
    removed_activations: tuple[int, ...]
    linear_segments: tuple[SpanKey, ...]          # [a, b) between kept activations
    spans: tuple[SpanKey, ...]                    # the common split: one merged conv each, on every device
    objective: float
    devices: tuple[DevicePlan, ...]
    surface: tuple[SurfacePoint, ...]          # every non-dominated network, highest objective first
    chosen: int                                # index in surface
    rounding: str                              # said in one line, for the masks file
    note: str = ""

    @property
    def segments(self) -> tuple[SpanKey, ...]:
        """The merge pieces, as a masks file's ``segments``: :attr:`spans`."""
        return self.spans

    def surface_rows(self) -> list[dict]:
        """The surface as rows for ``pandas.DataFrame(...).to_csv``: one latency column a device."""
        sites = len(self.kept_activations) + len(self.removed_activations)
        return [{"objective": p.objective,
                 **{f"latency_ms:{d.label}": ceil_ps(ms) for d, ms in zip(self.devices, p.latency_ms)},
                 "kept_activations": " ".join(map(str, p.kept_activations)),
                 "merged_spans": " ".join(f"{s}-{e}" for s, e in p.spans if e - s > 1),
                 "removed_activations": sites - len(p.kept_activations), "chosen": int(k == self.chosen)}
                for k, p in enumerate(self.surface)]


def solve_multi(problems: Sequence[SearchProblem], budgets: Sequence[Budget], rounding: str = "none") -> MultiResult:
    """The most important network, one split for all devices, meeting ``budgets[d]`` on
    ``problems[d]``'s device for every d.

    Raises :class:`OutOfReach` naming every device's fastest achievable latency when no network
    meets all budgets (and saying so when each budget alone could be met).
    """
    _check(problems, budgets, rounding)
    first = problems[0]
    layers, sites = first.space.num_layers, sorted(set(first.cut_positions))
    bounds = [0, *sites, layers]
    allowed = set(first.importance) | set(zip(bounds, bounds[1:]))
    pairs = [(a, b) for i, a in enumerate(bounds) for b in bounds[i + 1:] if (a, b) in allowed]
    budget_ms = [b.resolve_ms(p.original_ms) for p, b in zip(problems, budgets)]
    outside = [p.fixed_ms + p.overhead_ms for p in problems]
    if rounding == "grid":
        fronts = split_fronts([p.span_ms for p in problems], pairs)
        steps = [max(ROUNDING_SHARE * b / (len(sites) + 1), (max(b, p.original_ms) - o) / MAX_BINS)
                 for p, b, o in zip(problems, budget_ms, outside)]
        options, splits, segment_ms = {}, {}, {}
        for pair, (exact, split) in fronts.items():
            cost = np.ceil(exact / np.array(steps) - 1e-9).astype(np.int64)
            keep = non_dominated(cost, np.zeros(len(cost)))  # rounding up can make options equal
            options[pair], splits[pair], segment_ms[pair] = cost[keep], tuple(split[k] for k in keep), exact[keep]
        limits = [math.floor((b - o) / s + 1e-9) for b, o, s in zip(budget_ms, outside, steps)]
    else:  # whole picoseconds: integers, so every sum is exact whatever its order
        fronts = split_fronts([picoseconds(p.span_ms) for p in problems], pairs)
        steps = [None] * len(problems)
        options, splits = ({pair: c for pair, (c, _) in fronts.items()}, {pair: s for pair, (_, s) in fronts.items()})
        segment_ms = {pair: c * PICOSECOND_MS for pair, c in options.items()}
        limits = [limit_picoseconds(b, o) for b, o in zip(budget_ms, outside)]
    dp = ParetoDP(bounds, options, first.importance)
    surface = tuple(SurfacePoint(tuple(b for _, b, _ in pieces[:-1]),
                                 tuple(itertools.chain.from_iterable(splits[(a, b)][k] for a, b, k in pieces)),
                                 _latency(outside, [segment_ms[(a, b)][k] for a, b, k in pieces]), float(value))
                    for pieces, value in zip(dp.surface_segments(), dp.surface_value))
    labels = _labels(problems)
    fastest = [min((p.latency_ms[d] for p in surface), default=None) for d in range(len(problems))]
    alone = []
    for d in range(len(problems)):
        only = np.full(len(problems), np.inf)
        only[d] = limits[d]
        state = dp.best_within(only)
        alone.append(None if state is None else surface[state])
    state = dp.best_within(np.array(limits, dtype=float))
    if state is None:
        raise OutOfReach(_refusal(labels, budget_ms, fastest, alone))
    chosen = surface[state]
    note = "" if len(chosen.kept_activations) < len(sites) else (
        "every activation kept: no removal the importance scores allow pays for itself within the budget"
        + ("; no layers merged either: the original network" if len(chosen.spans) == layers else
           "; linear layers next to each other merged, which changes no output"))
    return _result(problems, labels, budget_ms, fastest, steps, alone, surface, chosen, state, note)


def _result(problems, labels, budget_ms, fastest, steps, alone, surface, chosen: SurfacePoint,
            index: int | None, note: str) -> MultiResult:
    devices = tuple(DevicePlan(labels[d], budget_ms[d], chosen.latency_ms[d], p.original_ms, fastest[d],
                               tuple(p.span_ms[s] for s in chosen.spans), steps[d], alone[d])
                    for d, p in enumerate(problems))
    rounding = ("none: no latency grid, span latencies in whole picoseconds (1e-9 ms) and sums exact"
                if steps[0] is None else
                "each segment's split rounded up to each device's grid (step_ms per device)")
    kept, bounds = set(chosen.kept_activations), [0, *chosen.kept_activations, problems[0].space.num_layers]
    removed = tuple(s for s in sorted(set(problems[0].cut_positions)) if s not in kept)
    return MultiResult(chosen.kept_activations, removed, tuple(zip(bounds, bounds[1:])), chosen.spans,
                       chosen.objective, devices, surface, index, rounding, note)


def chain_ms(span_ms: dict[SpanKey, float], spans: Sequence[SpanKey]) -> float:
    """The latency of ``spans``, added in chain order (the order every search adds them in)."""
    total = 0.0
    for span in spans:
        total += span_ms[span]
    return total


def _latency(outside: list[float], segment_ms: list[np.ndarray]) -> tuple[float, ...]:
    """A network's latency on every device: its segments' (each a vector, one entry a device)
    added in chain order, then the fixed part and overhead."""
    total = np.zeros(len(outside))
    for latency in segment_ms:
        total += latency
    return tuple((np.array(outside) + total).tolist())


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
        if set(p.span_ms) != set(first.span_ms):
            raise DepthshrinkError(f"device {d}'s problem has other legal spans: every device must time "
                                   "the same spans of one chain space")
        if p.importance != first.importance:
            raise DepthshrinkError(f"device {d}'s problem has other importance scores: "
                                   "every device must share one importance table")


def _labels(problems: Sequence[SearchProblem]) -> list[str]:
    labels = []
    for d, p in enumerate(problems, start=1):
        s = p.setting
        label = setting_label(s) or f"device {d}"
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
