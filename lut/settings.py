"""The settings (device, backend, precision, batch, threads) a LUT file holds, one table each."""

from __future__ import annotations

import pandas as pd

from ..contracts.setting import SETTING_COLUMNS
from .table import is_corpus


def settings_of(frame: pd.DataFrame) -> list[dict]:
    """Each setting of ``frame``'s own conv rows (a corpus's left out), in order of appearance,
    as :meth:`~.table.LatencyTable.select` filters (a value missing in the table is None)."""
    conv = frame[(frame["op"] == "conv") & ~is_corpus(frame)]
    seen: list[dict] = []
    for values in conv[SETTING_COLUMNS].itertuples(index=False):
        setting = {c: (None if pd.isna(v) else v) for c, v in zip(SETTING_COLUMNS, values)}
        if setting not in seen:
            seen.append(setting)
    return seen
