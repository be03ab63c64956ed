"""How steady this machine's speed is: three fixed convolutions (dense 3x3, depthwise 3x3,
pointwise at 112 px) timed in short windows, in turn, for a while. On a quiet machine every
window's median sits within a few percent of the overall one; on a shared VM the windows fall
into phases (levels ~20% apart, lasting seconds to minutes) that one timing window cannot see.
This is what `profile-device --passes` works around (see docs/results/2026-11-30-pipeline-and-timing.md, "Timing on a noisy VM").

    python bench/timer_drift.py [--seconds 40] [--window-ms 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from depthshrink.cli.common import positive_float
from depthshrink.export.onnx import export_onnx
from depthshrink.profiler.onnxruntime import OnnxRuntimeRunner, session_from_onnx

CONVS = {  # name: (in, out, kernel, groups, map size)
    "dense 3x3 64->64 @56": (64, 64, 3, 1, 56),
    "depthwise 3x3 144 @56": (144, 144, 3, 144, 56),
    "pointwise 32->96 @112": (32, 96, 1, 1, 112),
}


def _runner(folder: Path, name: str, c_in: int, c_out: int, kernel: int, groups: int, size: int) -> OnnxRuntimeRunner:
    path = folder / f"{name.split()[0]}.onnx"
    export_onnx(torch.nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups).eval(),
                torch.zeros(1, c_in, size, size), path)
    inputs = {"input": np.random.default_rng(0).standard_normal((1, c_in, size, size), dtype=np.float32)}
    return OnnxRuntimeRunner(session_from_onnx(path, threads=1), inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=positive_float, default=40.0)
    parser.add_argument("--window-ms", type=positive_float, default=300.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runners = {name: _runner(Path(folder), name, *spec) for name, spec in CONVS.items()}
        medians: dict[str, list[float]] = {name: [] for name in runners}
        began = time.perf_counter()
        while time.perf_counter() - began < args.seconds:
            for name, runner in runners.items():
                samples, start = [], time.perf_counter()
                while (time.perf_counter() - start) * 1e3 < args.window_ms:
                    samples.append(runner.run_timed())
                medians[name].append(float(np.median(samples)))
    print(f"{args.window_ms:.0f} ms windows over {args.seconds:.0f} s, each convolution's window medians "
          "relative to its overall median:")
    for name, values in medians.items():
        ratio = np.array(values) / np.median(values)
        print(f"  {name:<24} {len(ratio)} windows, {np.median(values):.4f} ms; min {ratio.min():.2f}, "
              f"max {ratio.max():.2f}; within ±5%: {np.mean(np.abs(ratio - 1) <= 0.05):.0%}, "
              f"±10%: {np.mean(np.abs(ratio - 1) <= 0.10):.0%}")
        print("    " + " ".join(f"{r:.2f}" for r in ratio))


if __name__ == "__main__":
    main()
