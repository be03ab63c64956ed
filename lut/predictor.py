"""A latency predictor for conv configurations the table never measured (nn-Meter's idea,
without pickles: it is refit from the LUT CSV in seconds whenever it is needed).

Features per configuration: FLOPs, parameters, input/output/weight bytes, arithmetic intensity,
channels, kernel, stride, groups (depthwise or dense), spatial size, batch, activation, residual
add and how the channels fill 8/16-wide SIMD blocks; the target is log latency. The models
(:mod:`.regressors`): a linear model on log features and an additive model of work counts per kind
of CPU kernel (:mod:`.workcount`), each alone and with a Gaussian process on what it misses, the
two GPs' average, a random forest and gradient boosting, compared by grouped cross-validation
(near-duplicate shapes share a fold); the best is kept. Rows of a device corpus
(``model`` = corpus) train every fold but are never scored.

A GPU table (its ``device`` is not ``cpu-…``) gets the GPU models of :mod:`.gpu_models` instead
of the CPU kernels' work counts: launches, traffic over bandwidth, and tiles and waves over the
SMs of its :class:`~.device.DeviceSpec` (read from the device label, or given). Given other
tables as ``priors`` (:mod:`.transfer`), what they say of each row joins the features and the
transfer model joins the candidates: a new device from a few of its own rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._imports import lazy_import
from ..errors import DepthshrinkError
from .device import DeviceSpec, spec_for_device
from .features import Evaluation, conv_features, score, table_device
from .gpu_models import GpuCounts, GpuCountsPlusBoosting, GpuCountsPlusGP
from .regressors import EXTRA, Averaged, LinearPlusGP, WorkCounts, WorkCountsPlusGP, linear_log
from .table import is_corpus
from .transfer_model import TransferModel, prior_columns

MIN_ROWS = 20
GROUP_COLUMNS = ["in_channels", "out_channels", "kernel_size", "stride", "groups", "height"]
FOLDS = 5


def _candidates(device: DeviceSpec | None = None, backend: str | None = None, transfer: bool = False) -> dict:
    """The models compared for a table of ``device`` (unfitted, by name; a CPU without one). The
    forest and plain boosting (the issue's baselines, 38-51 points behind the best GP on the
    shipped 224 px table) are sized for time: 100 trees, 200 boosting steps at rate 0.1; 300 trees
    and 400 steps at 0.05 were 1.5 s slower in choosing and within 3 points (47.9% against 44.3%,
    57.9% against 55.0% within ±10% on that table)."""
    ensemble = lazy_import("sklearn.ensemble")
    baselines = {
        "random_forest": ensemble.RandomForestRegressor(n_estimators=100, max_features=0.6, random_state=0, n_jobs=1),
        "gradient_boosting": ensemble.GradientBoostingRegressor(n_estimators=200, max_depth=3, learning_rate=0.1,
                                                                subsample=0.8, random_state=0),
    }
    if transfer:
        baselines["transfer"] = TransferModel(device or spec_for_device("cpu"), backend)
    if device is not None and device.kind == "gpu":
        return {"gpu_counts_plus_gp": GpuCountsPlusGP(device, backend),
                "gpu_counts_plus_boosting": GpuCountsPlusBoosting(device, backend),
                **baselines, "gpu_counts": GpuCounts(device, backend)}
    return {"linear_plus_gp": LinearPlusGP(), "work_counts_plus_gp": WorkCountsPlusGP(), **baselines,
            "work_counts": WorkCounts(), "linear_log": linear_log()}


# Models made of others, scored and fitted from their parts' predictions: the two GPs miss in
# different places (one starts from log features, the other from work counts); on a GPU the GP
# and the boosted trees on the GPU counts (one smooth, one in steps)
AVERAGES = {"average_of_gps": ("linear_plus_gp", "work_counts_plus_gp")}
GPU_AVERAGES = {"average_of_gpu_models": ("gpu_counts_plus_gp", "gpu_counts_plus_boosting")}


def _averages(device: DeviceSpec | None) -> dict[str, tuple[str, str]]:
    """The averages of ``device``'s kind; their parts are fitted on every row while the folds run
    (they win on our tables)."""
    return GPU_AVERAGES if device is not None and device.kind == "gpu" else AVERAGES


def _conv_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the table's conv rows, the corpus rows: training only, marked as another measuring session)."""
    conv = frame[frame["op"] == "conv"]
    corpus = is_corpus(conv).to_numpy()
    table = conv[~corpus].reset_index(drop=True)
    if len(table) < MIN_ROWS:  # the model is chosen on them: corpus rows do not count
        raise DepthshrinkError(f"the predictor needs at least {MIN_ROWS} measured conv rows of one setting; "
                               f"this table has {len(table)}" + (" (and corpus rows, which only train)"
                                                                 if np.any(corpus) else ""))
    extra = conv[corpus].assign(**{EXTRA: 1.0}).reset_index(drop=True)
    _check_same_flush(table, extra)
    return table, extra


def _check_same_flush(table: pd.DataFrame, corpus: pd.DataFrame) -> None:
    """Refuse corpus rows timed with the other cache-flush setting than the table's (both recorded):
    a flush moves small configurations far more than large ones, which no offset can learn."""
    def settings(rows: pd.DataFrame) -> set[bool]:
        return {bool(v) for v in pd.to_numeric(rows.get("cache_flush", pd.Series(dtype=float)),
                                               errors="coerce").dropna()}

    own, other = settings(table), settings(corpus)
    if len(own) == 1 and other - own:  # a table of both settings (extended with the other) refuses nothing
        def name(values: set[bool]) -> str:
            return " and ".join(sorted("on" if v else "off" for v in values))
        raise DepthshrinkError(f"the table's rows were timed with cache flush {name(own)}, corpus rows with "
                               f"{name(other - own)}: measure the corpus with --cache-flush {name(own)}")


def _groups(conv: pd.DataFrame) -> pd.Series:
    """Near-duplicate shapes (same conv, other activation/add) share a group: they are held out together."""
    if conv.empty:
        return pd.Series([], dtype=object)
    return conv[GROUP_COLUMNS].astype(str).agg("-".join, axis=1)


def cross_validate(frame: pd.DataFrame, folds: int = FOLDS, device: DeviceSpec | None = None,
                   priors: list | None = None) -> list[Evaluation]:
    """Held-out accuracy of every candidate model on the table's conv rows (grouped K-fold), best first.

    Corpus rows (``model`` = corpus, see :mod:`depthshrink.export.corpus`) only train: every fold
    fits on them too, less those of a shape held out in that fold, and they are never scored.
    The (model, fold) fits run in parallel, one process per core. ``device`` describes the
    device when its label is not enough (see :func:`table_device`); ``priors``, other tables
    (:class:`~.transfer.PriorTable`), add the transfer model.
    """
    return _cross_validated(frame, folds, device=device, priors=priors)[0]


def fold_count(frame: pd.DataFrame, folds: int = FOLDS) -> int:
    """The folds a cross-validation of ``frame`` uses: ``folds``, or fewer when the table has fewer
    distinct shapes (a shape's rows are held out together)."""
    return _fold_count(_groups(_conv_rows(frame)[0]), folds)


def _fold_count(groups: pd.Series, folds: int) -> int:
    shapes = groups.nunique()
    if shapes < 2:  # rows that differ only in width, padding, activation or add: nothing to hold out
        raise DepthshrinkError(f"a cross-validation holds shapes out: this table's conv rows are of {shapes} shape")
    return min(folds, shapes)


def _ranked(results) -> list[Evaluation]:
    return sorted(results, key=lambda r: (-r.within_10pct, r.rmspe))


def _cross_validated(frame: pd.DataFrame, folds: int, fit: tuple[str, ...] | None = (),
                     device: DeviceSpec | None = None, priors: list | None = None) -> tuple[list[Evaluation], dict]:
    """(every candidate's and average's grouped K-fold held-out scores, best first; the candidates
    named in ``fit`` (None: the averages' parts) fitted on every row, in the same parallel batch
    as the folds)."""
    model_selection = lazy_import("sklearn.model_selection")
    device, backend = (device, table_device(frame)[1]) if device is not None else table_device(frame)
    averages = _averages(device)
    fit = tuple(part for parts in averages.values() for part in parts) if fit is None else fit
    conv, corpus = _conv_rows(frame)
    x, y, groups = _features(conv, device, backend, priors), _log_latency(conv), _groups(conv)
    x_corpus, y_corpus = _features(corpus, device, backend, priors), _log_latency(corpus)
    groups_corpus = _groups(corpus).to_numpy()
    splits = list(model_selection.GroupKFold(n_splits=_fold_count(groups, folds)).split(x, y, groups))
    candidates = _candidates(device, backend, transfer=bool(priors))
    tasks = [(name, None, candidates[name], pd.concat([x, x_corpus], ignore_index=True),
              np.concatenate([y, y_corpus]), None) for name in fit]  # the longest first: a short tail
    for name, estimator in candidates.items():
        for train, test in splits:
            keep = ~np.isin(groups_corpus, groups.iloc[test].unique())
            tasks.append((name, test, estimator, pd.concat([x.iloc[train], x_corpus[keep]], ignore_index=True),
                          np.concatenate([y[train], y_corpus[keep]]), x.iloc[test]))
    predicted, fitted = {name: np.empty_like(y) for name in candidates}, {}
    for (name, test, *_), result in zip(tasks, _in_parallel(_fit_predict, [task[2:] for task in tasks])):
        if test is None:
            fitted[name] = result
        else:
            predicted[name][test] = result
    for name, parts in averages.items():
        predicted[name] = np.mean([predicted[part] for part in parts], axis=0)
    return _ranked(score(name, np.exp(values), np.exp(y)) for name, values in predicted.items()), fitted


def _features(rows: pd.DataFrame, device: DeviceSpec, backend: str | None, priors: list | None) -> pd.DataFrame:
    """:func:`conv_features`, and beside them what ``priors`` say of each row (when given)."""
    x = conv_features(rows)
    if not priors or rows.empty:
        return x
    return pd.concat([x, prior_columns(rows, priors, device, backend).reset_index(drop=True)], axis=1)


def _log_latency(rows: pd.DataFrame) -> np.ndarray:
    return np.log(rows["latency_ms"].astype(float).to_numpy())


def _fit(estimator, x: pd.DataFrame, y: np.ndarray):
    """A fitted copy of ``estimator``."""
    return lazy_import("sklearn.base").clone(estimator).fit(x, y)


def _fit_predict(estimator, x_train: pd.DataFrame, y_train: np.ndarray, x_test: pd.DataFrame | None):
    """A fitted copy of ``estimator``'s predictions for ``x_test``; without ``x_test``, the copy."""
    fitted = _fit(estimator, x_train, y_train)
    return fitted if x_test is None else fitted.predict(x_test)


def _in_parallel(function, arguments: list[tuple]) -> list:
    """``function(*a)`` for each of ``arguments``, one process per core (more than one call only)."""
    if len(arguments) <= 1:
        return [function(*a) for a in arguments]
    joblib = lazy_import("joblib")
    return joblib.Parallel(n_jobs=-1)(joblib.delayed(function)(*a) for a in arguments)


class LatencyPredictor:
    """Fit on one setting's conv rows, corpus rows included; predict latency_ms of new configurations.

    Without ``model``, the one that cross-validates best is kept (``evaluations`` holds every
    model's scores, best first, as :func:`cross_validate` returns them); the GPs, the usual
    winners, are fitted on every row alongside the folds, so that choosing takes one parallel batch.
    """

    def __init__(self, frame: pd.DataFrame, model: str | None = None, device: DeviceSpec | None = None,
                 priors: list | None = None) -> None:
        conv = pd.concat(_conv_rows(frame), ignore_index=True)
        self.device, self.backend = (device, table_device(frame)[1]) if device is not None else table_device(frame)
        self.priors = priors or []
        self.features = _features(conv, self.device, self.backend, self.priors)
        everything, averages = _candidates(self.device, self.backend, bool(self.priors)), _averages(self.device)
        if model is not None and model not in everything and model not in averages:
            raise DepthshrinkError(f"no latency model {model!r} for a {self.device.kind} table; the models are "
                                   + ", ".join([*everything, *averages]))
        fitted, self.evaluations = {}, None
        if model is None:
            self.evaluations, fitted = _cross_validated(frame, FOLDS, fit=None, device=self.device, priors=self.priors)
            model = self.evaluations[0].model
        self.model = model
        parts = averages.get(model, (model,))
        missing = [part for part in parts if part not in fitted]
        y = _log_latency(conv)
        fitted.update(zip(missing, _in_parallel(_fit, [(everything[part], self.features, y) for part in missing])))
        self.estimator = Averaged([fitted[part] for part in parts]) if model in averages else fitted[model]
        self.low, self.high = self.features.min(), self.features.max()

    def predict(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(latency_ms, extrapolated): a row is extrapolated when a feature leaves the training range."""
        x = _features(rows, self.device, self.backend, self.priors)
        outside = ((x < self.low) | (x > self.high)).any(axis=1).to_numpy()
        return np.exp(self.estimator.predict(x)), outside
