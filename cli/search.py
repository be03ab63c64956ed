"""``depthshrink search``: which activations to drop, and how to merge, under a latency budget."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DepthshrinkError
from .common import add_model_arguments, add_setting_arguments, setting_filters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", help="chain space JSON (or give --model and --resolution)")
    add_model_arguments(parser, required=False)
    parser.add_argument("--lut", nargs="+", required=True,
                        help="latency LUT CSV file(s); a device corpus among them trains the predictor")
    parser.add_argument("--importance", required=True, help="importance CSV (start, end, importance)")
    parser.add_argument("--latency-budget", required=True,
                        help="5ms, 5 ms, 4500us, 0.005s, or 1.6x (speed-up over the original)")
    parser.add_argument("--method", choices=("dp", "depthshrinker"), default="dp",
                        help="exact DP (default) or DepthShrinker's top-k blocks baseline")
    parser.add_argument("--out", required=True, help="masks JSON to write")
    parser.add_argument("--frontier", help="frontier CSV to write (default: next to --out)")
    parser.add_argument("--no-predictor", action="store_true",
                        help="refuse (naming them) configurations the LUT lacks instead of predicting them")
    add_setting_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..lut.table import LatencyTable
    from ..models.space import ChainSpace
    from ..search.budget import parse_budget
    from ..search.problem import build_problem, read_importance
    from ..search.run import solve_depthshrinker, solve_dp

    budget = parse_budget(args.latency_budget)
    frontier_path = Path(args.frontier) if args.frontier else Path(args.out).with_suffix(".frontier.csv")
    for path in (Path(args.out), frontier_path):
        if not path.parent.is_dir() or path.is_dir():
            raise DepthshrinkError(f"cannot write {path}: " + ("it is a folder" if path.is_dir() else
                                                               f"folder {path.parent} does not exist"))
    if bool(args.space) == bool(args.model):
        raise DepthshrinkError("give either --space or --model (with --resolution)")
    if args.space:
        space = ChainSpace.from_json(args.space)
    else:
        from .common import build_space
        _, space = build_space(args)
    table = LatencyTable.read(*args.lut).select(**setting_filters(args))
    problem = build_problem(space, table, read_importance(args.importance, space), not args.no_predictor)
    result = (solve_dp if args.method == "dp" else solve_depthshrinker)(problem, budget)
    result.masks.to_json(args.out)
    if result.frontier:
        _write_frontier(result, problem, frontier_path)
    _print_summary(result, problem, args.out, frontier_path if result.frontier else None)
    return 0


def _write_frontier(result, problem, path: Path) -> None:
    import pandas as pd

    outside = problem.fixed_ms + problem.overhead_ms
    rows = [{"latency_ms": round(s.latency_ms + outside, 6), "importance": s.importance,
             "kept_activations": " ".join(map(str, s.cuts)), "segments": len(s.spans),
             "chosen": int((s.cuts, s.spans) == (result.solution.cuts, result.solution.spans))}
            for s in result.frontier]
    pd.DataFrame(rows).to_csv(path, index=False)


def _print_summary(result, problem, out, frontier_path) -> None:
    masks, space = result.masks, problem.space
    extra = masks.extra
    speedup = extra["original_latency_ms"] / extra["predicted_latency_ms"]
    print(f"{extra['method']}: budget {result.budget_ms:.3f} ms -> predicted {extra['predicted_latency_ms']:.3f} ms "
          f"(original {extra['original_latency_ms']:.3f} ms, {speedup:.2f}x), objective {extra['objective']:+.3f}")
    if result.note:
        print(result.note)
    if result.step_ms:
        print(f"latency grid {result.step_ms * 1e3:.2f} us, segment latencies rounded up")
    print(f"kept activations {masks.kept_activations}")
    print(f"removed activations {masks.removed_activations}")
    for (start, end), latency in zip(masks.segments, extra["segment_latency_ms"]):
        if end - start > 1:
            shape = space.merged_shape(start, end)
            print(f"  merge [{start:>2}, {end:>2}) -> {shape.kernel_size}x{shape.kernel_size} conv "
                  f"{shape.in_channels}->{shape.out_channels} stride {shape.stride}: {latency:.4f} ms")
    sources = "all measured" if not extra["predicted_spans"] else (
        f"{len(extra['predicted_spans'])} latencies from the predictor, "
        f"{len(extra['extrapolated_spans'])} of them extrapolated")
    print(f"{len(masks.segments)} segments ({sources}) -> {out}" +
          (f"; frontier of {len(result.frontier)} points -> {frontier_path}" if frontier_path else ""))
