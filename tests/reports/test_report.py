"""``depthshrink report``: the page, its figures and table, from hand-made run folders."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from depthshrink.cli import report as report_cli
from depthshrink.errors import DepthshrinkError
from depthshrink.reports.runs import load_run
from depthshrink.reports.search_plots import segment_pieces
from depthshrink.reports.table import pareto_optimal, utilisation_pct

LUT = Path(__file__).resolve().parents[2] / "lut" / "mobilenet_v2_small_x0.5_28_b1_onnxruntime_cpu.csv"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CPU = {"device": "cpu-amd-epyc", "backend": "onnxruntime", "threads": 1, "peak_flops_per_s": 2.3e11,
       "host": "vm", "tool_version": "1.32.0", "measured_at": "2026-12-01T10:00:00+00:00"}
GPU = {**CPU, "device": "gpu-h200", "backend": "tensorrt", "peak_flops_per_s": 6.7e13}
ORIGINAL = [[p, p + 1] for p in range(14)]
DP_SEGMENTS = [[0, 2], [2, 5], [5, 8], [8, 11], [11, 14]]
DS_SEGMENTS = [[0, 1], [1, 2], [2, 5], [5, 8], [8, 9], [9, 10], [10, 11], [11, 14]]
# network, kind, budget, accuracy, latency_ms, throughput_ips, predicted_latency_ms, masks
CPU_NETWORKS = [
    ("original", "original", "", 0.90, 0.30, 3300.0, 0.31, "search/original.json"),
    ("dp-1.3x", "dp", "1.3x", 0.89, 0.22, 4500.0, 0.23, "search/dp-1.3x.json"),
    ("depthshrinker-1.3x", "depthshrinker", "1.3x", 0.88, 0.24, 4200.0, 0.26, "search/depthshrinker-1.3x.json"),
    ("width-0.35", "width", "", 0.85, 0.15, 6500.0, None, ""),
    ("pruned-0.3", "pruned", "", 0.86, 0.25, 4000.0, None, ""),
]
GPU_NETWORKS = [("original", "original", "", 0.90, 0.05, 40000.0, 0.048, ""),
                ("dp-1.3x", "dp", "1.3x", 0.895, 0.04, 52000.0, None, "")]


@pytest.fixture(scope="module")
def space_json(tmp_path_factory) -> Path:
    import torch

    from depthshrink.models import build_model
    from depthshrink.models.trace import trace

    model = build_model("tiny_mobilenet", in_channels=1, num_classes=10).eval()
    space = trace(model, torch.zeros(1, 1, 28, 28), model_info={"name": "tiny_mobilenet"})
    path = tmp_path_factory.mktemp("space") / "space.json"
    space.to_json(path)
    return path


def _results(networks, device: dict) -> pd.DataFrame:
    rows = []
    for network, kind, budget, accuracy, latency, throughput, predicted, masks in networks:
        rows.append({"network": network, "kind": kind, "budget": budget,
                     "latency_budget_ms": 0.3 / 1.3 if budget else None, "predicted_latency_ms": predicted,
                     "accuracy": accuracy, "test_images": 10000, "latency_ms": latency,
                     "latency_p10_ms": latency * 0.95, "latency_p90_ms": latency * 1.1,
                     "throughput_ips": throughput, "throughput_batch_size": 64, "parameters": 100_000,
                     "flops": 5e6, "device": device["device"], "backend": device["backend"],
                     "threads": device["threads"], "masks": masks})
    return pd.DataFrame(rows)


def _masks(segments, latencies, method: str, budget_ms) -> dict:
    return {"format": "depthshrink.masks/1", "model": {"name": "tiny_mobilenet"}, "method": method,
            "latency_budget_ms": budget_ms, "predicted_latency_ms": sum(latencies) + 0.05,
            "original_latency_ms": 0.31, "objective": -0.5, "kept_activations": [], "removed_activations": [],
            "segments": segments, "segment_latency_ms": latencies, "device": "cpu-amd-epyc",
            "backend": "onnxruntime", "threads": 1}


def make_run(root: Path, name: str, space_json: Path | None, device: dict = CPU, networks=CPU_NETWORKS,
             lut_rows: int | None = None, search: bool = True) -> Path:
    """A run folder as ``depthshrink run`` writes it; ``lut_rows`` keeps only the first rows of the LUT."""
    run = root / name
    (run / "search").mkdir(parents=True) if search else run.mkdir(parents=True)
    (run / "config.toml").write_text('[model]\nname = "tiny_mobilenet"\nnote = "<b>escaped</b>"\n')
    (run / "device.json").write_text(json.dumps(device))
    _results(networks, device).to_csv(run / "results.csv", index=False)
    if space_json is not None:
        shutil.copy(space_json, run / "space.json")
    if lut_rows is not None:
        lines = LUT.read_text().splitlines(keepends=True)
        (run / "lut.csv").write_text("".join(lines[:lut_rows + 1]))
        shutil.copy(LUT.with_suffix(".validation.json"), run / "lut.validation.json")
        (run / "importance.csv").write_text("start,end,importance,method\n0,2,-0.1,probe\n")
    if search:
        budget = 0.3 / 1.3
        files = {"original": _masks(ORIGINAL, [0.015] * 14, "original", None),
                 "dp-1.3x": _masks(DP_SEGMENTS, [0.03, 0.04, 0.035, 0.02, 0.025], "dp", budget),
                 "depthshrinker-1.3x": _masks(DS_SEGMENTS, [0.01, 0.01, 0.04, 0.035, 0.01, 0.01, 0.01, 0.025],
                                              "depthshrinker", budget)}
        for network, data in files.items():
            (run / "search" / f"{network}.json").write_text(json.dumps(data))
        pd.DataFrame({"latency_ms": [0.16, 0.2, 0.22, 0.31], "importance": [-3.0, -1.2, -0.5, 0.0],
                      "kept_activations": ["", "3", "3 6", "1 3 4 6 7 9 10 12 13"], "segments": [3, 5, 5, 14],
                      "chosen": [0, 0, 1, 0]}).to_csv(run / "search" / "dp-1.3x.frontier.csv", index=False)
    return run


def build(*args: str) -> int:
    parser = argparse.ArgumentParser()
    report_cli.add_arguments(parser)
    return report_cli.run(parser.parse_args([str(a) for a in args]))


def image_sources(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory, space_json) -> Path:
    """One complete CPU run and one GPU run missing its LUT and search (built once for several tests)."""
    root = tmp_path_factory.mktemp("runs")
    cpu = make_run(root, "cpu-run", space_json, lut_rows=10_000)
    gpu = make_run(root, "gpu-run", None, device=GPU, networks=GPU_NETWORKS, search=False)
    out = root / "report" / "nested"
    assert build(cpu, gpu, "--out", out) == 0
    return out


def test_page_has_every_figure_and_only_local_png_files(full_report):
    page = (full_report / "index.html").read_text()
    sources = image_sources(page)
    for src in sources:
        assert "/" not in src and (full_report / src).read_bytes()[:8] == PNG_MAGIC
    prefixes = sorted({re.sub(r"_.*", "", s) for s in sources})
    assert prefixes == ["accuracy", "additivity", "frontier", "parity", "segments"]
    # two devices: separate trade-off figures for each (2 axes x 2 devices), separate additivity figures
    assert len([s for s in sources if s.startswith("accuracy_")]) == 4
    assert {s for s in sources if s.startswith("additivity_")} == {
        "additivity_cpu-amd-epyc-onnxruntime-1-thread.png", "additivity_gpu-h200-tensorrt-1-thread.png"}
    assert "http" not in page.replace('lang="en"', "") and "<script" not in page
    assert "&lt;b&gt;escaped&lt;/b&gt;" in page and "<details>" in page
    for href in re.findall(r'href="([^"]+)"', page):
        assert (full_report / href).is_file()


def test_table_has_one_row_per_network_with_the_right_numbers(full_report):
    page = (full_report / "index.html").read_text()
    body = page.split('<table class="dataframe results">')[1].split("</table>")[0]
    assert body.count("<tr") == 1 + len(CPU_NETWORKS) + len(GPU_NETWORKS)
    table = pd.read_csv(full_report / "results.csv", keep_default_na=False, na_values=[""])
    assert list(table["run"]) == ["cpu-run"] * 5 + ["gpu-run"] * 2
    cpu = table[table["run"] == "cpu-run"].set_index("network")
    assert cpu.loc["original", "utilisation_pct"] == pytest.approx(100 * 5e6 * 3300 / 2.3e11)
    gpu = table[table["run"] == "gpu-run"].set_index("network")
    assert gpu.loc["dp-1.3x", "utilisation_pct"] == pytest.approx(100 * 5e6 * 52000 / 6.7e13)
    # Pareto within the CPU run: dp beats depthshrinker and pruned; width is fastest; original most accurate
    assert dict(cpu["pareto_latency"]) == {"original": True, "dp-1.3x": True, "depthshrinker-1.3x": False,
                                           "width-0.35": True, "pruned-0.3": False}
    assert dict(cpu["pareto_throughput"]) == dict(cpu["pareto_latency"])
    # the GPU networks are faster and as accurate, yet the CPU original stays optimal: devices never mixed
    assert gpu["pareto_latency"].all()
    assert "<td>91.00</td>" not in page and "<td>90.00</td>" in page and "<td>7.17</td>" in page
    assert page.count('<tr class="pareto">') == 5


def test_missing_stages_are_listed_per_run(full_report):
    page = (full_report / "index.html").read_text()
    runs = page.split('<table class="runs">')[1].split("</table>")[0]
    gpu_row = next(row for row in runs.split("<tr>") if row.startswith("<td>gpu-run"))
    assert "space.json, lut.csv, lut.validation.json, importance.csv, search/" in gpu_row
    cpu_row = next(row for row in runs.split("<tr>") if row.startswith("<td>cpu-run"))
    assert ">none<" in cpu_row
    assert "gpu-run: no lut.csv; no parity plot" in page
    assert "gpu-run: no search/*.frontier.csv" in page


def test_a_lut_of_two_backends_gets_a_parity_plot_each(tmp_path):
    """The plots were named by device and batch only: a LUT timed with ONNX Runtime and with torch on
    one CPU wrote both to one file, and the page showed the second plot twice."""
    run = make_run(tmp_path, "both", None, lut_rows=None, search=False)
    shipped = pd.read_csv(LUT)
    pd.concat([shipped, shipped.assign(backend="torch")]).to_csv(run / "lut.csv", index=False)
    out = tmp_path / "out"
    assert build(run, "--out", out) == 0
    plots = [s for s in image_sources((out / "index.html").read_text()) if s.startswith("parity")]
    assert sorted(plots) == ["parity_both_cpu-amd-epyc-onnxruntime-fp32-b1-t1.png",
                             "parity_both_cpu-amd-epyc-torch-fp32-b1-t1.png"]
    assert all((out / plot).read_bytes()[:8] == PNG_MAGIC for plot in plots)


def test_short_lut_and_bare_run_still_build(tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    _results(CPU_NETWORKS, CPU).assign(masks="").to_csv(bare / "results.csv", index=False)
    short = make_run(tmp_path, "short", None, lut_rows=10)
    out = tmp_path / "out"
    assert build(bare, short, "--out", out) == 0
    page = (out / "index.html").read_text()
    assert "no parity plot: the predictor needs at least 20 measured conv rows" in page
    assert "merged kernel sizes unknown" in page  # short has masks but no space.json
    assert not [s for s in image_sources(page) if s.startswith("parity")]
    assert "missing files: bare (no config.toml, device.json, space.json" in capsys.readouterr().out
    table = pd.read_csv(out / "results.csv")
    assert table["utilisation_pct"].isna().sum() == 5  # bare has no device.json, so no peak FLOP/s
    # same device in both runs: one pair of trade-off figures, one Pareto front over both runs
    assert len([s for s in image_sources(page) if s.startswith("accuracy_")]) == 2
    flags = table.groupby("network")["pareto_latency"].agg(["all", "any"])
    assert (flags["all"] == flags["any"]).all() and flags["all"].sum() == 3  # equal twins tie


def test_a_run_timed_in_several_sessions_is_named(tmp_path):
    runs = {}
    for name, stamps in (("together", ["2026-12-06T04:00:00+00:00"] * 5),
                         ("apart", ["2026-12-06T02:00:00+00:00"] + ["2026-12-06T03:00:00+00:00"] * 4)):
        runs[name] = make_run(tmp_path, name, None, search=False)
        results = pd.read_csv(runs[name] / "results.csv")
        results.assign(timed_at=stamps).to_csv(runs[name] / "results.csv", index=False)
    assert build(runs["together"], runs["apart"], "--out", tmp_path / "out") == 0
    page = (tmp_path / "out" / "index.html").read_text()
    assert "apart: its networks were not all timed in the same passes" in page
    assert "together: its networks were not" not in page


def test_bad_input_is_one_clear_error(tmp_path, space_json):
    with pytest.raises(DepthshrinkError, match="run folder .*nowhere does not exist"):
        build(tmp_path / "nowhere", "--out", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DepthshrinkError, match="empty holds no results.csv"):
        build(tmp_path / "empty", "--out", tmp_path / "out")
    (tmp_path / "header").mkdir()
    (tmp_path / "header" / "results.csv").write_text("network,accuracy\n")
    with pytest.raises(DepthshrinkError, match="holds no results"):
        build(tmp_path / "header", "--out", tmp_path / "out")
    run = make_run(tmp_path, "run", space_json)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DepthshrinkError, match="it is a file"):
        build(run, "--out", tmp_path / "file")
    with pytest.raises(DepthshrinkError, match="given more than once"):
        build(run, run, "--out", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written on failure
    before = (run / "results.csv").read_text()  # the combined table was written over the run's own
    with pytest.raises(DepthshrinkError, match="is one of the run folders: give the report another --out"):
        build(run, "--out", run)
    assert (run / "results.csv").read_text() == before
    assert build(run, "--out", tmp_path / "report") == 0
    with pytest.raises(DepthshrinkError, match="report.results.csv is a report's combined table"):
        build(tmp_path / "report", "--out", tmp_path / "again")  # was a pandas traceback


def test_main_exits_1_on_a_missing_run(tmp_path, capsys, monkeypatch):
    from depthshrink.cli.main import SUBCOMMANDS, main

    monkeypatch.setitem(SUBCOMMANDS, "report", ("report", "compare run folders on one HTML page"))
    assert main(["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip().endswith("does not exist")


def test_pareto_optimal_and_utilisation_by_hand():
    speed = [1.0, 2.0, 2.0, 3.0, np.nan, 0.5, 3.0]
    accuracy = [0.9, 0.8, 0.85, 0.7, 0.99, 0.9, 0.7]
    # 1 is dominated by 2 (same speed, less accurate); 5 by 0; 3 and 6 tie, both optimal; NaN never
    assert pareto_optimal(speed, accuracy).tolist() == [True, False, True, True, False, False, True]
    assert utilisation_pct([2e9, 1e9], [50.0, 10.0], [1e12, 0]).tolist()[0] == pytest.approx(10.0)
    assert np.isnan(utilisation_pct([1e9], [10.0], [np.nan])[0])


def test_segment_pieces_carry_merged_kernel_sizes(tmp_path, space_json):
    run = load_run(make_run(tmp_path, "run", space_json))
    assert [m.network for m in run.masks] == ["original", "depthshrinker-1.3x", "dp-1.3x"]
    pieces = segment_pieces(run.masks[2], run.space)
    assert [(p.start, p.end, p.kernel_size, p.merged) for p in pieces][:2] == [(0, 2, 3, True), (2, 5, 3, True)]
    assert sum(p.latency_ms for p in pieces) == pytest.approx(0.15)
    assert all(not p.merged for p in segment_pieces(run.masks[0], run.space))
    assert segment_pieces(run.masks[2], None)[0].kernel_size is None


def test_parity_plot_writes_a_png(tmp_path):
    from depthshrink.lut.features import Evaluation
    from depthshrink.reports.plots import parity_plot

    measured = np.array([0.01, 0.02, 0.05, 0.1])
    best = Evaluation("linear_log", 4, 0.05, 0.5, 0.75, 1.0, measured * 1.04, measured)
    parity_plot(best, {"device": "cpu", "backend": "onnxruntime"}, tmp_path / "parity.png")
    assert (tmp_path / "parity.png").read_bytes()[:8] == PNG_MAGIC


CHECK_SCRIPT = """<script>
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var pre = document.createElement("pre");
  pre.id = "check";
  pre.textContent = "CHECK images=" + images.length + " broken=" + broken.length +
      " " + broken.map(function (i) { return i.getAttribute("src"); }).join(",");
  document.body.appendChild(pre);
});
</script>
"""


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium (apt-get install chromium)")
def test_chromium_loads_every_image(full_report, tmp_path):
    page = (full_report / "index.html").read_text()
    check = full_report / "check.html"
    check.write_text(page.replace("</body>", CHECK_SCRIPT + "</body>"))
    try:
        result = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--allow-file-access-from-files",
             "--virtual-time-budget=5000", "--dump-dom", check.as_uri()],
            capture_output=True, text=True, timeout=60, check=False)
    finally:
        check.unlink()
    found = re.search(r'<pre id="check">CHECK images=(\d+) broken=(\d+)', result.stdout)
    assert found, result.stderr[-2000:]
    assert int(found.group(1)) == len(image_sources(page)) >= 9 and found.group(2) == "0"


def test_gaps_are_called_only_beyond_two_standard_errors():
    from depthshrink.reports.compare import comparisons, verdict

    def row(network, kind, budget, accuracy, se, latency):
        return {"network": network, "kind": kind, "budget": budget, "accuracy": accuracy, "accuracy_se": se,
                "latency_ms": latency}

    dp = pd.Series(row("dp-2x", "dp", "2x", 0.910, 0.001, 0.20))
    assert "beyond 2 SE (0.28): dp-2x is more accurate" in verdict(dp, pd.Series(row("d", "depthshrinker", "2x",
                                                                                       0.905, 0.001, 0.2)))
    assert "within 2 SE (0.54): not called" in verdict(dp, pd.Series(row("w", "width", "", 0.905, 0.0025, 0.19)))
    assert "no standard error (one seed): not called" in verdict(dp, pd.Series(row("p", "pruned", "", 0.8,
                                                                                     float("nan"), 0.2)))
    rows = pd.DataFrame([row("dp-2x", "dp", "2x", 0.91, 0.001, 0.20), row("dp-3x", "dp", "3x", 0.90, 0.001, 0.15),
                         row("depthshrinker-2x", "depthshrinker", "2x", 0.90, 0.001, 0.21),
                         row("width-0.35", "width", "", 0.895, 0.001, 0.16)])
    lines = comparisons(rows)
    assert len(lines) == 2 and lines[0].startswith("dp-2x") and lines[1].startswith("dp-3x 90.00% (0.150 ms) vs width")


def test_the_table_shows_mean_and_standard_error_over_seeds():
    from depthshrink.reports.table import table_html

    frame = pd.DataFrame([{"run": "r", "network": "dp-2x", "kind": "dp", "budget": "2x", "device": "cpu",
                           "accuracy": 0.91234, "accuracy_se": 0.0005, "seeds": 3, "latency_ms": 0.2,
                           "latency_p10_ms": 0.19, "latency_p90_ms": 0.21, "throughput_ips": 5000.0,
                           "parameters": 1000, "flops": 1e6, "utilisation_pct": 1.0, "predicted_latency_ms": 0.2,
                           "pareto_latency": True, "pareto_throughput": True}])
    assert "91.23 ± 0.05 (3)" in table_html(frame)
    assert "91.23 ± 0.05<" in table_html(frame.assign(seeds=np.nan))  # was: cannot convert NaN to integer


def test_runs_of_one_name_in_folders_of_one_name_get_figures_each(tmp_path, space_json):
    """a/x/run and b/x/run were both named x/run: one run's figures overwrote the other's."""
    first = make_run(tmp_path / "a" / "x", "run", space_json)
    second = make_run(tmp_path / "b" / "x", "run", space_json)
    assert build(first, second, "--out", tmp_path / "out") == 0
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert sorted(set(table["run"])) == ["a/x/run", "b/x/run"]
    sources = image_sources((tmp_path / "out" / "index.html").read_text())
    assert len(sources) == len(set(sources)) and all((tmp_path / "out" / s).exists() for s in sources)


def test_additivity_names_the_corrected_prediction_apart_from_the_sum_of_rows(tmp_path, space_json):
    """results.csv's predicted_latency_ms is the search's, after its latency correction; the figure
    called every point "sum of the LUT rows", beside the validation's uncorrected sums."""
    from depthshrink.reports.plots import SOURCES, additivity_points
    from depthshrink.reports.runs import load_runs
    from depthshrink.reports.table import combine_results

    runs = load_runs([make_run(tmp_path, "run", space_json, lut_rows=10_000)])
    points = additivity_points(runs, combine_results(runs))
    assert set(points["source"]) == set(SOURCES.values())
    assert any("corrected" in source for source in SOURCES.values())
    assert build(tmp_path / "run", "--out", tmp_path / "out") == 0
    page = (tmp_path / "out" / "index.html").read_text()
    assert "latency correction (fitted on the squares)" in page and "sum of the LUT rows" in page


def test_a_malformed_lut_costs_its_parity_plot_not_the_report(tmp_path, space_json):
    """One bad row of a run's lut.csv (an optional stage file) failed the whole report."""
    run = make_run(tmp_path, "run", space_json, lut_rows=20)
    lines = (run / "lut.csv").read_text().splitlines(keepends=True)
    row = lines[1].split(",")
    row[lines[0].split(",").index("latency_ms")] = "-1"
    (run / "lut.csv").write_text(lines[0] + ",".join(row) + "".join(lines[2:]))
    assert build(run, "--out", tmp_path / "out") == 0
    page = (tmp_path / "out" / "index.html").read_text()
    assert "run: no parity plot:" in page and "latency_ms must be a positive, finite number" in page


def test_networks_dropped_from_a_run_leave_its_figures(tmp_path, space_json):
    """A budget removed from the config left search/dp-1x.json and its frontier behind: results.csv no longer
    held dp-1x, but the segment and frontier figures still drew it."""
    from depthshrink.reports.runs import load_run

    run = make_run(tmp_path, "cpu-run", space_json)
    shutil.copy(run / "search" / "dp-1.3x.json", run / "search" / "dp-1x.json")
    shutil.copy(run / "search" / "dp-1.3x.frontier.csv", run / "search" / "dp-1x.frontier.csv")
    loaded = load_run(run)
    assert "dp-1x" not in {m.network for m in loaded.masks} and "dp-1.3x" in {m.network for m in loaded.masks}
    assert list(loaded.frontiers) == ["dp-1.3x"]


def test_the_frontier_is_labelled_with_the_unit_of_its_importance(tmp_path, space_json):
    """The frontier's axis said "est. accuracy change, points" for the masks method's mask scores too."""
    from depthshrink.reports.runs import load_run

    run = make_run(tmp_path, "cpu-run", space_json)
    assert load_run(run).importance_unit == "est. accuracy change, points"  # no importance.csv: the default
    pd.DataFrame({"start": [0], "end": [3], "importance": [-0.4], "method": ["masks"],
                  "unit": ["mask score"]}).to_csv(run / "importance.csv", index=False)
    assert load_run(run).importance_unit == "mask score"


def test_a_figure_killed_while_written_leaves_no_file(tmp_path):
    """Figures were written in place: a savefig that failed half-way left a torn PNG behind."""
    from depthshrink.reports.plots import pyplot, save

    figure = pyplot().figure()

    def torn(path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"\x89PNG half")
        raise KeyboardInterrupt

    figure.savefig = torn
    with pytest.raises(KeyboardInterrupt):
        save(figure, tmp_path / "plot.png")
    assert list(tmp_path.iterdir()) == []
