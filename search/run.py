"""Run the search: the exact DP (default) or DepthShrinker's top-k baseline, to a masks file."""

from __future__ import annotations

from dataclasses import dataclass

from ..contracts.masks import Masks, per_block_masks
from ..contracts.setting import SETTING_COLUMNS
from ..errors import OutOfReach
from .budget import Budget
from .dp import Segment, Solution, fastest_splits
from .multi import SurfacePoint, chain_ms, solve_multi
from .problem import SearchProblem
from .units import PICOSECOND_MS, limit_picoseconds, picoseconds


@dataclass
class SearchResult:
    masks: Masks
    solution: Solution
    frontier: list[Solution]   # every non-dominated network, fastest first (DepthShrinker's: none)
    budget_ms: float
    note: str = ""


def solve_dp(problem: SearchProblem, budget: Budget) -> SearchResult:
    """The exact search on one device: the most important network whose predicted latency fits
    ``budget`` (ties: the fastest), with every non-dominated network as the frontier.

    Stage 1 is each segment's fastest split, stage 2 the non-dominated (latency, importance)
    prefixes with latencies in whole picoseconds, so sums are exact: :func:`.multi.solve_multi`
    with one device. (A latency grid, as Kim et al.'s stage 2, rounds each segment up: it missed
    networks within its rounding of the budget, and refused budgets its own frontier reached.)"""
    budget_ms = budget.resolve_ms(problem.original_ms)
    outside = problem.fixed_ms + problem.overhead_ms
    floor_ps = fastest_splits(problem.space.num_layers, picoseconds(problem.span_ms))[0][0, -1]  # as the search adds
    if limit_picoseconds(budget_ms, outside) < floor_ps:
        raise OutOfReach(f"no network fits {budget_ms:.3f} ms: even with every activation removed "
                         f"the fastest achievable is {outside + floor_ps * PICOSECOND_MS:.3f} ms "
                         f"(fixed part {outside:.3f} ms)")
    try:
        result = solve_multi([problem], [Budget(latency_ms=budget_ms)])
    except OutOfReach:
        fastest = solve_multi([problem], [Budget(speedup=1.0)]).devices[0].fastest_ms
        reach = f"{fastest:.3f} ms" if fastest is not None else "nothing (no scored segments)"
        raise OutOfReach(f"no network fits {budget_ms:.3f} ms: the fastest achievable with these "
                               f"importance scores is {reach} (fixed part {outside:.3f} ms)") from None
    frontier = [_solution(problem, p, outside) for p in reversed(result.surface)]
    solution = frontier[len(result.surface) - 1 - result.chosen]
    return SearchResult(_masks(problem, solution, budget_ms, "dp", result.rounding), solution, frontier, budget_ms,
                        result.note)


def original_network(problem: SearchProblem) -> SearchResult:
    """The network as it is (every activation kept, every layer its own conv), as a search result: the
    reference the shrunk networks are compared with."""
    segments = tuple(Segment(p, p + 1, ((p, p + 1),), problem.span_ms[(p, p + 1)], 0.0)
                     for p in range(problem.space.num_layers))
    solution = Solution(segments, problem.original_ms - problem.fixed_ms - problem.overhead_ms, 0.0)
    return SearchResult(_masks(problem, solution, problem.original_ms, "original", None), solution, [],
                        problem.original_ms)


def _solution(problem: SearchProblem, point: SurfacePoint, outside_ms: float) -> Solution:
    """A surface point as linear segments (each its spans' table latencies added in chain order); the
    network's latency is the search's (whole picoseconds), less the fixed part and overhead."""
    bounds, segments = [0, *point.kept_activations, problem.space.num_layers], []
    for a, b in zip(bounds, bounds[1:]):
        inside = tuple(s for s in point.spans if a <= s[0] < b)
        segments.append(Segment(a, b, inside, chain_ms(problem.span_ms, inside), problem.importance.get((a, b), 0.0)))
    return Solution(tuple(segments), point.latency_ms[0] - outside_ms, sum(s.importance for s in segments))


def solve_depthshrinker(problem: SearchProblem, budget: Budget) -> SearchResult:
    """DepthShrinker's choice: linearise whole blocks in order of score, each merged alone, until
    the predicted latency fits (the order ignores latency; only the stopping point uses it)."""
    space = problem.space
    blocks = [b for b in per_block_masks(space).segments if b[1] - b[0] > 1]
    scored = []
    for start, end in blocks:
        inside = [p for p in problem.cut_positions if start < p < end]
        if not inside:
            continue
        before = max([0] + [p for p in problem.cut_positions if p <= start])
        after = min([space.num_layers] + [p for p in problem.cut_positions if p >= end])
        score = problem.importance.get((before, after))
        if score is not None:
            scored.append((score, start, end))
    scored.sort(key=lambda item: -item[0])  # least harmful first
    budget_ms = budget.resolve_ms(problem.original_ms)
    chosen: list[tuple[float, int, int]] = []
    for item in [None] + scored:
        if item is not None:
            chosen.append(item)
        solution = _blocks_solution(problem, chosen)
        if solution.latency_ms + problem.fixed_ms + problem.overhead_ms <= budget_ms:
            return SearchResult(_masks(problem, solution, budget_ms, "depthshrinker", None), solution, [],
                                budget_ms)
    fastest = solution.latency_ms + problem.fixed_ms + problem.overhead_ms
    raise OutOfReach(f"no network fits {budget_ms:.3f} ms with DepthShrinker's per-block merging: "
                           f"linearising every scored block reaches {fastest:.3f} ms")


def _blocks_solution(problem: SearchProblem, chosen: list[tuple[float, int, int]]) -> Solution:
    merged = {(s, e) for _, s, e in chosen}
    spans, position = [], 0
    for start, end in sorted(merged):
        spans += [(p, p + 1) for p in range(position, start)] + [(start, end)]
        position = end
    spans += [(p, p + 1) for p in range(position, problem.space.num_layers)]
    segments = tuple(Segment(s, e, ((s, e),), problem.span_ms[(s, e)], 0.0) for s, e in spans)
    return Solution(segments, sum(problem.span_ms[s] for s in spans), _blocks_objective(problem, chosen))


def _blocks_objective(problem: SearchProblem, chosen: list[tuple[float, int, int]]) -> float:
    """The importance of the network the chosen blocks make: blocks next to each other form one longer
    linear segment, scored as the table scores it (the DP's objective for the same network); a segment
    the table lacks is scored as its blocks' sum (the additive completion)."""
    linear = {p for _, start, end in chosen for p in problem.cut_positions if start < p < end}
    bounds = [0, *(p for p in problem.cut_positions if p not in linear), problem.space.num_layers]
    total = 0.0
    for a, b in zip(bounds, bounds[1:]):
        if any(a < p < b for p in linear):
            parts = [score for score, start, end in chosen if a <= start and end <= b]
            total += problem.importance.get((a, b), sum(parts))
    return total


def _masks(problem: SearchProblem, solution: Solution, budget_ms: float, method: str, rounding: str | None) -> Masks:
    space = problem.space
    spans = solution.spans
    if method == "dp":
        kept = [p for p in solution.cuts if p in set(problem.cut_positions)]
    else:
        linear = {p for seg in solution.segments for p in range(seg.start + 1, seg.end)}
        kept = [p for p in problem.cut_positions if p not in linear]
    removed = sorted(set(problem.cut_positions) - set(kept))
    latency = problem.fixed_ms + problem.overhead_ms + solution.latency_ms
    predicted = sorted({s for s in spans if problem.span_source.get(s, "").startswith("predicted")})
    extrapolated = sorted({s for s in spans if problem.span_source.get(s) == "predicted (extrapolated)"})
    extra = {
        **{k: problem.setting.get(k) for k in SETTING_COLUMNS},
        "method": method, "latency_budget_ms": round(budget_ms, 6), "predicted_latency_ms": round(latency, 6),
        "original_latency_ms": round(problem.original_ms, 6), "objective": solution.importance,
        "latency_discretisation": None if rounding is None else {"rounding": rounding},
        "predicted_spans": [list(s) for s in predicted],
        "extrapolated_spans": [list(s) for s in extrapolated],
        "segment_latency_ms": [round(problem.span_ms[s], 6) for s in spans],
    }
    return Masks(kept, [tuple(s) for s in spans], removed, dict(space.model), extra)
