"""What the latency models see of a LUT row (its features), which device a table is of, and
how a model's held-out predictions are scored."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..contracts.setting import on_cpu
from .device import DeviceSpec, spec_for_device
from .regressors import CHANNEL_BLOCKS, EXTRA
from .table import has_activation


def _column(frame: pd.DataFrame, name: str, default) -> pd.Series:
    """A numeric column, ``default`` where it is missing or empty."""
    fallback = default if isinstance(default, pd.Series) else pd.Series(default, index=frame.index, dtype=float)
    if name not in frame.columns:
        return fallback.astype(float)
    return pd.to_numeric(frame[name], errors="coerce").fillna(fallback).astype(float)


def conv_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Model inputs for LUT-shaped rows (shape columns, ``batch_size``, activation, residual_add)."""
    c_in, c_out = frame["in_channels"].astype(float), frame["out_channels"].astype(float)
    k, s, g = frame["kernel_size"].astype(float), frame["stride"].astype(float), frame["groups"].astype(float)
    h, w = frame["height"].astype(float), frame["width"].astype(float)
    pad = _column(frame, "padding", (k - 1) // 2)
    batch = _column(frame, "batch_size", 1)
    h_out, w_out = np.floor((h + 2 * pad - k) / s) + 1, np.floor((w + 2 * pad - k) / s) + 1
    params = c_out * (c_in / g) * k * k + c_out
    flops = 2 * batch * h_out * w_out * c_out * (c_in / g) * k * k
    in_bytes, out_bytes, weight_bytes = 4 * batch * c_in * h * w, 4 * batch * c_out * h_out * w_out, 4 * params
    features = pd.DataFrame({
        "log_cin_per_group": np.log(c_in / g), "log_kernel_area": np.log(k * k), "log_out_pixels": np.log(h_out * w_out),
        "pointwise": ((k == 1) & (g == 1)).astype(float), "dense_kxk": ((k > 1) & (g == 1)).astype(float),
        "log_flops": np.log1p(flops), "log_params": np.log1p(params), "log_in_bytes": np.log1p(in_bytes),
        "log_out_bytes": np.log1p(out_bytes), "log_weight_bytes": np.log1p(weight_bytes),
        "log_intensity": np.log1p(flops / (in_bytes + out_bytes + weight_bytes)),
        "in_channels": c_in, "out_channels": c_out, "kernel_size": k, "stride": s, "padding": pad,
        "depthwise": ((g > 1) & (g == c_in)).astype(float), "groups": g, "height": h, "width": w,
        "batch_size": batch, "activation": has_activation(frame["activation"]),
        "residual_add": _column(frame, "residual_add", 0), EXTRA: _column(frame, EXTRA, 0),
    })
    for block in CHANNEL_BLOCKS:  # SIMD kernels work on channel blocks: padding wastes work, odd counts
        padded = np.ceil(c_in / g / block) * block * np.ceil(c_out / block) * block   # take slower paths
        features[f"aligned{block}"] = (((c_out % block) == 0) & (((c_in % block) == 0) | (c_in < block))).astype(float)
        features[f"log_pad_ratio{block}"] = np.log(padded / (c_in / g * c_out))
    return features.reset_index(drop=True)


def table_device(frame: pd.DataFrame) -> tuple[DeviceSpec, str | None]:
    """(the description of the device a one-setting table names, its backend). A table timed on a CPU
    (``contracts.setting.on_cpu``: ONNX Runtime, a host clock) is one whatever its label (``my-laptop``
    was given the GPU models)."""
    def first(column: str):
        values = frame[column].dropna().astype(str).unique() if column in frame.columns else []
        return values[0] if len(values) else None

    setting = {c: first(c) for c in ("device", "backend", "timing_method")}
    spec = spec_for_device(setting["device"])
    return (DeviceSpec(spec.name, "cpu") if spec.kind != "cpu" and on_cpu(setting) else spec), setting["backend"]


@dataclass
class Evaluation:
    model: str
    rows: int
    rmspe: float
    within_5pct: float
    within_10pct: float
    within_20pct: float
    predicted_ms: np.ndarray
    measured_ms: np.ndarray

    def to_dict(self) -> dict:
        return {"model": self.model, "rows": self.rows, "rmspe": self.rmspe, "within_5pct": self.within_5pct,
                "within_10pct": self.within_10pct, "within_20pct": self.within_20pct}


def score(name: str, predicted: np.ndarray, measured: np.ndarray) -> Evaluation:
    error = (predicted - measured) / measured
    return Evaluation(name, len(measured), float(np.sqrt(np.mean(error ** 2))),
                      float(np.mean(np.abs(error) <= 0.05)), float(np.mean(np.abs(error) <= 0.10)),
                      float(np.mean(np.abs(error) <= 0.20)), predicted, measured)
