"""``depthshrink search``: which activations to drop, and how to merge, under a latency budget
(one table and budget), or one network under a budget on each of several devices (several pairs:
``--lut cpu.csv --latency-budget 5ms --lut gpu.csv --latency-budget 1.6x``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..contracts.files import check_file_target, refuse_overwriting
from ..errors import DepthshrinkError
from .common import add_model_arguments, add_setting_arguments, positive_int, refuse_model_options, setting_filters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", help="chain space JSON (or give --model and --resolution)")
    add_model_arguments(parser, required=False)
    parser.add_argument("--lut", nargs="+", action="append", required=True, metavar="CSV",
                        help="one device's latency LUT file(s) (a device corpus among them trains the predictor); "
                             "repeat --lut and --latency-budget in pairs to meet a budget on several devices")
    parser.add_argument("--latency-budget", action="append", required=True,
                        help="5ms, 5 ms, 4500us, 0.005s, or 1.6x (speed-up over the original's predicted, corrected latency, "
                             "also under --verify); one per --lut")
    parser.add_argument("--importance", required=True, help="importance CSV (start, end, importance)")
    parser.add_argument("--method", choices=("dp", "depthshrinker"), default="dp",
                        help="exact DP (default) or DepthShrinker's top-k blocks baseline (one device)")
    parser.add_argument("--out", required=True, help="masks JSON to write")
    parser.add_argument("--frontier", help="frontier CSV to write (several devices: the non-dominated surface; "
                                           "default: next to --out)")
    parser.add_argument("--no-predictor", action="store_true",
                        help="refuse (naming them) configurations the LUT lacks instead of predicting them")
    parser.add_argument("--no-calibration", action="store_true",
                        help="use the LUT's sums as they are, not corrected by its validation networks")
    parser.add_argument("--verify", action="store_true",
                        help="build the chosen network, time it on this machine as the table's networks were "
                             "timed, and tighten the search until it measures within the budget (one device)")
    parser.add_argument("--verify-rounds", type=positive_int, help="with --verify: at most this many rounds (default 6)")
    add_setting_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..contracts.space import ChainSpace
    from ..search.api import device_problem
    from ..search.budget import parse_budget
    from ..search.problem import read_importance

    if len(args.lut) != len(args.latency_budget):
        raise DepthshrinkError(f"give --lut and --latency-budget in pairs: {len(args.lut)} --lut, "
                               f"{len(args.latency_budget)} --latency-budget")
    several = len(args.lut) > 1
    if several and (args.method != "dp" or args.verify or any(setting_filters(args).values())):
        raise DepthshrinkError("several devices: the DP alone, without --verify or row filters (each table holds "
                               "one setting; verify on each device with one table)")
    budgets = [parse_budget(text) for text in args.latency_budget]
    out = Path(args.out)
    frontier = Path(args.frontier) if args.frontier else out.with_suffix(".frontier.csv")
    if frontier.resolve() == out.resolve():
        raise DepthshrinkError(f"--out and --frontier both name {out}: the frontier would overwrite the masks")
    tables = {f"LUT {i}": path for i, path in enumerate((p for luts in args.lut for p in luts), 1)}
    validations = {f"validation of {name}": Path(path).with_suffix(".validation.json") for name, path in tables.items()}
    refuse_overwriting({"--out": out, "--frontier": frontier},
                       {"--space": args.space, "--importance": args.importance, "--weights": args.weights, **tables,
                        **validations})
    for path in (out, frontier):
        check_file_target(path)
    if args.verify_rounds is not None and not args.verify:
        raise DepthshrinkError("--verify-rounds counts the rounds of --verify: give --verify too")
    if args.frontier and args.method == "depthshrinker":
        raise DepthshrinkError("--frontier: DepthShrinker's top-k has no frontier (the DP has)")
    if bool(args.space) == bool(args.model):
        raise DepthshrinkError("give either --space or --model (with --resolution)")
    if args.space:
        refuse_model_options(args, "--space holds its model already (trace another space to change it)")
        space = ChainSpace.from_json(args.space)
    else:
        from .common import build_space
        _, space = build_space(args)
    importance = read_importance(args.importance, space)
    devices = [device_problem(space, luts, budget, importance, setting_filters(args), not args.no_predictor,
                              not args.no_calibration) for luts, budget in zip(args.lut, budgets)]
    if several:
        return _several(devices, space, out, frontier)
    return _one(devices[0], args, out, frontier)


def _one(device, args: argparse.Namespace, out: Path, frontier: Path) -> int:
    from ..pipeline.verify import MAX_ROUNDS, search_one_device
    from ..search.api import write_frontier

    result, masks, verified = search_one_device(device, args.method, args.verify, args.verify_rounds or MAX_ROUNDS)
    masks.to_json(out)
    if result.frontier:
        write_frontier(result, device.problem, frontier)
    else:  # DepthShrinker's top-k has none: an earlier search's beside these masks would describe another
        frontier.unlink(missing_ok=True)
    _print_summary(result, masks, device, out, frontier if result.frontier else None)
    if verified is not None and not verified.met:
        raise _not_met(verified)
    return 0


def _not_met(verified):
    from ..errors import OutOfReach

    t = verified.timing
    return OutOfReach(f"after {len(verified.rounds)} rounds the fastest network measured (round "
                      f"{verified.kept_round}) still measures {t.latency_ms:.3f} ms (p10-p90 {t.latency_p10_ms:.3f}-"
                      f"{t.latency_p90_ms:.3f}) against {verified.budget_ms:.3f} ms; its masks are written with "
                      "every round")


def _several(devices, space, out: Path, frontier: Path) -> int:
    from ..search.api import multi_masks, write_surface
    from ..search.multi import solve_multi

    result = solve_multi([d.problem for d in devices], [d.budget for d in devices])
    multi_masks(result, devices, space).to_json(out)
    write_surface(result, frontier)
    print(f"one network for {len(devices)} devices: objective {result.objective:+.3f}, kept activations "
          f"{list(result.kept_activations)}")
    if result.note:
        print(result.note)
    for plan in result.devices:
        alone = "none fits alone" if plan.alone is None else f"alone {plan.alone.objective:+.3f}"
        print(f"  {plan.label}: budget {plan.budget_ms:.3f} ms -> predicted {plan.latency_ms:.3f} ms "
              f"(original {plan.original_ms:.3f} ms, fastest {plan.fastest_ms:.3f} ms; {alone})")
    print(f"{len(result.spans)} segments -> {out}; {len(result.surface)} non-dominated networks -> {frontier}")
    return 0


def _print_summary(result, masks, device, out, frontier_path) -> None:
    space, extra = device.problem.space, masks.extra
    speedup = extra["original_latency_ms"] / extra["predicted_latency_ms"]
    print(f"{extra['method']}: budget {result.budget_ms:.3f} ms -> predicted {extra['predicted_latency_ms']:.3f} ms "
          f"(original {extra['original_latency_ms']:.3f} ms, {speedup:.2f}x), objective {extra['objective']:+.3f}")
    calibration = device.calibration
    print(f"latency correction: scale {calibration.scale:.3f}, offset {calibration.offset_ms:+.4f} ms "
          f"(fitted on {', '.join(calibration.fitted_on)})" if calibration.applied else calibration.note)
    if "measured_latency_ms" in extra:
        print(f"measured {extra['measured_latency_ms']:.3f} ms (p10-p90 {extra['measured_p10_ms']:.3f}-"
              f"{extra['measured_p90_ms']:.3f}) after {len(extra['verify_rounds'])} round(s)")
    if result.note:
        print(result.note)
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
