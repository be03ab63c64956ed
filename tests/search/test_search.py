"""The exact search: DP against brute force, budgets, the baseline, the CLI's refusals."""

import itertools
import json
import math
import random

import pandas as pd
import pytest
import torch

import depthshrink
from depthshrink import DepthshrinkError
from depthshrink.cli.main import main
from depthshrink.contracts.space import ChainSpace, ConvShape, Layer, Site
from depthshrink.errors import OutOfReach
from depthshrink.models import build_model
from depthshrink.search.budget import Budget, parse_budget
from depthshrink.search.dp import fastest_splits
from depthshrink.search.problem import SearchProblem
from depthshrink.search.run import solve_dp


def _random_chain(seed: int, layers: int):
    rng = random.Random(seed)
    spans = {}
    for s in range(layers):
        for e in range(s + 1, min(layers, s + 4) + 1):
            if e - s == 1 or rng.random() < 0.6:
                # merged spans are sometimes slower than their parts (kernel growth)
                spans[(s, e)] = round(rng.uniform(0.1, 1.0) * (e - s) * rng.choice([0.5, 0.8, 1.3]), 4)
    cuts = sorted(rng.sample(range(1, layers), rng.randint(2, layers - 1)))
    bounds = [0, *cuts, layers]
    importance = {(a, b): -round(rng.uniform(0, 2) * sum(1 for c in cuts if a < c < b), 4)
                  for i, a in enumerate(bounds) for b in bounds[i + 1:] if rng.random() < 0.8}
    return spans, cuts, importance


def _problem(layers, spans, cuts, importance) -> SearchProblem:
    shape = ConvShape(8, 8, 1, 1, 1, 4, 4)
    space = ChainSpace({"name": "chain"}, [Layer(i, f"conv{i}", shape) for i in range(layers)],
                       [Site(p, "relu" if p in cuts else None, True) for p in range(1, layers)])
    return SearchProblem(space, spans, 0.0, 0.0, importance)


def _brute_force(layers, spans, cuts, importance, budget):
    """Every kept set, each segment split its fastest way; the most important within ``budget``."""
    def best_split(a, b):
        if a == b:
            return 0.0
        options = [best_split(a, s) + latency for (s, e), latency in spans.items() if e == b and s >= a]
        return min(options, default=math.inf)

    best = None
    for r in range(len(cuts) + 1):
        for kept in itertools.combinations(cuts, r):
            bounds = [0, *kept, layers]
            pairs = list(zip(bounds, bounds[1:]))
            inner = {(a, b): 0.0 for a, b in zip([0, *cuts], [*cuts, layers])}
            if any((p not in importance and p not in inner) for p in pairs):
                continue
            latency = sum(best_split(a, b) for a, b in pairs)
            if latency <= budget + 1e-12:
                value = sum(importance.get(p, inner.get(p)) for p in pairs)
                best = value if best is None else max(best, value)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_dp_equals_brute_force_and_never_exceeds_the_budget(seed):
    layers = 7 + seed % 3
    spans, cuts, importance = _random_chain(seed, layers)
    problem = _problem(layers, spans, cuts, importance)
    total = problem.original_ms
    for fraction in (0.35, 0.5, 0.7, 0.9, 0.999):
        budget = fraction * total
        expected = _brute_force(layers, spans, cuts, importance, budget)
        try:
            solution = solve_dp(problem, Budget(latency_ms=budget)).solution
        except OutOfReach:
            assert expected is None
            continue
        assert solution.importance == pytest.approx(expected, abs=1e-9)
        assert solution.latency_ms <= budget + 1e-9
        assert solution.latency_ms == pytest.approx(sum(spans[s] for s in solution.spans))
        covered = [p for s, e in solution.spans for p in range(s, e)]
        assert covered == list(range(layers))
        assert all(not (s < c < e) for s, e in solution.spans for c in solution.cuts)


def test_stage_one_prefers_a_split_when_the_merged_span_is_slower():
    best, previous = fastest_splits(3, {(0, 1): 1.0, (1, 2): 1.0, (2, 3): 1.0, (0, 3): 5.0, (0, 2): 1.5})
    assert best[0, 3] == pytest.approx(2.5) and previous[0, 3] == 2


def test_frontier_is_monotone():
    spans, cuts, importance = _random_chain(3, 8)
    frontier = solve_dp(_problem(8, spans, cuts, importance), Budget(speedup=1.0)).frontier
    assert len(frontier) >= 2
    assert all(a.latency_ms < b.latency_ms and a.importance < b.importance for a, b in zip(frontier, frontier[1:]))


def test_a_budget_exactly_at_a_reachable_latency_is_met():
    """0.1 + 0.2 + 0.3 ms is 0.6000000000000001 ms in floats: a float check before the exact search refused
    a budget of 0.6 ms, saying the fastest achievable was 0.600 ms."""
    problem = _problem(3, {(0, 1): 0.1, (1, 2): 0.2, (2, 3): 0.3}, [1, 2], {})
    assert solve_dp(problem, Budget(latency_ms=0.6)).solution.latency_ms == pytest.approx(0.6, abs=1e-12)
    with pytest.raises(OutOfReach, match="fastest achievable is 0.600 ms"):
        solve_dp(problem, Budget(latency_ms=0.599999))


def test_budgets_at_or_above_the_original_are_searched_as_any_other():
    """A budget at or above the original network returned the original, though a removal that scores above
    zero fitted (a looser budget gave a worse, slower network than a tighter one), and ties were not the
    fastest."""
    problem = _problem(3, {(0, 1): 1.0, (1, 2): 1.0, (2, 3): 1.0, (0, 3): 2.0}, [1, 2], {(0, 3): 0.5})
    for budget_ms in (2.5, 3.0, 10.0):
        result = solve_dp(problem, Budget(latency_ms=budget_ms))
        assert (result.solution.importance, result.solution.latency_ms) == (0.5, 2.0)
        assert result.masks.removed_activations == [1, 2] and result.note == ""
    tie = _problem(3, {(0, 1): 1.0, (1, 2): 1.0, (2, 3): 1.0, (1, 3): 1.5}, [1], {(0, 3): -1.0})  # 1-3 is linear
    result = solve_dp(tie, Budget(speedup=1.0))
    assert (result.solution.importance, result.solution.latency_ms) == (0.0, 2.5)  # the faster of the two at 0
    assert "every activation kept" in result.note and "merged" in result.note


def test_a_frontier_latency_given_back_as_the_budget_selects_that_network(shipped, tmp_path):
    """Spans were rounded up to whole picoseconds one by one, the frontier printed their float sum (to 1e-6 ms):
    with a calibrated table (spans with sub-picosecond digits) a listed point's latency as the budget chose a
    point below it, or nothing at all."""
    folder, lut = shipped
    assert _search(folder, lut, "1.3x") == 0
    frontier = pd.read_csv(folder / "masks.frontier.csv")
    assert len(frontier) > 10
    for _, point in frontier.iloc[::3].iterrows():
        assert _search(folder, lut, f"{point['latency_ms']!r}ms", "--out", str(tmp_path / "m.json")) == 0
        masks = json.loads((tmp_path / "m.json").read_text())
        assert masks["objective"] == point["importance"]
        assert masks["predicted_latency_ms"] == pytest.approx(point["latency_ms"], abs=1e-6)


def test_depthshrinkers_objective_is_the_importance_of_the_network_it_returns(shipped, tmp_path):
    """Blocks linearised next to each other make one longer segment: the baseline reported the sum of each
    block's own score (-45 here) instead of that segment's (-529), so DP and baseline were compared unlike."""
    folder, lut = shipped
    space = depthshrink.ChainSpace.from_json(folder / "space.json")
    cuts = [0] + [s.position for s in space.sites if s.activation] + [space.num_layers]
    rows = [(a, b, -float(sum(1 for c in cuts if a < c < b)) ** 2) for i, a in enumerate(cuts) for b in cuts[i + 1:]]
    squared = tmp_path / "squared.csv"
    pd.DataFrame(rows, columns=["start", "end", "importance"]).to_csv(squared, index=False)
    common = ["search", "--space", str(folder / "space.json"), "--lut", lut, "--importance", str(squared),
              "--latency-budget", "1.25x"]
    for method in ("depthshrinker", "dp"):
        assert main([*common, "--method", method, "--out", str(tmp_path / f"{method}.json")]) == 0
        masks = json.loads((tmp_path / f"{method}.json").read_text())
        bounds = [0, *masks["kept_activations"], space.num_layers]
        removed = [sum(1 for c in cuts if a < c < b) for a, b in zip(bounds, bounds[1:])]
        assert masks["objective"] == -sum(r * r for r in removed)
    assert json.loads((tmp_path / "dp.json").read_text())["objective"] >= masks["objective"]


@pytest.mark.parametrize("text,expected", [
    ("5ms", Budget(latency_ms=5.0)), ("5 ms", Budget(latency_ms=5.0)), ("4500us", Budget(latency_ms=4.5)),
    ("0.005s", Budget(latency_ms=5.0)), ("1.6x", Budget(speedup=1.6)),
    ("1.6X", Budget(speedup=1.6)), ("1.6×", Budget(speedup=1.6)), ("450μs", Budget(latency_ms=0.45)),
    ("5 MS", Budget(latency_ms=5.0)),
])
def test_budget_forms(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text", ["5", "fast", "5 min", "-1ms", "1.6"])
def test_bad_budgets_list_the_accepted_forms(text):
    with pytest.raises(DepthshrinkError, match="5ms, 5 ms, 4500us, 0.005s"):
        parse_budget(text)
    with pytest.raises(DepthshrinkError, match="must be positive"):
        parse_budget("0ms")
    with pytest.raises(DepthshrinkError, match="for 80% of the original's latency write 1.25x"):
        parse_budget("0.8x")  # was a speed-up of 0.8: the original network came back


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The shipped MobileNetV2-1.0 @224 CPU table, its space, and importance = -1 per removed activation."""
    folder = tmp_path_factory.mktemp("search")
    model = build_model("mobilenet_v2").eval()
    space = depthshrink.trace(model, torch.zeros(1, 3, 224, 224), model_info={"name": "mobilenet_v2"})
    space.to_json(folder / "space.json")
    cuts = [0] + [s.position for s in space.sites if s.activation] + [space.num_layers]
    rows = [(a, b, -float(sum(1 for c in cuts if a < c < b)), "count") for i, a in enumerate(cuts) for b in cuts[i + 1:]]
    pd.DataFrame(rows, columns=["start", "end", "importance", "method"]).to_csv(folder / "imp.csv", index=False)
    lut = str(depthshrink.__path__[0]) + "/lut/mobilenet_v2_224_b1_onnxruntime_cpu.csv"
    return folder, lut


def _search(folder, lut, budget, *extra):
    return main(["search", "--space", str(folder / "space.json"), "--lut", lut, "--importance",
                 str(folder / "imp.csv"), "--latency-budget", budget, "--out", str(folder / "masks.json"), *extra])


def test_search_writes_masks_that_apply(shipped, capsys):
    folder, lut = shipped
    assert _search(folder, lut, "1.3x") == 0
    masks = json.loads((folder / "masks.json").read_text())
    assert masks["format"] == "depthshrink.masks/1" and masks["method"] == "dp"
    assert masks["predicted_latency_ms"] <= masks["latency_budget_ms"] == pytest.approx(masks["original_latency_ms"] / 1.3)
    assert masks["latency_discretisation"]["rounding"].startswith("none")  # exact sums, no latency grid
    space = depthshrink.ChainSpace.from_json(folder / "space.json")
    depthshrink.load_masks(folder / "masks.json").resolve(space)  # consistent with the space
    frontier = pd.read_csv(folder / "masks.frontier.csv")
    assert frontier["chosen"].sum() == 1 and frontier["latency_ms"].is_monotonic_increasing
    assert "kept activations" in capsys.readouterr().out
    model = build_model("mobilenet_v2").eval()
    merged = depthshrink.merge(depthshrink.apply_masks(model, space, depthshrink.load_masks(folder / "masks.json")).eval())
    assert sum(isinstance(m, torch.nn.Conv2d) for m in merged.modules()) == len(masks["segments"]) + 2
    assert _search(folder, lut, "1.3x", "--method", "depthshrinker") == 0
    baseline = json.loads((folder / "masks.json").read_text())
    assert not (folder / "masks.frontier.csv").exists()  # the DP's, of other masks, was left beside these
    assert baseline["method"] == "depthshrinker" and baseline["predicted_latency_ms"] <= baseline["latency_budget_ms"]
    assert masks["objective"] >= baseline["objective"]  # the exact search is never worse at equal budget


def test_search_refusals(shipped, capsys, tmp_path):
    folder, lut = shipped
    assert _search(folder, lut, "1us") == 3  # out of reach (status 3), refused at once: no huge latency grid
    assert "even with every activation removed the fastest achievable is" in capsys.readouterr().err
    assert _search(folder, lut, "100ms") == 0
    assert "every activation kept" in capsys.readouterr().out
    assert _search(folder, lut, "3ms", "--frontier", str(folder / "masks.json")) == 1  # it wrote the CSV over the masks
    assert "--out and --frontier both name" in capsys.readouterr().err
    assert _search(folder, lut, "3ms", "--method", "depthshrinker", "--frontier", str(folder / "f.csv")) == 1
    assert "top-k has no frontier" in capsys.readouterr().err
    bad = tmp_path / "imp.csv"
    pd.DataFrame([(2, 5, -1.0)], columns=["start", "end", "importance"]).to_csv(bad, index=False)
    assert main(["search", "--space", str(folder / "space.json"), "--lut", lut, "--importance", str(bad),
                 "--latency-budget", "3ms", "--out", str(tmp_path / "m.json")]) == 1
    assert "segment(s) that do not exist in this space" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()
    twice = pd.read_csv(folder / "imp.csv")  # two runs' tables concatenated: which score is meant?
    twice = pd.concat([twice, twice.head(1).assign(importance=twice["importance"].iloc[0] - 1)])
    twice.to_csv(bad, index=False)
    assert main(["search", "--space", str(folder / "space.json"), "--lut", lut, "--importance", str(bad),
                 "--latency-budget", "3ms", "--out", str(tmp_path / "m.json")]) == 1
    assert "scores 1 segment(s) more than once" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()
    free = pd.read_csv(folder / "imp.csv")  # a segment between two neighbouring activations removes none
    free.loc[free["importance"] == 0, "importance"] = -5.0  # was used: the search removed one to avoid it
    free.to_csv(bad, index=False)
    assert main(["search", "--space", str(folder / "space.json"), "--lut", lut, "--importance", str(bad),
                 "--latency-budget", "3ms", "--out", str(tmp_path / "m.json")]) == 1
    assert "nonzero score to 34 segment(s) that remove no activation, e.g. [0, 1)" in capsys.readouterr().err
    small = tmp_path / "space.json"
    model = build_model("mobilenet_v2").eval()
    depthshrink.trace(model, torch.zeros(1, 3, 192, 192), model_info={"name": "mobilenet_v2"}).to_json(small)
    assert main(["search", "--space", str(small), "--lut", lut, "--importance", str(folder / "imp.csv"),
                 "--latency-budget", "3ms", "--out", str(tmp_path / "m.json")]) == 1
    assert "not measured for this input size" in capsys.readouterr().err


def test_a_space_with_more_stem_convs_is_not_given_the_tables_fixed_part(shipped):
    """A space traced with --stem-convs 2 keeps one more conv out of the chain, so its fixed part
    is not the table's; it was looked up by the same model name and the search ran ~4% fast."""
    from depthshrink.lut.table import LatencyTable
    from depthshrink.search.problem import build_problem

    _, lut = shipped
    table = LatencyTable.read(lut).select()
    model = build_model("mobilenet_v2").eval()
    space = depthshrink.trace(model, torch.zeros(1, 3, 224, 224), model_info={"name": "mobilenet_v2"}, stem_convs=2)
    with pytest.raises(DepthshrinkError, match=r"no fixed-part row for mobilenet_v2@1x,1000cls,stem2 at 3x224x224 "
                                               r"\(it has: mobilenet_v2@1x,1000cls at 3x224x224\)"):
        build_problem(space, table, {})


def test_missing_rows_are_predicted_and_marked_or_refused(shipped, capsys, tmp_path):
    from depthshrink.lut.table import LatencyTable
    from depthshrink.search.problem import build_problem, read_importance

    folder, lut = shipped
    frame = pd.read_csv(lut)
    big = frame.index[(frame["op"] == "conv") & (frame["kernel_size"] >= 9)]
    thinned = tmp_path / "thinned.csv"
    frame.drop(index=big).to_csv(thinned, index=False)
    assert _search(folder, str(thinned), "2.2ms", "--no-predictor") == 1
    assert "lacks" in capsys.readouterr().err
    space = depthshrink.ChainSpace.from_json(folder / "space.json")
    problem = build_problem(space, LatencyTable.read(thinned).select(), read_importance(folder / "imp.csv", space))
    predicted = {k for k, v in problem.span_source.items() if v.startswith("predicted")}
    assert predicted == {k for k, span in space.spans.items() if span.shape.kernel_size >= 9}
    assert all(problem.span_ms[k] > 0 for k in predicted)
    assert _search(folder, str(thinned), "2.2ms") == 0


def test_of_equally_important_networks_the_one_with_most_slack_is_chosen():
    """Several devices: between [10, 1] and [1, 10] against limits [20, 10], the largest share of a
    limit used is 0.5 against 1.0: the first leaves every device slack."""
    import numpy as np

    from depthshrink.search.pareto import ParetoDP

    dp = ParetoDP([0, 2], {(0, 2): np.array([[10, 1], [1, 10]], dtype=np.int64)}, {})
    assert dp.surface_cost[dp.best_within(np.array([20.0, 10.0]))].tolist() == [10, 1]


def test_span_latencies_are_rounded_up_to_whole_picoseconds():
    from depthshrink.search.units import picoseconds

    assert picoseconds({(0, 1): 0.0123456789}) == {(0, 1): 12345679}
    assert picoseconds({(0, 1): 0.123456}) == {(0, 1): 123456000}


def test_depthshrinker_takes_a_budget_equal_to_the_originals_latency_without_removing_anything(shipped):
    """DepthShrinker's top-k compared a network's latency to the budget with <: a budget exactly at the
    original's latency merged blocks it did not need to."""
    from depthshrink.lut.table import LatencyTable
    from depthshrink.search.problem import build_problem, read_importance
    from depthshrink.search.run import _blocks_solution, solve_depthshrinker

    folder, lut = shipped
    space = ChainSpace.from_json(folder / "space.json")
    problem = build_problem(space, LatencyTable.read(lut).select(), read_importance(folder / "imp.csv", space))
    exact = _blocks_solution(problem, []).latency_ms + problem.fixed_ms + problem.overhead_ms
    assert solve_depthshrinker(problem, Budget(latency_ms=exact)).masks.removed_activations == []
