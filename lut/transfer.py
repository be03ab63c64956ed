"""A new device's latencies from a few of its measurements and what other tables already say
(HELP and MAPLE-Edge's lesson: a device-independent prior plus a small per-device correction).

The prior, from every other table (another device, backend or batch):

- its latencies: its own predictor (the model of its kind, fitted on all its rows) gives a log
  latency for each configuration; where it measured the same conv (shape, activation and
  residual add; batch aside), its measurement is taken instead;
- its work model, for a table of the new device's kind: the CPU work counts' times per unit of
  work, or the GPU counts' launch costs and slowdowns against the datasheet peaks, applied to
  the new device's rows (on a GPU, with the new device's own description).

The correction, fitted on the new device's few rows: ridge regression of their log latencies on
some of those inputs and on the new device's own work model (fitted on the same rows). Which
inputs (its own model alone, one other table's work model or latencies with it, or all) is
chosen by leave-one-out error on the few rows, so a prior that does not fit is left out.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from .compare import config_keys
from .device import DeviceSpec
from .features import Evaluation, conv_features, score, table_device
from .gpu_models import GpuCounts
from .predictor import LatencyPredictor
from .regressors import WorkCounts
from .table import LatencyTable, own_conv

SHIPPED = Path(__file__).parent
PRIOR_MODEL = {"cpu": "work_counts_plus_gp", "gpu": "average_of_gpu_models"}  # no choosing: seconds saved
PRIOR_BELOW_ROWS = 100  # a table with fewer own conv rows gets the shipped tables as its prior


def _measurements(rows: pd.DataFrame) -> list[str]:
    """Each row's configuration and when it was measured (none for rows that do not record it)."""
    if "measured_at" not in rows.columns:
        return []
    stamped = rows[rows["measured_at"].notna()]
    return list(config_keys(stamped) + "@" + stamped["measured_at"].astype(str)) if len(stamped) else []


class PriorTable:
    """One other table of one setting: its predictor and its measurements, by configuration."""

    def __init__(self, frame: pd.DataFrame, name: str = "") -> None:
        conv = own_conv(frame)
        self.name = name or str(conv["device"].iloc[0])
        self.device, self.backend = table_device(frame)
        self.predictor = LatencyPredictor(frame, model=PRIOR_MODEL[self.device.kind])
        self.measured = dict(zip(config_keys(conv), np.log(conv["latency_ms"].astype(float))))
        self.measurements = set(_measurements(conv))
        x, y = conv_features(conv), np.log(conv["latency_ms"].astype(float).to_numpy())
        self.counts = (GpuCounts(self.device, self.backend) if self.device.kind == "gpu" else WorkCounts()).fit(x, y)

    def holds_any(self, rows: pd.DataFrame) -> bool:
        """Whether it holds one of ``rows``' measurements itself (same configuration, same
        ``measured_at``): then it is that table, or a part of it, not another device's."""
        return not self.measurements.isdisjoint(_measurements(rows))

    def counts_log_latency(self, rows: pd.DataFrame, device: DeviceSpec, backend: str | None) -> np.ndarray | None:
        """Its work model's log latency of each row on ``device`` (None for a device of another kind)."""
        if device.kind != self.device.kind:
            return None
        if device.kind == "cpu":
            return self.counts.predict(conv_features(rows))
        model = GpuCounts(device, backend)
        model.weights_, model.floor_ms_ = self.counts.weights_, self.counts.floor_ms_
        return model.predict(conv_features(rows))

    def log_latency(self, rows: pd.DataFrame) -> np.ndarray:
        """Its log latency of each row: measured where it has the configuration, else predicted."""
        predicted = np.log(self.predictor.predict(rows)[0])
        measured = config_keys(rows).map(self.measured).to_numpy(dtype=float)
        return np.where(np.isnan(measured), predicted, measured)


def shipped_tables(exclude: dict | None = None) -> dict[str, pd.DataFrame]:
    """The tables that ship with the project (``lut/**/*.csv``) by file name, one setting each,
    those with enough own rows (a corpus trains only); ``exclude`` (a setting) leaves it out."""
    tables = {}
    for path in sorted(SHIPPED.rglob("*.csv")):
        table = LatencyTable.read(path)
        own = own_conv(table.frame)
        if len(own) < 20:
            continue
        selected = table.select()
        if exclude and all(_same(selected.setting.get(k), v) for k, v in exclude.items()):
            continue
        tables[path.stem] = selected.frame
    return tables


def shipped_priors(exclude: dict | None = None) -> list[PriorTable]:
    """A prior of each of :func:`shipped_tables` (seconds each: its model is fitted)."""
    return [PriorTable(frame, name) for name, frame in shipped_tables(exclude).items()]


def priors_for(frame: pd.DataFrame) -> list[PriorTable]:
    """The prior of a table with few own conv rows (under ``PRIOR_BELOW_ROWS``: a table measured
    adaptively, ``profile-device --budget-fraction``, or in part): the shipped tables, fitted once
    per process (:func:`_shipped_once`, refitted when a file changes), but not one that holds the
    table's own measurements (a part of a shipped table would be its own prior); none for a larger table."""
    own = own_conv(frame)
    if len(own) >= PRIOR_BELOW_ROWS:
        return []
    shipped = _shipped_once(tuple((str(p), p.stat().st_mtime_ns) for p in sorted(SHIPPED.rglob("*.csv"))))
    return [prior for prior in shipped if not prior.holds_any(own)]


@functools.lru_cache(maxsize=1)
def _shipped_once(files: tuple) -> tuple[PriorTable, ...]:
    return tuple(shipped_priors())


def _same(a, b) -> bool:
    return str(a).strip().lower() == str(b).strip().lower() if a is not None and b is not None else a is b


def transfer_evaluation(target: pd.DataFrame, priors: list[PriorTable], rows: int = 30,
                        name: str = "transfer") -> tuple[Evaluation, list[int], LatencyPredictor]:
    """The new device's table ``target`` (fully measured): ``rows`` of its conv rows chosen by the
    adaptive sampler (:func:`depthshrink.lut.sampling.simulated_picks`), the transfer model
    fitted on them and ``priors``, scored on its other rows; (score, the rows chosen, the predictor)."""
    from .sampling import simulated_picks

    conv = own_conv(target).reset_index(drop=True)
    picks = simulated_picks(conv, rows)
    predictor = LatencyPredictor(conv.iloc[picks], model="transfer", priors=priors)
    rest = conv.drop(index=picks)
    measured = rest["latency_ms"].astype(float).to_numpy()
    return score(name, predictor.predict(rest)[0], measured), picks, predictor
