"""The device corpus: sampled configurations, profiled into rows that only train the predictor."""

import pandas as pd
import pytest

from depthshrink import DepthshrinkError
from depthshrink.cli.main import main
from depthshrink.contracts.space import ConvShape
from depthshrink.export.corpus import CorpusSpec, sample_candidates
from depthshrink.lut.table import LatencyTable, read_lut
from depthshrink.profiler.bundle import load_bundle


def test_samples_are_distinct_reproducible_and_shaped_like_compact_networks():
    spec = CorpusSpec(120, 224, seed=3)
    candidates = sample_candidates(spec)
    assert len({c.key for c in candidates}) == 120
    assert [c.key for c in candidates] == [c.key for c in sample_candidates(spec)]
    assert [c.key for c in candidates] != [c.key for c in sample_candidates(CorpusSpec(120, 224, seed=4))]
    assert {c.shape.height for c in candidates} <= {112, 56, 28, 14, 7}
    assert all(c.shape.in_channels % 8 == 0 and c.shape.out_channels % 8 == 0 for c in candidates)
    kinds = {("depthwise" if c.shape.groups > 1 else "pointwise" if c.shape.kernel_size == 1 else "dense")
             for c in candidates}
    assert kinds == {"depthwise", "pointwise", "dense"}
    assert max(c.shape.kernel_size for c in candidates) <= 15
    for c in candidates:
        h, w = c.output_size
        flops = 2 * h * w * c.shape.out_channels * c.shape.in_channels // c.shape.groups * c.shape.kernel_size ** 2
        assert flops <= 12e9
        if c.residual_add:
            assert c.shape.in_channels == c.shape.out_channels and c.shape.stride == 1


@pytest.mark.parametrize("kwargs,message", [
    ({"configurations": 0, "resolution": 224}, "at least one configuration"),
    ({"configurations": 5, "resolution": 224, "max_kernel": 4}, "must be odd and at least 3"),
    ({"configurations": 5, "resolution": 2}, "too small"),
    ({"configurations": 5000, "resolution": 8, "max_channels": 16, "max_kernel": 3}, "only"),
])
def test_impossible_specs_are_refused(kwargs, message):
    with pytest.raises(DepthshrinkError, match=message):
        sample_candidates(CorpusSpec(**kwargs))


def test_profiled_corpus_rows_are_marked_and_train_only(tmp_path, capsys):
    fast = ["--warmup-ms", "5", "--min-time-ms", "5", "--no-progress"]
    assert main(["export-bundle", "--corpus", "4", "--resolution", "16", "--batch-size", "1",
                 "--out", str(tmp_path / "bundle")]) == 0
    assert "corpus of 4 conv configurations" in capsys.readouterr().out
    assert load_bundle(tmp_path / "bundle").space is None
    lut = tmp_path / "lut.csv"
    assert main(["profile-device", "--cpu", "--bundle", str(tmp_path / "bundle"), "--batch-size", "1",
                 "--lut", str(lut), *fast]) == 0
    frame = read_lut(lut)
    assert len(frame) == 4 and set(frame["op"]) == {"conv"} and set(frame["model"]) == {"corpus"}
    assert (frame["latency_ms"] > 0).all()
    # the same corpus through --corpus directly: nothing left to measure
    assert main(["profile-device", "--cpu", "--corpus", "4", "--resolution", "16", "--batch-size", "1",
                 "--lut", str(lut), *fast]) == 0
    assert "measured 0, already in the LUT 4" in capsys.readouterr().out
    assert LatencyTable.read(lut).select().network_heights == []  # corpus rows say nothing of a network
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.model == {"corpus": CorpusSpec(4, 16).to_dict()}
    assert [e.key for e in bundle.entries] == [c.key for c in sample_candidates(CorpusSpec(4, 16))]
    for extra, message in ((["--validate"], "a corpus has none"), (["--budget-fraction", "0.5"], "measure a corpus whole")):
        assert main(["profile-device", "--cpu", "--bundle", str(tmp_path / "bundle"), "--batch-size", "1",
                     "--lut", str(tmp_path / "other.csv"), *extra, *fast]) == 1
        assert message in capsys.readouterr().err
    # the torch backend builds each configuration itself (no network to take modules from)
    assert main(["profile-device", "--cpu", "--backend", "torch", "--bundle", str(tmp_path / "bundle"),
                 "--batch-size", "1", "--lut", str(tmp_path / "torch.csv"), *fast]) == 0
    assert set(read_lut(tmp_path / "torch.csv")["model"]) == {"corpus"}


def test_corpus_rows_are_never_looked_up_as_a_network_s_measurements(tmp_path):
    row = {"device": "cpu-test", "backend": "onnxruntime", "precision": "fp32", "batch_size": 1, "threads": 1,
           "op": "conv", "in_channels": 16, "out_channels": 16, "kernel_size": 3, "stride": 1, "groups": 1,
           "height": 8, "width": 8, "padding": 1, "activation": "relu6", "residual_add": 0}
    pd.DataFrame([{**row, "model": "corpus", "latency_ms": 9.0}]).to_csv(tmp_path / "corpus.csv", index=False)
    pd.DataFrame([{**row, "model": None, "latency_ms": 1.0}]).to_csv(tmp_path / "table.csv", index=False)
    shape = ConvShape(16, 16, 3, 1, 1, 8, 8, 1)
    assert LatencyTable.read(tmp_path / "corpus.csv").select().conv_latency_ms(shape, "relu6", False) is None
    both = LatencyTable.read(tmp_path / "corpus.csv", tmp_path / "table.csv").select()  # corpus listed first
    assert both.conv_latency_ms(shape, "relu6", False) == 1.0


@pytest.mark.parametrize("args,message", [
    (["--corpus", "4", "--resolution", "16", "--model", "tiny_mobilenet"], "give one of --model"),
    (["--corpus", "4"], "--corpus needs --resolution"),
    (["--corpus", "4", "--resolution", "16", "--validate"], "a corpus has none"),
    (["--model", "tiny_mobilenet", "--resolution", "16", "--corpus-seed", "2"], "--corpus-seed needs --corpus"),
])
def test_corpus_options_refuse_what_makes_no_sense(tmp_path, capsys, args, message):
    assert main(["profile-device", "--cpu", *args, "--batch-size", "1", "--lut", str(tmp_path / "lut.csv"),
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "lut.csv").exists()
