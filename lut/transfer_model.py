"""The transfer model: a new device's own work model and what other tables say of each row
(:func:`prior_columns`), combined by a ridge regression fitted on the new device's few rows
(:mod:`.transfer` builds the other tables' priors)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._imports import lazy_import
from ..errors import DepthshrinkError
from .device import GENERIC_GPU, DeviceSpec
from .gpu_models import GpuCounts
from .regressors import EXTRA, WorkCounts

MIN_TRANSFER_ROWS = 5
ALPHAS = np.logspace(-3, 2, 12)


PRIOR_PREFIX = "prior: "  # the columns of :func:`prior_columns` (beside the conv features)


def prior_columns(rows: pd.DataFrame, priors: list, device: DeviceSpec,
                  backend: str | None) -> pd.DataFrame:
    """What each prior says of ``rows`` (LUT-shaped): its log latencies and, for a table of
    ``device``'s kind, its work model's log latencies on ``device``."""
    columns = {}
    for prior in priors:
        columns[f"{PRIOR_PREFIX}{prior.name} latencies"] = prior.log_latency(rows)
        counts = prior.counts_log_latency(rows, device, backend)
        if counts is not None:
            columns[f"{PRIOR_PREFIX}{prior.name} work model"] = counts
    return pd.DataFrame(columns, index=rows.index)


@dataclass
class _Choice:
    columns: tuple[str, ...]        # "own work model" and prior columns
    loo_error: tuple[float, float]  # (- share within ±10%, mean squared log error), left out one at a time
    alpha: float                    # the ridge penalty with the least squared leave-one-out error


class TransferModel:
    """Scikit-learn-style, on conv features with :func:`prior_columns` beside them: the device's
    own work model fitted on its rows, then a ridge regression on it and the prior columns that
    leave one out best (:func:`_ridge_loo`). Corpus rows are not used (another session)."""

    OWN = "own work model"

    def __init__(self, device: DeviceSpec = GENERIC_GPU, backend: str | None = None) -> None:
        self.device, self.backend = device, backend

    def get_params(self, deep: bool = True) -> dict:
        return {"device": self.device, "backend": self.backend}

    def fit(self, x: pd.DataFrame, y: np.ndarray) -> TransferModel:
        own = x[EXTRA].to_numpy() == 0 if EXTRA in x.columns else np.ones(len(x), bool)
        x, y = x[own], y[own]
        if len(y) < MIN_TRANSFER_ROWS:
            raise DepthshrinkError(f"transfer needs at least {MIN_TRANSFER_ROWS} measured conv rows of the new "
                                   f"device; this table has {len(y)}")
        model = GpuCounts(self.device, self.backend) if self.device.kind == "gpu" else WorkCounts()
        self.own_ = model.fit(x, y)
        inputs = self._inputs(x)
        priors = [c for c in inputs.columns if c != self.OWN]
        choices = [(self.OWN,), *[(self.OWN, c) for c in priors], *[(c,) for c in priors if c.endswith("work model")]]
        if len(priors) > 1:
            choices.append(tuple(inputs.columns))
        scored = [_Choice(c, *_ridge_loo(inputs[list(c)].to_numpy(), y)) for c in choices]
        self.choice_ = min(scored, key=lambda s: s.loo_error)
        linear = lazy_import("sklearn.linear_model")
        self.ridge_ = linear.Ridge(alpha=self.choice_.alpha).fit(inputs[list(self.choice_.columns)].to_numpy(), y)
        return self

    def _inputs(self, x: pd.DataFrame) -> pd.DataFrame:
        inputs = x[[c for c in x.columns if str(c).startswith(PRIOR_PREFIX)]].copy()
        inputs.insert(0, self.OWN, self.own_.predict(x))
        return inputs

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return self.ridge_.predict(self._inputs(x)[list(self.choice_.columns)].to_numpy())

    @property
    def used(self) -> list[str]:
        """The inputs the ridge regression uses."""
        return [c.removeprefix(PRIOR_PREFIX) for c in self.choice_.columns]


def _ridge_loo(inputs: np.ndarray, y: np.ndarray) -> tuple[tuple[float, float], float]:
    """((- share within ±10%, mean squared log error) of a ridge fit on ``inputs`` with each row
    left out in turn, its penalty), for the penalty of ``ALPHAS`` with the least squared error.
    Closed form: a left-out residual is the fitted one over 1 - its leverage (intercept free)."""
    centred = inputs - inputs.mean(axis=0)
    best = None
    for alpha in ALPHAS:
        hat = centred @ np.linalg.solve(centred.T @ centred + alpha * np.eye(inputs.shape[1]), centred.T)
        hat += 1 / len(y)
        residual = (y - hat @ y) / np.maximum(1 - np.diag(hat), 1e-9)
        score = (-float(np.mean(np.abs(np.expm1(residual)) <= 0.10)), float(np.mean(residual ** 2)))
        if best is None or score[1] < best[0][1]:
            best = (score, float(alpha))
    return best
