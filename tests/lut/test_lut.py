"""The LUT file: append-only writes, torn lines, foreign files, merging, lookups."""

import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

from depthshrink import DepthshrinkError
from depthshrink.cli.main import main
from depthshrink.contracts.space import ConvShape
from depthshrink.lut.merging import merge_luts
from depthshrink.lut.settings import measuring_differences
from depthshrink.lut.table import COLUMNS, LatencyTable, read_lut, row_key
from depthshrink.lut.writer import LutWriter

ROOT = Path(__file__).parents[2]


def _row(device="cpu-x", kernel=3, latency=0.5, **extra):
    row = {"device": device, "backend": "onnxruntime", "precision": "fp32", "batch_size": 1, "threads": 1,
           "op": "conv", "model": None, "in_channels": 8, "out_channels": 16, "kernel_size": kernel,
           "stride": 1, "groups": 1, "height": 14, "width": 14, "padding": kernel // 2,
           "activation": "relu6", "residual_add": 0, "latency_ms": latency, "latency_p10_ms": latency * 0.9,
           "latency_p90_ms": latency * 1.1, "runs": 10, "source": "measured"}
    row.update(extra)
    return row


def test_writer_appends_rows_pandas_reads_them(tmp_path):
    path = tmp_path / "lut.csv"
    writer = LutWriter(path)
    writer.append(_row(kernel=3))
    writer.append(_row(kernel=5, latency=1.5))
    frame = pd.read_csv(path)
    assert list(frame.columns) == COLUMNS and len(frame) == 2
    assert frame["latency_ms"].tolist() == [0.5, 1.5]
    assert LutWriter(path).existing_keys() == {row_key(_row(kernel=3)), row_key(_row(kernel=5))}


def test_torn_last_line_is_dropped_with_a_warning(tmp_path):
    path = tmp_path / "lut.csv"
    LutWriter(path).append(_row())
    intact = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(b"cpu-x,onnxruntime,fp32,1,1,conv,,8,16,7")  # killed mid-write
    with pytest.warns(UserWarning, match="torn"):
        assert len(read_lut(path)) == 1
    with pytest.warns(UserWarning, match="dropped a torn last line"):
        writer = LutWriter(path)
    assert path.read_bytes() == intact
    writer.append(_row(kernel=7))
    assert len(read_lut(path)) == 2


@pytest.mark.parametrize("content,message", [
    ("a,b,c\n1,2,3\n", "not a depthshrink LUT"),
    ("\x00\x01garbage", "no complete header line"),
])
def test_foreign_or_corrupt_files_are_refused(tmp_path, content, message):
    path = tmp_path / "lut.csv"
    path.write_text(content)
    with pytest.raises(DepthshrinkError, match=message):
        LutWriter(path)


def test_bad_latency_and_missing_file_are_refused(tmp_path):
    path = tmp_path / "lut.csv"
    LutWriter(path).append(_row(latency=-1))
    with pytest.raises(DepthshrinkError, match="latency_ms must be a positive, finite number"):
        read_lut(path)
    for name, row, message in (("inf", _row(latency=float("inf")), "latency_ms must be a positive, finite number"),
                               ("half", _row(in_channels=31.5), "in_channels must be a positive integer"),
                               ("batch", _row(batch_size=1.5), "batch_size must be a positive integer in every row")):
        LutWriter(tmp_path / f"{name}.csv").append(row)  # accepted (inf, 31 channels) or a traceback (1.5)
        with pytest.raises(DepthshrinkError, match=message):
            read_lut(tmp_path / f"{name}.csv")
    with pytest.raises(DepthshrinkError, match="LUT file not found"):
        read_lut(tmp_path / "none.csv")
    with pytest.raises(DepthshrinkError, match="folder .* does not exist"):
        LutWriter(tmp_path / "no" / "lut.csv")


def test_merge_unions_devices_and_drops_duplicates(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    LutWriter(a).append(_row(device="cpu-a"))
    LutWriter(b).append(_row(device="cpu-b"))
    LutWriter(b).append(_row(device="cpu-a", latency=9.0))  # same configuration as in a
    merged, duplicates = merge_luts([a, b])
    assert duplicates == 1 and len(merged) == 2
    assert merged.loc[merged["device"] == "cpu-a", "latency_ms"].item() == 0.5  # the first one wins


def test_merging_a_table_into_itself_leaves_its_bytes_as_they_were(tmp_path):
    """``lut merge A.csv --out A.csv`` rewrote the shipped table's integers as floats (16 -> 16.0) and added
    the empty columns of a newer layout; a merge writes every cell as the LUT writer does."""
    from depthshrink.lut.merging import merge_lut_files

    shipped = ROOT / "lut" / "mobilenet_v2_small_x0.5_28_b1_onnxruntime_cpu.csv"  # no cache_flush ... passes
    table = tmp_path / "a.csv"
    table.write_bytes(shipped.read_bytes())
    merge_lut_files([table], table)
    assert table.read_bytes() == shipped.read_bytes()
    newer = tmp_path / "newer.csv"
    LutWriter(newer).append(_row(device="cpu-b", cache_flush=1, min_time_ms=200.0, passes=3))
    merge_lut_files([table, newer], tmp_path / "both.csv")
    lines = (tmp_path / "both.csv").read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)  # a column one table has is kept, empty in the other's rows
    assert lines[1] == shipped.read_text().splitlines()[1] + ",,,,,"
    assert lines[-1].startswith("cpu-b,onnxruntime,fp32,1,1,conv,,8,16,3,1,1,14,14,1,relu6,0,0.5,")
    assert lines[-1].endswith(",1,,,200,3")
    with pytest.raises(DepthshrinkError, match=r"named \*\.csv"):  # its validation would be both.validation.json
        merge_lut_files([table], tmp_path / "both")


def test_merged_files_keep_their_validations_beside_them(tmp_path):
    """A pipeline given [profile] luts, or `lut merge`, lost the validations that calibrate the search."""
    import json

    from depthshrink.lut.merging import merge_lut_files
    from depthshrink.search.calibration import read_validation

    a, b, out = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "all.csv"
    LutWriter(a).append(_row(device="cpu-a"))
    LutWriter(b).append(_row(device="cpu-b"))
    entry = {"model": "m", "network": "original", "input": [3, 8, 8], "device": "cpu-a", "backend": "onnxruntime",
             "precision": "fp32", "batch_size": 1, "threads": 1, "measured_ms": 2.0, "predicted_ms": 1.8}
    a.with_suffix(".validation.json").write_text(json.dumps([entry]))
    b.with_suffix(".validation.json").write_text(json.dumps([{**entry, "measured_ms": 9.0}, {**entry, "device": "cpu-b"}]))
    frame, duplicates, validations = merge_lut_files([a, b], out)
    assert (len(frame), duplicates, validations) == (2, 0, 2)
    kept = read_validation(out, "m", [3, 8, 8], {"device": "cpu-a", "batch_size": 1})
    assert [e["measured_ms"] for e in kept] == [2.0]  # the first file's entry wins, as its rows do
    assert main(["lut", "merge", str(a), str(b), "--out", str(tmp_path / "cli.csv")]) == 0
    assert len(json.loads((tmp_path / "cli.validation.json").read_text())) == 2
    # a table from before validations recorded the input: its entry matches every input, and comes second
    old = {k: v for k, v in entry.items() if k != "input"}
    b.with_suffix(".validation.json").write_text(json.dumps([{**old, "measured_ms": 9.0}]))
    assert merge_lut_files([a, b], out)[2] == 1
    assert [e["measured_ms"] for e in read_validation(out, "m", [3, 8, 8], {"device": "cpu-a"})] == [2.0]
    c = tmp_path / "c.csv"  # a table profiled without --validate, merged into the same file: no stale validation
    LutWriter(c).append(_row(device="cpu-a"))
    assert merge_lut_files([c], out)[2] == 0 and not out.with_suffix(".validation.json").exists()


def test_the_correction_of_several_tables_is_the_first_ones_as_their_rows_are():
    """``search --lut new.csv old.csv``: every row from new.csv, the correction fitted on old.csv's validation."""
    from depthshrink.search.calibration import fit_calibration

    new = [{"network": "original", "measured_ms": 2.0, "predicted_ms": 2.0},
           {"network": "merged_blocks", "measured_ms": 1.0, "predicted_ms": 1.0}]
    old = [{**e, "measured_ms": 1.1 * e["measured_ms"]} for e in new]
    assert fit_calibration(new + old, 0.5).scale == pytest.approx(1.0)
    assert fit_calibration(old + new, 0.5).scale == pytest.approx(1.1)


def test_a_setting_chosen_in_other_capitals_finds_the_tables_validation():
    """``search --device CPU-AMD-EPYC`` found the table's rows but kept the user's spelling in the
    setting, so no validation entry matched: the latency correction was silently dropped."""
    from depthshrink.search.calibration import read_validation

    lut = ROOT / "lut" / "mobilenet_v2_224_b1_onnxruntime_cpu.csv"
    table = LatencyTable.read(lut).select(device=" CPU-AMD-EPYC", backend="ONNXRuntime")
    assert table.setting["device"] == "cpu-amd-epyc" and table.setting["backend"] == "onnxruntime"
    found = read_validation(lut, "mobilenet_v2@1x,1000cls", [3, 224, 224], table.setting)
    assert sorted(e["network"] for e in found) == ["merged_blocks", "original"]


def test_select_and_lookup(tmp_path):
    path = tmp_path / "lut.csv"
    writer = LutWriter(path)
    writer.append(_row(device="cpu-a", latency=0.5))
    writer.append(_row(device="cpu-b", latency=0.7))
    table = LatencyTable.read(path)
    with pytest.raises(DepthshrinkError, match="mixes device values cpu-a, cpu-b"):
        table.select()
    with pytest.raises(DepthshrinkError, match="no rows for device=v100 .it has: cpu-a, cpu-b"):
        table.select(device="v100")
    chosen = table.select(device="cpu-b")
    shape = ConvShape(8, 16, 3, 1, 1, 14, 14, 1)
    assert chosen.conv_latency_ms(shape, "relu6", False) == 0.7
    assert chosen.conv_latency_ms(shape, None, False) is None
    assert chosen.setting["device"] == "cpu-b" and chosen.setting["batch_size"] == 1


def test_select_matches_numbers_whatever_their_spelling(tmp_path):
    """A CPU table (threads 1) merged with a GPU one (threads empty): --threads 1 still selects."""
    a, b, merged = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "all.csv"
    LutWriter(a).append(_row(device="cpu-a"))
    LutWriter(b).append(_row(device="v100", threads=None, backend="tensorrt"))
    frame, _ = merge_luts([a, b])
    frame.to_csv(merged, index=False)
    chosen = LatencyTable.read(merged).select(device="cpu-a", threads=1)
    assert len(chosen.frame) == 1 and chosen.setting["threads"] == 1


@pytest.mark.parametrize("name,width,resolution,in_channels,classes,table", [
    ("mobilenet_v2", 1.0, 224, 3, 1000, "mobilenet_v2_224_b1_onnxruntime_cpu.csv"),
    ("mobilenet_v2_small", 0.5, 28, 1, 10, "mobilenet_v2_small_x0.5_28_b1_onnxruntime_cpu.csv"),
])
def test_shipped_tables_cover_their_networks(name, width, resolution, in_channels, classes, table):
    from pathlib import Path

    import torch

    import depthshrink
    from depthshrink.contracts.candidates import model_label
    from depthshrink.lut.table import check_covers
    from depthshrink.models import build_model

    path = Path(depthshrink.__file__).parent / "lut" / table
    lut = LatencyTable.read(path).select()
    assert lut.setting["backend"] == "onnxruntime" and lut.setting["threads"] == 1
    model = build_model(name, width_mult=width, in_channels=in_channels, num_classes=classes)
    space = depthshrink.trace(model.eval(), torch.zeros(1, in_channels, resolution, resolution),
                              model_info={"name": name, "width_mult": width})
    check_covers(lut, space, model_label(space.model))
    assert lut.call_overhead_ms > 0


def test_fixed_part_is_looked_up_by_model_and_input_size(tmp_path):
    """One network at two resolutions (as check_covers' hint leads users to profile): each search
    takes the fixed part of its own resolution, not the first row of the model."""
    path = tmp_path / "lut.csv"
    writer = LutWriter(path)
    fixed = {"op": "fixed", "model": "net@1x", "in_channels": 1, "out_channels": None, "kernel_size": None,
             "stride": None, "groups": None, "padding": None, "activation": None, "residual_add": None}
    writer.append(_row(**fixed, height=28, width=28, latency=0.2))
    writer.append(_row(**fixed, height=32, width=32, latency=0.3))
    table = LatencyTable.read(path).select()
    assert table.fixed_latency_ms("net@1x", (1, 28, 28)) == 0.2
    assert table.fixed_latency_ms("net@1x", (1, 32, 32)) == 0.3
    assert table.fixed_latency_ms("net@1x", (3, 32, 32)) is None
    with pytest.raises(DepthshrinkError, match="several input sizes"):
        table.fixed_latency_ms("net@1x")


def test_a_table_is_timed_one_way_and_says_which(tmp_path):
    """The way rows were timed (a CUDA graph, eager calls, the host clock) belongs to the setting: a
    search verifies its networks the same way, and a table mixing two ways is refused."""
    path = tmp_path / "lut.csv"
    writer = LutWriter(path)
    writer.append(_row(kernel=3, timing_method="cuda-graph"))
    writer.append(_row(kernel=5, timing_method="cuda-graph"))
    assert LatencyTable.read(path).select().setting["timing_method"] == "cuda-graph"
    writer.append(_row(kernel=7, timing_method="cuda-events"))
    with pytest.raises(DepthshrinkError, match="timed in several ways .cuda-events, cuda-graph."):
        LatencyTable.read(path).select()
    old = tmp_path / "old.csv"  # a table from before the column: no method, nothing refused
    LutWriter(old).append(_row())
    assert "timing_method" not in LatencyTable.read(old).select().setting


def test_tables_timed_another_way_are_no_repeat_measurements(tmp_path, monkeypatch):
    """The repeatability bench compared a table timed with the cache flush against one timed
    without it and called their disagreement (69.7% of rows within ±10%) the timer's noise; the two
    tables are now refused with a line naming what differs."""
    shipped = pd.read_csv(ROOT / "lut" / "mobilenet_v2_small_x0.5_28_b1_onnxruntime_cpu.csv")
    flushed, unflushed = shipped.assign(cache_flush=1), shipped.assign(cache_flush=0)
    assert measuring_differences(flushed, unflushed) == ["cache_flush: 1 / 0"]
    assert measuring_differences(flushed, flushed.assign(latency_ms=2 * flushed["latency_ms"])) == []
    assert measuring_differences(flushed, flushed.assign(cache_flush=1.0)) == []  # one value, two spellings
    assert measuring_differences(shipped, unflushed) == []  # a table that does not say is not compared
    assert measuring_differences(flushed, unflushed.assign(threads=2)) == ["threads: 1 / 2", "cache_flush: 1 / 0"]
    timed = flushed.assign(min_time_ms=1000.0, passes=3)  # the time per row, recorded since 2026-12-06
    assert measuring_differences(timed, timed.assign(min_time_ms=200)) == ["min_time_ms: 1000 / 200"]
    assert measuring_differences(timed, flushed) == []
    paths = [tmp_path / "on.csv", tmp_path / "off.csv"]
    flushed.to_csv(paths[0], index=False)
    unflushed.to_csv(paths[1], index=False)
    monkeypatch.setattr(sys, "argv", ["lut_repeatability.py", *map(str, paths)])
    with pytest.raises(SystemExit, match=r"different settings or ways of timing \(cache_flush: 1 / 0\)"):
        runpy.run_path(str(ROOT / "bench" / "lut_repeatability.py"), run_name="__main__")


def test_two_tables_are_compared_row_by_row_whatever_their_dtypes():
    from depthshrink.lut.compare import agreement, config_keys, lacking

    table = pd.read_csv(ROOT / "lut" / "mobilenet_v2_small_x0.5_28_b1_onnxruntime_cpu.csv")
    conv = table.index[table["op"] == "conv"]
    part = table.drop(index=conv[::2])  # every other conv row not measured
    slower = part.assign(latency_ms=1.1 * part["latency_ms"]).astype({"in_channels": float, "kernel_size": str})
    slower.loc[conv[1], "latency_ms"] *= 1.5  # one row off by 50% beyond the drift
    match = agreement(table, slower)
    assert match.rows == len(conv) - len(conv[::2]) and match.drift == pytest.approx(1.1)
    assert match.within_10pct == pytest.approx((match.rows - 1) / match.rows)
    rest = lacking(table, slower)
    assert sorted(rest.index) == sorted(conv[::2])
    assert not set(config_keys(rest)) & set(config_keys(slower[slower["op"] == "conv"]))


def test_a_filter_on_a_later_column_picks_rows_a_first_column_mixes():
    """In a table of a CPU's and an H100's rows, ``--backend torch`` alone was refused: the device
    column, checked first, mixed two values, though the backend named one device's rows only."""
    cpu = ROOT / "lut" / "mobilenet_v2_224_b1_onnxruntime_cpu.csv"
    gpu = ROOT / "lut" / "h100_torch_eager" / "mobilenet_v2_224_b1_torch_h100_tf32.csv"
    table = LatencyTable.read(cpu, gpu)
    torch_rows = table.select(backend="torch")
    assert torch_rows.setting["device"] == "nvidia-h100-80gb-hbm3" and torch_rows.setting["backend"] == "torch"
    with pytest.raises(DepthshrinkError, match="mixes device values"):
        table.select()


def test_rows_timed_with_and_without_a_cache_flush_are_not_one_table(tmp_path):
    """``lut merge`` of a flushed and an unflushed table of one setting gave the search a mix (µs-scale
    rows move ~2x with the flush): refused when read, as two timing methods are, and by the merge itself
    (it wrote the union, which every later command refused)."""
    from depthshrink.lut.merging import merge_lut_files

    a, b, out = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "all.csv"
    LutWriter(a).append(_row(device="cpu-a", cache_flush=1))
    LutWriter(b).append({**_row(device="cpu-a", cache_flush=0), "in_channels": 16})
    with pytest.raises(DepthshrinkError, match=r"cannot be merged: .* timed with and without a cache flush \(0, 1\)"):
        merge_lut_files([a, b], out)
    assert not out.exists()
    pd.concat([read_lut(a), read_lut(b)]).to_csv(out, index=False)  # joined by hand
    with pytest.raises(DepthshrinkError, match=r"timed with and without a cache flush \(0, 1\)"):
        LatencyTable.read(out).select()
    LutWriter(tmp_path / "other.csv").append(_row(device="cpu-other", cache_flush=0))  # another setting: merged
    assert len(merge_lut_files([a, tmp_path / "other.csv"], out)[0]) == 2


def test_lut_merge_does_not_replace_a_table_a_session_is_profiling_into(tmp_path):
    """The merge replaced the file under a running session, whose later rows went to the file replaced."""
    import subprocess
    import sys

    from depthshrink.lut.merging import merge_lut_files

    a, out = tmp_path / "a.csv", tmp_path / "busy.csv"
    LutWriter(a).append(_row())
    LutWriter(out).append(_row(device="cpu-b"))
    before = out.read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               f"fd = os.open({str(out)!r}, os.O_RDWR)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
                               "print('held', flush=True)\ntime.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DepthshrinkError, match="is being written by another process"):
            merge_lut_files([a, out], out)
        assert out.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()


def test_a_table_given_twice_is_read_once():
    """``--lut A.csv A.csv`` doubled every row the predictor trains on (and could lift a small table over the
    row count below which it gets other tables as a prior); the first file's row of a configuration is kept."""
    shipped = ROOT / "lut" / "mobilenet_v2_small_x0.5_28_b1_onnxruntime_cpu.csv"
    once, twice = LatencyTable.read(shipped), LatencyTable.read(shipped, shipped)
    assert len(twice.frame) == len(once.frame) and twice.frame.equals(once.frame)


def _one_setting(rows: list[dict]) -> pd.DataFrame:
    base = {"device": "cpu", "backend": "onnxruntime", "precision": "fp32", "batch_size": 1, "threads": 1,
            "op": "conv", "in_channels": 8, "out_channels": 16, "kernel_size": 3, "stride": 1, "groups": 1,
            "height": 14, "width": 14, "padding": 1, "activation": "relu6", "residual_add": 0}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_a_configuration_two_models_measured_is_looked_up_by_its_first_row():
    table = LatencyTable(_one_setting([{"model": "a", "latency_ms": 1.0, "call_overhead_ms": 0.01},
                                       {"model": "b", "latency_ms": 2.0, "call_overhead_ms": 0.01}]))
    assert table.conv_latency_ms(ConvShape(8, 16, 3, 1, 1, 14, 14, 1), "relu6", False) == 1.0


def test_the_call_overhead_is_the_median_of_the_rows():
    """One row timed while the machine stalled must not move every sum (the mean would give 0.04 ms)."""
    table = LatencyTable(_one_setting([{"model": "a", "latency_ms": 1.0, "call_overhead_ms": value, "height": h}
                                       for value, h in ((0.01, 14), (0.01, 7), (0.10, 28))]))
    assert table.call_overhead_ms == pytest.approx(0.01)
