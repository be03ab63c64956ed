"""The multi-device search against brute force over every kept set and every common split."""

import functools
import itertools
import math
import random
import re

import numpy as np
import pandas as pd
import pytest

from depthshrink.contracts.space import ChainSpace, ConvShape, Layer, Site
from depthshrink.errors import OutOfReach
from depthshrink.search.budget import Budget
from depthshrink.search.dp import _split, fastest_splits
from depthshrink.search.multi import MAX_BINS, ROUNDING_SHARE, solve_multi
from depthshrink.search.pareto import split_fronts
from depthshrink.search.problem import SearchProblem
from depthshrink.search.run import solve_dp

PS = 1e-9  # a picosecond in ms
FACTORS = [(0.3, 0.95), (0.7, 2.0), (0.4, 1.6)]  # a merged span: factor x its layers' sum, per device


def _space(layers: int, cuts: list[int], fixed: set[int]) -> ChainSpace:
    shape = ConvShape(8, 8, 1, 1, 1, 4, 4)
    return ChainSpace({"name": "chain"}, [Layer(i, f"conv{i}", shape) for i in range(layers)],
                      [Site(p, "relu" if p in cuts else None, p not in fixed) for p in range(1, layers)])


@functools.cache
def _problems(seed: int, devices: int) -> list[SearchProblem]:
    """A random chain (6-9 layers, random legal spans of 2-4 layers, random importance, some
    segments unscored, sometimes a fixed activation); one problem a device, latencies disagreeing."""
    rng = random.Random(seed)
    layers = 6 + seed % 4
    cuts = sorted(rng.sample(range(1, layers), rng.randint(2, layers - 1)))
    fixed = {rng.choice(cuts)} if seed % 3 == 0 else set()
    legal = [(s, e) for s in range(layers) for e in range(s + 2, min(layers, s + 4) + 1) if rng.random() < 0.7]
    bounds = [0, *cuts, layers]
    importance = {(a, b): -round(rng.uniform(0, 2) * sum(a < c < b for c in cuts), 4)
                  for i, a in enumerate(bounds) for b in bounds[i + 1:] if rng.random() < 0.8}
    space = _space(layers, cuts, fixed)
    problems = []
    for d in range(devices):
        single = {(p, p + 1): round(rng.uniform(0.1, 1.0), 4) for p in range(layers)}
        merged = {(s, e): round(rng.uniform(*FACTORS[d]) * sum(single[(p, p + 1)] for p in range(s, e)), 4)
                  for s, e in legal}
        problems.append(SearchProblem(space, {**single, **merged}, round(rng.uniform(0, 0.5), 3), 0.002 * d,
                                      dict(importance), {"device": f"dev{d}"}))
    return problems


def _splits(spans, a: int, b: int) -> list[tuple]:  # every split of [a, b) into legal spans
    if a == b:
        return [()]
    return [(s, *rest) for s in spans if s[0] == a and s[1] <= b for rest in _splits(spans, s[1], b)]


@functools.cache
def _every_network(seed: int, devices: int, steps: tuple | None = None):
    """(kept, spans, chain cost per device, objective) for every allowed kept set and every common
    split of its segments. Cost: whole picoseconds, or grid steps (each segment's sum rounded up)."""
    problems = _problems(seed, devices)
    first = problems[0]
    sites, layers = first.cut_positions, first.space.num_layers
    fixed = {s.position for s in first.space.sites if s.activation and not s.removable}
    inner = set(zip([0, *sites], [*sites, layers]))
    found = []
    for spans in _splits(sorted(first.span_ms), 0, layers):
        joins = [e for _, e in spans[:-1] if e in sites]
        for r in range(len(joins) + 1):
            for kept in itertools.combinations(joins, r):
                pairs = list(zip([0, *kept], [*kept, layers]))
                if not fixed <= set(kept) or any(p not in first.importance and p not in inner for p in pairs):
                    continue
                costs = [_cost(p, spans, pairs, None if steps is None else steps[d]) for d, p in enumerate(problems)]
                value = _chain(first.importance.get(pair, 0.0) for pair in pairs)
                found.append((kept, spans, costs, value))
    return found


def _chain(latencies) -> float:
    total = 0.0  # added in chain order, as the search adds them
    for latency in latencies:
        total += latency
    return total


def _cost(p: SearchProblem, spans, pairs, step: float | None) -> int:
    """Whole picoseconds, or each segment's latency rounded up to grid steps."""
    if step is None:
        return sum(math.ceil(p.span_ms[s] / PS - 1e-3) for s in spans)
    return sum(math.ceil(_chain(p.span_ms[s] for s in spans if a <= s[0] < b) / step - 1e-9) for a, b in pairs)


def _limit_ps(budget_ms: float, outside_ms: float) -> int:  # as the search: a picosecond's thousandth of slack
    return math.floor((budget_ms - outside_ms) / PS + 1e-3)


def _budgets(rng, trial: int, problems, costs: np.ndarray) -> list[float]:
    """A random network's latencies and a little more; every 4th trial the fastest or a little less."""
    outside = np.array([p.fixed_ms + p.overhead_ms for p in problems])
    aim = (costs.min(axis=0) if trial % 4 == 3 else costs[rng.integers(len(costs))]) * PS + outside
    return [a + u * abs(p.original_ms - a) for a, p, u in zip(aim, problems, rng.uniform(-0.05, 0.3, len(problems)))]


def _check_plan(result, problems):
    """One split for all devices: legal spans covering the chain, none across a kept activation,
    every device's latency its sum, within the budget."""
    assert result.segments == result.spans
    assert [x for s, e in result.spans for x in range(s, e)] == list(range(problems[0].space.num_layers))
    assert not any(s < k < e for s, e in result.spans for k in result.kept_activations)
    assert [b for a, b in result.linear_segments[:-1]] == list(result.kept_activations)
    for plan, p in zip(result.devices, problems):
        assert plan.span_latency_ms == tuple(p.span_ms[s] for s in result.spans)
        assert plan.latency_ms == pytest.approx(p.fixed_ms + p.overhead_ms + sum(plan.span_latency_ms), abs=1e-12)
        assert plan.latency_ms <= plan.budget_ms + 1e-9


@pytest.mark.parametrize("devices", [1, 2, 3])
@pytest.mark.parametrize("seed", range(8))
def test_equals_brute_force_over_kept_sets_and_common_splits(seed, devices):
    problems, networks = _problems(seed, devices), _every_network(seed, devices)
    costs, values = np.array([c for _, _, c, _ in networks]), np.array([v for *_, v in networks])
    outside = np.array([p.fixed_ms + p.overhead_ms for p in problems])
    low = costs.min(axis=0) * PS + outside
    if devices > 1:  # the devices' own fastest splits of some segment differ
        own = [fastest_splits(problems[0].space.num_layers, p.span_ms)[1] for p in problems]
        assert any(len({_split(o, 0, b) for o in own}) > 1 for b in range(2, problems[0].space.num_layers + 1))
    rng, solved = np.random.default_rng(seed), 0
    for trial in range(12):
        budgets = _budgets(rng, trial, problems, costs)
        limits = np.array([_limit_ps(b, o) for b, o in zip(budgets, outside)])
        fits = (costs <= limits).all(axis=1)
        try:
            result = solve_multi(problems, [Budget(latency_ms=b) for b in budgets])
        except OutOfReach as refusal:
            assert not fits.any()
            said = [float(x) for x in re.findall(r"fastest achievable ([0-9.]+) ms", str(refusal))]
            assert said == pytest.approx(low, abs=5.1e-4)
            continue
        assert result.objective == pytest.approx(values[fits].max(), abs=1e-9)
        _check_plan(result, problems)
        chosen = [k for k, (kept, spans, c, v) in enumerate(networks)
                  if kept == result.kept_activations and spans == result.spans]
        assert len(chosen) == 1 and fits[chosen[0]] and values[chosen[0]] == result.objective
        solved += 1
        for d, plan in enumerate(result.devices):
            assert plan.alone.objective == pytest.approx(values[costs[:, d] <= limits[d]].max(), abs=1e-9)
            assert plan.alone.objective >= result.objective - 1e-9  # what meeting every budget costs
            assert plan.fastest_ms == pytest.approx(low[d], abs=1e-9)
    assert solved >= 3
    # budgets at the original networks: searched as any other (the original was returned as it was, though
    # a network as important and faster, or more important, fitted), and the original itself fits them
    everything = solve_multi(problems, [Budget(speedup=1.0)] * devices)
    limits = np.array([_limit_ps(p.original_ms, o) for p, o in zip(problems, outside)])
    fits = (costs <= limits).all(axis=1)
    original = [k for k, (kept, spans, c, v) in enumerate(networks) if len(spans) == problems[0].space.num_layers]
    assert fits[original].all() and everything.objective == pytest.approx(values[fits].max(), abs=1e-9)
    _check_plan(everything, problems)
    weakly = (values[None] >= values[:, None]) & (costs[None] <= costs[:, None]).all(axis=2)  # [k, q]: q over k
    beaten = (weakly & ((values[None] > values[:, None]) | (costs[None] < costs[:, None]).any(axis=2))).any(axis=1)
    expected = sorted({(values[k], *(costs[k] * PS + outside)) for k in np.flatnonzero(~beaten)})
    surface = sorted((p.objective, *p.latency_ms) for p in everything.surface)
    assert len(surface) == len(expected) and np.allclose(surface, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_grid_rounding_equals_brute_force_on_the_grid(seed):
    problems, outside = _problems(seed, 2), [p.fixed_ms + p.overhead_ms for p in _problems(seed, 2)]
    rng, solved = np.random.default_rng(100 + seed), 0
    for trial in range(8):
        budgets = _budgets(rng, trial, problems, np.array([c for _, _, c, _ in _every_network(seed, 2)]))
        steps = tuple(max(ROUNDING_SHARE * b / (len(problems[0].cut_positions) + 1), (p.original_ms - o) / MAX_BINS)
                      for p, b, o in zip(problems, budgets, outside))
        fits = [v for _, _, c, v in _every_network(seed, 2, steps)
                if all(x <= math.floor((b - o) / s + 1e-9) for x, b, o, s in zip(c, budgets, outside, steps))]
        try:
            result = solve_multi(problems, [Budget(latency_ms=b) for b in budgets], rounding="grid")
        except OutOfReach:
            assert not fits
            continue
        assert result.objective == pytest.approx(max(fits), abs=1e-9)
        assert [plan.step_ms for plan in result.devices] == pytest.approx(steps)
        assert "rounded up" in result.rounding
        _check_plan(result, problems)
        solved += 1
    assert solved >= 3


@pytest.mark.parametrize("seed", range(10))
def test_one_device_is_solve_dp(seed):
    problem, layers = _problems(seed, 1)[0], _problems(seed, 1)[0].space.num_layers
    best, previous = fastest_splits(layers, problem.span_ms)  # a one-device front: the fastest split
    pairs = [(start, end) for start in range(layers) for end in range(start + 1, layers + 1)]
    for (a, b), (cost, splits) in split_fronts([problem.span_ms], pairs).items():
        assert cost.tolist() == [[best[a, b]]] and splits == (_split(previous, a, b),)
    for fraction in (0.4, 0.55, 0.7, 0.85, 1.0, 1.2):
        budget = Budget(latency_ms=problem.fixed_ms + fraction * (problem.original_ms - problem.fixed_ms))
        try:
            single = solve_dp(problem, budget)
        except OutOfReach:
            with pytest.raises(OutOfReach):
                solve_multi([problem], [budget])
            continue
        multi = solve_multi([problem], [budget])
        plan = multi.devices[0]  # as the masks file solve_dp writes
        assert multi.objective == pytest.approx(single.solution.importance, abs=1e-9)
        assert plan.latency_ms == pytest.approx(single.masks.extra["predicted_latency_ms"], abs=1e-6)
        assert plan.budget_ms == single.budget_ms
        assert list(multi.kept_activations) == single.masks.kept_activations
        assert [list(s) for s in multi.segments] == [list(s) for s in single.masks.segments]
        assert (multi.note != "") == (single.note != "")
        assert multi.rounding.startswith("none")
        try:  # a latency grid rounds each segment up: never better, sometimes out of reach
            assert solve_multi([problem], [budget], rounding="grid").objective <= multi.objective + 1e-12
        except OutOfReach:
            pass
        exact = multi
        twice = solve_multi([problem, problem], [budget, budget])  # two equal devices: one
        assert twice.objective == exact.objective and twice.spans == exact.spans


def test_own_splits_would_claim_more_than_one_network_gives():
    """Each device merging along its own fastest split (which one checkpoint cannot serve) would
    claim at least the common-split optimum, and often more: the constraint binds."""
    binds = 0
    for seed, devices in itertools.product(range(8), (2, 3)):
        problems, networks = _problems(seed, devices), _every_network(seed, devices)
        layers, rng = problems[0].space.num_layers, np.random.default_rng(seed)
        own = [fastest_splits(layers, {k: math.ceil(v / PS - 1e-3) for k, v in p.span_ms.items()})[0] for p in problems]
        claims = {kept: ([sum(o[a, b] for a, b in zip([0, *kept], [*kept, layers])) for o in own], value)
                  for kept, _, _, value in networks}
        for trial in range(12):
            budgets = _budgets(rng, trial, problems, np.array([c for _, _, c, _ in networks]))
            limits = [_limit_ps(b, p.fixed_ms + p.overhead_ms) for b, p in zip(budgets, problems)]
            claim = max((v for c, v in claims.values() if all(x <= y for x, y in zip(c, limits))), default=-math.inf)
            try:
                objective = solve_multi(problems, [Budget(latency_ms=b) for b in budgets]).objective
            except OutOfReach:
                objective = -math.inf
            binds += claim > objective
            assert claim >= objective
    assert binds == 56  # of 192


def _two_ways() -> list[SearchProblem]:
    """6 layers, one activation at 3. [0, 3) merges as (0, 2) + (2, 3) on the CPU (2.0 ms; 3.8 on
    the GPU) or as (0, 1) + (1, 3) on the GPU (2.0 ms; 2.8 on the CPU); [3, 6) does not merge;
    removing the activation allows one conv (0, 6), 4.0 ms on both."""
    space = _space(6, [3], set())
    singles = {(p, p + 1): 1.0 for p in range(6)}
    cpu = {**singles, (0, 2): 1.0, (1, 3): 1.8, (0, 6): 4.0}
    gpu = {**singles, (0, 2): 2.8, (1, 3): 1.0, (0, 6): 4.0}
    return [SearchProblem(space, cpu, 0.5, 0.0, {(0, 6): -1.0}, {"device": "cpu"}),
            SearchProblem(space, gpu, 0.5, 0.0, {(0, 6): -1.0}, {"device": "gpu"})]


def test_one_split_for_all_devices_costs_what_own_splits_would_not():
    problems = _two_ways()
    own = [fastest_splits(6, p.span_ms) for p in problems]
    assert [_split(previous, 0, 3) for _, previous in own] == [((0, 2), (2, 3)), ((0, 1), (1, 3))]
    assert [0.5 + best[0, 3] + best[3, 6] for best, _ in own] == [5.5, 5.5]  # each its own split: both fit
    result = solve_multi(problems, [Budget(latency_ms=5.5)] * 2)
    assert result.objective == -1.0 and result.kept_activations == () and result.spans == ((0, 6),)
    assert [plan.latency_ms for plan in result.devices] == [4.5, 4.5]
    assert [plan.alone.objective for plan in result.devices] == [0.0, 0.0]  # alone, the activation stays
    assert [plan.alone.latency_ms for plan in result.devices] == [pytest.approx((5.5, 7.3)), pytest.approx((6.3, 5.5))]
    relaxed = solve_multi(problems, [Budget(latency_ms=6.4), Budget(latency_ms=5.5)])
    assert relaxed.objective == 0.0 and relaxed.spans == ((0, 1), (1, 3), (3, 4), (4, 5), (5, 6))
    assert [plan.latency_ms for plan in relaxed.devices] == pytest.approx([6.3, 5.5])
    frame = pd.DataFrame(relaxed.surface_rows())
    assert list(frame.columns) == ["objective", "latency_ms:cpu", "latency_ms:gpu", "kept_activations",
                                   "merged_spans", "removed_activations", "chosen"]
    assert frame.values.tolist() == [[0.0, 6.3, 5.5, "3", "1-3", 0, 1], [0.0, 5.5, 7.3, "3", "0-2", 0, 0],
                                     [-1.0, 4.5, 4.5, "", "0-6", 1, 0]]  # one kept set, two splits


def _disagreeing() -> list[SearchProblem]:
    """3 layers, activations at 1 and 2; [0, 2) merges cheaply on the CPU only, [1, 3) on the GPU
    only; removing both is not scored, so no network can be fast on both."""
    space, importance = _space(3, [1, 2], set()), {(0, 2): -1.0, (1, 3): -2.0}
    cpu = {(0, 1): 1.0, (1, 2): 1.0, (2, 3): 1.0, (0, 2): 0.5, (1, 3): 2.5}
    gpu = {(0, 1): 0.1, (1, 2): 0.1, (2, 3): 0.1, (0, 2): 0.3, (1, 3): 0.05}
    return [SearchProblem(space, cpu, 0.5, 0.0, importance, {"device": "cpu"}),
            SearchProblem(space, gpu, 0.05, 0.0, importance, {"device": "gpu"})]


def test_infeasible_together_although_each_alone_is_feasible():
    problems = _disagreeing()
    surface = solve_multi(problems, [Budget(latency_ms=9.0)] * 2).surface
    assert [(p.objective, p.spans) for p in surface] == [(0.0, ((0, 1), (1, 2), (2, 3))), (-1.0, ((0, 2), (2, 3))),
                                                         (-2.0, ((0, 1), (1, 3)))]
    assert [p.latency_ms for p in surface] == [pytest.approx(x) for x in ((3.5, 0.35), (2.0, 0.45), (4.0, 0.2))]
    # each device merging [1, 3) its own way would meet 3.6 ms (split) and 0.25 ms (merged): not one network
    for budgets, together in (((3.6, 0.25), "3.600 ms, fastest achievable 2.000 ms; gpu: budget 0.250"),
                              ((2.05, 0.22), "2.050 ms, fastest achievable 2.000 ms; gpu: budget 0.220")):
        with pytest.raises(OutOfReach, match=r"each budget alone can be met, but no network meets them all at once: "
                                             rf"cpu: budget {together} ms, fastest achievable 0\.200 ms$"):
            solve_multi(problems, [Budget(latency_ms=b) for b in budgets])
    with pytest.raises(OutOfReach, match=r"gpu: budget 0\.100 ms, fastest achievable 0\.200 ms \(out of reach even alone"):
        solve_multi(problems, [Budget(latency_ms=9.0), Budget(latency_ms=0.1)])


@pytest.mark.parametrize("seed", range(8))
def test_solve_dp_reaches_every_point_of_its_own_frontier(seed):
    """A budget equal to a frontier network's latency gets that network's objective (the search
    rounded each segment up to a grid of 0.5% of the budget: it missed networks within 0.5% under the
    budget, and refused a budget its own frontier reached)."""
    problem = _problems(seed, 1)[0]
    frontier = solve_dp(problem, Budget(speedup=1.0)).frontier
    assert [s.latency_ms for s in frontier] == sorted(s.latency_ms for s in frontier)
    assert all(a.importance < b.importance for a, b in zip(frontier, frontier[1:]))
    outside = problem.fixed_ms + problem.overhead_ms
    for point in frontier:
        if point.latency_ms + outside >= problem.original_ms:
            continue  # at the original's latency the original is returned
        result = solve_dp(problem, Budget(latency_ms=point.latency_ms + outside))
        assert result.solution.importance == pytest.approx(point.importance, abs=1e-9)
        assert result.solution.latency_ms <= point.latency_ms + 1e-12
