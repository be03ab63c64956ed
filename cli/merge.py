"""``depthshrink merge``: the finetuned network as dense convs, verified, in PyTorch and ONNX."""

from __future__ import annotations

import argparse

from .common import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a finetune checkpoint")
    parser.add_argument("--out", required=True, help="folder for merged.pt, merged.json and merged.onnx")
    parser.add_argument("--threads", type=positive_int,
                        help="ONNX Runtime threads for the original/shrunk/merged latency (default 1)")
    parser.add_argument("--no-measure", action="store_true", help="skip the latency measurement")


def run(args: argparse.Namespace) -> int:
    from ..errors import DepthshrinkError
    from ..pipeline.deploy import merge_checkpoint

    if args.no_measure and args.threads is not None:
        raise DepthshrinkError("--threads sets the latency measurement's threads: not with --no-measure")
    merged = merge_checkpoint(args.checkpoint, args.out, measure=not args.no_measure, threads=args.threads or 1)
    print(f"merged {merged.convs[0]} convs into {merged.convs[1]} ({merged.parameters[0]:,} -> "
          f"{merged.parameters[1]:,} parameters); ONNX Runtime vs PyTorch {merged.onnx_error:.1e} -> {merged.folder}")
    if merged.report is not None:
        report = merged.report
        print(f"{'':8}{'parameters':>12}{'MFLOPs':>10}"
              f"{'latency ms (p10-p90), ONNX Runtime ' + str(report['threads']) + ' thread(s)':>48}")
        for name in ("original", "shrunk", "merged"):
            row = report[name]
            print(f"{name:8}{row['parameters']:>12,}{row['flops'] / 1e6:>10.2f}{row['latency_ms']:>14.4f} "
                  f"({row['latency_p10_ms']:.4f}-{row['latency_p90_ms']:.4f})")
    return 0
