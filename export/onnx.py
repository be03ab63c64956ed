"""ONNX export of (merged) models, and the check that ONNX Runtime computes what PyTorch does."""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from ..contracts.files import write_atomic
from ..errors import DepthshrinkError


def export_onnx(model: nn.Module, example_inputs: torch.Tensor | tuple[torch.Tensor, ...],
                path: str | os.PathLike, input_names: list[str] | None = None, opset: int = 17,
                any_batch: bool = False) -> None:
    """Write ``model`` (eval mode) as ONNX with the TorchScript exporter (no onnxscript needed).
    The batch size is the example's, fixed (what the profiler times), or with ``any_batch`` left
    free (a model to deploy: its inputs' and output's first axis is named ``batch``)."""
    model = model.eval()
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    inputs = tuple(_like(model, t) for t in inputs)
    names = input_names or (["input"] if len(inputs) == 1 else [f"input{i}" for i in range(len(inputs))])
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript exporter is chosen on purpose: the dynamo one needs onnxscript
            warnings.simplefilter("ignore", DeprecationWarning)
            batch = {name: {0: "batch"} for name in [*names, "output"]} if any_batch else None
            # whole or not at all: a killed export left a torn file, which a re-export kept
            write_atomic(path, lambda tmp: torch.onnx.export(model, inputs, str(tmp), input_names=names,
                                                             output_names=["output"], dynamic_axes=batch,
                                                             opset_version=opset, dynamo=False))
    except OSError as exc:
        raise DepthshrinkError(f"cannot write {path}: {exc}") from None


def _like(model: nn.Module, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` on the device and in the dtype of ``model``'s weights (a GPU or half model)."""
    weight = next(model.parameters(), None)
    return tensor if weight is None else tensor.to(device=weight.device, dtype=weight.dtype)


def onnx_relative_error(model: nn.Module, path: str | os.PathLike, inputs: torch.Tensor) -> float:
    """max |ORT − PyTorch| / max |PyTorch| on ``inputs``."""
    from ..profiler.onnxruntime import run_session, session_from_onnx

    with torch.no_grad():
        expected = model.eval()(_like(model, inputs)).float().cpu().numpy()
    got = run_session(session_from_onnx(path), inputs.float().cpu().numpy())
    return float(abs(got - expected).max() / abs(expected).max())
