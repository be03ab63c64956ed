"""Profiling sessions: killed and resumed, locked, adaptive, in passes, the cache flush, validation."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from helpers import tiny_space as _tiny_space

import depthshrink
from depthshrink import DepthshrinkError
from depthshrink.cli.main import main
from depthshrink.contracts.candidates import distinct_candidates
from depthshrink.export.bundles import export_bundle
from depthshrink.lut.table import read_lut, row_key
from depthshrink.models import build_model
from depthshrink.profiler.base import CacheFlush
from depthshrink.profiler.session import Settings, profile
from depthshrink.profiler.timing import TimingProtocol
from depthshrink.profiler.validation import validate

FAST = TimingProtocol(warmup_ms=5, min_runs=5, min_time_ms=5)


def _cli(*args):
    return [sys.executable, "-m", "depthshrink.cli.main", *args]


def test_sigkill_halfway_then_rerun_measures_each_configuration_once(tmp_path):
    lut = tmp_path / "lut.csv"
    args = ["profile-device", "--cpu", "--model", "tiny_mobilenet", "--resolution", "16", "--batch-size", "1",
            "--lut", str(lut), "--warmup-ms", "20", "--min-time-ms", "60", "--passes", "1", "--no-progress"]
    process = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not lut.exists() or lut.read_text().count("\n") < 8):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = lut.read_bytes()
    rows_before = before.count(b"\n") - 1
    assert rows_before >= 7
    subprocess.run(_cli(*args), check=True, capture_output=True)
    after = lut.read_bytes()
    complete = before[:before.rfind(b"\n") + 1]
    assert after.startswith(complete)  # earlier rows untouched
    frame = read_lut(lut)
    keys = [row_key(r) for r in frame.to_dict("records")]
    model, space = _tiny_space()
    assert len(keys) == len(set(keys)) == len(distinct_candidates(space)) + 1


def test_a_second_process_on_the_same_lut_is_refused_and_no_row_is_duplicated(tmp_path):
    lut = tmp_path / "lut.csv"
    args = ["profile-device", "--cpu", "--model", "tiny_mobilenet", "--resolution", "16", "--batch-size", "1",
            "--lut", str(lut), "--warmup-ms", "100", "--min-time-ms", "400", "--passes", "1", "--no-progress"]
    first = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not lut.exists() or lut.read_text().count("\n") < 3):
        time.sleep(0.05)
    second = subprocess.run(_cli(*args), capture_output=True, text=True)
    assert first.poll() is None, "the first session ended before the second started: the test proves nothing"
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"depthshrink profile-device: error: {lut} is being written by another process (a profiling session): "
        "wait for it to finish, or write to another file"]
    assert first.wait(timeout=300) == 0, first.stderr.read()
    keys = [row_key(r) for r in read_lut(lut).to_dict("records")]
    model, space = _tiny_space()
    assert len(keys) == len(set(keys)) == len(distinct_candidates(space)) + 1


def test_sigkill_mid_pass_then_rerun_completes_the_table_and_removes_the_pass_log(tmp_path):
    """With several passes rows reach the LUT only once their chunk is done; each pass is logged as
    it is taken (LUT.passes.csv, which survives the kill) and the log goes when a session ends.
    (That a resumed session uses the logged passes is the next test's.)"""
    lut, log = tmp_path / "lut.csv", tmp_path / "lut.passes.csv"
    model, space = _tiny_space()
    rows = len(distinct_candidates(space)) + 1
    args = ["profile-device", "--cpu", "--model", "tiny_mobilenet", "--resolution", "16", "--batch-size", "1",
            "--lut", str(lut), "--warmup-ms", "30", "--min-time-ms", "90", "--passes", "3", "--cache-flush", "off",
            "--no-progress"]
    process = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or log.read_text().count("\n") < rows + 5):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert time.time() < deadline, "the first pass never finished"
    logged = pd.read_csv(log)
    assert len(logged) >= rows + 4 and logged["key"].nunique() == rows  # the second pass had begun
    assert not lut.exists() or read_lut(lut).empty  # one chunk: no row written yet
    subprocess.run(_cli(*args), check=True, capture_output=True)
    assert not log.exists()
    frame = read_lut(lut)
    assert len(frame) == rows and (frame["remeasured"] == 0).all()


def test_a_resumed_session_runs_only_the_passes_it_lacks(tmp_path, monkeypatch):
    """Passes a killed session logged are kept (with its cache-flush setting, an auto session
    takes it over); other protocols', timing methods', hosts', settings' and flush settings' lines are not used,
    and other settings' lines stay in the log. Only the missing passes run."""
    from depthshrink.profiler import onnxruntime as ort_backend
    from depthshrink.profiler.pass_log import FIELDS, PassLog
    from depthshrink.profiler.recording import pass_log_of as _pass_log
    from depthshrink.profiler.recording import row_of as _row
    from depthshrink.profiler.timing import Timing

    model, space = _tiny_space()
    bundle = export_bundle(model, space, 1, tmp_path / "bundle", networks=True, progress=False)
    lut, backend = tmp_path / "lut.csv", ort_backend.OnnxRuntimeBackend(1, cache_flush=CacheFlush.AUTO)
    protocol = TimingProtocol(warmup_ms=5, min_runs=3, min_time_ms=5, passes=3)
    settings = Settings("cpu-test", 1, protocol, progress=False)
    first, second = [e for e in bundle.entries if e.op == "conv"][:2]
    log, fast = _pass_log(lut, backend, settings), Timing(1e-4, 1e-4, 1e-4, 7, 1.0)  # absurdly fast passes
    keys = {e.key: "|".join(row_key(_row(e, bundle, backend, settings))) for e in (first, second)}
    for entry, count in ((first, 2), (second, 3)):  # as a killed session left them, 7 runs each
        for _ in range(count):
            log.record(keys[entry.key], CacheFlush.ON, Timing(1e-5, 1e-5, 1e-5, 5, 1.0), 0.0123)  # another flush
            log.record(keys[entry.key], CacheFlush.OFF, fast, 0.0123)  # the killed session's call overhead
    PassLog(lut, TimingProtocol(passes=3), log.setting).record(keys[second.key], CacheFlush.OFF,
                                                               Timing(1e-6, 1e-6, 1e-6, 2, 1), 0.5)
    PassLog(lut, protocol, log.setting, "cuda-graph").record(keys[second.key], CacheFlush.OFF,  # timed another way
                                                             Timing(1e-6, 1e-6, 1e-6, 2, 1), 0.5)
    other = keys[second.key].replace("cpu-test", "cpu-other")
    PassLog(lut, protocol, "cpu-other|onnxruntime|fp32|1|1").record(other, CacheFlush.ON, fast, 0.5)  # another setting
    with open(log.path, "a") as handle:  # another host
        handle.write(f"{keys[second.key]},{log.protocol},elsewhere,0,1e-6,1e-6,1e-6,3,1.0\n")
    assert _pass_log(lut, backend, settings).cache_flush is CacheFlush.OFF  # not the other setting's ON
    timed = []
    original = ort_backend.OnnxRuntimeBackend.time_in_network
    monkeypatch.setattr(ort_backend.OnnxRuntimeBackend, "time_in_network",
                        lambda self, workload, p: timed.append(workload.key) or original(self, workload, p))
    report = profile(bundle, backend, lut, settings, networks=True)
    assert report.cache_flush.kept and backend.cache_flush is CacheFlush.OFF  # as the killed session's passes
    assert "as a killed session's logged passes" in report.cache_flush.describe()  # said "the LUT's earlier timings"
    assert timed.count(first.key) == 1 and timed.count(second.key) == 0
    rows = [e for e in bundle.entries if e.op in ("conv", "fixed")]
    assert all(timed.count(e.key) == 3 for e in rows if e not in (first, second))
    by_key = {"|".join(row_key(r)): r for r in read_lut(lut).to_dict("records")}
    assert by_key[keys[second.key]]["runs"] == 21  # exactly its three logged passes, nothing else
    assert by_key[keys[first.key]]["runs"] > 14 and by_key[keys[first.key]]["latency_ms"] < 1e-3
    assert report.networks == {}  # they did not meet the passes taken over: validate times them alone
    # every pass, logged or new, had the killed session's overhead subtracted, and the rows say so
    assert set(read_lut(lut)["call_overhead_ms"]) == {0.0123}
    # and how long each row was timed, so that two tables timed otherwise are not taken for repeats
    assert set(read_lut(lut)["min_time_ms"]) == {5} and set(read_lut(lut)["passes"]) == {3}
    assert pd.read_csv(log.path)["key"].tolist() == [other]  # this setting's lines gone, the other's kept
    assert list(pd.read_csv(log.path).columns) == FIELDS


def test_adaptive_profiling_stays_within_its_budget(tmp_path, capsys):
    from depthshrink.profiler.onnxruntime import OnnxRuntimeBackend

    model = build_model("mobilenet_v2", width_mult=0.35).eval()
    space = depthshrink.trace(model, torch.zeros(1, 3, 64, 64), model_info={"name": "mobilenet_v2"})
    bundle = export_bundle(model, space, 1, tmp_path / "bundle", progress=False)
    total = len(distinct_candidates(space))
    settings = Settings("cpu-test", 1, FAST, progress=False)
    backend, lut = OnnxRuntimeBackend(1), tmp_path / "lut.csv"
    report = profile(bundle, backend, lut, settings, budget_fraction=0.4)
    conv = report.measured[report.measured["op"] == "conv"]
    assert 20 <= len(conv) <= -(-0.4 * total // 1) < total
    assert (report.measured["op"] == "fixed").sum() == 1
    again = profile(bundle, backend, lut, settings, budget_fraction=0.4)  # budget already spent
    assert again.measured.empty
    results = validate(bundle, backend, lut, settings)
    assert all(r["predicted_segments"] > 0 and r["predicted_ms"] > 0 for r in results)


def test_cache_flush_on_off_or_chosen_by_the_network(tmp_path, monkeypatch):
    """The block's runner streams twice the L2 before each timed run (on), nothing (off), or, with
    auto, whichever makes the original network's layers sum closer to the network measured whole."""
    from depthshrink.profiler import onnxruntime as ort_backend
    from depthshrink.profiler.base import CacheFlush
    from depthshrink.profiler.cache_flush import _key
    from depthshrink.profiler.factory import BackendOptions, backend_factory

    model, space = _tiny_space()
    bundle = export_bundle(model, space, 1, tmp_path / "bundle", progress=False)
    flushes, pairs = [], []
    original = ort_backend.OnnxRuntimeBackend.runner

    def spy(self, workload, flush_bytes=0):
        flushes.append(flush_bytes)
        pairs.append((workload.key, flush_bytes))
        return original(self, workload, flush_bytes)

    monkeypatch.setattr(ort_backend.OnnxRuntimeBackend, "runner", spy)
    flushed = 2 * ort_backend._l2_bytes()
    keys = [_key(bundle, start, end) for start, end in next(e for e in bundle.of_op("network")
                                                            if e.key == "network_original").fields["segments"]]
    for flag, expected in (("on", flushed), ("off", 0), ("auto", None)):
        make_backend, _ = backend_factory(BackendOptions(cache_flush=CacheFlush(flag)))
        backend = make_backend()
        flushes.clear()
        pairs.clear()
        report = profile(bundle, backend, tmp_path / f"lut_{flag}.csv", Settings("cpu-test", 1, FAST, progress=False))
        if expected is None:  # auto: both settings tried on the original's layers, then one kept
            choice = report.cache_flush
            assert choice is not None and backend.cache_flush is choice.cache_flush
            assert choice.network_ms > 0 and choice.with_flush_ms > 0 and choice.without_flush_ms > 0
            errors = {flush: abs(total - choice.network_ms) for flush, total in
                      ((CacheFlush.ON, choice.with_flush_ms), (CacheFlush.OFF, choice.without_flush_ms))}
            assert errors[choice.cache_flush] == min(errors.values())
            layers = {key for key in keys if key.startswith("conv")}  # the original's layers, timed both ways
            assert layers and all((key, 0) in pairs and (key, flushed) in pairs for key in layers)
            assert ("network_original", 0) in pairs  # the network whole, never flushed
            table = read_lut(tmp_path / f"lut_{flag}.csv")
            assert (table["cache_flush"] == choice.cache_flush.recorded).all()  # recorded in every row
        else:
            assert report.cache_flush is None
            assert expected in flushes and set(flushes) <= {expected, 0}  # whole networks are never flushed


def test_passes_interleave_per_chunk_and_each_chunk_is_written_once_timed(tmp_path, monkeypatch):
    """Three passes over chunks of (at most) four configurations: 1 2 3 4 1 2 3 4 1 2 3 4, then 5 6 …; a
    chunk's rows reach the LUT before the next chunk is timed; the layout share is profiled once."""
    from depthshrink.profiler import onnxruntime as ort_backend

    model, space = _tiny_space()
    bundle = export_bundle(model, space, 1, tmp_path / "bundle", networks=False, progress=False)
    lut, backend = tmp_path / "lut.csv", ort_backend.OnnxRuntimeBackend(1)
    timed, rows_seen, profiled = [], [], []
    original_time, original_profile = ort_backend.OnnxRuntimeBackend.time_in_network, backend._profile

    def spy(self, workload, protocol):
        assert protocol.passes == 1 and protocol.min_time_ms == pytest.approx(15 / 3)
        timed.append(workload.key)
        rows_seen.append(read_lut(lut).shape[0] if lut.exists() else 0)
        return original_time(self, workload, protocol)

    monkeypatch.setattr(ort_backend.OnnxRuntimeBackend, "time_in_network", spy)
    monkeypatch.setattr(backend, "_profile", lambda workload: profiled.append(workload.key) or original_profile(workload))
    protocol = TimingProtocol(warmup_ms=15, min_runs=5, min_time_ms=15, passes=3)
    report = profile(bundle, backend, lut, Settings("cpu-test", 1, protocol, progress=False, pass_chunk=4))
    keys = [e.key for e in bundle.entries if e.op in ("conv", "fixed")]
    count = -(-len(keys) // 4)  # chunks of at most four, of even size
    bounds = [len(keys) * i // count for i in range(count + 1)]
    chunks = [keys[a:b] for a, b in zip(bounds, bounds[1:])]
    assert max(map(len, chunks)) <= 4 and max(map(len, chunks)) - min(map(len, chunks)) <= 1
    assert timed == [key for chunk in chunks for key in chunk * 3]
    assert rows_seen == [bounds[i] for i, chunk in enumerate(chunks) for _ in chunk * 3]
    assert len(profiled) == len(set(profiled)) and set(profiled) == set(keys) | {"relu"}  # relu: the profiler's floor
    frame = read_lut(lut)
    assert len(frame) == len(keys) == len(report.measured)
    assert (frame["runs"] >= 6).all() and (frame["remeasured"] == 0).all()  # 3 passes of at least ceil(5 / 3) runs


def test_networks_to_validate_ride_in_every_chunks_passes_and_are_not_timed_again(tmp_path, monkeypatch):
    """With --validate and several passes, the whole networks are timed inside each chunk (spread
    over it), in the same passes as the rows; validate() then reports them without timing again."""
    from depthshrink.profiler import onnxruntime as ort_backend

    model, space = _tiny_space()
    bundle = export_bundle(model, space, 1, tmp_path / "bundle", networks=True, progress=False)
    lut, backend = tmp_path / "lut.csv", ort_backend.OnnxRuntimeBackend(1, cache_flush=CacheFlush.OFF)
    backend.call_overhead_ms(FAST)  # timed once, before the spy
    order = []
    for method in ("time", "time_in_network"):
        original = getattr(ort_backend.OnnxRuntimeBackend, method)
        monkeypatch.setattr(ort_backend.OnnxRuntimeBackend, method,
                            lambda self, workload, protocol, original=original:
                            order.append(workload.key) or original(self, workload, protocol))
    protocol = TimingProtocol(warmup_ms=5, min_runs=3, min_time_ms=5, passes=3)
    settings = Settings("cpu-test", 1, protocol, progress=False, pass_chunk=6)
    report = profile(bundle, backend, lut, settings, networks=True)
    networks = [e.key for e in bundle.of_op("network")]
    rows = [e.key for e in bundle.entries if e.op in ("conv", "fixed")]
    chunks = -(-len(rows) // 6)
    assert len(order) == 3 * (len(rows) + 2 * chunks) and set(networks) <= set(order)
    first_pass = order[:order.index(order[0], 1)]  # one pass over the first chunk, the networks spread in it
    assert [k for k in first_pass if k in networks] == networks
    positions = [first_pass.index(k) for k in networks]
    assert 0 < positions[0] < positions[1] < len(first_pass) - 1
    assert set(report.networks) == set(networks) and len(report.measured) == len(rows)
    assert all(len(t.pass_ms) == 3 * chunks for t in report.networks.values())
    assert all(min(t.pass_ms) <= t.timing.latency_ms for t in report.networks.values())
    before = len(order)
    results = validate(bundle, backend, lut, settings, timed=report.networks)
    assert len(order) == before  # nothing timed again
    for r in results:
        assert r["timed_among_rows"] and r["fastest_pass_ms"] <= r["measured_ms"] <= r["slowest_pass_ms"]
    alone = validate(bundle, backend, lut, settings)  # without them: timed now, in their own passes
    assert len(order) == before + 3 * 2 and not any(r["timed_among_rows"] for r in alone)
    lines = lut.read_text().splitlines(keepends=True)
    lut.write_text("".join(lines[:-2]))  # extended: the networks would not meet the other rows' passes
    extended = profile(bundle, backend, lut, settings, networks=True)
    assert len(extended.measured) == 2 and extended.networks == {}
    assert not set(networks) & set(order[before + 6:])  # so they are not timed among the two rows


@pytest.mark.parametrize("slowest_ms, warned", [(5.4, False), (5.6, True)])
def test_validation_warns_when_a_networks_passes_drift_over_ten_percent(slowest_ms, warned):
    from depthshrink.pipeline.profile import Profiled, describe, drift_warning
    from depthshrink.profiler.session import ProfileReport

    result = {"network": "original", "segments": 3, "predicted_segments": 0, "measured_ms": 5.0,
              "predicted_ms": 5.5, "error_pct": 10.0, "fastest_pass_ms": 5.0, "slowest_pass_ms": slowest_ms,
              "timed_among_rows": True}
    profiled = Profiled(ProfileReport(pd.DataFrame(), 0, 1.0), "cpu-x", "net", "onnxruntime", "fp32", [result])
    text = "\n".join(describe(profiled))
    assert "timed in the table's passes" in text and "error +10.0%" in text
    assert ("timings differed by up to 12%" in (drift_warning([result]) or "")) is warned
    profiled.validation = [{**result, "timed_among_rows": False}]
    assert "whole network:\n" in "\n".join(describe(profiled))  # timed alone: said without the passes


def test_validate_refuses_a_bundle_without_networks(tmp_path, capsys):
    model, space = _tiny_space()
    export_bundle(model, space, 1, tmp_path / "bundle", networks=False, progress=False)
    assert main(["profile-device", "--cpu", "--bundle", str(tmp_path / "bundle"), "--batch-size", "1",
                 "--lut", str(tmp_path / "lut.csv"), "--validate", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "this bundle has none (export it without --no-networks)" in err and err.count("\n") == 1


def test_auto_cache_flush_keeps_the_setting_a_table_was_begun_with(tmp_path):
    """A killed table resumed with auto keeps its rows' setting (recorded in ``cache_flush``)
    rather than choosing again; rows of a LUT written before the column simply lack it."""
    from depthshrink.profiler.base import CacheFlush
    from depthshrink.profiler.onnxruntime import OnnxRuntimeBackend

    model, space = _tiny_space()
    bundle = export_bundle(model, space, 1, tmp_path / "bundle", networks=True, progress=False)
    lut, settings = tmp_path / "lut.csv", Settings("cpu-test", 1, FAST, progress=False)
    first = profile(bundle, OnnxRuntimeBackend(1, cache_flush=CacheFlush.OFF), lut, settings)
    assert first.cache_flush is None and (read_lut(lut)["cache_flush"] == 0).all()
    lines = lut.read_text().splitlines(keepends=True)
    lut.write_text("".join(lines[:-3]))  # as if killed three rows before the end
    auto = OnnxRuntimeBackend(1, cache_flush=CacheFlush.AUTO)
    resumed = profile(bundle, auto, lut, settings)
    assert len(resumed.measured) == 3 and resumed.cache_flush.kept and auto.cache_flush is CacheFlush.OFF
    assert "as the LUT's earlier timings" in resumed.cache_flush.describe()
    assert (read_lut(lut)["cache_flush"] == 0).all()


def test_a_table_timed_another_way_is_not_extended(tmp_path):
    from depthshrink.lut.table import COLUMNS
    from depthshrink.lut.writer import LutWriter
    from depthshrink.profiler.onnxruntime import OnnxRuntimeBackend

    model, space = _tiny_space()
    bundle = export_bundle(model, space, 1, tmp_path / "bundle", networks=False, progress=False)
    lut = tmp_path / "lut.csv"
    row = {c: None for c in COLUMNS}
    row.update(device="cpu-test", backend="onnxruntime", precision="fp32", batch_size=1, threads=1, op="conv",
               in_channels=4, out_channels=4, kernel_size=1, stride=1, groups=1, height=4, width=4, padding=0,
               activation="none", residual_add=0, latency_ms=0.01, timing_method="cuda-graph")
    LutWriter(lut).append(row)
    with pytest.raises(DepthshrinkError, match="timed as cuda-graph, this session times them as host-clock"):
        profile(bundle, OnnxRuntimeBackend(1, CacheFlush.OFF), lut, Settings("cpu-test", 1, FAST, progress=False))
    row["timing_method"] = "host-clock"  # a table timed two ways already: extended by neither
    LutWriter(lut).append({**row, "in_channels": 8})
    with pytest.raises(DepthshrinkError, match=r"timed in several ways \(cuda-graph, host-clock\)"):
        profile(bundle, OnnxRuntimeBackend(1, CacheFlush.OFF), lut, Settings("cpu-test", 1, FAST, progress=False))


def test_a_table_is_extended_only_under_its_own_spelling_of_the_device(tmp_path):
    """--device-label CPU-TEST on a cpu-test table: its setting was found (labels match without case) but its rows
    were not (keys match exactly), so every row was measured again under the second spelling, and the table was
    then refused for mixing the two."""
    from depthshrink.profiler.onnxruntime import OnnxRuntimeBackend

    model, space = _tiny_space()
    bundle = export_bundle(model, space, 1, tmp_path / "bundle", networks=False, progress=False)
    lut = tmp_path / "lut.csv"
    profile(bundle, OnnxRuntimeBackend(1, CacheFlush.OFF), lut, Settings("cpu-test", 1, FAST, progress=False))
    before = lut.read_bytes()
    with pytest.raises(DepthshrinkError, match="names this device cpu-test, this session CPU-TEST: give --device-label"):
        profile(bundle, OnnxRuntimeBackend(1, CacheFlush.OFF), lut, Settings("CPU-TEST", 1, FAST, progress=False))
    assert lut.read_bytes() == before


def test_a_table_timed_with_the_other_cache_flush_is_not_extended(tmp_path):
    """auto keeps a table's flush; an explicit --cache-flush that differs from it was added to the same
    table, mixing rows timed with warm and with flushed caches (µs-scale rows move by ~2x)."""
    from depthshrink.profiler.onnxruntime import OnnxRuntimeBackend

    model, space = _tiny_space()
    bundle = export_bundle(model, space, 1, tmp_path / "bundle", networks=False, progress=False)
    lut, settings = tmp_path / "lut.csv", Settings("cpu-test", 1, FAST, progress=False)
    profile(bundle, OnnxRuntimeBackend(1, cache_flush=CacheFlush.OFF), lut, settings)
    lut.write_text("".join(lut.read_text().splitlines(keepends=True)[:-3]))  # three rows left to measure
    before = lut.read_text()
    with pytest.raises(DepthshrinkError, match="timed with the cache flush off, this session flushes: write to "
                                               "another LUT"):
        profile(bundle, OnnxRuntimeBackend(1, cache_flush=CacheFlush.ON), lut, settings)
    assert lut.read_text() == before
    resumed = profile(bundle, OnnxRuntimeBackend(1, cache_flush=CacheFlush.OFF), lut, settings)
    assert len(resumed.measured) == 3 and (read_lut(lut)["cache_flush"] == 0).all()


def test_a_pass_log_from_before_the_timing_method_was_recorded_is_taken_over_where_it_is_unambiguous(tmp_path):
    """A session killed before the method was recorded: a host-clock backend (one way of timing) takes its
    passes over; a GPU backend, which times two ways, cannot know which and times again."""
    from depthshrink.profiler.pass_log import PassLog
    from depthshrink.profiler.timing import Timing

    lut, protocol = tmp_path / "lut.csv", TimingProtocol(passes=3)
    PassLog(lut, protocol, "cpu-x|onnxruntime").record("cpu-x|onnxruntime|k", CacheFlush.OFF,
                                                       Timing(0.1, 0.1, 0.1, 5, 1.0), 0.01)
    assert len(PassLog(lut, protocol, "cpu-x|onnxruntime", "host-clock").taken("cpu-x|onnxruntime|k", CacheFlush.OFF)) == 1
    assert PassLog(lut, protocol, "cpu-x|onnxruntime", "cuda-graph").taken("cpu-x|onnxruntime|k", CacheFlush.OFF) == []


def test_a_lut_not_named_csv_is_refused_before_anything_is_exported(tmp_path, capsys):
    """``--lut cpu`` and ``--lut cpu.csv`` shared one pass log, validation file (``cpu.validation.json``) and,
    run at once, neither lock held the other off."""
    from depthshrink.lut.writer import LutWriter

    for name in ("cpu", "cpu.CSV", "cpu.csv.bak"):
        assert main(["profile-device", "--cpu", "--model", "tiny_mobilenet", "--resolution", "32",
                     "--batch-size", "1", "--lut", str(tmp_path / name), "--no-progress"]) == 1
        assert "a LUT file is named *.csv" in capsys.readouterr().err
        with pytest.raises(DepthshrinkError, match=r"named \*\.csv"):
            LutWriter(tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DepthshrinkError, match=r"names the pass log of another LUT"):  # x.csv's, rewritten as one
        LutWriter(tmp_path / "x.passes.csv")


def test_a_pass_log_of_the_older_layout_is_rewritten_in_the_new_one_before_a_line_is_added(tmp_path):
    """A 9-field log (before call_overhead_ms) got 10-field lines appended under its 9-field header: the
    overhead they recorded was read back as nothing."""
    import csv

    from depthshrink.profiler.pass_log import FIELDS, PassLog, log_path
    from depthshrink.profiler.timing import Timing

    lut, protocol, ours = tmp_path / "lut.csv", TimingProtocol(passes=3), "cpu-x|onnxruntime"
    PassLog(lut, protocol, ours).record(f"{ours}|a", CacheFlush.OFF, Timing(0.1, 0.1, 0.1, 5, 1.0), 0.01)
    log = log_path(lut)
    header, line = log.read_text().splitlines()
    log.write_text(",".join(FIELDS[:-1]) + "\n" + line.rsplit(",", 1)[0] + "\n")  # as an older session left it
    PassLog(lut, protocol, ours).record(f"{ours}|b", CacheFlush.OFF, Timing(0.2, 0.2, 0.2, 5, 1.0), 0.03)
    rows = list(csv.reader(log.read_text().splitlines()))
    assert rows[0] == FIELDS and [len(r) for r in rows[1:]] == [10, 10] and rows[1][-1] == ""
    again = PassLog(lut, protocol, ours)
    assert again.call_overhead_ms == 0.03 and len(again.taken(f"{ours}|a", CacheFlush.OFF)) == 1


def test_auto_says_when_the_tables_earlier_rows_do_not_record_their_flush(tmp_path):
    """A LUT from before the cache_flush column, extended with auto: the session chose afresh and said nothing,
    though its new rows may be timed the other way from the old ones."""
    from depthshrink.profiler.onnxruntime import OnnxRuntimeBackend

    model, space = _tiny_space()
    bundle = export_bundle(model, space, 1, tmp_path / "bundle", networks=True, progress=False)
    lut, settings = tmp_path / "lut.csv", Settings("cpu-test", 1, FAST, progress=False)
    profile(bundle, OnnxRuntimeBackend(1, cache_flush=CacheFlush.OFF), lut, settings)
    old = pd.read_csv(lut).drop(columns=["cache_flush", "timing_method", "layout", "min_time_ms", "passes"])
    old.iloc[:-3].to_csv(lut, index=False)  # an older layout, three rows left to measure
    resumed = profile(bundle, OnnxRuntimeBackend(1, cache_flush=CacheFlush.AUTO), lut, settings)
    assert len(resumed.measured) == 3 and not resumed.cache_flush.kept
    assert resumed.cache_flush.unrecorded_rows == len(old) - 3
    assert f"the LUT's {len(old) - 3} earlier rows of this setting do not record theirs" in resumed.cache_flush.describe()


def test_a_fixed_row_measured_before_the_fixed_part_timed_the_gates_is_not_extended(tmp_path):
    """Extending a MobileNetV3 table measured before 2026-12-06 kept its fixed row, which lacks the SE gates."""
    from depthshrink.lut.table import COLUMNS
    from depthshrink.lut.writer import LutWriter
    from depthshrink.profiler.onnxruntime import OnnxRuntimeBackend
    from depthshrink.profiler.recording import row_of

    model = build_model("mobilenet_v3_small").eval()
    space = depthshrink.trace(model, torch.zeros(1, 3, 64, 64), model_info={"name": "mobilenet_v3_small"})
    bundle = export_bundle(model, space, 1, tmp_path / "bundle", networks=False, progress=False)
    backend, settings = OnnxRuntimeBackend(1, CacheFlush.OFF), Settings("cpu-test", 1, FAST, progress=False)
    fixed = row_of(next(e for e in bundle.entries if e.op == "fixed"), bundle, backend, settings)
    lut = tmp_path / "lut.csv"
    LutWriter(lut).append({**dict.fromkeys(COLUMNS), **fixed, "latency_ms": 0.08, "cache_flush": 0,
                           "timing_method": "host-clock", "measured_at": "2026-12-05T10:00:00+00:00"})
    with pytest.raises(DepthshrinkError, match=r"fixed-part row of mobilenet_v3_small@1x,1000cls was measured "
                                               r"2026-12-05T10:00:00\+00:00, before the fixed part timed"):
        profile(bundle, backend, lut, settings)
    assert len(read_lut(lut)) == 1
