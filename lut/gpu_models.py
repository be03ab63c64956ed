"""The latency models of GPU tables (:mod:`.predictor` compares them with the device-independent
ones), each a scikit-learn-style estimator on :func:`~.predictor.conv_features` rows with log
latency as the target, built for one :class:`~.device.DeviceSpec` and backend:

- :class:`GpuCounts`: latency as a nonnegative sum of the GPU's launch counts and times per kind
  of work (:mod:`.gpu_features`), fitted for relative error: the weights are the launch costs in
  ms and, for the times, how many times slower than the datasheet's peak the work runs;
- the counts, then a Gaussian process on the GPU log features of what they miss;
- the counts, then gradient boosting on the same features (cuDNN switches algorithm by shape:
  steps a tree follows better than a smooth GP).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._imports import lazy_import
from .device import GENERIC_GPU, DeviceSpec
from .gpu_features import GPU_COUNTS, gpu_counts, gpu_log_features
from .regressors import EXTRA, GaussianResidual, _PlusGP

# the GP's inputs: the channel fills and the 256-wide tile's waves cost it 1-3 s a fit and lost
# 0-8 points within ±10% on the H100 tables (the boosted trees keep them)
GP_FEATURES = ["log_m", "log_reduction", "log_out_channels", "log_in_channels", "log_kernel", "depthwise",
               "pointwise", "stride", "activation", "residual_add", "log_wave_depth64x64", "log_wave_depth128x128"]


class _OnDevice:
    """Parameters shared by the GPU models: the device and the backend (``clone`` copies them)."""

    def __init__(self, device: DeviceSpec = GENERIC_GPU, backend: str | None = None) -> None:
        self.device = device
        self.backend = backend

    def get_params(self, deep: bool = True) -> dict:
        return {"device": self.device, "backend": self.backend}

    def set_params(self, **params) -> _OnDevice:
        for name, value in params.items():
            setattr(self, name, value)
        return self


class GpuCounts(_OnDevice):
    """Nonnegative least squares of the relative error on :data:`~.gpu_features.GPU_COUNTS`, on the
    table's own rows (corpus rows come from another session)."""

    def fit(self, x: pd.DataFrame, y: np.ndarray) -> GpuCounts:
        own = x[EXTRA].to_numpy() == 0 if EXTRA in x.columns else np.ones(len(x), bool)
        latency = np.exp(y[own])
        counts = gpu_counts(x[own], self.device, self.backend).to_numpy()
        scale = np.maximum(counts.max(axis=0), 1e-12)
        weights, _ = lazy_import("scipy.optimize").nnls(counts / scale / latency[:, None], np.ones(len(latency)))
        self.weights_ = weights / scale
        self.floor_ms_ = float(latency.min()) / 10  # kept positive: work of a kind no row trained costs 0
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        latency = gpu_counts(x, self.device, self.backend).to_numpy() @ self.weights_
        return np.log(np.maximum(latency, self.floor_ms_))

    def weights(self) -> pd.Series:
        """ms per launch, and slowdown against the datasheet's peak per kind of work."""
        return pd.Series(self.weights_, index=GPU_COUNTS)


class GpuResidualGP(GaussianResidual):
    """The Gaussian process of :class:`~.models.GaussianResidual` on the GPU log features."""

    def __init__(self, device: DeviceSpec, restarts: int = 0) -> None:
        super().__init__(restarts)
        self.device = device

    def _inputs(self, x: pd.DataFrame) -> pd.DataFrame:
        return gpu_log_features(x, self.device)[GP_FEATURES]


class GpuCountsPlusGP(_OnDevice, _PlusGP):
    """The GPU counts, then the GP on what they miss (no random restart: one cost 0.5 s a fit for
    -1 to +3 points within ±10% on the H100 tables)."""

    RESTARTS = 0

    def _first(self):
        return GpuCounts(self.device, self.backend)

    def _second(self):
        return GpuResidualGP(self.device, self.RESTARTS)


class GpuCountsPlusBoosting(_OnDevice):
    """The GPU counts, then gradient boosting (300 steps of depth 3 at rate 0.05) on what they miss."""

    def fit(self, x: pd.DataFrame, y: np.ndarray) -> GpuCountsPlusBoosting:
        self.first_ = GpuCounts(self.device, self.backend).fit(x, y)
        ensemble = lazy_import("sklearn.ensemble")
        self.second_ = ensemble.GradientBoostingRegressor(n_estimators=300, max_depth=3, learning_rate=0.05,
                                                          subsample=0.8, random_state=0)
        self.second_.fit(self._inputs(x), y - self.first_.predict(x))
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return self.first_.predict(x) + self.second_.predict(self._inputs(x))

    def _inputs(self, x: pd.DataFrame) -> np.ndarray:
        features = gpu_log_features(x, self.device)
        if EXTRA in x.columns:  # corpus rows: another session, its own offset
            features[EXTRA] = x[EXTRA].to_numpy()
        return features.to_numpy()
