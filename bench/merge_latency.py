"""Latency of a network before and after linearising and merging every block, in ONNX Runtime.

trace → chain space → masks (all activations removed, one segment per block) → apply → merge →
check merged vs unmerged → ONNX export of both → ORT check → median latency side by side.

    python bench/merge_latency.py --model mobilenet_v2 --resolution 224   # the README's figures
    python bench/merge_latency.py --gpu 0     # PyTorch on a GPU: fp32/fp16, batch 1/64, CUDA graph/eager
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

import depthshrink
from depthshrink.cli.common import positive_float, positive_int
from depthshrink.contracts.masks import per_block_masks
from depthshrink.export.onnx import export_onnx, onnx_relative_error
from depthshrink.models import build_model
from depthshrink.profiler.base import Workload
from depthshrink.profiler.onnxruntime import OnnxRuntimeBackend
from depthshrink.profiler.timing import TimingProtocol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--width-mult", type=positive_float, default=1.0)
    parser.add_argument("--resolution", type=positive_int, default=224)
    parser.add_argument("--in-channels", type=positive_int, default=3)
    parser.add_argument("--batch-size", type=positive_int, default=1)
    parser.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1)
    parser.add_argument("--min-time-ms", type=positive_float, default=3000.0)
    parser.add_argument("--out", default="out/bench_merge")
    parser.add_argument("--gpu", help="time in PyTorch on this CUDA GPU instead (fp32 and fp16, batch 1 and 64, "
                                      "CUDA graph and eager)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    model = build_model(args.model, width_mult=args.width_mult, in_channels=args.in_channels).eval()
    example = torch.zeros(1, args.in_channels, args.resolution, args.resolution)
    space = depthshrink.trace(model, example, model_info={"name": args.model, "width_mult": args.width_mult})
    space.to_json(out / "space.json")
    masks = per_block_masks(space)
    masks.to_json(out / "masks.json")
    shrunk = depthshrink.apply_masks(model, space, masks).eval()
    merged = depthshrink.merge(shrunk)
    inputs = torch.randn(args.batch_size, args.in_channels, args.resolution, args.resolution)
    with torch.no_grad():
        reference = shrunk(inputs)
        merge_error = float((merged(inputs) - reference).abs().max() / reference.abs().max())

    protocol = TimingProtocol(warmup_ms=500, min_runs=20, min_time_ms=args.min_time_ms)
    if args.gpu is not None:
        _gpu_table(args, model, merged, out, merge_error, len(masks.segments))
        return
    rows = [_time(label, net, inputs, out, OnnxRuntimeBackend(args.threads), protocol)
            for label, net in (("original", model), ("merged", merged))]
    summary = {"model": args.model, "width_mult": args.width_mult, "resolution": args.resolution,
               "batch_size": args.batch_size, "threads": args.threads, "host": platform.node(),
               "cpu": platform.processor() or platform.machine(), "onnxruntime_threads": args.threads,
               "segments": len(masks.segments), "merge_rel_error": merge_error, "rows": rows,
               "speedup": rows[0]["latency_ms"] / rows[1]["latency_ms"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{args.model} x{args.width_mult} @{args.resolution} batch {args.batch_size}, ONNX Runtime CPU, "
          f"{args.threads} thread(s); {space.num_layers} layers -> {len(masks.segments)} merged segments")
    print(f"merged vs activation-removed: max|diff|/max|ref| = {merge_error:.2e}")
    print(f"{'network':<10}{'convs':>7}{'median ms':>12}{'p10 ms':>10}{'p90 ms':>10}{'runs':>7}{'ORT rel err':>13}")
    for r in rows:
        print(f"{r['network']:<10}{r['convs']:>7}{r['latency_ms']:>12.3f}{r['latency_p10_ms']:>10.3f}"
              f"{r['latency_p90_ms']:>10.3f}{r['runs']:>7}{r['onnx_rel_error']:>13.1e}")
    print(f"speed-up: {summary['speedup']:.2f}x  (written to {out})")


def _gpu_table(args, model, merged, out: Path, merge_error: float, segments: int) -> None:
    """Original vs merged in PyTorch on a GPU (channels-last, cudnn.benchmark), each setting timed
    with both networks in interleaved passes."""
    from depthshrink.profiler.pytorch import TorchBackend
    from depthshrink.profiler.timing import interleaved

    protocol = TimingProtocol(warmup_ms=200, min_runs=20, min_time_ms=args.min_time_ms, passes=3)
    rows = []
    print(f"{args.model} x{args.width_mult} @{args.resolution} on GPU {args.gpu}, PyTorch; {segments} merged segments, "
          f"merge error {merge_error:.2e}")
    print(f"{'precision':<10}{'batch':>6}  {'mode':<11}{'original ms':>12}{'merged ms':>11}{'speed-up':>10}")
    for precision in ("fp32", "fp16"):
        for batch in (1, 64):
            for graph in (False, True):
                backend = TorchBackend(f"cuda:{args.gpu}", precision=precision, cuda_graph=graph)
                shape = [batch, args.in_channels, args.resolution, args.resolution]
                workloads = [Workload(name, {"input": shape}, build_module=lambda net=net: net)
                             for name, net in (("original", model), ("merged", merged))]
                original, shrunk = interleaved(workloads, backend.time, protocol)
                backend.close()
                row = {"precision": precision, "batch_size": batch, "mode": "CUDA graph" if graph else "eager",
                       "original_ms": original.latency_ms, "merged_ms": shrunk.latency_ms,
                       "speedup": original.latency_ms / shrunk.latency_ms}
                rows.append(row)
                print(f"{precision:<10}{batch:>6}  {row['mode']:<11}{row['original_ms']:>12.3f}{row['merged_ms']:>11.3f}"
                      f"{row['speedup']:>9.2f}x")
    summary = {"model": args.model, "width_mult": args.width_mult, "resolution": args.resolution,
               "gpu": torch.cuda.get_device_name(int(args.gpu)), "torch": torch.__version__,
               "segments": segments, "merge_rel_error": merge_error, "rows": rows}
    (out / "gpu_summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def _time(label, net, inputs, out, backend, protocol) -> dict:
    path = out / f"{label}.onnx"
    export_onnx(net, inputs, path)
    timing = backend.time(Workload(label, {"input": list(inputs.shape)}, path), protocol)
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    return {"network": label, "convs": convs, "latency_ms": timing.latency_ms,
            "latency_p10_ms": timing.latency_p10_ms, "latency_p90_ms": timing.latency_p90_ms,
            "runs": timing.runs, "onnx_rel_error": onnx_relative_error(net, path, inputs)}


if __name__ == "__main__":
    main()
