"""The latency models :mod:`.predictor` compares, each a scikit-learn-style estimator on
:func:`~.predictor.conv_features` rows with log latency as the target.

Two first guesses, each followed by a Gaussian process on what it misses:

- a linear model on log features (roofline-like);
- an additive model of work counts (:mod:`.workcount`): a nonnegative time per unit of each kind
  of kernel work, fitted for relative error;

and :class:`Averaged`, the mean in log of fitted models.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .._imports import lazy_import
from .workcount import COUNT_COLUMNS, work_counts

EXTRA = "corpus_row"      # 1 on corpus rows, another measuring session: its offset is learnt apart
CORPUS_NOISE = 0.36       # the GP's extra noise variance on corpus rows (normalised units, see GaussianResidual)
GP_RESTART_ROWS = 300     # a GP's optimiser makes its random restarts up to this many rows only
GP_FTOL = 1e-6            # its optimiser stops when a step lowers -log likelihood by less than this share
CHANNEL_BLOCKS = (8, 16)  # AVX2 / AVX-512 NCHWc blocks in ONNX Runtime's MLAS; tensor-core multiples on GPUs
LINEAR_FEATURES = ["log_flops", "log_params", "log_in_bytes", "log_out_bytes", "log_weight_bytes", "log_intensity",
                   "log_cin_per_group", "log_kernel_area", "log_out_pixels", "pointwise", "dense_kxk", "depthwise",
                   "activation", "residual_add", "aligned8", "log_pad_ratio8", "aligned16", "log_pad_ratio16",
                   EXTRA]
SMOOTH_FEATURES = ["log_flops", "log_in_bytes", "log_out_bytes", "log_weight_bytes", "log_cin_per_group",
                   "log_kernel_area", "log_out_pixels", "pointwise", "depthwise", "stride", "activation",
                   "residual_add", "log_pad_ratio8", "log_pad_ratio16"]
# and, in log, the output channels and the map's height apart: MLAS's NCHWc convs loop over filter
# sets of output-channel blocks and call their kernel once per output row, so both set costs that the
# work and byte counts do not carry (with them, held-out ±10% rose on each of six CPU tables,
# docs/predictor.md). Only the GP's inputs (the forests and the sampler see conv_features as it is),
# and only from SHAPE_INPUT_ROWS rows: two more length scales fitted on the 24-30 rows of a transfer
# made the CPU 224 px table's held-out accuracy worse (77.3% -> 70.0%), on an adaptive table's ~50 better
LOG_SHAPE_COLUMNS = ["out_channels", "height"]
SHAPE_INPUT_ROWS = 40


def linear_log():
    """Ridge regression on the standardised log features."""
    linear = lazy_import("sklearn.linear_model")
    pipeline = lazy_import("sklearn.pipeline")
    preprocessing = lazy_import("sklearn.preprocessing")
    compose = lazy_import("sklearn.compose")
    return pipeline.make_pipeline(
        compose.ColumnTransformer([("logs", preprocessing.StandardScaler(), LINEAR_FEATURES)]),
        linear.RidgeCV(alphas=np.logspace(-3, 2, 12)))


class WorkCounts:
    """Latency as a sum of nonnegative times per unit of work (:mod:`.workcount`), one per kind of
    kernel work, fitted by nonnegative least squares on the relative error, on the table's own
    rows (a corpus, timed in another session, would pull them by its drift). The NCHWc block
    (8 or 16 channels: AVX2 or AVX-512, which the table does not record) is the one fitting better."""

    def get_params(self, deep: bool = True) -> dict:
        return {}

    def fit(self, x: pd.DataFrame, y: np.ndarray) -> WorkCounts:
        own = x[EXTRA].to_numpy() == 0
        latency = np.exp(y[own])
        fits = []
        for block in CHANNEL_BLOCKS:
            counts = work_counts(x[own], block).to_numpy()
            scale = np.maximum(counts.max(axis=0), 1e-12)  # columns of order one: a better-conditioned solve
            weights, residual = lazy_import("scipy.optimize").nnls(counts / scale / latency[:, None],
                                                                   np.ones(len(latency)))
            fits.append((residual, block, weights / scale))
        _, self.block_, self.time_per_unit_ = min(fits, key=lambda fit: fit[0])
        self.floor_ms_ = float(latency.min()) / 10  # kept positive: work of a kind no row trained costs 0
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        latency = work_counts(x, self.block_).to_numpy() @ self.time_per_unit_
        return np.log(np.maximum(latency, self.floor_ms_))

    def unit_times(self) -> pd.Series:
        """Milliseconds per unit of each kind of work."""
        return pd.Series(self.time_per_unit_, index=COUNT_COLUMNS)


class GaussianResidual:
    """A Gaussian process (Matern 5/2, one length scale per smooth feature) on what a first model
    misses; its optimiser restarts ``restarts`` times from random length scales."""

    def __init__(self, restarts: int = 1) -> None:
        self.restarts = restarts

    def fit(self, x: pd.DataFrame, residual: np.ndarray) -> GaussianResidual:
        gaussian_process = lazy_import("sklearn.gaussian_process")
        kernels = lazy_import("sklearn.gaussian_process.kernels")
        self.shape_inputs_ = len(x) >= SHAPE_INPUT_ROWS
        inputs = self._inputs(x)
        self.scaler_ = lazy_import("sklearn.preprocessing").StandardScaler().fit(inputs)
        # noise at most a tenth of the residual's variance: repeat measurements agree to ~3%, the
        # first model misses by ~10%, so most of what it misses is the shape's, not the timer's.
        # Matern 5/2: 85.7% of held-out rows within 10% on the shipped table, against 83.6% with RBF
        smooth = kernels.Matern(np.full(inputs.shape[1], 3.0), (0.05, 100.0), nu=2.5)
        kernel = kernels.ConstantKernel(0.01) * smooth + kernels.WhiteKernel(1e-3, (1e-5, 0.1))
        # corpus rows count for less: another session (the VM drifts by ~6%, ~0.6 of the residual's
        # spread) and other shapes; their extra noise is that drift's variance, in normalised units
        alpha = np.where(x[EXTRA].to_numpy() > 0, CORPUS_NOISE, 1e-10)
        # restarts help the linear model's GP on a table's hundred-odd rows; with a corpus' hundreds
        # more they cost minutes (the fit grows with the cube of the rows) and changed nothing
        restarts = self.restarts if len(x) <= GP_RESTART_ROWS else 0
        self.gp_ = gaussian_process.GaussianProcessRegressor(kernel, alpha=alpha, normalize_y=True,
                                                             optimizer=_maximise_likelihood,
                                                             n_restarts_optimizer=restarts, random_state=0)
        # one BLAS thread: the matrices are a few hundred rows, and on a loaded 2-core machine two
        # threads made a fit 5-10x slower (2.3 s against 20 s for an H100 table's GP, load 6)
        with warnings.catch_warnings(), lazy_import("threadpoolctl").threadpool_limits(1):
            # a length scale at its bound only means "this feature is irrelevant"
            warnings.simplefilter("ignore", lazy_import("sklearn.exceptions").ConvergenceWarning)
            self.gp_.fit(self.scaler_.transform(inputs), residual)
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return self.gp_.predict(self.scaler_.transform(self._inputs(x)))

    def _inputs(self, x: pd.DataFrame) -> pd.DataFrame:
        """The GP's inputs (a subclass for another device kind gives its own)."""
        shape = LOG_SHAPE_COLUMNS if self.shape_inputs_ else []
        return x[SMOOTH_FEATURES].assign(**{f"log_{c}": np.log(x[c].astype(float)) for c in shape})


def _maximise_likelihood(objective, theta: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float]:
    """L-BFGS-B on the GP's negative log marginal likelihood, stopped when a step lowers it by less
    than ``GP_FTOL`` of its size (~1e-4 nats on a table): half the steps of scipy's default."""
    result = lazy_import("scipy.optimize").minimize(objective, theta, method="L-BFGS-B", jac=True, bounds=bounds,
                                                    options={"ftol": GP_FTOL})
    return result.x, result.fun


class _PlusGP:
    """A first model, then a Gaussian process on what it misses (smooth in the shape, and strong
    with the hundred-odd rows a table holds), restarted ``RESTARTS`` times. A subclass builds the
    unfitted first model. No parameters: scikit-learn's ``clone`` copies it as it is."""

    RESTARTS = 1

    def get_params(self, deep: bool = True) -> dict:
        return {}

    def fit(self, x: pd.DataFrame, y: np.ndarray) -> _PlusGP:
        self.first_ = self._first().fit(x, y)
        self.second_ = self._second().fit(x, y - self.first_.predict(x))
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return self.first_.predict(x) + self.second_.predict(x)

    def _first(self):
        raise NotImplementedError

    def _second(self):
        return GaussianResidual(self.RESTARTS)


class LinearPlusGP(_PlusGP):
    """The linear model on log features, then the GP."""

    def _first(self):
        return linear_log()


class WorkCountsPlusGP(_PlusGP):
    """The additive work-count model, then the GP, without restarts: what the counts miss is
    smaller, and a restart took 0.6 s a fit for within 0.7 points of held-out ±10% accuracy on
    the shipped tables (95.0% against 95.7% on the 224 px table, 73.0% against 71.7% at 28 px)."""

    RESTARTS = 0

    def _first(self):
        return WorkCounts()


class Averaged:
    """The mean in log (the geometric mean of latencies) of fitted models' predictions."""

    def __init__(self, models: list) -> None:
        self.models = models

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return np.mean([model.predict(x) for model in self.models], axis=0)
