"""The README's results table from a run's results.csv: accuracy (mean ± SE over seeds), its change
against the original in points, measured median latency, speed-up and throughput.

    python bench/results_table.py out/bench/results.csv
"""

from __future__ import annotations

import argparse

import pandas as pd

from depthshrink.reports.compare import timed_together

LABELS = {"dp": "DP, budget {budget}", "depthshrinker": "DepthShrinker top-k, {budget}", "original": "original",
          "width": "width multiplier {name}", "pruned": "L1 channel pruning {name}"}


def markdown(frame: pd.DataFrame) -> str:
    # an older results.csv (before seeds were averaged) has one seed a network and no standard error
    frame = frame.assign(**{c: frame[c] if c in frame.columns else default
                            for c, default in (("accuracy_se", float("nan")), ("seeds", 1))})
    original = frame[frame["kind"] == "original"].iloc[0]
    lines = ["| network | test acc. (seeds) | Δ points | latency ms (p10–p90) | speed-up | images/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in frame.itertuples():
        label = LABELS[row.kind].format(budget=str(row.budget).replace("x", "×"), name=row.network.split("-", 1)[-1])
        se = f" ± {100 * row.accuracy_se:.2f}" if pd.notna(row.accuracy_se) else ""
        delta = "—" if row.kind == "original" else f"{100 * (row.accuracy - original.accuracy):+.2f}"
        lines.append(f"| {label} | {100 * row.accuracy:.2f}%{se} ({row.seeds}) | {delta} | {row.latency_ms:.3f} "
                     f"({row.latency_p10_ms:.3f}–{row.latency_p90_ms:.3f}) | "
                     f"{original.latency_ms / row.latency_ms:.2f}× | {row.throughput_ips:,.0f} |")
    return "\n".join(lines)


def timing_line(frame: pd.DataFrame) -> str:
    """Whether the speed-ups compare networks timed in the same passes (``timed_at`` of each result)."""
    together = timed_together(frame)
    if together is None:
        return "(A results.csv of an older version: whether its networks were timed in the same passes is not recorded.)"
    if together:
        return f"All networks timed in the same interleaved passes ({frame['timed_at'].iloc[0]})."
    return ("WARNING: these networks were not all timed in the same passes (the speed-ups mix sessions): "
            "`depthshrink run` on the same folder times them again together.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="a run folder's results.csv")
    frame = pd.read_csv(parser.parse_args().results)
    print(markdown(frame))
    print("\n" + timing_line(frame))


if __name__ == "__main__":
    main()
