"""The settings (device, backend, precision, batch, threads) a LUT file holds, one table each, and
how each was timed."""

from __future__ import annotations

import pandas as pd

from ..contracts.setting import SETTING_COLUMNS
from .table import OPTIONAL, cell_text, own_conv

# what two tables must share for their rows to be measurements of the same thing: the setting, and
# how it was timed (a cache flush moves µs-scale rows by more than the timer's noise; a shorter time
# per row or fewer passes repeat less well). Tables from before a column was recorded leave it empty.
MEASURING_COLUMNS = SETTING_COLUMNS + OPTIONAL


def settings_of(frame: pd.DataFrame) -> list[dict]:
    """Each setting of ``frame``'s own conv rows (a corpus's left out), in order of appearance,
    as :meth:`~.table.LatencyTable.select` filters (a value missing in the table is None)."""
    seen: list[dict] = []
    for values in own_conv(frame)[SETTING_COLUMNS].itertuples(index=False):
        setting = {c: (None if pd.isna(v) else v) for c, v in zip(SETTING_COLUMNS, values)}
        if setting not in seen:
            seen.append(setting)
    return seen


def measuring_differences(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """``column: values in a / values in b`` for each of ``MEASURING_COLUMNS`` whose recorded values
    differ between the two tables' own conv rows. A column one table leaves empty (a table from
    before it was recorded) cannot be compared and is not reported."""
    def values(frame: pd.DataFrame, column: str) -> set[str]:
        if column not in frame.columns:
            return set()
        return {cell_text(v) for v in own_conv(frame)[column].dropna().unique()}

    differences: list[str] = []
    for column in MEASURING_COLUMNS:
        first, second = values(a, column), values(b, column)
        if first and second and first != second:
            differences.append(f"{column}: {', '.join(sorted(first))} / {', '.join(sorted(second))}")
    return differences
