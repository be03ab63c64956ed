"""Several LUT files as one: their rows (the first row of a configuration wins) and, beside them,
their validation reports (``<lut>.validation.json``: what calibrates the search's sum)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..contracts.files import FileLock, write_atomic, write_json_atomic
from ..contracts.setting import SETTING_COLUMNS
from ..errors import DepthshrinkError
from .table import COLUMNS, OPTIONAL, LatencyTable, cell_text, read_lut, repeated_rows
from .writer import check_lut_header, check_lut_name


def validation_entries(lut_path: str | os.PathLike) -> list[dict]:
    """The entries of ``<lut>.validation.json``; none when it is missing or unreadable."""
    path = Path(lut_path).with_suffix(".validation.json")
    try:
        entries = json.loads(path.read_text()) if path.is_file() else []
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return []  # an unreadable validation only means no correction (said in the masks file)
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def merge_luts(paths: list[str | os.PathLike]) -> tuple[pd.DataFrame, int]:
    """Union of several LUT files; for a key present more than once, the first row wins. A column of a
    newer layout (``OPTIONAL``) is kept when one of the files has it."""
    frames = [read_lut(p) for p in paths]
    union = pd.concat(frames, ignore_index=True)
    duplicated = repeated_rows(union)
    present = {c for p in paths for c in check_lut_header(p)}
    columns = [c for c in COLUMNS if c not in OPTIONAL or c in present]
    return union.loc[~duplicated, columns + [c for c in union.columns if c not in COLUMNS]], int(duplicated.sum())


def merge_lut_files(paths: list[str | os.PathLike], out: str | os.PathLike) -> tuple[pd.DataFrame, int, int]:
    """Write the union of ``paths`` to ``out`` and their validations to ``<out>.validation.json``
    (for one network at one input size in one setting, the first file's entry wins). Returns the
    merged rows, the duplicate rows dropped and the validation entries kept."""
    check_lut_name(out)
    frame, duplicates = merge_luts(paths)
    for _, rows in frame.groupby([frame[c].astype(str) for c in SETTING_COLUMNS], sort=False):
        try:  # a table every later command would refuse: refused here, before it is written
            LatencyTable(rows.assign(**{c: pd.NA for c in COLUMNS if c not in rows})).select()
        except DepthshrinkError as exc:
            raise DepthshrinkError(f"these tables cannot be merged: {exc}") from None
    text = frame.map(lambda value: "" if pd.isna(value) else cell_text(value))  # as the LUT writer spells it
    with FileLock(out, "a LUT merge"):  # a session profiling into it would append to the file replaced
        write_atomic(out, lambda tmp: text.to_csv(tmp, index=False))
    kept: list[tuple[tuple, object, dict]] = []  # (network and setting, input, entry)
    for path in paths:
        for entry in validation_entries(path):
            key = (entry.get("model"), entry.get("network"), *(str(entry.get(k)) for k in SETTING_COLUMNS))
            given = entry.get("input")  # None: a table from before it was recorded, any input
            if not any(key == k and (given == i or None in (given, i)) for k, i, _ in kept):
                kept.append((key, given, entry))
    validation = Path(out).with_suffix(".validation.json")
    if kept:
        write_json_atomic(validation, [entry for *_, entry in kept])
    else:  # an earlier merge's would calibrate these rows with other tables' networks
        validation.unlink(missing_ok=True)
    return frame, duplicates, len(kept)
