"""Both stages of the exact search for several devices at once, as non-dominated sets.

Stage 1 (:func:`split_fronts`): a linear segment ``[a, b)`` may be split into legal spans in many
ways, and with D devices no split need be fastest on all of them. Its *front* is the set of
non-dominated latency vectors (one entry a device) over its splits, each with one split that
reaches it: a shortest path over spans, keeping at every layer position the non-dominated
prefixes (a prefix slower on no device than another loses nothing: the rest adds the same to both).
With one device the front is :func:`.dp.fastest_splits`'s split, found in the same order.

Stage 2 (:class:`ParetoDP`): every cut position keeps the non-dominated states of the prefixes
``[0, c)`` ending at a kept activation: a cost vector and an objective (a D-dimensional grid of
latency bins would be too big). A state is extended by each option of the next segment's front;
a state no cheaper on any device and no more important than another is dropped, for the same
reason. The states at the chain's end are the whole trade-off surface.

Stage 2's costs are integers (whole picoseconds, or whole grid steps), so every sum is exact
whatever its order; stage 1 adds what it is given in chain order, as :func:`.dp.fastest_splits`
does (integers, or float latencies to be rounded up to a grid). numpy only.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

CHUNK = 1024  # states checked against each other at once, with three devices or more
PROBES = 64   # the last kept states, checked first
TIE = 1e-12  # objectives this close are equal
Pair = tuple[int, int]


def non_dominated(cost: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Indices of the states (rows of ``cost``, one column a device; ``value`` to maximise) that
    no other state weakly dominates, each distinct state once (the first given), highest value
    first, then lowest total cost.

    In that order a state's dominators all come before it (an equal value and no cost higher
    means a lower total, or the same state), so a state is dominated exactly when an earlier one
    costs no more on every device; a dominated earlier one is itself dominated by a kept one
    (transitivity), so comparing with the kept ones is enough.
    """
    order = np.lexsort((cost.sum(axis=1), -value))  # stable: the first of equal states comes first
    ordered = cost[order]
    keep = _staircase(ordered) if cost.shape[1] <= 2 else _chunked(ordered)
    return order[keep]


def _staircase(ordered: np.ndarray) -> list[int]:
    """One or two devices: the kept states' lowest second cost for each first cost, a staircase
    (first cost rising, second falling); a state is dominated when the step left of it is lower."""
    first = ordered[:, 0].tolist()
    second = ordered[:, 1].tolist() if ordered.shape[1] == 2 else [0] * len(first)
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
    """Three devices or more: each chunk against the kept states and its own earlier states; first
    against the last kept ones (the likeliest to dominate: just more important, cheapest), then
    the survivors against the rest. An earlier state of the chunk dominated by a kept one need
    not be compared: what it dominates, that kept one dominates too."""
    kept_cost = np.empty((0, ordered.shape[1]), dtype=ordered.dtype)
    kept: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    for start in range(0, len(ordered), CHUNK):
        block = ordered[start:start + CHUNK]
        alive = np.arange(len(block))
        for probe in (kept_cost[-PROBES:], kept_cost[:-PROBES]):
            alive = alive[~_dominated(block[alive], probe)]
        inside = np.tri(len(alive), k=-1, dtype=bool)  # [p, q]: q comes before p
        for d in range(ordered.shape[1]):
            inside &= block[None, alive, d] <= block[alive, None, d]
        fresh = alive[~inside.any(axis=1)]
        kept.append(start + fresh)
        kept_cost = np.concatenate([kept_cost, block[fresh]])
    return np.concatenate(kept)


def _dominated(block: np.ndarray, by: np.ndarray) -> np.ndarray:
    """Which rows of ``block`` some row of ``by`` costs no more on every device."""
    hit = np.ones((len(block), len(by)), dtype=bool)
    for d in range(block.shape[1]):
        hit &= by[None, :, d] <= block[:, None, d]
    return hit.any(axis=1)


def split_fronts(span_cost: Sequence[Mapping[Pair, float]],
                 pairs: Iterable[Pair]) -> dict[Pair, tuple[np.ndarray, tuple[tuple[Pair, ...], ...]]]:
    """Stage 1: for each ``(a, b)`` in ``pairs`` with a legal split, ``(cost, splits)``: the
    non-dominated split latencies (options x devices, lowest total first; sums in chain order)
    and for each one split, its spans. ``span_cost[d]`` maps every legal span to its cost on
    device d (the same spans for every device)."""
    keys = list(span_cost[0])  # the first table's order, as fastest_splits
    table = np.array([[c[k] for c in span_cost] for k in keys]).reshape(len(keys), len(span_cost))
    ending: dict[int, list[tuple[int, np.ndarray]]] = {}
    for row, (s, e) in enumerate(keys):
        ending.setdefault(e, []).append((s, table[row:row + 1]))
    wanted: dict[int, set[int]] = {}
    for a, b in pairs:
        wanted.setdefault(a, set()).add(b)
    fronts = {}
    for a, ends in sorted(wanted.items()):
        cost = {a: np.zeros((1, table.shape[1]), dtype=table.dtype)}
        splits: dict[int, list[tuple[Pair, ...]]] = {a: [()]}
        for e in range(a + 1, max(ends) + 1):
            parts = [(s, cost[s] + latency) for s, latency in ending.get(e, ()) if s >= a and s in cost]
            if not parts:
                continue
            joined = np.concatenate([c for _, c in parts])
            keep = non_dominated(joined, np.zeros(len(joined)))
            made = [split + ((s, e),) for s, _ in parts for split in splits[s]]
            cost[e], splits[e] = joined[keep], [made[k] for k in keep]
            if e in ends:
                fronts[(a, e)] = (cost[e], tuple(splits[e]))
    return fronts


class ParetoDP:
    """Stage 2: the non-dominated (cost per device, objective) states over cut positions.

    ``bounds`` are the chain's positions where a segment may start or end (0, the activation
    sites, the chain's length); ``options[(a, b)]`` is segment ``[a, b)``'s front (options x
    devices; absent or empty: no legal split); ``importance[(a, b)]`` its objective (a pair absent
    from it is not allowed, unless it joins neighbouring positions: it removes nothing, scores 0).
    """

    def __init__(self, bounds: list[int], options: Mapping[Pair, np.ndarray],
                 importance: Mapping[Pair, float]) -> None:
        self.bounds = list(bounds)
        self.importance = dict(importance)
        for a, b in zip(self.bounds, self.bounds[1:]):
            self.importance.setdefault((a, b), 0.0)
        devices = next(iter(options.values())).shape[1] if options else 1
        self.costs = [np.zeros((1, devices), dtype=np.int64)]  # per position: states x devices
        self.values = [np.zeros(1)]
        self.parents = [np.full((1, 3), -1)]  # per state: previous position, its state there, option
        for j in range(1, len(self.bounds)):
            b = self.bounds[j]
            costs, values, parents = [], [], []
            for i in range(j):
                gain, front = self.importance.get((self.bounds[i], b)), options.get((self.bounds[i], b))
                n = len(self.values[i])
                if gain is None or front is None or not len(front) or not n:
                    continue
                k = len(front)
                costs.append((self.costs[i][:, None, :] + front[None, :, :]).reshape(n * k, devices))
                values.append(np.repeat(self.values[i] + gain, k))
                parents.append(np.column_stack([np.full(n * k, i), np.repeat(np.arange(n), k),
                                                np.tile(np.arange(k), n)]))
            if not costs:
                self.costs.append(np.empty((0, devices), dtype=np.int64))
                self.values.append(np.empty(0))
                self.parents.append(np.empty((0, 3), dtype=np.int64))
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

    def surface_segments(self) -> list[list[tuple[int, int, int]]]:
        """For every surface state, its linear segments ``(a, b, option in its front)`` in chain
        order (all states walked back at once)."""
        found: list[list[tuple[int, int, int]]] = [[] for _ in self.surface_value]
        where, state = np.full(len(found), len(self.bounds) - 1), np.arange(len(found))
        for j in range(len(self.bounds) - 1, 0, -1):
            at = np.flatnonzero(where == j)
            previous, state[at], option = self.parents[j][state[at]].T
            for k, i, o in zip(at.tolist(), previous.tolist(), option.tolist()):
                found[k].append((self.bounds[i], self.bounds[j], o))
            where[at] = previous
        return [pieces[::-1] for pieces in found]
