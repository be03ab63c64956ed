"""The LUT file written: rows appended one at a time (one ``write`` of a whole line, then ``fsync``),
the header of an existing file checked first, a torn last line (a crash mid-append) cut on opening."""

from __future__ import annotations

import os
from pathlib import Path

from ..contracts.files import append_csv_line, check_file_target, cut_torn_line
from ..errors import DepthshrinkError
from .table import COLUMNS, OPTIONAL, REQUIRED, cell_text, read_lut, row_key


def check_lut_name(path: str | os.PathLike) -> None:
    """A LUT to write is named ``*.csv``: its pass log, validation and lock are named after it, and
    ``cpu`` and ``cpu.csv`` would share them."""
    if Path(path).suffix != ".csv":
        raise DepthshrinkError(f"a LUT file is named *.csv (its pass log and validation are named after it): "
                               f"got {path}")
    if Path(path).name.endswith(".passes.csv"):  # X.csv's pass log: profiling X.csv rewrote this LUT as one
        raise DepthshrinkError(f"{path}: *.passes.csv names the pass log of another LUT; name this one otherwise")


class LutWriter:
    """Appends rows to a LUT file, creating it with the header when new.

    On opening, an existing file is checked (header) and repaired (a torn last line is cut).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        check_lut_name(self.path)
        check_file_target(self.path)
        if self.path.exists() and self.path.stat().st_size > 0:
            self.columns = _repair_and_read_header(self.path)
        else:
            try:
                self.path.write_text(",".join(COLUMNS) + "\n")
            except OSError as exc:
                raise DepthshrinkError(f"cannot write {self.path}: {exc.strerror}") from None
            self.columns = list(COLUMNS)
        missing = [c for c in COLUMNS if c not in self.columns and c not in OPTIONAL]
        if missing:
            raise DepthshrinkError(f"{self.path} is a LUT of an older layout (no {', '.join(missing)}): "
                                   "write to a new file and merge them with 'depthshrink lut merge'")

    def existing_keys(self) -> set[tuple]:
        frame = read_lut(self.path)
        return {row_key(r) for r in frame.to_dict("records")}

    def append(self, row: dict) -> None:
        append_csv_line(self.path, ["" if row.get(c) is None else cell_text(row[c]) for c in self.columns])


def check_lut_header(path: str | os.PathLike) -> list[str]:
    """The header of an existing LUT file, checked (nothing is changed); an empty file has none."""
    path = Path(path)
    with open(path, "rb") as handle:
        first = handle.readline()
    if not first:
        return []
    if not first.endswith(b"\n"):
        raise DepthshrinkError(f"{path} is not a LUT: it has no complete header line")
    header = first.decode(errors="replace").strip().split(",")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise DepthshrinkError(f"{path} is not a depthshrink LUT: its header lacks {shown}")
    return header


def _repair_and_read_header(path: Path) -> list[str]:
    header = check_lut_header(path)  # before any repair: a foreign file is left as it is
    if not header:
        raise DepthshrinkError(f"{path} is not a LUT: it has no complete header line")
    cut_torn_line(path)
    return header
