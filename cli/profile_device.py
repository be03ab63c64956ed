"""``depthshrink profile-device``: build or extend a latency LUT on this machine's CPU or GPU."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ..errors import DepthshrinkError
from .common import add_corpus_arguments, add_model_arguments, build_space, corpus_spec, positive_int

DRIFT_WARNING_FRACTION = 0.10  # a whole network's slowest pass this much over its fastest: the machine drifts


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
    parser.add_argument("--target-accuracy", type=float, default=0.95,
                        help="with --budget-fraction: stop once this share of held-out rows is within 10%%")
    timing = parser.add_argument_group("timing protocol")
    timing.add_argument("--threads", type=positive_int, default=1, help="CPU threads (recorded; default 1)")
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
    gpu.add_argument("--workspace-mb", type=positive_int, default=1024)
    parser.add_argument("--no-cuda-graph", action="store_true",
                        help="GPU: time eager calls (torch) or plain enqueues (tensorrt) instead of replaying "
                             "a CUDA graph (both amortise the launch over a window of calls)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _backend(args: argparse.Namespace):
    """(a function that builds the backend, the device label): every check runs now, the backend
    (a GPU context, threads) is built only when timing starts."""
    from functools import partial

    from ..profiler.devices import cpu_label, resolve_gpu

    name = args.backend or ("onnxruntime" if args.cpu else "tensorrt")
    if name != "onnxruntime" and args.cache_flush != "auto":
        raise DepthshrinkError("--cache-flush applies to the onnxruntime backend")
    if args.cpu:
        if name == "tensorrt":
            raise DepthshrinkError("the tensorrt backend needs --gpu")
        if args.precision != "fp32":
            raise DepthshrinkError(f"--precision {args.precision} needs --gpu")
        label = args.device_label or cpu_label()
        if name == "onnxruntime":
            from ..profiler.onnxruntime import OnnxRuntimeBackend
            flush = {"auto": None, "on": True, "off": False}[args.cache_flush]
            return partial(OnnxRuntimeBackend, args.threads, flush), label
        from ..profiler.pytorch import TorchBackend
        return partial(TorchBackend, "cpu", args.threads), label
    if name == "onnxruntime":
        raise DepthshrinkError("the onnxruntime backend profiles the CPU: use --cpu, or "
                               "--backend tensorrt/torch with --gpu")
    if name == "tensorrt":
        from .._imports import lazy_import
        lazy_import("tensorrt")  # name the missing extra before looking for GPUs
        lazy_import("pycuda.driver")
        if not args.no_cuda_graph:
            lazy_import("cuda.bindings.runtime")
    gpu = resolve_gpu(args.gpu)
    label = args.device_label or gpu.label
    if name == "torch":
        from ..profiler.pytorch import TorchBackend
        return partial(TorchBackend, f"cuda:{gpu.index}", precision=args.precision,
                       cuda_graph=not args.no_cuda_graph), label
    from ..profiler.tensorrt import TensorRTBackend
    return partial(TensorRTBackend, gpu, args.precision, args.workspace_mb, args.engine_cache,
                   not args.no_cuda_graph), label


def run(args: argparse.Namespace) -> int:
    from ..lut.table import check_lut_header
    from ..profiler.bundle import load_bundle
    from ..profiler.session import Settings, profile, validate
    from ..profiler.timing import TimingProtocol

    if bool(args.bundle) + bool(args.model) + bool(args.corpus) != 1:
        raise DepthshrinkError("give one of --model (with --resolution), --corpus (with --resolution) or --bundle")
    if args.model and args.resolution is None:
        raise DepthshrinkError("--model needs --resolution")
    spec = None if args.bundle else corpus_spec(args)
    if args.budget_fraction is not None and not 0 < args.budget_fraction <= 1:
        raise DepthshrinkError("--budget-fraction must be in (0, 1]")
    bundle = load_bundle(args.bundle) if args.bundle else None
    corpus = spec is not None or (bundle is not None and bundle.space is None)
    if corpus and args.validate:
        raise DepthshrinkError("--validate times whole networks: a corpus has none")
    if args.validate and bundle is not None and not bundle.of_op("network"):
        raise DepthshrinkError("--validate times whole networks: this bundle has none "
                               "(export it without --no-networks)")
    if corpus and args.budget_fraction is not None:
        raise DepthshrinkError("--budget-fraction chooses among a network's configurations: measure a corpus whole")
    if bundle is not None and bundle.batch_size != args.batch_size:
        raise DepthshrinkError(f"the bundle was exported for batch {bundle.batch_size}, "
                               f"not --batch-size {args.batch_size}")
    make_backend, label = _backend(args)
    if Path(args.lut).is_file():
        check_lut_header(args.lut)  # a foreign file is refused before any slow export
    auto_flush = (args.backend or ("onnxruntime" if args.cpu else "tensorrt")) == "onnxruntime" \
        and args.cache_flush == "auto"  # the session times the original network first
    protocol = TimingProtocol(args.warmup_ms, args.min_runs, args.min_time_ms, passes=args.passes)
    with tempfile.TemporaryDirectory(prefix="depthshrink-bundle-") as scratch:
        modules = None
        if corpus:
            from ..profiler.export import corpus_module, export_corpus

            if bundle is None:
                bundle = export_corpus(spec, args.batch_size, scratch, progress=not args.no_progress)
            modules = corpus_module  # the torch backend builds each configuration itself
        elif bundle is None:
            from ..profiler.export import export_bundle, module_builder

            model, space = build_space(args)
            bundle = export_bundle(model, space, args.batch_size, scratch, networks=args.validate or auto_flush,
                                   progress=not args.no_progress)
            modules = module_builder(model, space)
        backend = make_backend()  # after the export: a GPU context is held only while timing
        try:
            settings = Settings(label, args.batch_size, protocol, args.noisy_spread, not args.no_progress)
            report = profile(bundle, backend, args.lut, settings, modules, args.budget_fraction,
                             args.target_accuracy, networks=args.validate)
            _print_report(report, bundle, label, backend, args.lut)
            if args.validate:
                _print_validation(validate(bundle, backend, args.lut, settings, modules, report.networks))
        finally:
            backend.close()
    return 0


def _print_report(report, bundle, label, backend, lut) -> None:
    measured = report.measured
    if report.cache_flush is not None:
        print(report.cache_flush.describe())
    print(f"{bundle.model_label} on {label} ({backend.name}, {backend.precision}, batch {bundle.batch_size}): "
          f"measured {len(measured)}, already in the LUT {report.skipped}, {report.seconds:.1f} s -> {lut}")
    if measured.empty:
        return
    noisy = int(measured["noisy"].sum())
    print(f"median call overhead {measured['call_overhead_ms'].median() * 1e3:.1f} us (subtracted); "
          f"re-measured {int(measured['remeasured'].sum())}, still noisy {noisy}")
    columns = ["op", "in_channels", "out_channels", "kernel_size", "stride", "groups", "height",
               "activation", "latency_ms", "latency_p10_ms", "latency_p90_ms", "runs"]
    slowest = measured.nlargest(5, "latency_ms")[columns].copy()
    for column in columns[1:7]:
        slowest[column] = slowest[column].astype("Int64")
    print("slowest configurations:")
    print(slowest.to_string(index=False, float_format="%.4f"))


def _print_validation(results: list[dict]) -> None:
    among = all(r["timed_among_rows"] for r in results)
    print("sum of LUT entries vs measured whole network" + (" (timed in the table's passes):" if among else ":"))
    for r in results:
        guessed = f" ({r['predicted_segments']} from the predictor)" if r["predicted_segments"] else ""
        print(f"  {r['network']:<14} {r['segments']:>3} segments{guessed}  measured {r['measured_ms']:.3f} ms  "
              f"predicted {r['predicted_ms']:.3f} ms  error {r['error_pct']:+.1f}%")
    moved = max((r["slowest_pass_ms"] / r["fastest_pass_ms"] - 1 for r in results), default=0.0)
    if moved > DRIFT_WARNING_FRACTION:
        print(f"warning: a whole network's timings differed by up to {moved:.0%} while they were taken; "
              "this machine's speed moves in phases, so latencies measured at different times differ "
              "by about as much", file=sys.stderr)
