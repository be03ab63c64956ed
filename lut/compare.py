"""Two tables of one network compared row by row: which configurations both hold, how far apart
they are once the machine's drift between the two is taken out, and which rows one table lacks.
One way of matching rows for the transfer prior, the repeatability and adaptive-profiling benches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .table import activation_names, own_conv

# a conv configuration (the setting, batch included, is each table's own)
MATCH = ["in_channels", "out_channels", "kernel_size", "stride", "groups", "height", "width", "activation",
         "residual_add"]


def config_keys(rows: pd.DataFrame) -> pd.Series:
    """Each row's configuration as one string, whatever the columns' dtypes (an int read as float,
    an empty activation as none)."""
    frame = rows[MATCH].copy()
    for column in MATCH:
        if column != "activation":
            frame[column] = pd.to_numeric(frame[column], errors="coerce").fillna(0).astype(int)
    frame["activation"] = activation_names(frame["activation"])
    return frame.astype(str).agg("|".join, axis=1)


@dataclass(frozen=True)
class Agreement:
    rows: int             # configurations both tables hold
    drift: float          # median ratio of b's latency to a's: the machine's drift between them
    within_10pct: float   # share of those rows within ±10% of the other table, the drift taken out
    within_5pct: float


def agreement(a: pd.DataFrame, b: pd.DataFrame, column: str = "latency_ms") -> Agreement:
    """How closely the rows of ``b`` repeat those of ``a`` in ``column``."""
    first, second = (rows.assign(_key=config_keys(rows))[["_key", column]] for rows in (own_conv(a), own_conv(b)))
    joined = first.merge(second, on="_key", suffixes=("_a", "_b"))
    if joined.empty:
        return Agreement(0, float("nan"), float("nan"), float("nan"))
    ratio = joined[f"{column}_b"].astype(float) / joined[f"{column}_a"].astype(float)
    drift = float(ratio.median())
    off = np.abs(ratio / drift - 1)
    return Agreement(len(joined), drift, float(np.mean(off <= 0.10)), float(np.mean(off <= 0.05)))


def lacking(full: pd.DataFrame, part: pd.DataFrame) -> pd.DataFrame:
    """``full``'s own conv rows whose configuration ``part`` does not hold."""
    rows = own_conv(full)
    return rows[~config_keys(rows).isin(set(config_keys(own_conv(part))))]
