"""``depthshrink merge``: the finetuned network as dense convs, verified, in PyTorch and ONNX."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from ..errors import DepthshrinkError
from .common import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a finetune checkpoint")
    parser.add_argument("--out", required=True, help="folder for merged.pt, merged.json and merged.onnx")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="ONNX Runtime threads for the before/after latency (default 1)")
    parser.add_argument("--no-measure", action="store_true", help="skip the before/after latency measurement")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..shrink.export import export_onnx, onnx_relative_error
    from ..shrink.merge import merge
    from ..shrink.rebuild import network_from_checkpoint, save_merged
    from ..shrink.train import load_checkpoint

    state = load_checkpoint(args.checkpoint)
    spec = state.get("spec") or {}
    if not spec.get("masks"):
        raise DepthshrinkError(f"{args.checkpoint} holds no masks: merge takes a finetune checkpoint")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DepthshrinkError(f"cannot write into {out}: it is a file")
    shrunk = network_from_checkpoint(state, args.checkpoint)
    merged = merge(shrunk)  # refuses when its output differs from the shrunk network's
    info = spec["model"]
    example = torch.randn(2, info["in_channels"], info["height"], info["width"],
                          generator=torch.Generator().manual_seed(0))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".merge-") as scratch:  # all files, or none
        export_onnx(merged, example, Path(scratch) / "merged.onnx")
        onnx_error = onnx_relative_error(merged, Path(scratch) / "merged.onnx", example)
        if onnx_error > 1e-4:
            raise DepthshrinkError(f"ONNX Runtime differs from PyTorch by {onnx_error:.1e}: not writing the model")
        save_merged(scratch, merged, {"model": info, "masks": spec["masks"]})
        for name in ("merged.pt", "merged.json", "merged.onnx"):
            os.replace(Path(scratch) / name, out / name)
    params = [sum(p.numel() for p in net.parameters()) for net in (shrunk, merged)]
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) for net in (shrunk, merged)]
    print(f"merged {convs[0]} convs into {convs[1]} ({params[0]:,} -> {params[1]:,} parameters); "
          f"ONNX Runtime vs PyTorch {onnx_error:.1e} -> {out}")
    if not args.no_measure:
        _report(shrunk, merged, info, args.threads, out)
    return 0


def _report(shrunk, merged, info: dict, threads: int, out: Path) -> None:
    """Parameters, FLOPs and ONNX Runtime latency (batch 1) before and after merging."""
    from ..models.space import write_json_atomic
    from ..profiler.timing import TimingProtocol
    from ..shrink.measure import flops, onnx_timings, parameters

    import torch

    shape = (1, info["in_channels"], info["height"], info["width"])
    nets = {"before": shrunk, "after": merged}
    timings = onnx_timings([(net, shape) for net in nets.values()], threads, TimingProtocol(200, 10, 600, passes=3))
    rows = {}
    for (name, net), timing in zip(nets.items(), timings):
        rows[name] = {"parameters": parameters(net), "flops": flops(net, torch.zeros(shape)),
                      "latency_ms": timing.latency_ms, "latency_p10_ms": timing.latency_p10_ms,
                      "latency_p90_ms": timing.latency_p90_ms}
    write_json_atomic(out / "merge_report.json", {"backend": "onnxruntime", "threads": threads, "batch_size": 1,
                                                  **rows})
    print(f"{'':8}{'parameters':>12}{'MFLOPs':>10}{'latency ms (p10-p90), ONNX Runtime ' + str(threads) + ' thread(s)':>48}")
    for name, row in rows.items():
        print(f"{name:8}{row['parameters']:>12,}{row['flops'] / 1e6:>10.2f}{row['latency_ms']:>14.4f} "
              f"({row['latency_p10_ms']:.4f}-{row['latency_p90_ms']:.4f})")
