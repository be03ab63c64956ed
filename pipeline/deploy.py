"""A finetuned checkpoint as a deployable network: every segment merged into one dense conv, BN
folded, checked against the unmerged network and against ONNX Runtime, written as
``merged.pt`` + ``merged.json`` (the spec that rebuilds it) + ``merged.onnx``, all or none."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..contracts.files import write_json_atomic
from ..errors import DepthshrinkError

ONNX_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Merged:
    folder: Path
    convs: tuple[int, int]          # before, after
    parameters: tuple[int, int]
    onnx_error: float               # max |ORT - PyTorch| / max |PyTorch|
    report: dict | None = None      # merge_report.json: parameters, FLOPs, latency of original, shrunk, merged


def merge_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, measure: bool = True,
                     threads: int = 1) -> Merged:
    """Merge a finetune checkpoint into ``out`` (see the module docstring); with ``measure``, the
    parameters, FLOPs and ONNX Runtime latency of the original, shrunk and merged network go to
    ``merge_report.json``."""
    from ..contracts.checkpoints import load_checkpoint
    from ..export.onnx import export_onnx, onnx_relative_error
    from ..shrink.merge import merge
    from ..shrink.rebuild import build_from_spec, network_from_checkpoint, save_merged

    state = load_checkpoint(checkpoint)
    spec = state.get("spec") or {}
    if not spec.get("masks"):
        raise DepthshrinkError(f"{checkpoint} holds no masks: merge takes a finetune checkpoint")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DepthshrinkError(f"cannot write into {out}: it is a file")
    shrunk = network_from_checkpoint(state, str(checkpoint))
    merged = merge(shrunk)  # refuses when its output differs from the shrunk network's
    info = spec["model"]
    example = torch.randn(2, info["in_channels"], info["height"], info["width"],
                          generator=torch.Generator().manual_seed(0))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".merge-") as scratch:  # all files, or none
        export_onnx(merged, example, Path(scratch) / "merged.onnx", any_batch=True)  # deployed at any batch
        onnx_error = onnx_relative_error(merged, Path(scratch) / "merged.onnx", example)
        if onnx_error > ONNX_TOLERANCE:
            raise DepthshrinkError(f"ONNX Runtime differs from PyTorch by {onnx_error:.1e}: not writing the model")
        save_merged(scratch, merged, {"model": info, "masks": spec["masks"]})
        for name in ("merged.pt", "merged.json", "merged.onnx"):
            os.replace(Path(scratch) / name, out / name)
    (out / "merge_report.json").unlink(missing_ok=True)  # an earlier network's, unless measured again below
    params = tuple(sum(p.numel() for p in net.parameters()) for net in (shrunk, merged))
    convs = tuple(sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) for net in (shrunk, merged))
    report = _report(build_from_spec(info)[0], shrunk, merged, info, threads, out) if measure else None
    return Merged(out, convs, params, onnx_error, report)


def _report(original, shrunk, merged, info: dict, threads: int, out: Path) -> dict:
    """Parameters, FLOPs and ONNX Runtime latency (batch 1) of the original network (every activation),
    the shrunk one as finetuned (activations removed, not merged: its padding moved to each segment's
    first conv makes its maps larger than the original's) and the merged one, timed in the same passes."""
    from ..export.networks import flops, onnx_timings, parameters
    from ..profiler.timing import TimingProtocol

    shape = (1, info["in_channels"], info["height"], info["width"])
    nets = {"original": original, "shrunk": shrunk, "merged": merged}
    timings = onnx_timings([(net, shape) for net in nets.values()], threads, TimingProtocol(200, 10, 600, passes=3))
    rows = {}
    for (name, net), timing in zip(nets.items(), timings):
        rows[name] = {"parameters": parameters(net), "flops": flops(net, torch.zeros(shape)),
                      "latency_ms": timing.latency_ms, "latency_p10_ms": timing.latency_p10_ms,
                      "latency_p90_ms": timing.latency_p90_ms}
    report = {"backend": "onnxruntime", "threads": threads, "batch_size": 1, **rows}
    write_json_atomic(out / "merge_report.json", report)
    return report
