"""The combined results table: one row per network of every run, with utilisation and Pareto flags.

Pareto flags are computed inside one measurement setting (device, backend, threads) only:
latencies measured on different machines are never compared.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from .runs import SETTING_KEYS, RunFolder, legend_label

NUMERIC_COLUMNS = ("latency_budget_ms", "predicted_latency_ms", "accuracy", "accuracy_se", "seeds", "test_images", "latency_ms",
                   "latency_p10_ms", "latency_p90_ms", "throughput_ips", "throughput_batch_size",
                   "parameters", "flops", "threads")


def pareto_optimal(speed, accuracy) -> np.ndarray:
    """True where no other point is at least as fast *and* as accurate, and strictly better in one.

    ``speed`` is higher-is-better (pass ``-latency``); points with a missing value are never optimal.
    """
    speed, accuracy = np.asarray(speed, dtype=float), np.asarray(accuracy, dtype=float)
    valid = np.isfinite(speed) & np.isfinite(accuracy)
    s, a = speed[valid], accuracy[valid]
    at_least = (s[None, :] >= s[:, None]) & (a[None, :] >= a[:, None])
    better = (s[None, :] > s[:, None]) | (a[None, :] > a[:, None])
    optimal = np.zeros(len(speed), dtype=bool)
    optimal[valid] = ~(at_least & better).any(axis=1)
    return optimal


def utilisation_pct(flops, throughput_ips, peak_flops_per_s) -> np.ndarray:
    """Achieved FLOP/s (FLOPs per image × images/s) over the device's peak, in percent."""
    achieved = np.asarray(flops, dtype=float) * np.asarray(throughput_ips, dtype=float)
    peak = np.asarray(peak_flops_per_s, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, 100.0 * achieved / peak, np.nan)


def combine_results(runs: list[RunFolder]) -> pd.DataFrame:
    """Every run's results.csv in one frame, plus run, setting, utilisation and Pareto columns."""
    frames = []
    for run in runs:
        frame = run.results.copy()
        frame.insert(0, "run", run.name)
        for key in SETTING_KEYS:  # results.csv wins; device.json fills what it lacks
            if key not in frame.columns:
                frame[key] = run.device.get(key)
            elif run.device.get(key) is not None:
                frame[key] = frame[key].where(frame[key].notna(), run.device.get(key))
        frame["peak_flops_per_s"] = run.peak_flops_per_s if run.peak_flops_per_s else np.nan
        frames.append(frame)
    combined = pd.concat(frames, ignore_index=True)
    for column in NUMERIC_COLUMNS:
        if column not in combined.columns:
            combined[column] = np.nan
        combined[column] = pd.to_numeric(combined[column], errors="coerce")
    for column in ("budget", "masks", "device", "backend"):
        if column not in combined.columns:
            combined[column] = ""
        combined[column] = combined[column].fillna("").astype(str)
    combined["setting"] = [legend_label(d, b, t) for d, b, t in
                           zip(combined["device"], combined["backend"], combined["threads"])]
    combined["utilisation_pct"] = utilisation_pct(combined["flops"], combined["throughput_ips"],
                                                  combined["peak_flops_per_s"])
    combined["pareto_latency"] = False
    combined["pareto_throughput"] = False
    for _, rows in combined.groupby("setting", sort=False):
        combined.loc[rows.index, "pareto_latency"] = pareto_optimal(-rows["latency_ms"], rows["accuracy"])
        combined.loc[rows.index, "pareto_throughput"] = pareto_optimal(rows["throughput_ips"], rows["accuracy"])
    return combined


def _fixed(digits: int, scale: float = 1.0):
    return lambda v: "–" if pd.isna(v) else f"{v * scale:,.{digits}f}"


def _accuracy(value, se, seeds) -> str:
    """``90.12`` or, over several seeds, ``90.12 ± 0.05 (3)``: mean ± standard error (seeds)."""
    if pd.isna(value):
        return "–"
    if pd.isna(se):
        return f"{100 * value:.2f}"
    return f"{100 * value:.2f} ± {100 * se:.2f}" + ("" if pd.isna(seeds) else f" ({int(seeds)})")


def _spread(row: pd.Series) -> str:
    low, high = row["latency_p10_ms"], row["latency_p90_ms"]
    return "–" if pd.isna(low) or pd.isna(high) else f"{low:.3f}–{high:.3f}"


# column of the shown table -> heading in the page
HEADINGS = {
    "run": "run", "network": "network", "kind": "kind", "budget": "budget", "device": "device",
    "accuracy_pct": "accuracy (%, mean ± SE (seeds))", "latency_ms": "latency median (ms)", "latency_p10_p90_ms": "p10–p90 (ms)",
    "throughput_ips": "throughput (images/s)", "parameters": "parameters", "mflops": "FLOPs (M)",
    "utilisation_pct": "utilisation (%)", "predicted_latency_ms": "predicted latency (ms)",
    "pareto_latency": "Pareto (latency)", "pareto_throughput": "Pareto (throughput)",
}


def table_html(combined: pd.DataFrame) -> str:
    """The page's table: formatted numbers, one row per network, Pareto-optimal rows marked."""
    shown = pd.DataFrame({
        "run": combined["run"], "network": combined["network"], "kind": combined["kind"],
        "budget": combined["budget"], "device": combined["device"].replace("", "–"),
        "accuracy_pct": [_accuracy(a, se, n) for a, se, n in zip(combined["accuracy"], combined["accuracy_se"],
                                                                  combined["seeds"])],
        "latency_ms": combined["latency_ms"].map(_fixed(3)),
        "latency_p10_p90_ms": combined.apply(_spread, axis=1) if len(combined) else [],
        "throughput_ips": combined["throughput_ips"].map(_fixed(0)),
        "parameters": combined["parameters"].map(_fixed(0)),
        "mflops": combined["flops"].map(_fixed(2, 1e-6)),
        "utilisation_pct": combined["utilisation_pct"].map(_fixed(2)),
        "predicted_latency_ms": combined["predicted_latency_ms"].map(_fixed(3)),
        "pareto_latency": combined["pareto_latency"].map(lambda v: "yes" if v else "no"),
        "pareto_throughput": combined["pareto_throughput"].map(lambda v: "yes" if v else "no"),
    }).rename(columns=HEADINGS)
    text = shown.to_html(index=False, escape=True, border=0, classes="results", na_rep="–")
    return _mark_pareto_rows(text, combined)


def _mark_pareto_rows(text: str, combined: pd.DataFrame) -> str:
    """Give Pareto-optimal rows a CSS class (pandas writes plain ``<tr>`` for body rows)."""
    head, _, body = text.partition("<tbody>")
    rows = body.split("<tr>")
    flags = (combined["pareto_latency"] | combined["pareto_throughput"]).tolist()
    marked = [rows[0]] + [('<tr class="pareto">' if flag else "<tr>") + row for flag, row in zip(flags, rows[1:])]
    return head + "<tbody>" + "".join(marked)


def escape(value) -> str:
    return html.escape(str(value), quote=True)
