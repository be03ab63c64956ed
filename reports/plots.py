"""Figures of whole networks: accuracy trade-offs, LUT additivity, the predictor's parity plot.

matplotlib is imported on first use (Agg backend), so importing this module costs nothing.
Each function writes one PNG and closes its figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._imports import lazy_import

DPI = 110
FIGSIZE = (6.4, 4.4)
KIND_MARKERS = {"original": "*", "dp": "o", "depthshrinker": "s", "width": "^", "pruned": "D", "other": "X"}
KIND_SIZES = {"original": 150}


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    matplotlib = lazy_import("matplotlib")
    matplotlib.use("Agg")
    return lazy_import("matplotlib.pyplot")


def save(figure, path) -> None:
    """Write ``figure`` as a PNG at ``path``, whole or not at all."""
    from ..contracts.files import write_atomic

    figure.tight_layout()
    try:
        write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))
    finally:
        pyplot().close(figure)


def run_colours(names: list[str]) -> dict[str, str]:
    """One colour per run, stable in every figure of a report."""
    palette = [f"C{i}" for i in range(10)]
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def tradeoff_plot(rows: pd.DataFrame, axis: str, title: str, colours: dict[str, str], path) -> int:
    """Accuracy vs throughput (``axis="throughput"``) or median latency with p10–p90 bars (``"latency"``).

    ``rows`` are the combined-table rows of one measurement setting. Draws one marker per kind,
    one colour per run, a label per point and the Pareto front as a step line. Returns the
    number of points drawn (nothing is written when it is 0).
    """
    x_column, flag = ("throughput_ips", "pareto_throughput") if axis == "throughput" else ("latency_ms", "pareto_latency")
    rows = rows[rows[x_column].notna() & rows["accuracy"].notna()]
    if rows.empty:
        return 0
    plt = pyplot()
    figure, axes = plt.subplots(figsize=FIGSIZE)
    for (run, kind), group in rows.groupby(["run", "kind"], sort=False):
        x, y = group[x_column].to_numpy(float), 100 * group["accuracy"].to_numpy(float)
        se = 100 * group["accuracy_se"].fillna(0).to_numpy(float) if "accuracy_se" in group else None
        if axis == "latency":
            low = (group["latency_ms"] - group["latency_p10_ms"]).clip(lower=0).fillna(0)
            high = (group["latency_p90_ms"] - group["latency_ms"]).clip(lower=0).fillna(0)
            axes.errorbar(x, y, xerr=[low.to_numpy(float), high.to_numpy(float)], yerr=se, fmt="none",
                          ecolor=colours[run], alpha=0.5, linewidth=1, capsize=2)
        elif se is not None and se.any():
            axes.errorbar(x, y, yerr=se, fmt="none", ecolor=colours[run], alpha=0.5, linewidth=1, capsize=2)
        axes.scatter(x, y, marker=KIND_MARKERS.get(kind, "X"), s=KIND_SIZES.get(kind, 40),
                     color=colours[run], edgecolor="black", linewidth=0.5, zorder=3)
        for name, xi, yi in zip(group["network"], x, y):
            axes.annotate(name, (xi, yi), xytext=(4, 4), textcoords="offset points", fontsize=7)
    front = rows[rows[flag]].sort_values(x_column)
    axes.plot(front[x_column], 100 * front["accuracy"], color="0.3", linewidth=1.2, linestyle="--",
              drawstyle="steps-pre" if axis == "throughput" else "steps-post", zorder=2)
    _tradeoff_legend(axes, rows, colours)
    axes.set(xlabel="throughput (images/s)" if axis == "throughput" else "latency, median (ms; bars p10–p90)",
             ylabel="test accuracy (%; bars ±1 standard error over seeds)", title=title)
    axes.grid(alpha=0.3)
    save(figure, path)
    return len(rows)


def _tradeoff_legend(axes, rows: pd.DataFrame, colours: dict[str, str]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker=KIND_MARKERS.get(k, "X"), linestyle="none", color="0.6",
                      markeredgecolor="black", label=k) for k in dict.fromkeys(rows["kind"])]
    runs = list(dict.fromkeys(rows["run"]))
    if len(runs) > 1:
        handles += [Line2D([], [], marker="o", linestyle="none", color=colours[r], label=f"run {r}") for r in runs]
    handles.append(Line2D([], [], color="0.3", linestyle="--", label="Pareto front"))
    axes.legend(handles=handles, fontsize=7, loc="best")


# where a prediction comes from: the profile's validation (uncorrected), or the search (corrected)
SOURCES = {"validation": "sum of LUT rows (profile validation)", "results": "search's prediction (corrected)"}


def additivity_points(runs, combined: pd.DataFrame) -> pd.DataFrame:
    """Predicted vs measured whole-network latency, one row per network.

    From each run's ``lut.validation.json`` (the sum of its LUT rows, uncorrected) and from
    results.csv where both values exist (the search's prediction: that sum after the latency
    correction fitted on the validation's networks), ``source`` naming which (:data:`SOURCES`).
    Columns: run, setting, source, network, predicted_ms, measured_ms, error_pct.
    """
    from .runs import legend_label

    rows = []
    for run in runs:
        for entry in run.validation:
            rows.append({"run": run.name, "source": SOURCES["validation"], "network": str(entry.get("network")),
                         "setting": legend_label(entry.get("device", run.device.get("device")),
                                                  entry.get("backend", run.device.get("backend")),
                                                  entry.get("threads", run.device.get("threads"))),
                         "predicted_ms": entry.get("predicted_ms"), "measured_ms": entry.get("measured_ms")})
    both = combined[combined["predicted_latency_ms"].notna() & combined["latency_ms"].notna()]
    for _, row in both.iterrows():
        rows.append({"run": row["run"], "source": SOURCES["results"], "network": row["network"], "setting": row["setting"],
                     "predicted_ms": row["predicted_latency_ms"], "measured_ms": row["latency_ms"]})
    frame = pd.DataFrame(rows, columns=["run", "source", "network", "setting", "predicted_ms", "measured_ms"])
    for column in ("predicted_ms", "measured_ms"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame[(frame["predicted_ms"] > 0) & (frame["measured_ms"] > 0)].reset_index(drop=True)
    frame["error_pct"] = 100 * (frame["predicted_ms"] - frame["measured_ms"]) / frame["measured_ms"]
    return frame


def additivity_plot(points: pd.DataFrame, title: str, colours: dict[str, str], path) -> None:
    """Predicted vs measured whole-network latency of one setting, with y = x and a ±10% band."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(5.4, 5.2))
    values = np.concatenate([points["predicted_ms"], points["measured_ms"]])
    low, high = values.min() * 0.85, values.max() * 1.15
    axes.fill_between([low, high], [low * 0.9, high * 0.9], [low * 1.1, high * 1.1], color="0.9", label="±10%")
    axes.plot([low, high], [low, high], color="0.5", linewidth=1, label="predicted = measured")
    markers = {SOURCES["validation"]: "s", SOURCES["results"]: "o"}
    for (run, source), group in points.groupby(["run", "source"], sort=False):
        axes.scatter(group["measured_ms"], group["predicted_ms"], marker=markers[source], color=colours[run],
                     edgecolor="black", linewidth=0.5, zorder=3, label=f"{run}: {source}")
        for name, x, y in zip(group["network"], group["measured_ms"], group["predicted_ms"]):
            axes.annotate(name, (x, y), xytext=(4, -9), textcoords="offset points", fontsize=7)
    axes.set(xlim=(low, high), ylim=(low, high), xlabel="measured latency, median (ms)",
             ylabel="predicted latency (ms)", title=title)
    axes.set_aspect("equal", adjustable="box")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left")
    save(figure, path)


def parity_plot(best, setting: dict, path) -> None:
    """Held-out predicted vs measured conv latency of the best predictor (log axes, ±10% band).

    ``best`` is an evaluation from :func:`depthshrink.lut.predictor.cross_validate` (its first
    result); ``setting`` names the LUT's device and backend for the title.
    """
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(5, 5))
    low = min(best.measured_ms.min(), best.predicted_ms.min()) * 0.8
    high = max(best.measured_ms.max(), best.predicted_ms.max()) * 1.25
    axes.fill_between([low, high], [low * 0.9, high * 0.9], [low * 1.1, high * 1.1], color="0.9", label="±10%")
    axes.plot([low, high], [low, high], color="0.5", linewidth=1)
    axes.scatter(best.measured_ms, best.predicted_ms, s=14, alpha=0.8)
    axes.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high), xlabel="measured latency (ms)",
             ylabel="predicted latency (ms, held out)",
             title=f"{best.model}: {best.within_10pct:.0%} within ±10%\n{setting.get('device')}, {setting.get('backend')}")
    axes.legend(loc="upper left")
    save(figure, path)
