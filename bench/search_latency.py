"""The search on the shipped CPU table: how long the exact DP takes (frontier included), and
whether the networks it picks, once merged, run as fast as predicted (ONNX Runtime, 1 thread).

    python bench/search_latency.py [--importance imp.csv] [--fractions 0.8 0.6]

Without --importance, a stand-in scores -1 per removed activation: it exercises the solver and
the latency model, not the accuracy side.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import depthshrink
from depthshrink.cli.common import positive_float
from depthshrink.errors import OutOfReach
from depthshrink.export.onnx import export_onnx
from depthshrink.lut.table import LatencyTable
from depthshrink.models import build_model
from depthshrink.profiler.base import Workload
from depthshrink.profiler.onnxruntime import OnnxRuntimeBackend
from depthshrink.profiler.timing import TimingProtocol
from depthshrink.search.budget import Budget
from depthshrink.search.problem import build_problem, read_importance
from depthshrink.search.run import solve_dp

LUT = Path(depthshrink.__file__).parent / "lut" / "mobilenet_v2_224_b1_onnxruntime_cpu.csv"


def _stand_in_importance(space) -> dict:
    cuts = [0] + [s.position for s in space.sites if s.activation] + [space.num_layers]
    return {(a, b): -float(sum(1 for c in cuts if a < c < b)) for i, a in enumerate(cuts) for b in cuts[i + 1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lut", default=str(LUT))
    parser.add_argument("--importance")
    parser.add_argument("--fractions", type=positive_float, nargs="+", default=[0.8, 0.6])
    args = parser.parse_args()
    model = build_model("mobilenet_v2").eval()
    space = depthshrink.trace(model, torch.zeros(1, 3, 224, 224), model_info={"name": "mobilenet_v2"})
    importance = read_importance(args.importance, space) if args.importance else _stand_in_importance(space)
    problem = build_problem(space, LatencyTable.read(args.lut).select(), importance)
    backend, protocol = OnnxRuntimeBackend(1), TimingProtocol(500, 20, 3000)
    print(f"MobileNetV2-1.0 @224, {space.num_layers} layers, {len(space.spans)} spans, "
          f"{len(problem.cut_positions)} activation sites; importance: {args.importance or 'stand-in'}")
    with tempfile.TemporaryDirectory() as folder:
        for fraction in args.fractions:
            began = time.perf_counter()
            try:
                result = solve_dp(problem, Budget(latency_ms=fraction * problem.original_ms))
            except OutOfReach as error:  # a fraction below what removing every activation reaches
                print(f"budget {fraction:g} x the original's predicted latency: {error}")
                continue
            seconds = time.perf_counter() - began
            merged = depthshrink.merge(depthshrink.apply_masks(model, space, result.masks).eval())
            path = Path(folder) / f"net_{fraction}.onnx"
            export_onnx(merged, torch.zeros(1, 3, 224, 224), path)
            measured = backend.time(Workload("net", {"input": [1, 3, 224, 224]}, path), protocol).latency_ms
            predicted = result.masks.extra["predicted_latency_ms"]
            print(f"budget {fraction:g} x the original's predicted latency = {result.budget_ms:.3f} ms: "
                  f"DP + frontier in {seconds:.3f} s "
                  f"({len(result.frontier)} frontier points); {len(result.masks.segments)} convs; predicted "
                  f"{predicted:.3f} ms, measured {measured:.3f} ms ({100 * (predicted - measured) / measured:+.1f}%), "
                  f"{'below' if measured <= result.budget_ms else 'ABOVE'} the budget")


if __name__ == "__main__":
    main()
