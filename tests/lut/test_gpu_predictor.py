"""GPU tables: the device description, the GPU counts (hand-checked rows), the GPU models'
held-out accuracy on the shipped H100 tables, and transfer to a new device from 30 rows."""

import math

import numpy as np
import pandas as pd
import pytest

import depthshrink
from depthshrink import DepthshrinkError
from depthshrink.lut.device import GENERIC_GPU, DeviceSpec, given_spec, spec_for_device
from depthshrink.lut.features import conv_features
from depthshrink.lut.gpu_features import GPU_COUNTS, gpu_counts, gpu_log_features, waves
from depthshrink.lut.gpu_models import GpuCounts
from depthshrink.lut.predictor import LatencyPredictor, cross_validate
from depthshrink.lut.sampling import simulated_picks
from depthshrink.lut.table import LatencyTable
from depthshrink.lut.transfer import PriorTable, shipped_tables, transfer_evaluation
from depthshrink.lut.transfer_model import _ridge_loo, prior_columns

LUT = depthshrink.__path__[0] + "/lut/"
H100 = {batch: LUT + f"h100_torch_eager/mobilenet_v2_224_b{batch}_torch_h100_tf32.csv" for batch in (1, 32)}
CPU_28 = LUT + "mobilenet_v2_small_x0.5_28_b1_onnxruntime_cpu.csv"


def _row(c_in, c_out, k, s, g, size, batch=1, activation="relu6", residual=0):
    return {"in_channels": c_in, "out_channels": c_out, "kernel_size": k, "stride": s, "groups": g, "height": size,
            "width": size, "padding": (k - 1) // 2, "batch_size": batch, "activation": activation,
            "residual_add": residual}


def test_device_descriptions_from_labels():
    h100 = spec_for_device("nvidia-h100-80gb-hbm3")  # the driver's name of the SXM5 card, slugged
    assert (h100.kind, h100.sm_count, h100.bandwidth_bytes_per_s, h100.source) == ("gpu", 132, 3.35e12, "datasheet")
    assert h100.peak_flops == pytest.approx(66.9e12) and h100.matmul_flops == pytest.approx(494.7e12)
    assert spec_for_device("nvidia-h100-pcie").sm_count == 114
    assert spec_for_device("v100").matmul_flops == pytest.approx(15.7e12)  # no TF32 tensor cores
    assert spec_for_device("cpu-amd-epyc").kind == "cpu"
    unknown = spec_for_device("rtx-9999")
    assert unknown.source == "assumed" and unknown.sm_count == GENERIC_GPU.sm_count
    assert given_spec("lab-gpu", 46, 20e12, 0.5e12).source == "given"
    with pytest.raises(DepthshrinkError, match="sm_count must be a positive number"):
        DeviceSpec("broken", "gpu", 0, 1e12, None, 1e12)


def test_gpu_counts_of_hand_checked_rows():
    h100 = spec_for_device("h100")
    rows = pd.DataFrame([_row(64, 96, 3, 1, 1, 14, batch=32), _row(96, 96, 3, 1, 96, 14, activation="none",
                                                                    residual=1)])
    counts = gpu_counts(rows, h100, "torch")
    dense, depthwise = counts.iloc[0], counts.iloc[1]
    m, k = 32 * 14 * 14, 64 * 9  # GEMM rows (output pixels of the batch) and depth
    assert waves(np.array([m]), np.array([96]), (64, 64), 132)[0] == math.ceil(98 * 2 / 132) == 2
    assert dense["wave64x64_ms"] == pytest.approx(2 * (2 * 64 * 64 * k) * 132 / 494.7e12 * 1e3)
    io_bytes = 4 * (32 * 64 * 14 * 14 + m * 96 + 96 * k)
    assert dense["io_ms"] == pytest.approx(io_bytes / 3.35e12 * 1e3)
    assert dense["activation_ms"] == pytest.approx(2 * 4 * m * 96 / 3.35e12 * 1e3) == dense["bias_ms"]
    assert (dense["launch_conv"], dense["launch_activation"], dense["launch_add"]) == (1, 1, 0)
    assert dense["depthwise_ms"] == 0
    assert depthwise["depthwise_ms"] == pytest.approx(2 * 96 * 14 * 14 * 9 / 66.9e12 * 1e3)
    assert (depthwise["launch_depthwise"], depthwise["launch_conv"], depthwise["wave128x128_ms"]) == (1, 0, 0)
    assert depthwise["add_ms"] == pytest.approx(3 * 4 * 96 * 14 * 14 / 3.35e12 * 1e3)
    fused = gpu_counts(rows, h100, "tensorrt").iloc[0]  # one kernel: no launches or passes of their own
    assert (fused["launch_activation"], fused["bias_ms"], fused["activation_ms"]) == (0, 0, 0)
    features = gpu_log_features(rows, h100)
    assert features["fill64"].iloc[0] == pytest.approx(np.log(96 / 128)) and features["fill32"].iloc[0] == 0


def test_the_gpu_counts_recover_known_launch_costs_and_slowdowns():
    h100 = spec_for_device("h100")
    rng = np.random.default_rng(0)
    rows = pd.DataFrame([_row(int(c), int(o), int(k), int(s), 1, int(size), batch=int(b), residual=int(r),
                              activation=a) for c, o, k, s, size, b, r, a in zip(*(rng.choice(v, 80) for v in (
                             [16, 32, 64, 96], [24, 64, 160], [1, 3, 5, 7], [1, 2], [7, 14, 28, 56], [1, 8, 32], [0, 1],
                             ["relu6", "none"])))]
                        + [_row(c, c, 3, 1, c, 28, batch=8) for c in (32, 96, 144)])
    weights = np.zeros(len(GPU_COUNTS))
    for name, value in (("launch_conv", 0.02), ("launch_depthwise", 0.01), ("launch_activation", 0.008),
                        ("launch_add", 0.006), ("io_ms", 1.5), ("depthwise_ms", 9.0), ("wave128x128_ms", 2.0)):
        weights[GPU_COUNTS.index(name)] = value
    latency_ms = gpu_counts(rows, h100, "torch").to_numpy() @ weights
    model = GpuCounts(h100, "torch").fit(conv_features(rows), np.log(latency_ms))
    np.testing.assert_allclose(np.exp(model.predict(conv_features(rows))), latency_ms, rtol=1e-6)
    assert model.weights()["launch_conv"] == pytest.approx(0.02, rel=1e-3)


@pytest.mark.parametrize("batch, at_least", [(1, 0.74), (32, 0.58)])
def test_gpu_models_on_the_shipped_h100_tables(batch, at_least):
    """Held out, grouped by shape: 76.4% / 60.7% within ±10% when measured (the work-count models of
    the CPU, 62.1% / 40.7%); the issue's 90% is out of reach (README: cuDNN's algorithm switches)."""
    table = LatencyTable.read(H100[batch]).select()
    results = cross_validate(table.frame)
    best = results[0]
    assert best.rows == 140 and best.within_10pct >= at_least
    assert best.model in ("average_of_gpu_models", "gpu_counts_plus_gp", "gpu_counts_plus_boosting")
    assert "work_counts" not in {r.model for r in results}  # the CPU kernels' counts are no GPU's
    with pytest.raises(DepthshrinkError, match="no latency model 'work_counts' for a gpu table"):
        LatencyPredictor(table.frame, model="work_counts")


def test_simulated_adaptive_picks_cover_the_kinds():
    conv = LatencyTable.read(H100[32]).select().frame
    conv = conv[conv["op"] == "conv"].reset_index(drop=True)
    picks = simulated_picks(conv, 30)
    assert len(picks) == len(set(picks)) == 30 and max(picks) < len(conv)
    chosen = conv.iloc[picks]
    assert (chosen["groups"] > 1).any() and (chosen["kernel_size"] == 1).any() and (chosen["kernel_size"] > 3).any()


def test_ridge_leave_one_out_in_closed_form_matches_refitting():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(1)
    inputs, y = rng.normal(size=(25, 3)), rng.normal(size=25)
    (share, mse), alpha = _ridge_loo(inputs, y)
    left_out = [Ridge(alpha=alpha).fit(np.delete(inputs, i, 0), np.delete(y, i)).predict(inputs[i:i + 1])[0] - y[i]
                for i in range(len(y))]
    assert mse == pytest.approx(np.mean(np.square(left_out)), rel=1e-6)
    assert -share == pytest.approx(np.mean(np.abs(np.expm1(left_out)) <= 0.1))


def test_transfer_to_a_new_device_from_30_rows():
    """The batch-32 table as the new device, the batch-1 table as the prior: 50.9% of the other
    110 rows within ±10% (the issue's 85% is out of reach; README), the prior's measurements used
    where it has the configuration."""
    b1, b32 = (LatencyTable.read(H100[b]).select().frame for b in (1, 32))
    prior = PriorTable(b1, "h100 b1")
    conv = b1[b1["op"] == "conv"]
    np.testing.assert_allclose(prior.log_latency(conv), np.log(conv["latency_ms"].astype(float)))
    columns = prior_columns(conv.head(3), [prior], spec_for_device("h100"), "torch")
    assert list(columns.columns) == ["prior: h100 b1 latencies", "prior: h100 b1 work model"]
    result, picks, predictor = transfer_evaluation(b32, [prior], rows=30)
    assert len(picks) == 30 and result.rows == 110
    assert result.within_10pct >= 0.45 and "own work model" in predictor.estimator.used
    assert predictor.predict(conv.head(2))[0].shape == (2,)


def test_shipped_priors_leave_the_table_s_own_setting_out():
    setting = LatencyTable.read(CPU_28).select().setting
    names = set(shipped_tables(exclude=setting))
    assert "mobilenet_v2_224_b32_torch_h100_tf32" in names and "mobilenet_v2_224_b1_torch_h100_tf32" in names
    assert not any("onnxruntime_cpu" in name for name in names)  # same device, backend, batch and threads


def test_a_lut_of_two_devices_holds_two_settings_and_evaluate_refuses_it(tmp_path, capsys):
    from depthshrink.cli.main import main
    from depthshrink.lut.settings import settings_of

    both = tmp_path / "both.csv"
    pd.concat([pd.read_csv(LUT + "mobilenet_v2_224_b1_onnxruntime_cpu.csv"), pd.read_csv(H100[32])]).to_csv(
        both, index=False)
    settings = settings_of(LatencyTable.read(both).frame)
    assert [(s["device"], s["batch_size"]) for s in settings] == [("cpu-amd-epyc", 1), ("nvidia-h100-80gb-hbm3", 32)]
    assert len(LatencyTable.read(both).select(**settings[1]).frame) == 141  # one table each, for the report's plots
    assert main(["predictor", "evaluate", "--lut", str(both)]) == 1
    assert "mixes device values cpu-amd-epyc, nvidia-h100-80gb-hbm3" in capsys.readouterr().err
