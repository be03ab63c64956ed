"""The settings (device, backend, precision, batch, threads) a LUT file holds, one table each, and
how each was timed."""

from __future__ import annotations

import pandas as pd

from ..contracts.setting import SETTING_COLUMNS
from .table import OPTIONAL, is_corpus

# what two tables must share for their rows to be measurements of the same thing: the setting, and
# how it was timed (a cache flush moves µs-scale rows by more than the timer's noise)
MEASURING_COLUMNS = SETTING_COLUMNS + OPTIONAL


def _own_conv(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["op"] == "conv") & ~is_corpus(frame)]


def settings_of(frame: pd.DataFrame) -> list[dict]:
    """Each setting of ``frame``'s own conv rows (a corpus's left out), in order of appearance,
    as :meth:`~.table.LatencyTable.select` filters (a value missing in the table is None)."""
    conv = _own_conv(frame)
    seen: list[dict] = []
    for values in conv[SETTING_COLUMNS].itertuples(index=False):
        setting = {c: (None if pd.isna(v) else v) for c, v in zip(SETTING_COLUMNS, values)}
        if setting not in seen:
            seen.append(setting)
    return seen


def measuring_differences(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """``column: values in a / values in b`` for each of ``MEASURING_COLUMNS`` whose recorded values
    differ between the two tables' own conv rows (a column one of them leaves empty is not compared)."""
    def values(frame: pd.DataFrame, column: str) -> set[str]:
        if column not in frame.columns:
            return set()
        return {str(v) for v in _own_conv(frame)[column].dropna().unique()}

    differences = []
    for column in MEASURING_COLUMNS:
        first, second = values(a, column), values(b, column)
        if first and second and first != second:
            differences.append(f"{column}: {', '.join(sorted(first))} / {', '.join(sorted(second))}")
    return differences
