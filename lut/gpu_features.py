"""What a conv costs on a GPU, from its shape and a :class:`~.device.DeviceSpec` (pure math, no
fitting): nonnegative times in milliseconds that an additive model weighs (:class:`GPU_COUNTS`),
and log features for the model of what those miss.

- **Launches.** Each kernel a row runs costs a roughly constant time to launch (at batch 1 on an
  H100 with PyTorch eager, 20-50 µs a row: most of the row). PyTorch eager runs the conv
  (cuDNN; depthwise convs take PyTorch's own kernel), then the activation and the residual add
  as kernels of their own; TensorRT fuses all of them into one.
- **Memory.** Bytes read and written over the DRAM bandwidth: input, output and weights once,
  plus, where they are separate kernels, the bias pass, the activation (read and write the
  output) and the residual add (read two, write one).
- **Tiles and waves.** An implicit-GEMM conv splits its output (M = batch × output pixels, N =
  output channels) into tiles of tm × tn, one per thread block; ``ceil(tiles / SMs)`` waves run
  one after another, each as long as one tile's reduction over K = input channels per group ×
  kernel area. cuDNN picks the tile by its own heuristics, which the table does not record, so
  each plausible tile gives a term (the fit weighs them). At batch 1 most convs are one wave:
  their time grows with K, not with FLOPs.
- **Depthwise** convs do K·M·N multiply-adds on the ordinary cores (no tensor cores).
- **Roofline**: the larger of FLOPs at the GEMM rate and bytes at the bandwidth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .device import DeviceSpec
from .table import has_activation

TILES = ((64, 32), (64, 64), (128, 64), (128, 128), (256, 128))   # (tm, tn) of implicit-GEMM thread blocks
FUSING_BACKENDS = ("tensorrt",)   # conv, bias, activation and residual add in one kernel
BYTES = 4                         # fp32 (and TF32 inputs) per element
GPU_COUNTS = ["launch_conv", "launch_depthwise", "launch_activation", "launch_add", "io_ms", "bias_ms",
              "activation_ms", "add_ms", "depthwise_ms", "roofline_ms", *[f"wave{m}x{n}_ms" for m, n in TILES]]


def _shape(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """Shape arrays of conv rows (columns of a LUT or of :func:`~.predictor.conv_features`)."""
    def column(name: str, default: float) -> np.ndarray:
        if name not in rows.columns:
            return np.full(len(rows), default, dtype=float)
        return pd.to_numeric(rows[name], errors="coerce").fillna(default).to_numpy(dtype=float)

    k = column("kernel_size", 1)
    shape = {name: column(name, 1) for name in ("in_channels", "out_channels", "stride", "groups", "height", "width")}
    shape["kernel_size"] = k
    pad = pd.to_numeric(rows["padding"], errors="coerce") if "padding" in rows.columns \
        else pd.Series(np.nan, index=rows.index)
    shape["padding"] = pad.fillna(pd.Series((k - 1) // 2, index=rows.index)).to_numpy(dtype=float)
    shape["batch_size"] = column("batch_size", 1)
    activation = rows["activation"] if "activation" in rows.columns else pd.Series(0.0, index=rows.index)
    if not pd.api.types.is_numeric_dtype(activation):  # a LUT's names; conv_features already holds 0/1
        activation = has_activation(activation)
    shape["activation"] = activation.to_numpy(dtype=float)
    shape["residual_add"] = column("residual_add", 0)
    return shape


def _derived(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    s = _shape(rows)
    c_in, c_out, k, stride, g = s["in_channels"], s["out_channels"], s["kernel_size"], s["stride"], s["groups"]
    h_out = np.floor((s["height"] + 2 * s["padding"] - k) / stride) + 1
    w_out = np.floor((s["width"] + 2 * s["padding"] - k) / stride) + 1
    m = s["batch_size"] * h_out * w_out               # GEMM rows: output pixels of the whole batch
    reduction = c_in / g * k * k                      # GEMM depth K
    depthwise = ((g > 1) & (g == c_in)).astype(float)
    out_elems = m * c_out
    return {**s, "m": m, "reduction": reduction, "depthwise": depthwise, "out_elems": out_elems,
            "in_elems": s["batch_size"] * c_in * s["height"] * s["width"], "weights": c_out * reduction,
            "flops": 2 * out_elems * reduction}


def waves(m: np.ndarray, n: np.ndarray, tile: tuple[int, int], sm_count: int) -> np.ndarray:
    """Waves of ``tile`` thread blocks over ``sm_count`` SMs for an M × N output."""
    return np.ceil(np.ceil(m / tile[0]) * np.ceil(n / tile[1]) / sm_count)


def gpu_counts(rows: pd.DataFrame, device: DeviceSpec, backend: str | None = None) -> pd.DataFrame:
    """``GPU_COUNTS`` for each row (launch counts, and times in ms on ``device``)."""
    d = _derived(rows)
    fused = str(backend or "").lower() in FUSING_BACKENDS
    dense, dw, act, add = 1 - d["depthwise"], d["depthwise"], d["activation"], d["residual_add"]
    ms_per_byte = 1e3 / device.bandwidth_bytes_per_s
    out_bytes = BYTES * d["out_elems"]
    counts = {
        "launch_conv": dense, "launch_depthwise": dw,
        "launch_activation": np.zeros_like(act) if fused else act,
        "launch_add": np.zeros_like(add) if fused else add,
        "io_ms": BYTES * (d["in_elems"] + d["out_elems"] + d["weights"]) * ms_per_byte,
        "bias_ms": np.zeros_like(dense) if fused else dense * 2 * out_bytes * ms_per_byte,
        "activation_ms": np.zeros_like(act) if fused else act * 2 * out_bytes * ms_per_byte,
        "add_ms": add * (1 if fused else 3) * out_bytes * ms_per_byte,
        "depthwise_ms": dw * d["flops"] / device.peak_flops * 1e3,
        "roofline_ms": np.maximum(d["flops"] / device.matmul_flops * 1e3,
                                  BYTES * (d["in_elems"] + d["out_elems"] + d["weights"]) * ms_per_byte),
    }
    per_sm_ms = 1e3 * device.sm_count / device.matmul_flops  # ms per FLOP of one SM at the GEMM rate
    for tile in TILES:
        wave_ms = 2 * tile[0] * tile[1] * d["reduction"] * per_sm_ms
        tile_waves = waves(d["m"], d["out_channels"], tile, device.sm_count)
        counts[f"wave{tile[0]}x{tile[1]}_ms"] = dense * tile_waves * wave_ms
    return pd.DataFrame(counts, index=rows.index)[GPU_COUNTS]


def gpu_log_features(rows: pd.DataFrame, device: DeviceSpec) -> pd.DataFrame:
    """Smooth inputs for the model of what the counts miss: logs of the GEMM's sizes, the kernel,
    the waves × depth of two tiles, the traffic, and how the channels fill 8/32/64-wide blocks
    (tensor-core and tile multiples)."""
    d = _derived(rows)
    features = {
        "log_m": np.log(d["m"]), "log_reduction": np.log(d["reduction"]), "log_out_channels": np.log(d["out_channels"]),
        "log_in_channels": np.log(d["in_channels"]), "log_kernel": np.log(d["kernel_size"]),
        "depthwise": d["depthwise"], "pointwise": ((d["kernel_size"] == 1) & (d["depthwise"] == 0)).astype(float),
        "stride": d["stride"], "activation": d["activation"], "residual_add": d["residual_add"],
        "log_out_elems": np.log(d["out_elems"]), "log_in_elems": np.log(d["in_elems"]),
    }
    for tile in ((64, 64), (128, 128), (256, 128)):
        features[f"log_wave_depth{tile[0]}x{tile[1]}"] = np.log(waves(d["m"], d["out_channels"], tile, device.sm_count)
                                                                * d["reduction"])
    for block in (8, 32, 64):
        features[f"fill{block}"] = np.log(d["out_channels"] / (np.ceil(d["out_channels"] / block) * block))
    return pd.DataFrame(features, index=rows.index)
