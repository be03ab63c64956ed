"""The multi-device search against brute force over every kept set, and against solve_dp."""

import itertools
import math
import random
import re

import numpy as np
import pandas as pd
import pytest

from depthshrink.errors import DepthshrinkError, OutOfReach
from depthshrink.models.space import ChainSpace, ConvShape, Layer, Site
from depthshrink.search.budget import Budget
from depthshrink.search.multi import solve_multi
from depthshrink.search.pareto import non_dominated
from depthshrink.search.problem import SearchProblem
from depthshrink.search.run import MAX_BINS, ROUNDING_SHARE, solve_dp

# merged spans cost (factor x the sum of their layers): cheap on device 0, often dearer on 1
PS = 1e-9  # a picosecond in ms
FACTORS = [(0.3, 0.95), (0.7, 2.0), (0.4, 1.6)]


def _space(layers: int, cuts: list[int], fixed: set[int]) -> ChainSpace:
    shape = ConvShape(8, 8, 1, 1, 1, 4, 4)
    return ChainSpace({"name": "chain"}, [Layer(i, f"conv{i}", shape) for i in range(layers)],
                      [Site(p, "relu" if p in cuts else None, p not in fixed) for p in range(1, layers)])


def _problems(seed: int, devices: int) -> list[SearchProblem]:
    """A random chain (6-9 layers, random legal spans, random importance, some segments
    unscored, sometimes a fixed activation), one problem a device whose latencies disagree."""
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


def _fastest(spans: dict, a: int, b: int) -> float:
    """Stage 1 by recursion: the fastest split of [a, b) into spans."""
    if a == b:
        return 0.0
    return min((_fastest(spans, a, s) + t for (s, e), t in spans.items() if e == b and s >= a), default=math.inf)


def _every_network(problems, step=None):
    """(kept, chain cost per device, objective) for every allowed kept set. Cost: in grid steps
    (each segment rounded up) when ``step`` is given, else in whole picoseconds (span latencies
    rounded up to 1e-9 ms: exact here, the tables hold 4 decimals)."""
    first = problems[0]
    sites, layers = first.cut_positions, first.space.num_layers
    fixed = [s.position for s in first.space.sites if s.activation and not s.removable]
    inner = set(zip([0, *sites], [*sites, layers]))
    picoseconds = [{k: math.ceil(v / PS - 1e-3) for k, v in p.span_ms.items()} for p in problems]
    found = []
    for r in range(len(sites) + 1):
        for kept in itertools.combinations(sites, r):
            pairs = list(zip([0, *kept], [*kept, layers]))
            if not set(fixed) <= set(kept) or any(p not in first.importance and p not in inner for p in pairs):
                continue
            costs = []
            for d, p in enumerate(problems):
                total = 0.0
                for a, b in pairs:
                    total += (_fastest(picoseconds[d], a, b) if step is None else
                              math.ceil(_fastest(p.span_ms, a, b) / step[d] - 1e-9))
                costs.append(total)
            value = 0.0
            for pair in pairs:
                value += first.importance.get(pair, 0.0)
            found.append((kept, costs, value))
    return found


def _limit_ps(budget_ms: float, outside_ms: float) -> int:
    return math.floor((budget_ms - outside_ms) / PS + 1e-3)


def _check_plan(result, problems):
    """Each device's spans: its own fastest split of every segment, none across a kept activation."""
    for plan, p in zip(result.devices, problems):
        assert [x for s, e in plan.spans for x in range(s, e)] == list(range(p.space.num_layers))
        assert not any(s < k < e for s, e in plan.spans for k in result.kept_activations)
        assert plan.latency_ms == pytest.approx(p.fixed_ms + p.overhead_ms + sum(p.span_ms[s] for s in plan.spans))
        if result.chosen is not None:
            assert plan.latency_ms - p.fixed_ms - p.overhead_ms == pytest.approx(
                sum(_fastest(p.span_ms, a, b) for a, b in result.segments))
        assert plan.latency_ms <= plan.budget_ms + 1e-9


@pytest.mark.parametrize("devices", [1, 2, 3])
@pytest.mark.parametrize("seed", range(8))
def test_equals_brute_force_and_meets_every_budget(seed, devices):
    problems = _problems(seed, devices)
    networks = _every_network(problems)
    outside = [p.fixed_ms + p.overhead_ms for p in problems]
    rng = np.random.default_rng(seed)
    # the surface: every non-dominated network, exactly
    costs, values = np.array([c for _, c, _ in networks]), np.array([v for _, _, v in networks])
    expected = sorted((v, *(c * PS + o for c, o in zip(costs[k], outside))) for k, v in
                      zip(range(len(values)), values) if not any(
                          values[q] >= values[k] and (costs[q] <= costs[k]).all() and
                          (values[q] > values[k] or (costs[q] < costs[k]).any()) for q in range(len(values))))
    split_differs, solved = False, 0
    for trial in range(12):
        # from a little below the fastest achievable to a little above the original, per device
        low = [min(c[d] for _, c, _ in networks) * PS + outside[d] for d in range(devices)]
        budgets = [f + u * (p.original_ms - f) for f, p, u in zip(low, problems, rng.uniform(-0.05, 1.05, devices))]
        fits = [(k, c, v) for k, c, v in networks if all(x <= _limit_ps(b, o) for x, b, o in zip(c, budgets, outside))]
        try:
            result = solve_multi(problems, [Budget(latency_ms=b) for b in budgets])
        except OutOfReach as refusal:
            assert not fits
            said = [float(x) for x in re.findall(r"fastest achievable ([0-9.]+) ms", str(refusal))]
            assert said == pytest.approx(low, abs=5.1e-4)
            continue
        assert fits and result.objective == pytest.approx(max(v for _, _, v in fits), abs=1e-9)
        solved += 1
        _check_plan(result, problems)
        split_differs |= len({plan.spans for plan in result.devices}) > 1
        assert sorted(result.kept_activations + result.removed_activations) == problems[0].cut_positions
        for d, plan in enumerate(result.devices):
            alone = [v for _, c, v in networks if c[d] <= _limit_ps(budgets[d], outside[d])]
            assert plan.alone.objective == pytest.approx(max(alone), abs=1e-9)
            assert plan.alone.objective >= result.objective - 1e-9  # what meeting every budget costs
            assert plan.fastest_ms == pytest.approx(low[d])
    assert solved >= 3
    everything = solve_multi(problems, [Budget(speedup=1.0)] * devices)  # the original network
    assert everything.chosen is None and everything.objective == 0.0 and "original network" in everything.note
    assert everything.kept_activations == tuple(problems[0].cut_positions) and everything.removed_activations == ()
    assert all(len(plan.spans) == problems[0].space.num_layers for plan in everything.devices)
    surface = sorted((p.objective, *p.latency_ms) for p in everything.surface)
    assert len(surface) == len(expected) and np.allclose(surface, expected, atol=1e-9)
    assert split_differs or devices == 1  # the devices merge differently


@pytest.mark.parametrize("seed", range(6))
def test_grid_rounding_equals_brute_force_on_the_grid(seed):
    problems = _problems(seed, 2)
    outside = [p.fixed_ms + p.overhead_ms for p in problems]
    rng = np.random.default_rng(100 + seed)
    for trial in range(6):
        budgets = [o + f * (p.original_ms - o) for p, o, f in zip(problems, outside, rng.uniform(0.3, 0.99, 2))]
        steps = [max(ROUNDING_SHARE * b / (len(problems[0].cut_positions) + 1), (p.original_ms - o) / MAX_BINS)
                 for p, b, o in zip(problems, budgets, outside)]
        fits = [v for _, c, v in _every_network(problems, steps)
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


@pytest.mark.parametrize("seed", range(10))
def test_one_device_is_solve_dp(seed):
    problem = _problems(seed, 1)[0]
    for fraction in (0.4, 0.55, 0.7, 0.85, 1.0, 1.2):
        budget = Budget(latency_ms=problem.fixed_ms + fraction * (problem.original_ms - problem.fixed_ms))
        try:
            single = solve_dp(problem, budget)
        except OutOfReach:
            with pytest.raises(OutOfReach):
                solve_multi([problem], [budget], rounding="grid")
            continue
        multi = solve_multi([problem], [budget], rounding="grid")
        plan = multi.devices[0]
        assert multi.objective == pytest.approx(single.solution.importance, abs=1e-9)
        assert plan.latency_ms == pytest.approx(single.masks.extra["predicted_latency_ms"], abs=1e-6)
        assert plan.step_ms == single.step_ms and plan.budget_ms == single.budget_ms
        assert list(multi.kept_activations) == single.masks.kept_activations
        assert [list(s) for s in plan.spans] == [list(s) for s in single.masks.segments]
        assert (multi.note != "") == (single.note != "")
        exact = solve_multi([problem], [budget])  # no rounding: never worse than the grid
        assert exact.objective >= single.solution.importance - 1e-12 and exact.rounding.startswith("none")


def _disagreeing() -> list[SearchProblem]:
    """3 layers, activations at 1 and 2; [0, 2) merges cheaply on the CPU only, [1, 3) on the GPU
    only; removing both is not scored, so no network can be fast on both."""
    space = _space(3, [1, 2], set())
    importance = {(0, 2): -1.0, (1, 3): -2.0}
    cpu = {(0, 1): 1.0, (1, 2): 1.0, (2, 3): 1.0, (0, 2): 0.5, (1, 3): 2.5}
    gpu = {(0, 1): 0.1, (1, 2): 0.1, (2, 3): 0.1, (0, 2): 0.3, (1, 3): 0.05}
    return [SearchProblem(space, cpu, 0.5, 0.0, importance, {"device": "cpu"}),
            SearchProblem(space, gpu, 0.05, 0.0, importance, {"device": "gpu"})]


def test_each_device_merges_its_own_way_and_the_surface_is_written():
    problems = _disagreeing()
    result = solve_multi(problems, [Budget(latency_ms=3.6), Budget(latency_ms=0.25)])
    assert result.kept_activations == (1,) and result.removed_activations == (2,) and result.objective == -2.0
    assert result.segments == ((0, 1), (1, 3))
    cpu, gpu = result.devices
    assert cpu.spans == ((0, 1), (1, 2), (2, 3)) and cpu.latency_ms == pytest.approx(3.5)  # [1, 3) split
    assert gpu.spans == ((0, 1), (1, 3)) and gpu.latency_ms == pytest.approx(0.2)          # [1, 3) merged
    assert cpu.alone == result.surface[0] and cpu.alone.kept_activations == (1, 2)  # alone: the original fits
    assert gpu.alone.objective == -2.0 and (cpu.fastest_ms, gpu.fastest_ms) == pytest.approx((2.0, 0.2))
    frame = pd.DataFrame(result.surface_rows())
    assert list(frame.columns) == ["objective", "latency_ms:cpu", "latency_ms:gpu", "kept_activations",
                                   "removed_activations", "chosen"]
    assert frame["chosen"].sum() == 1 and frame.loc[frame["chosen"] == 1, "kept_activations"].item() == "1"
    assert sorted(frame["objective"]) == [-2.0, -1.0, 0.0]


def test_infeasible_together_although_each_alone_is_feasible():
    problems = _disagreeing()
    with pytest.raises(OutOfReach, match=r"each budget alone can be met, but no network meets them all at once: "
                                         r"cpu: budget 2\.050 ms, fastest achievable 2\.000 ms; "
                                         r"gpu: budget 0\.220 ms, fastest achievable 0\.200 ms$"):
        solve_multi(problems, [Budget(latency_ms=2.05), Budget(latency_ms=0.22)])
    with pytest.raises(OutOfReach, match=r"gpu: budget 0\.100 ms, fastest achievable 0\.200 ms \(out of reach even alone\)"):
        solve_multi(problems, [Budget(latency_ms=9.0), Budget(latency_ms=0.1)])


def test_mismatched_inputs_are_refused():
    problems = _disagreeing()
    with pytest.raises(DepthshrinkError, match="one latency budget a device: 2 table"):
        solve_multi(problems, [Budget(latency_ms=1.0)])
    other = SearchProblem(problems[0].space, problems[1].span_ms, 0.0, 0.0, {(0, 2): -3.0})
    with pytest.raises(DepthshrinkError, match="share one importance table"):
        solve_multi([problems[0], other], [Budget(latency_ms=9.0)] * 2)
    with pytest.raises(DepthshrinkError, match="rounding must be one of"):
        solve_multi(problems, [Budget(speedup=1.1)] * 2, rounding="coarse")


def test_non_dominated_keeps_each_distinct_state_once():
    for devices in (1, 2, 3):
        rng = np.random.default_rng(devices)
        cost = rng.integers(0, 6, (400, devices)).astype(float)
        value = rng.integers(0, 6, 400).astype(float)
        kept = non_dominated(cost, value)
        naive = {(v, *c) for c, v in zip(cost.tolist(), value.tolist()) if not any(
            w >= v and all(x <= y for x, y in zip(d, c)) and (w, *d) != (v, *c)
            for d, w in zip(cost.tolist(), value.tolist()))}
        assert sorted((value[k], *cost[k]) for k in kept) == sorted(naive)
        assert list(value[kept]) == sorted(value[kept], reverse=True)


@pytest.fixture(scope="module")
def shipped():
    """MobileNetV2-1.0 @224 on the shipped CPU table, seeded continuous importance (no ties)."""
    import torch

    import depthshrink
    from depthshrink.lut.table import LatencyTable
    from depthshrink.models import build_model
    from depthshrink.search.problem import build_problem

    model = build_model("mobilenet_v2").eval()
    space = depthshrink.trace(model, torch.zeros(1, 3, 224, 224), model_info={"name": "mobilenet_v2"})
    rng = np.random.default_rng(0)
    bounds = [0, *(s.position for s in space.sites if s.activation), space.num_layers]
    weight = {c: rng.uniform(0.1, 2.0) for c in bounds}
    importance = {(a, b): -sum(weight[c] for c in bounds if a < c < b) * rng.uniform(0.8, 1.3)
                  for i, a in enumerate(bounds) for b in bounds[i + 1:]}
    table = LatencyTable.read(str(depthshrink.__path__[0]) + "/lut/mobilenet_v2_224_b1_onnxruntime_cpu.csv")
    return build_problem(space, table.select(), importance)


def test_shipped_table_one_device_is_solve_dp_and_two_devices_meet_both(shipped):
    from dataclasses import replace

    for speedup in (1.1, 1.3, 1.5, 1.7):
        single = solve_dp(shipped, Budget(speedup=speedup))
        multi = solve_multi([shipped], [Budget(speedup=speedup)], rounding="grid")
        assert list(multi.kept_activations) == single.masks.kept_activations
        assert multi.objective == pytest.approx(single.solution.importance, abs=1e-9)
        assert multi.devices[0].latency_ms == pytest.approx(single.masks.extra["predicted_latency_ms"], abs=1e-6)
    # a second device on which merged kernels of 5x5 or more are dear (2x the CPU's), the rest cheap (0.6x)
    spans = shipped.space.spans
    dear = replace(shipped, span_ms={k: v * (2.0 if spans[k].shape.kernel_size >= 5 else 0.6)
                                     for k, v in shipped.span_ms.items()})
    result = solve_multi([shipped, dear], [Budget(speedup=1.5), Budget(speedup=1.5)])
    assert all(plan.latency_ms <= plan.budget_ms for plan in result.devices)
    assert result.devices[0].spans != result.devices[1].spans  # the same network, merged two ways
    assert result.objective <= min(plan.alone.objective for plan in result.devices) + 1e-12
    costs = np.array([p.latency_ms for p in result.surface])
    values = np.array([p.objective for p in result.surface])
    assert len(result.surface) > 50 and list(values) == sorted(values, reverse=True)
    for k in range(len(values)):  # nothing on the surface dominates another point of it
        others = np.delete(np.arange(len(values)), k)
        assert not ((values[others] >= values[k]) & (costs[others] <= costs[k]).all(axis=1)).any()
