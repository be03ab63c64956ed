"""``depthshrink profile-device``: build or extend a latency LUT on this machine's CPU or GPU."""

from __future__ import annotations

import argparse
import math
import sys

from ..errors import DepthshrinkError
from .common import add_corpus_arguments, add_model_arguments, corpus_spec, model_spec, positive_int, refuse_model_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--cpu", action="store_true", help="profile on this machine's CPU")
    target.add_argument("--gpu", metavar="NAME_OR_INDEX",
                        help="GPU by index (0) or by the name it must have (v100, a100, orin)")
    parser.add_argument("--backend", choices=("onnxruntime", "torch", "tensorrt"),
                        help="default: onnxruntime with --cpu, tensorrt with --gpu")
    parser.add_argument("--precision", choices=("fp32", "tf32", "fp16"), default="fp32",
                        help="GPU: fp32 (TF32 off), tf32 or fp16 (channels-last); the CPU: fp32")
    parser.add_argument("--bundle", help="profile a bundle from 'depthshrink export-bundle' (no torch needed)")
    add_model_arguments(parser, required=False)
    add_corpus_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, required=True)
    parser.add_argument("--lut", required=True, help="LUT CSV to create or extend (rows are appended)")
    parser.add_argument("--validate", action="store_true",
                        help="also time whole networks and report the sum-of-LUT error (with several passes "
                             "they are timed among the configurations, in the same passes)")
    parser.add_argument("--device-label", help="the LUT's device column (default: from the hardware)")
    parser.add_argument("--budget-fraction", type=float,
                        help="measure at most this share of the conv configurations (at least 20), choosing adaptively "
                             "(the predictor fills in the rest)")
    parser.add_argument("--target-accuracy", type=float,
                        help="with --budget-fraction: stop once this share of held-out rows is within 10%% "
                             "(default 0.95)")
    timing = parser.add_argument_group("timing protocol")
    timing.add_argument("--threads", type=positive_int, help="CPU threads (recorded; default 1)")
    timing.add_argument("--warmup-ms", type=float, default=200.0)
    timing.add_argument("--min-runs", type=positive_int, default=10)
    timing.add_argument("--min-time-ms", type=float, default=1000.0,
                        help="minimum measuring time per entry (warm-up and measuring time are shared among passes)")
    timing.add_argument("--passes", type=positive_int, default=3,
                        help="time the entries in this many interleaved passes and keep each entry's fastest: "
                             "a shared machine's slow phases last seconds (default 3; 1 re-measures noisy entries)")
    timing.add_argument("--cache-flush", choices=("auto", "on", "off"), default="auto",
                        help="onnxruntime: stream twice the L2 through the caches before each timed run of a block; "
                             "auto: time the original network and its layers both ways first, keep the closer "
                             "(on when there is no whole network to compare with)")
    timing.add_argument("--noisy-spread", type=float, default=0.25,
                        help="flag an entry as noisy when (p90-p10)/median exceeds this (with --passes 1, "
                             "re-measure it once)")
    gpu = parser.add_argument_group("TensorRT")
    gpu.add_argument("--engine-cache", help="folder for built engines (default ~/.cache/depthshrink/engines)")
    gpu.add_argument("--workspace-mb", type=positive_int, help="builder workspace (default 1024)")
    parser.add_argument("--no-cuda-graph", action="store_true",
                        help="GPU: time eager calls (torch) or plain enqueues (tensorrt) instead of replaying "
                             "a CUDA graph (both amortise the launch over a window of calls)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _refuse_ignored(args: argparse.Namespace) -> None:
    """Options that would be accepted and do nothing (or nonsense) here are one line instead."""
    ignored = ([f"{flag} is for GPUs" for flag, given in (("--engine-cache", args.engine_cache is not None),
                                                          ("--workspace-mb", args.workspace_mb is not None),
                                                          ("--no-cuda-graph", args.no_cuda_graph)) if given and args.cpu]
               + [f"{flag} is for the tensorrt backend" for flag, given in (
                   ("--engine-cache", args.engine_cache is not None), ("--workspace-mb", args.workspace_mb is not None))
                  if given and args.gpu is not None and args.backend not in (None, "tensorrt")]
               + (["--threads is for the CPU"] if args.gpu is not None and args.threads is not None else [])
               + (["--target-accuracy needs --budget-fraction"]
                  if args.target_accuracy is not None and args.budget_fraction is None else []))
    if ignored:
        raise DepthshrinkError("; ".join(ignored))
    for flag, value, ok in (("--warmup-ms", args.warmup_ms, 0 <= args.warmup_ms < math.inf),  # inf: forever
                            ("--min-time-ms", args.min_time_ms, 0 < args.min_time_ms < math.inf),
                            ("--noisy-spread", args.noisy_spread, 0 < args.noisy_spread < math.inf),
                            ("--target-accuracy", args.target_accuracy,
                             args.target_accuracy is None or 0 < args.target_accuracy <= 1)):
        if not ok:
            raise DepthshrinkError(f"{flag} {value} is out of range")


def run(args: argparse.Namespace) -> int:
    from ..pipeline.profile import ProfileJob, describe, drift_warning, profile_device
    from ..profiler.base import CacheFlush
    from ..profiler.factory import BackendOptions
    from ..profiler.timing import TimingProtocol

    _refuse_ignored(args)
    options = BackendOptions(None if args.cpu else args.gpu, args.backend, args.precision, args.threads or 1,
                             CacheFlush(args.cache_flush), not args.no_cuda_graph, args.engine_cache,
                             args.workspace_mb or 1024, args.device_label)
    if args.bundle:
        refuse_model_options(args, "--bundle holds its model already (export another bundle to change it)")
    corpus = corpus_spec(args, exclusive=False)
    job = ProfileJob(args.lut, args.batch_size, model_spec(args) if args.model else None, corpus,
                     args.bundle, args.validate, args.budget_fraction,
                     args.target_accuracy or 0.95, TimingProtocol(args.warmup_ms, args.min_runs, args.min_time_ms,
                                                          passes=args.passes), args.noisy_spread, not args.no_progress)
    profiled = profile_device(job, options)
    print("\n".join(describe(profiled)))
    warning = drift_warning(profiled.validation or [])
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


