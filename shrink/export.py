"""ONNX export of (merged) models, and the check that ONNX Runtime computes what PyTorch does."""

from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from ..errors import DepthshrinkError


def export_onnx(model: nn.Module, example_input: torch.Tensor, path: str | os.PathLike,
                opset: int = 17) -> None:
    """Write ``model`` (eval mode) as ONNX with the TorchScript exporter (no onnxscript needed)."""
    model = model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript exporter is chosen on purpose: the dynamo one needs onnxscript
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (example_input,), str(path), input_names=["input"],
                              output_names=["output"], opset_version=opset, dynamo=False)
    except OSError as exc:
        raise DepthshrinkError(f"cannot write {path}: {exc}") from None


def onnx_relative_error(model: nn.Module, path: str | os.PathLike, inputs: torch.Tensor) -> float:
    """max |ORT − PyTorch| / max |PyTorch| on ``inputs``."""
    from ..profiler.onnxruntime import run_session, session_from_onnx

    with torch.no_grad():
        expected = model.eval()(inputs).numpy()
    got = run_session(session_from_onnx(path), inputs.numpy())
    return float(abs(got - expected).max() / abs(expected).max())
