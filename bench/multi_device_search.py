"""One network for a CPU and a GPU: how long the exact multi-device search takes on
MobileNetV2-1.0 @224, surface included, and what meeting both budgets costs in importance.

    python bench/multi_device_search.py --out surface.csv \
        [--lut CPU.csv --latency-budget 1.4x --lut GPU.csv --latency-budget 2.0x ...] [--importance imp.csv]

Defaults: the shipped CPU table (ONNX Runtime, 1 thread) and the shipped H100 table (PyTorch eager,
tf32, batch 1, lut/h100_torch_eager/). One --lut and --latency-budget pair a device: three pairs,
three devices. Without --importance, a synthetic score stands in
(seeded: each activation site a weight in [0.1, 2], a segment minus the sum of the weights it
removes times a factor in [0.8, 1.3]): it exercises the solver with continuous, non-additive
scores, not the accuracy side. Times are wall-clock seconds on this machine, best of --repeat.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import depthshrink
from depthshrink.cli.common import positive_int
from depthshrink.lut.table import LatencyTable
from depthshrink.models import build_model
from depthshrink.search.budget import parse_budget
from depthshrink.search.multi import solve_multi
from depthshrink.search.problem import build_problem, read_importance
from depthshrink.search.run import solve_dp

ROOT = Path(depthshrink.__file__).parent
CPU_LUT = ROOT / "lut" / "mobilenet_v2_224_b1_onnxruntime_cpu.csv"
H100_LUT = ROOT / "lut" / "h100_torch_eager" / "mobilenet_v2_224_b1_torch_h100_tf32.csv"
BUDGETS = ["1.4x", "2.0x"]


def synthetic_importance(space, seed: int = 0) -> dict[tuple[int, int], float]:
    rng = np.random.default_rng(seed)
    cuts = [0] + [s.position for s in space.sites if s.activation] + [space.num_layers]
    weight = {c: rng.uniform(0.1, 2.0) for c in cuts[1:-1]}
    return {(a, b): -sum(weight[c] for c in cuts if a < c < b) * rng.uniform(0.8, 1.3)
            for i, a in enumerate(cuts) for b in cuts[i + 1:]}


def best_of(repeat: int, call):
    times, value = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        value = call()
        times.append(time.perf_counter() - began)
    return value, min(times), float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lut", action="append", help="a device's table (repeat; pairs with --latency-budget)")
    parser.add_argument("--latency-budget", action="append", help="that device's budget (5ms, 1.6x, ...)")
    parser.add_argument("--importance", help="importance CSV (default: synthetic, seed 0)")
    parser.add_argument("--space", help="chain space JSON (default: traced here, torch)")
    parser.add_argument("--rounding", choices=("none", "grid"), default="none")
    parser.add_argument("--repeat", type=positive_int, default=5)
    parser.add_argument("--out", required=True, help="surface CSV to write")
    args = parser.parse_args()
    luts = [Path(p) for p in args.lut] if args.lut else [CPU_LUT, H100_LUT]
    budgets = [parse_budget(b) for b in (args.latency_budget or BUDGETS)]
    if len(luts) != len(budgets):
        parser.error(f"{len(luts)} table(s) but {len(budgets)} budget(s): give them in pairs")
    missing = [str(p) for p in luts if not p.is_file()]
    if missing:
        parser.error(f"table not found: {', '.join(missing)} (give --lut)")

    began = time.perf_counter()
    if args.space:
        space = depthshrink.ChainSpace.from_json(args.space)
    else:
        model = build_model("mobilenet_v2").eval()
        space = depthshrink.trace(model, torch.zeros(1, 3, 224, 224),
                                  model_info={"name": "mobilenet_v2", "width_mult": 1.0, "resolution": 224})
    space_s = time.perf_counter() - began
    importance = read_importance(args.importance, space) if args.importance else synthetic_importance(space)
    problems, build_s, _ = best_of(1, lambda: [build_problem(space, LatencyTable.read(p).select(), importance)
                                               for p in luts])
    result, solve_s, solve_median_s = best_of(args.repeat, lambda: solve_multi(problems, budgets, args.rounding))
    began = time.perf_counter()
    frame = pd.DataFrame(result.surface_rows())
    frame.to_csv(args.out, index=False)
    csv_s = time.perf_counter() - began
    alone = [best_of(args.repeat, lambda p=p, b=b: solve_dp(p, b)) for p, b in zip(problems, budgets)]

    print(f"MobileNetV2-1.0 @224: {space.num_layers} layers, {len(space.spans)} legal spans, "
          f"{len(problems[0].cut_positions)} activation sites; importance: {args.importance or 'synthetic (seed 0)'}; "
          f"rounding: {result.rounding}")
    print(f"space {'read' if args.space else 'traced'} {space_s:.2f} s; tables read + problems built {build_s:.3f} s")
    print(f"solve_multi ({len(problems)} devices, surface included): best {solve_s:.3f} s, median {solve_median_s:.3f} s "
          f"of {args.repeat}; surface CSV {csv_s:.3f} s -> {args.out}")
    print(f"surface: {len(result.surface)} non-dominated networks, {len({p.kept_activations for p in result.surface})} "
          "kept sets (the others: a kept set split another way)")
    for (single, best_s, _), plan in zip(alone, result.devices):
        print(f"  {plan.label}: budget {plan.budget_ms:.3f} ms (original {plan.original_ms:.3f} ms, fastest "
              f"{plan.fastest_ms:.3f} ms) -> {plan.latency_ms:.3f} ms; "
              f"alone: objective {plan.alone.objective:+.3f} (solve_dp {single.solution.importance:+.3f} in "
              f"{best_s:.3f} s), that network runs "
              + ", ".join(f"{ms:.3f} ms" for ms in plan.alone.latency_ms))
    print(f"every budget met: objective {result.objective:+.3f}, {len(result.removed_activations)} activations removed "
          f"(kept {list(result.kept_activations)}), one split for all devices: {len(result.spans)} convs in the chain, "
          f"merged {' '.join(f'{s}-{e}' for s, e in result.spans if e - s > 1)}")
    shown = np.unique(np.linspace(0, len(frame) - 1, 6).round().astype(int))
    print(frame.iloc[shown].drop(columns=["kept_activations"]).to_string(index=False))


if __name__ == "__main__":
    main()
