"""How well two measurements of the same table agree, and what the predictor makes of each.

Rows are matched by configuration; the overall ratio between the two tables (the machine's drift
between them) is taken out, then the share of rows within ±10% / ±5% of the other table is
printed for the median (``latency_ms``) and the p10. Then the best predictor's held-out ±10%
accuracy (grouped 5-fold cross-validation) on each table, with each row's median and with its
p10 as the latency. Two tables that record another setting, cache flush, timing method, layout,
time per row or passes are refused: their rows are not repeat measurements (tables from before
2026-12-06 do not record the time per row and the passes: keep them equal by hand).

    python bench/lut_table.py --out A.csv && python bench/lut_table.py --out B.csv
    python bench/lut_repeatability.py A.csv B.csv
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from depthshrink.lut.compare import agreement
from depthshrink.lut.predictor import cross_validate
from depthshrink.lut.settings import measuring_differences
from depthshrink.lut.table import LatencyTable


def _predictor(frame: pd.DataFrame) -> str:
    best = cross_validate(frame)[0]
    return f"{best.within_10pct:.1%} ({best.model})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs=2, help="two LUTs of the same network and setting")
    args = parser.parse_args()
    frames = [LatencyTable.read(path).select().frame for path in args.tables]
    differences = measuring_differences(*frames)
    if differences:  # e.g. one table flushed the caches, the other not: that is no repeat measurement
        sys.exit(f"the two tables record different settings or ways of timing ({'; '.join(differences)}): "
                 "their rows are not repeat measurements")
    for column in ("latency_ms", "latency_p10_ms"):
        match = agreement(*frames, column)
        print(f"{column}: {match.rows} rows matched, {match.within_10pct:.1%} within ±10% of the other table, "
              f"{match.within_5pct:.1%} within ±5% (drift {match.drift:.3f}x taken out)")
    for path, frame in zip(args.tables, frames):
        median, p10 = _predictor(frame), _predictor(frame.assign(latency_ms=frame["latency_p10_ms"]))
        print(f"{path}: the best model predicts {median} of held-out rows within ±10% (median), {p10} (p10)")


if __name__ == "__main__":
    main()
