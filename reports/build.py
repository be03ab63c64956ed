"""Build a report: read the run folders, draw every figure their files allow, write the page.

Example::

    >>> report = build_report(["runs/a", "runs/b"], "report")
    >>> report.index_path, len(report.figures)
    (PosixPath('report/index.html'), 9)
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from ..contracts.files import check_folder
from ..contracts.setting import setting_label
from ..errors import DepthshrinkError
from ..lut.predictor import FOLDS as PREDICTOR_FOLDS
from .contents import Report
from .plots import additivity_plot, additivity_points, parity_plot, run_colours, tradeoff_plot
from .runs import RunFolder, file_name, legend_label, load_runs
from .search_plots import frontier_plot, segment_bars_plot, segment_pieces
from .table import combine_results


def build_report(run_dirs: list[str | os.PathLike], out_dir: str | os.PathLike,
                 multi_masks: list[str | os.PathLike] = ()) -> Report:
    """Write ``out_dir/index.html``, its PNG figures and ``results.csv`` (the combined table);
    ``multi_masks``: masks files of multi-device searches, shown beside each device alone."""
    from .devices import read_multi_masks
    from .page import render_page

    runs = load_runs(run_dirs)
    if any(run.path.resolve() == Path(out_dir).resolve() for run in runs):
        raise DepthshrinkError(f"{out_dir} is one of the run folders: give the report another --out "
                               "(its results.csv would be written over the run's)")
    combined = combine_results(runs)
    multi = [read_multi_masks(path) for path in multi_masks]
    report = Report(prepare_out_dir(out_dir), runs, combined, multi=multi)
    colours = run_colours([run.name for run in runs])
    _tradeoff_figures(report, colours)
    _segment_figures(report)
    _frontier_figures(report)
    _additivity_figures(report, colours)
    _parity_figures(report)
    combined.to_csv(report.out_dir / "results.csv", index=False)
    report.index_path.write_text(render_page(report), encoding="utf-8")
    return report


def prepare_out_dir(path: str | os.PathLike) -> Path:
    out = check_folder(path, "the report")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DepthshrinkError(f"cannot create the report folder {path}: {exc.strerror}") from None
    return out


def _tradeoff_figures(report: Report, colours: dict[str, str]) -> None:
    settings = list(dict.fromkeys(report.table["setting"]))
    for setting in settings:
        rows = report.table[report.table["setting"] == setting]
        batch = rows["throughput_batch_size"].dropna().unique()
        batch_text = f"batch {', '.join(str(int(b)) for b in batch)}" if len(batch) else "batch size not recorded"
        for axis, what, front in (("throughput", "throughput", "at least that throughput"),
                                  ("latency", "latency", "at most that latency")):
            name = f"accuracy_{axis}_{file_name(setting)}.png"
            title = f"Accuracy vs {what}\n{setting}"
            if tradeoff_plot(rows, axis, title, colours, report.out_dir / name) == 0:
                report.notes["tradeoff"].append(f"{setting}: no network has both accuracy and {what}; "
                                                f"no accuracy–{what} figure")
                continue
            measured = f"measured throughput ({batch_text})" if axis == "throughput" else \
                "measured median latency (bars: p10–p90)"
            report.add("tradeoff", name, title,
                       f"Test accuracy vs {measured} on {setting}. Marker: kind of network; colour: run. "
                       f"Dashed step line: the Pareto front (the highest accuracy at {front}); "
                       "Pareto-optimal networks are marked in the table.")
    if len(settings) > 1:
        report.notes["tradeoff"].append(f"{len(settings)} measurement settings: each has its own figures and "
                                        "its own Pareto front (latencies of different devices are not compared)")
    from .compare import comparisons, timed_together

    for run in report.runs:
        if timed_together(run.results) is False:
            report.notes["tradeoff"].append(f"{run.name}: its networks were not all timed in the same passes "
                                            "(their timed_at differ or are missing), so its latencies mix sessions; "
                                            "`depthshrink run` on the folder times them again together")

    for (run, setting), rows in report.table.groupby(["run", "setting"], sort=False):
        report.notes["tradeoff"] += [f"{run}, {setting}: {line}" for line in comparisons(rows)]


def _segment_figures(report: Report) -> None:
    for run in report.runs:
        bars, skipped = [], []
        for masks in run.masks:
            pieces = segment_pieces(masks, run.space)
            if pieces is None:
                skipped.append(masks.network)
            else:
                bars.append((masks, pieces))
        if skipped:
            report.notes["segments"].append(f"{run.name}: no segment_latency_ms (or not one per segment) in "
                                            f"the masks of {', '.join(skipped)}; left out")
        if not bars:
            if not skipped:
                report.notes["segments"].append(f"{run.name}: no masks files (search/*.json); no segment figure")
            continue
        name = f"segments_{file_name(run.name)}.png"
        title = f"{run.name}: predicted latency per segment\n{legend_label(*_run_setting(run))}"
        segment_bars_plot(bars, title, report.out_dir / name)
        kernel_note = "" if run.space is not None else " (space.json missing: merged kernel sizes unknown)"
        report.add("segments", name, title,
                   f"One bar per network of run {run.name}, each piece one merge segment's predicted latency "
                   f"(segment_latency_ms, from the LUT). Coloured pieces are merged segments (several layers "
                   f"in one conv), labelled with their merged kernel size{kernel_note}; grey pieces are "
                   "single layers; the hatched end is the fixed part and call overhead.")


def _run_setting(run: RunFolder) -> tuple:
    first = run.results.iloc[0]
    return tuple(first.get(k) if pd.notna(first.get(k, None)) else run.device.get(k)
                 for k in ("device", "backend", "threads"))


def _frontier_figures(report: Report) -> None:
    for run in report.runs:
        name = f"frontier_{file_name(run.name)}.png"
        title = f"{run.name}: search frontier\n{legend_label(*_run_setting(run))}"
        if frontier_plot(run, title, report.out_dir / name) == 0:
            report.notes["frontier"].append(f"{run.name}: no search/*.frontier.csv; no frontier figure")
            continue
        report.add("frontier", name, title,
                   f"The exact DP's accuracy–latency frontier of run {run.name}: every point is the highest "
                   f"total importance ({run.importance_unit}; higher is better) at that predicted latency. "
                   "Stars: the chosen networks; dashed lines: their latency budgets.")


def _additivity_figures(report: Report, colours: dict[str, str]) -> None:
    points = additivity_points(report.runs, report.table)
    if points.empty:
        report.notes["additivity"].append("no lut.validation.json and no network with both predicted and "
                                          "measured latency; no additivity figure")
        return
    for setting, group in points.groupby("setting", sort=False):
        name = f"additivity_{file_name(setting)}.png"
        title = f"Predicted vs measured latency\n{setting}"
        additivity_plot(group, title, colours, report.out_dir / name)
        error = group["error_pct"].abs()
        worst = group.loc[error.idxmax()]
        report.add("additivity", name, title,
                   f"Predicted vs measured whole-network latency on {setting}: squares, the sum of the LUT rows "
                   f"of a network's segments (fixed part included) at profiling; circles, the run's networks as "
                   f"the search predicted them, after the search's latency correction (fitted on the squares); "
                   f"grey band ±10%. Error (predicted − measured) / measured: "
                   f"mean |error| {error.mean():.1f}% over {len(group)} networks, worst {worst['error_pct']:+.1f}% "
                   f"({worst['run']}: {worst['network']}).")


def _parity_figures(report: Report) -> None:
    from ..lut.settings import settings_of
    from ..lut.table import LatencyTable

    seen: dict[str, str] = {}
    for run in report.runs:
        if run.lut_path is None:
            report.notes["parity"].append(f"{run.name}: no lut.csv; no parity plot")
            continue
        digest = hashlib.sha256(run.lut_path.read_bytes()).hexdigest()
        if digest in seen:
            report.notes["parity"].append(f"{run.name}: same lut.csv as run {seen[digest]}; see its parity plot")
            continue
        seen[digest] = run.name
        try:
            settings = settings_of(LatencyTable.read(run.lut_path).frame) or [{}]
        except DepthshrinkError as exc:  # an optional stage file: noted, the rest of the report stands
            report.notes["parity"].append(f"{run.name}: no parity plot: {exc}")
            continue
        for setting in settings:  # a LUT of several devices (or batches): one plot each
            _parity_figure(report, run, setting, len(settings) > 1)


def _parity_figure(report: Report, run: RunFolder, setting: dict, several: bool) -> None:
    from ..lut.lookup import predictor_for
    from ..lut.table import LatencyTable

    try:
        table = LatencyTable.read(run.lut_path).select(**setting)
        best = predictor_for(table.frame).evaluations[0]  # the search's own predictor, fitted once
    except DepthshrinkError as exc:
        report.notes["parity"].append(f"{run.name}: no parity plot: {exc}")
        return
    where = setting_label(setting)  # the whole setting: one LUT may hold two backends of one device
    name = f"parity_{file_name(run.name)}" + (f"_{file_name(where)}" if several else "") + ".png"
    title = f"{run.name}: latency predictor, held out" + (f" ({where})" if several else "")
    parity_plot(best, table.setting, report.out_dir / name)
    report.add("parity", name, title,
               f"Predicted vs measured conv latency in run {run.name}'s LUT, each row predicted by the best "
               f"model ({best.model}) fitted without its shape group (grouped {PREDICTOR_FOLDS}-fold "
               f"cross-validation on {best.rows} conv rows): RMSPE {best.rmspe:.3f}, within ±5% "
               f"{best.within_5pct:.0%}, ±10% {best.within_10pct:.0%}, ±20% {best.within_20pct:.0%}.")
