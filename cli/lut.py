"""``depthshrink lut merge A.csv B.csv --out C.csv``: one table from several devices or runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lut_command", metavar="ACTION", required=True)
    merge = sub.add_parser("merge", help="union of LUT files (the first row of a configuration wins)")
    merge.add_argument("tables", nargs="+", help="LUT CSV files")
    merge.add_argument("--out", required=True, help="merged LUT CSV to write")


def run(args: argparse.Namespace) -> int:
    from ..contracts.files import write_atomic
    from ..contracts.setting import SETTING_COLUMNS
    from ..lut.table import merge_luts

    frame, duplicates = merge_luts(args.tables)
    out = Path(args.out)
    write_atomic(out, lambda tmp: frame.to_csv(tmp, index=False))
    settings = frame.groupby(list(SETTING_COLUMNS), dropna=False).size()
    print(f"{len(frame)} rows from {len(args.tables)} tables ({duplicates} duplicates dropped) -> {out}")
    print(settings.rename("rows").to_string())
    return 0
