"""``depthshrink lut merge A.csv B.csv --out C.csv``: one table from several devices or runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lut_command", metavar="ACTION", required=True)
    merge = sub.add_parser("merge", help="union of LUT files (the first row of a configuration wins), their validations beside")
    merge.add_argument("tables", nargs="+", help="LUT CSV files")
    merge.add_argument("--out", required=True, help="merged LUT CSV to write")


def run(args: argparse.Namespace) -> int:
    from ..contracts.setting import SETTING_COLUMNS
    from ..lut.merging import merge_lut_files

    out = Path(args.out)
    frame, duplicates, validations = merge_lut_files(args.tables, out)
    settings = frame.groupby(list(SETTING_COLUMNS), dropna=False).size()
    print(f"{len(frame)} rows from {len(args.tables)} tables ({duplicates} duplicates dropped) -> {out}"
          + (f"; {validations} validation entries -> {out.with_suffix('.validation.json')}" if validations else ""))
    print(settings.rename("rows").to_string())
    return 0
