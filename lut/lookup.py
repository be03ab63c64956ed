"""Span latencies from a table: its measured row where it has the configuration, else the
latency predictor's (marked so). One function for the search and the profiler's validation."""

from __future__ import annotations

import pandas as pd

from ..contracts.candidates import Candidate
from ..contracts.space import Span
from .table import LatencyTable

MEASURED, PREDICTED, EXTRAPOLATED = "measured", "predicted", "predicted (extrapolated)"


def span_latencies(table: LatencyTable, spans: dict, use_predictor: bool = True) -> tuple[dict, dict]:
    """(key -> latency_ms, key -> source) for ``spans`` (key -> :class:`Span`) in ``table`` (one
    setting); without ``use_predictor`` a configuration the table lacks has no latency (``None``)."""
    latency = {key: table.conv_latency_ms(s.shape, s.activation, s.residual_add) for key, s in spans.items()}
    source = {key: MEASURED for key, value in latency.items() if value is not None}
    missing = [key for key, value in latency.items() if value is None]
    if missing and use_predictor:
        predictor = predictor_for(table.frame)
        rows = pd.DataFrame([_span_row(spans[key], table.setting.get("batch_size") or 1) for key in missing])
        predicted, extrapolated = predictor.predict(rows)
        for key, value, outside in zip(missing, predicted, extrapolated):
            latency[key], source[key] = float(value), EXTRAPOLATED if outside else PREDICTED
    return latency, source


def predictor_for(frame: pd.DataFrame):
    """The latency predictor of a one-setting table (few own rows: other tables' priors help), fitted
    once per process for the same rows (a pipeline looks the same table up for every network, and
    its report shows the same cross-validation)."""
    key = int(pd.util.hash_pandas_object(frame.astype(str), index=False).sum())
    if key not in _PREDICTORS:
        from .predictor import LatencyPredictor
        from .transfer import priors_for

        _PREDICTORS.clear()  # one table at a time is what a process uses
        _PREDICTORS[key] = LatencyPredictor(frame, priors=priors_for(frame))
    return _PREDICTORS[key]


_PREDICTORS: dict[int, object] = {}


def _span_row(span: Span, batch_size: int) -> dict:
    return {**Candidate(span.shape, span.activation, span.residual_add).lut_fields(), "batch_size": batch_size}
