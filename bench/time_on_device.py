"""The networks of a finished `depthshrink run` timed on another device with PyTorch (a GPU: batch 1
and the run's throughput batch, fp16 or fp32, one CUDA graph per network), written as a run folder
of their own that `depthshrink report` shows beside the run (issue 18: the bench's networks on a GPU).

    python bench/time_on_device.py out/bench --pack out/bench_portable      # the files a GPU machine needs
    python bench/time_on_device.py out/bench_portable --gpu 0 --precision fp16 --out out/bench_gpu_fp16
    depthshrink report out/bench out/bench_gpu_fp16 --out out/bench_report_both

Without --gpu the networks are timed with PyTorch on this CPU (a check of the plumbing; the run's
own latencies are ONNX Runtime's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depthshrink.cli.common import positive_float, positive_int
from depthshrink.errors import DepthshrinkError
from depthshrink.pipeline.other_device import pack, time_on_device


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run folder (or one packed with --pack)")
    parser.add_argument("--pack", type=Path, help="copy the files timing the networks elsewhere needs here, and stop")
    parser.add_argument("--out", type=Path, help="the run folder of the other device's timings")
    parser.add_argument("--gpu", help="a GPU index or name (default: PyTorch on this CPU)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "fp16"))
    parser.add_argument("--threads", type=positive_int, help="CPU threads (without --gpu)")
    parser.add_argument("--min-time-ms", type=positive_float, default=1000.0, help="timing per network and batch size")
    parser.add_argument("--passes", type=positive_int, default=3)
    parser.add_argument("--batch-size", type=positive_int, help="the throughput batch (default: the run's)")
    args = parser.parse_args()
    try:
        if args.pack:
            files = pack(args.run, args.pack)
            size = sum(f.stat().st_size for f in args.pack.rglob("*") if f.is_file())
            print(f"{len(files)} files, {size / 2**20:.1f} MiB -> {args.pack}")
            return 0
        if args.out is None:
            parser.error("give --out (or --pack)")
        frame = time_on_device(args.run, args.out, args.gpu or "cpu", args.precision, args.threads, args.min_time_ms,
                               args.passes, args.batch_size)
    except DepthshrinkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    original = frame.loc[frame["kind"] == "original", "latency_ms"].iloc[0]
    print(frame.assign(speed_up=original / frame["latency_ms"])[
        ["network", "accuracy", "latency_ms", "latency_p10_ms", "latency_p90_ms", "speed_up", "throughput_ips"]]
        .to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\n{frame['device'].iloc[0]}, {frame['backend'].iloc[0]}, batch 1 and {frame['throughput_batch_size'].iloc[0]}, "
          f"timed at {frame['timed_at'].iloc[0]} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
