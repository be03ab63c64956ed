"""Checkpoints and weight files (the contract between train, finetune, merge and evaluate):
written atomically, read with ``weights_only`` (tensors and plain containers only, never code),
and refused in our own words when damaged, foreign or unsafe. PyTorch is imported on use."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import DepthshrinkError

CHECKPOINT_FORMAT = "depthshrink.checkpoint/1"


def load_torch_file(path: str | os.PathLike, what: str):
    """What ``torch.load(path, weights_only=True)`` reads, on the CPU; every failure is one line."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DepthshrinkError(f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise DepthshrinkError(f"{what} {path} is a folder, not a file") from None
    except Exception as exc:  # torch raises many types for damaged or refused files
        raise DepthshrinkError(f"cannot read {what} {path}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    text = str(exc)
    refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if refused:
        return (f"it holds a Python object ({refused.group(1)}), which is refused: only tensors are loaded "
                "(save a state_dict with torch.save(model.state_dict(), path))")
    if "Weights only load failed" in text or "zip archive" in text or isinstance(exc, (EOFError, ValueError)):
        return "it is not a PyTorch file, or it is truncated"
    return (text.splitlines() or [type(exc).__name__])[0]


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file, sync it, then rename: a crash never leaves a torn checkpoint."""
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by ``train`` or ``finetune``."""
    state = load_torch_file(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise DepthshrinkError(f"{path} is not a depthshrink checkpoint (train and finetune write them)")
    return state
