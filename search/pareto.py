"""Stage 2 of the two-stage DP for several devices at once: non-dominated states, exactly.

With one device, :class:`.dp.TwoStageDP` keeps for every cut position and latency bin the best
objective. With D devices a D-dimensional grid of bins is too big (about 7,000 bins a device at
0.5% rounding), so every cut position keeps instead the *set of non-dominated states*: a prefix
``[0, c)`` ending at a kept activation is a vector of costs (one a device) and an objective, and
a prefix no cheaper on any device and no more important than another can never start a better
network (whatever follows adds the same to both), so dropping it loses nothing. The states at the
chain's end are the whole trade-off surface; :meth:`ParetoDP.best_within` reads any point of it.

Costs are what the caller passes: exact float latencies (no rounding at all) or latencies in
whole grid steps (rounded up). numpy only.
"""

from __future__ import annotations

import bisect

import numpy as np

CHUNK = 512  # states checked against each other at once, with three devices or more
TIE = 1e-12  # objectives this close are equal (as in TwoStageDP)


def non_dominated(cost: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Indices of the states (rows of ``cost``, one column a device; ``value`` to maximise) that
    no other state weakly dominates, each distinct state once, highest value first.

    Sorted by value (descending), then by cost lexicographically, a state is dominated exactly
    when an earlier one costs no more on every device; a dominated earlier one is itself
    dominated by a kept one (transitivity), so comparing with the kept ones is enough.
    """
    order = np.lexsort((*cost.T[::-1], -value))
    ordered = cost[order]
    keep = _staircase(ordered) if cost.shape[1] <= 2 else _chunked(ordered)
    return order[keep]


def _staircase(ordered: np.ndarray) -> list[int]:
    """One or two devices: the kept states' lowest second cost for each first cost, a staircase
    (first cost rising, second falling); a state is dominated when the step left of it is lower."""
    first = ordered[:, 0].tolist()
    second = ordered[:, 1].tolist() if ordered.shape[1] == 2 else [0.0] * len(first)
    xs: list[float] = []
    ys: list[float] = []
    kept = []
    for k, (x, y) in enumerate(zip(first, second)):
        at = bisect.bisect_right(xs, x)
        if at and ys[at - 1] <= y:
            continue
        end = at
        while end < len(xs) and ys[end] >= y:
            end += 1
        xs[at:end], ys[at:end] = [x], [y]
        kept.append(k)
    return kept


def _chunked(ordered: np.ndarray) -> np.ndarray:
    """Three devices or more: each chunk against the kept states and its own earlier states."""
    kept_cost = np.empty((0, ordered.shape[1]))
    kept: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    for start in range(0, len(ordered), CHUNK):
        block = ordered[start:start + CHUNK]
        outside = np.ones((len(block), len(kept_cost)), dtype=bool)
        inside = np.tri(len(block), k=-1, dtype=bool)  # [p, q]: q comes before p
        for d in range(ordered.shape[1]):
            outside &= kept_cost[None, :, d] <= block[:, None, d]
            inside &= block[None, :, d] <= block[:, None, d]
        fresh = np.flatnonzero(~(outside.any(axis=1) | inside.any(axis=1)))
        kept.append(start + fresh)
        kept_cost = np.concatenate([kept_cost, block[fresh]])
    return np.concatenate(kept)


class ParetoDP:
    """The non-dominated (cost per device, objective) states over cut positions.

    ``bounds`` are the chain's positions where a segment may start or end (0, the activation
    sites, the chain's length); ``cost[d][a, b]`` is segment ``[a, b)``'s cost on device d
    (``inf``: it has no legal split); ``importance[(a, b)]`` its objective (a pair absent from
    it is not allowed, unless it joins neighbouring positions: then it removes nothing and scores 0).
    """

    def __init__(self, bounds: list[int], cost: list[np.ndarray], importance: dict[tuple[int, int], float]) -> None:
        self.bounds = list(bounds)
        self.importance = dict(importance)
        for a, b in zip(self.bounds, self.bounds[1:]):
            self.importance.setdefault((a, b), 0.0)
        devices = len(cost)
        self.costs = [np.zeros((1, devices))]   # per position: states x devices
        self.values = [np.zeros(1)]
        self.parents = [np.full((1, 2), -1)]     # per state: (previous position, its state there)
        for j in range(1, len(self.bounds)):
            b = self.bounds[j]
            costs, values, parents = [], [], []
            for i in range(j):
                a = self.bounds[i]
                gain = self.importance.get((a, b))
                segment = np.array([c[a, b] for c in cost], dtype=float)
                if gain is None or not np.isfinite(segment).all() or len(self.values[i]) == 0:
                    continue
                costs.append(self.costs[i] + segment)
                values.append(self.values[i] + gain)
                parents.append(np.column_stack([np.full(len(values[-1]), i), np.arange(len(values[-1]))]))
            if not costs:
                self.costs.append(np.empty((0, devices)))
                self.values.append(np.empty(0))
                self.parents.append(np.empty((0, 2), dtype=np.int64))
                continue
            joined_cost, joined_value = np.concatenate(costs), np.concatenate(values)
            keep = non_dominated(joined_cost, joined_value)
            self.costs.append(joined_cost[keep])
            self.values.append(joined_value[keep])
            self.parents.append(np.concatenate(parents)[keep])

    @property
    def surface_cost(self) -> np.ndarray:
        """The chain's non-dominated states: costs (states x devices), highest objective first."""
        return self.costs[-1]

    @property
    def surface_value(self) -> np.ndarray:
        return self.values[-1]

    def best_within(self, limits: np.ndarray) -> int | None:
        """The surface state of highest objective whose cost fits ``limits`` on every device, or
        None; among ties, the one with the most slack (lowest largest share of a limit used)."""
        limits = np.asarray(limits, dtype=float)
        fits = (self.surface_cost <= limits).all(axis=1)
        if not fits.any():
            return None
        best = self.surface_value[fits].max()
        tied = np.flatnonzero(fits & (self.surface_value >= best - TIE))
        share = (self.surface_cost[tied] / np.maximum(limits, np.finfo(float).tiny)).max(axis=1)
        return int(tied[np.argmin(share)])

    def segments(self, state: int) -> list[tuple[int, int]]:
        """The linear segments ``[a, b)`` of a surface state, in chain order."""
        found, j = [], len(self.bounds) - 1
        while j > 0:
            i, state = (int(x) for x in self.parents[j][state])
            found.append((self.bounds[i], self.bounds[j]))
            j = i
        return found[::-1]
