"""The device corpus: sampled configurations, profiled into rows that only train the predictor."""

import pytest

from depthshrink import DepthshrinkError
from depthshrink.cli.main import main
from depthshrink.lut.table import LatencyTable, read_lut
from depthshrink.profiler.bundle import load_bundle
from depthshrink.profiler.corpus import CorpusSpec, sample_candidates


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


@pytest.mark.parametrize("args,message", [
    (["--corpus", "4", "--resolution", "16", "--model", "tiny_mobilenet"], "give one of --model"),
    (["--corpus", "4"], "--corpus needs --resolution"),
    (["--corpus", "4", "--resolution", "16", "--validate"], "a corpus has none"),
])
def test_corpus_options_refuse_what_makes_no_sense(tmp_path, capsys, args, message):
    assert main(["profile-device", "--cpu", *args, "--batch-size", "1", "--lut", str(tmp_path / "lut.csv"),
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "lut.csv").exists()
