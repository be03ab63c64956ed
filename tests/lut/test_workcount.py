"""Work counts per kind of CPU conv kernel (pure math) and the additive model fitted on them."""

import numpy as np
import pandas as pd
import pytest

from depthshrink.lut.features import conv_features
from depthshrink.lut.regressors import EXTRA, WorkCounts
from depthshrink.lut.workcount import COUNT_COLUMNS, conv_path, valid_taps, work_counts


def _shape(c_in, c_out, k, s, g, size, residual=0, batch=1):
    return {"in_channels": c_in, "out_channels": c_out, "kernel_size": k, "stride": s, "groups": g,
            "height": size, "width": size, "padding": (k - 1) // 2, "batch_size": batch, "residual_add": residual,
            "activation": "relu6"}


def test_valid_taps_count_the_window_inside_the_input():
    assert valid_taps(7, 3, 1, 1) == (7, 2 + 5 * 3 + 2, 5)   # a border output sees 2 of its 3 taps
    assert valid_taps(8, 3, 2, 1) == (4, 2 + 3 + 3 + 3, 3)   # stride 2: only the first window crosses
    assert valid_taps(7, 7, 1, 3) == (7, 4 + 5 + 6 + 7 + 6 + 5 + 4, 1)
    assert valid_taps(5, 1, 1, 0) == (5, 5, 5)


@pytest.mark.parametrize("c_in, c_out, k, g, block, path", [
    (32, 32, 3, 32, 16, "dw"), (3, 32, 3, 1, 16, "dense"), (32, 64, 3, 1, 16, "dense"),
    (24, 144, 1, 1, 16, "gemm"), (24, 144, 1, 1, 8, "pw"), (24, 40, 5, 1, 8, "dense"),
    (24, 40, 5, 1, 16, "gemm"), (64, 64, 3, 2, 16, "gemm"),
    # fewer input channels than a block: the NCHW-input kernel, even for a 1×1; depthwise wants whole blocks
    (8, 48, 1, 1, 16, "dense"), (16, 48, 1, 1, 16, "pw"), (24, 24, 3, 24, 16, "gemm"), (24, 24, 3, 24, 8, "dw")])
def test_the_mlas_path_follows_the_nchwc_conditions(c_in, c_out, k, g, block, path):
    assert conv_path(c_in, c_out, k, g, block) == path


def test_counts_split_the_taps_by_path_and_scale_with_batch():
    counts = work_counts(pd.DataFrame([_shape(32, 32, 3, 1, 32, 7), _shape(24, 144, 1, 1, 1, 7),
                                       _shape(24, 40, 3, 2, 1, 8, residual=1, batch=2)]), block=16)
    depthwise, pointwise, strided = (counts.iloc[i] for i in range(3))
    assert depthwise["dw_fast"] == 32 * 25 * 9 and depthwise["dw_fast"] + depthwise["dw_slow"] == 32 * 19 * 19
    assert pointwise["gemm_fma"] == 144 * 24 * 49 and pointwise["gemm_im2col"] == 0  # 1×1 stride 1: no im2col
    assert strided["gemm_fma"] == 2 * 40 * 24 * 9 * 16 and strided["gemm_im2col"] == 2 * 24 * 9 * 16
    assert strided["add_elems"] == strided["out_elems"] == 2 * 40 * 16 and strided["weights"] == 40 * 24 * 9
    nchwc = work_counts(pd.DataFrame([_shape(24, 40, 3, 2, 1, 8)]), block=8).iloc[0]
    assert nchwc["gemm_fma"] == 0 and nchwc["dense_fast"] + nchwc["dense_slow"] == 40 * 24 * 11 * 11
    assert nchwc["dense_bcast"] == 2 * 24 * 11 * 11  # 5 blocks of 8 output channels: two filter sets
    assert (counts[COUNT_COLUMNS] >= 0).all().all() and (counts["call"] == 1).all()


def test_the_additive_model_recovers_known_unit_times():
    rng = np.random.default_rng(0)
    shapes = pd.DataFrame([_shape(int(c), int(o), int(k), int(s), 1, int(size))
                           for c, o, k, s, size in zip(rng.choice([16, 24, 32, 64], 60), rng.choice([16, 40, 64], 60),
                                                       rng.choice([1, 3, 5], 60), rng.choice([1, 2], 60),
                                                       rng.choice([7, 14, 28], 60))])
    shapes = pd.concat([shapes, pd.DataFrame([_shape(c, c, 3, 1, c, 14) for c in (16, 32, 64)])], ignore_index=True)
    unit_ms = rng.uniform(1e-7, 1e-6, len(COUNT_COLUMNS))
    unit_ms[COUNT_COLUMNS.index("call")] = 0.01
    latency_ms = work_counts(shapes, block=16).to_numpy() @ unit_ms
    x = conv_features(shapes)
    model = WorkCounts().fit(x, np.log(latency_ms))
    assert model.block_ == 16
    np.testing.assert_allclose(np.exp(model.predict(x)), latency_ms, rtol=1e-6)
    assert (model.unit_times() >= 0).all()
    corpus = x.assign(**{EXTRA: 1.0})  # corpus rows (another session) do not move the fit
    both = WorkCounts().fit(pd.concat([x, corpus], ignore_index=True), np.log(np.r_[latency_ms, 2 * latency_ms]))
    np.testing.assert_allclose(np.exp(both.predict(x)), latency_ms, rtol=1e-6)
