"""How much work each kind of CPU conv kernel does for a configuration: nonnegative counts that an
additive latency model weighs (pure math, no fitting here).

ONNX Runtime's CPU convs take one of four paths (MLAS, its NCHWc graph transformer), each with
its own speed per unit of work, so the counts are split by path:

- ``dw``: depthwise (one input channel per group, channels a multiple of the block): one
  multiply-add per valid tap and channel;
  taps of an output whose window lies wholly inside the input (``fast``) run in the unrolled
  loop, those of a border output (``slow``) in a loop that skips the padding;
- ``pw``: an NCHWc 1×1 conv (groups 1, input channels a multiple of one SIMD block): vector
  multiply-adds over output-channel blocks, and input broadcasts, one per input channel and pixel
  for every filter set (four blocks of output channels share one broadcast);
- ``dense``: an NCHWc k×k conv (same condition), or any conv of groups 1 with fewer input
  channels than a block, 1×1 included (MLAS reads that input in NCHW): multiply-adds split
  fast/slow as ``dw``, and broadcasts per valid tap;
- ``gemm``: every other conv: im2col (skipped for a 1×1 stride-1 conv) then a GEMM over all taps,
  padding included. (ONNX Runtime also converts a grouped conv that is not depthwise when its
  channels per group are whole blocks; the networks here have none, so it is counted as ``gemm``.)

Every row also pays for reading its input, writing its output (twice with a residual add), its
weights, the NCHWc layout reorders where they apply, and a constant per call.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FILTER_SET_BLOCKS = 4  # output-channel blocks one NCHWc kernel call computes per input broadcast
COUNT_COLUMNS = ["call", "in_elems", "out_elems", "weights", "reorder_elems", "add_elems",
                 "dw_fast", "dw_slow", "pw_fma", "pw_bcast", "dense_fast", "dense_slow", "dense_bcast",
                 "gemm_fma", "gemm_im2col"]


def valid_taps(size: int, kernel: int, stride: int, padding: int) -> tuple[int, int, int]:
    """Along one spatial axis: (outputs, taps inside the input summed over outputs, outputs whose
    whole window is inside the input)."""
    outputs = (size + 2 * padding - kernel) // stride + 1
    starts = np.arange(outputs) * stride - padding
    inside = np.clip(starts + kernel, 0, size) - np.clip(starts, 0, size)
    interior = (starts >= 0) & (starts + kernel <= size)
    return int(outputs), int(inside.sum()), int(interior.sum())


def conv_path(in_channels: int, out_channels: int, kernel: int, groups: int, block: int) -> str:
    """The MLAS path of a conv on a CPU whose NCHWc block is ``block`` channels (8 AVX2, 16 AVX-512)."""
    if groups > 1 and groups == in_channels == out_channels:
        return "dw" if out_channels % block == 0 else "gemm"  # NCHWc wants whole blocks of channels
    if groups == 1 and in_channels < block:
        return "dense"  # MLAS's NCHW-input kernel, 1×1 or not (its pointwise kernel wants whole blocks)
    if groups == 1 and in_channels % block == 0:
        return "pw" if kernel == 1 else "dense"
    return "gemm"


def _row_counts(c_in: int, c_out: int, k: int, s: int, g: int, h: int, w: int, pad: int,
                batch: int, residual: bool, block: int) -> dict[str, float]:
    h_out, taps_h, interior_h = valid_taps(h, k, s, pad)
    w_out, taps_w, interior_w = valid_taps(w, k, s, pad)
    pixels, taps = h_out * w_out, taps_h * taps_w
    fast = interior_h * interior_w * k * k
    slow = taps - fast
    blocks = -(-c_out // block)
    padded_out = blocks * block
    sets = -(-blocks // FILTER_SET_BLOCKS)
    path = conv_path(c_in, c_out, k, g, block)
    counts = dict.fromkeys(COUNT_COLUMNS, 0.0)
    counts.update(call=1.0, in_elems=c_in * h * w, out_elems=c_out * pixels, weights=c_out * c_in // g * k * k,
                  add_elems=c_out * pixels if residual else 0.0)
    if path == "dw":
        counts.update(dw_fast=padded_out * fast, dw_slow=padded_out * slow)
    elif path in ("pw", "dense"):
        counts["reorder_elems"] = (c_in * h * w if c_in >= block else 0) + padded_out * pixels
        if path == "pw":
            counts.update(pw_fma=padded_out * c_in * pixels, pw_bcast=sets * c_in * pixels)
        else:
            counts.update(dense_fast=padded_out * c_in * fast, dense_slow=padded_out * c_in * slow,
                          dense_bcast=sets * c_in * taps)
    else:
        counts["gemm_fma"] = c_out * (c_in // g) * k * k * pixels
        counts["gemm_im2col"] = 0.0 if (k == 1 and s == 1) else c_in * k * k * pixels
    return {name: value * (batch if name not in ("call", "weights") else 1) for name, value in counts.items()}


def work_counts(shapes: pd.DataFrame, block: int) -> pd.DataFrame:
    """``COUNT_COLUMNS`` for each row of ``shapes`` (columns in_channels, out_channels, kernel_size,
    stride, groups, height, width, padding, batch_size, residual_add)."""
    columns = ["in_channels", "out_channels", "kernel_size", "stride", "groups", "height", "width", "padding",
               "batch_size", "residual_add"]
    rows = [_row_counts(*(int(v) for v in values[:-1]), bool(values[-1]), block)
            for values in shapes[columns].to_numpy()]
    return pd.DataFrame(rows, columns=COUNT_COLUMNS, index=shapes.index, dtype=float)
