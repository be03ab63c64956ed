"""The multi-device search: mismatched inputs refused, non_dominated at scale (chunks, four
devices), the shipped MobileNetV2 table (one device: solve_dp's answer; two: one split)."""

from dataclasses import replace

import numpy as np
import pytest
from test_multi_search import _check_plan, _disagreeing

import depthshrink
from depthshrink.errors import DepthshrinkError
from depthshrink.lut.table import LatencyTable
from depthshrink.search.budget import Budget
from depthshrink.search.multi import solve_multi
from depthshrink.search.pareto import non_dominated
from depthshrink.search.problem import SearchProblem, build_problem
from depthshrink.search.run import solve_dp


def test_mismatched_inputs_are_refused():
    problems = _disagreeing()
    with pytest.raises(DepthshrinkError, match="one latency budget a device: 2 table"):
        solve_multi(problems, [Budget(latency_ms=1.0)])
    other = SearchProblem(problems[0].space, problems[1].span_ms, 0.0, 0.0, {(0, 2): -3.0})
    with pytest.raises(DepthshrinkError, match="share one importance table"):
        solve_multi([problems[0], other], [Budget(latency_ms=9.0)] * 2)
    fewer = replace(problems[1], span_ms={k: v for k, v in problems[1].span_ms.items() if k != (1, 3)})
    with pytest.raises(DepthshrinkError, match="device 2's problem has other legal spans"):
        solve_multi([problems[0], fewer], [Budget(latency_ms=9.0)] * 2)
    with pytest.raises(DepthshrinkError, match="rounding must be one of"):
        solve_multi(problems, [Budget(speedup=1.1)] * 2, rounding="coarse")


@pytest.mark.parametrize("devices", [1, 2, 3, 4])
def test_non_dominated_keeps_each_distinct_state_once(devices):
    rng = np.random.default_rng(devices)
    for size in (40, 3000):  # 3000: more than a chunk
        cost, value = rng.integers(0, 3 + size // 100, (size, devices)), rng.integers(0, 6, size).astype(float)
        kept = non_dominated(cost, value)
        found = sorted((value[k], *cost[k]) for k in kept)
        assert len(set(found)) == len(found) and list(value[kept]) == sorted(value[kept], reverse=True)
        # every state is weakly dominated by a kept one; a kept one only by itself
        worse = (value[kept][None, :] >= value[:, None]) & (cost[kept][None] <= cost[:, None]).all(axis=2)
        assert worse.any(axis=1).all() and worse[kept].sum() == len(kept)


def test_shipped_table_one_device_is_solve_dp_and_two_devices_share_one_split():
    """MobileNetV2-1.0 @224 on the shipped CPU table, seeded continuous importance (no ties)."""
    import torch

    from depthshrink.models import build_model
    space = depthshrink.trace(build_model("mobilenet_v2").eval(), torch.zeros(1, 3, 224, 224),
                              model_info={"name": "mobilenet_v2"})
    rng = np.random.default_rng(0)
    bounds = [0, *(s.position for s in space.sites if s.activation), space.num_layers]
    weight = {c: rng.uniform(0.1, 2.0) for c in bounds}
    importance = {(a, b): -sum(weight[c] for c in bounds if a < c < b) * rng.uniform(0.8, 1.3)
                  for i, a in enumerate(bounds) for b in bounds[i + 1:]}
    table = LatencyTable.read(str(depthshrink.__path__[0]) + "/lut/mobilenet_v2_224_b1_onnxruntime_cpu.csv")
    cpu = build_problem(space, table.select(), importance)
    for speedup in (1.1, 1.3, 1.5, 1.7):
        single, multi = solve_dp(cpu, Budget(speedup=speedup)), solve_multi([cpu], [Budget(speedup=speedup)], "grid")
        assert list(multi.kept_activations) == single.masks.kept_activations
        assert [list(s) for s in multi.segments] == [list(s) for s in single.masks.segments]
        assert multi.objective == pytest.approx(single.solution.importance, abs=1e-9)
    # a second device on which merged kernels of 5x5 or more are dear (2x the CPU's), the rest cheap (0.6x)
    dear = replace(cpu, span_ms={k: v * (2.0 if space.spans[k].shape.kernel_size >= 5 else 0.6)
                                 for k, v in cpu.span_ms.items()})
    result = solve_multi([cpu, dear], [Budget(speedup=1.5), Budget(speedup=1.5)])
    _check_plan(result, [cpu, dear])
    assert result.objective <= min(plan.alone.objective for plan in result.devices) + 1e-12
    costs, values = np.array([p.latency_ms for p in result.surface]), np.array([p.objective for p in result.surface])
    assert len(result.surface) > 100 and list(values) == sorted(values, reverse=True)
    assert len({p.kept_activations for p in result.surface}) < len(result.surface)  # a kept set, split two ways
    over = (values[None] >= values[:, None]) & (costs[None] <= costs[:, None]).all(axis=2)  # [k, q]: q over k
    assert over.sum() == len(values)  # nothing on the surface dominates another point of it
