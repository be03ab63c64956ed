"""Adaptive profiling: measure a spread-out seed sample, fit, then measure next the
configurations a random forest is least sure about (the spread of its trees), until held-out
accuracy reaches the target or the measuring budget is spent (nn-Meter's adaptive sampling)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._imports import lazy_import
from .features import conv_features


def seed_order(candidates: pd.DataFrame, count: int) -> list[int]:
    """``count`` row positions (fewer when there are fewer rows) spread evenly over log FLOPs, with
    a row of every kernel type while ``count`` allows (the count is a measuring budget)."""
    x = conv_features(candidates)
    order = np.argsort(x["log_flops"].to_numpy(), kind="stable")
    spread = [int(order[round(i)]) for i in np.linspace(0, len(order) - 1, min(count, len(order)))]
    types = [np.flatnonzero(x[kind].to_numpy() > 0) for kind in ("pointwise", "dense_kxk", "depthwise")]

    def missed(sample: set[int]) -> list[int]:  # a middle row of each kernel type ``sample`` lacks
        return [int(rows[len(rows) // 2]) for rows in types if rows.size and not sample & set(rows.tolist())]

    kinds = missed(set(spread))  # one row of each kernel type the spread sample misses, kept whatever the count
    while True:
        kinds = kinds[:count]
        room = max(count - len(kinds), 0)
        kept = [spread[round(i)] for i in np.linspace(0, len(spread) - 1, room)] if room < len(spread) else spread
        lost = missed(set(kept) | set(kinds))  # thinned to make room, it may have lost another type's only row
        if not lost or sum(rows.size > 0 for rows in types) - len(lost) >= count:  # as many types as rows
            return sorted(set(kept) | set(kinds))
        kinds += lost


def most_uncertain(measured: pd.DataFrame, candidates: pd.DataFrame, count: int) -> list[int]:
    """Positions of the ``count`` candidates whose log latency the forest's trees disagree on most."""
    ensemble = lazy_import("sklearn.ensemble")
    forest = ensemble.RandomForestRegressor(n_estimators=200, max_features=0.6, random_state=0, n_jobs=1)
    forest.fit(conv_features(measured), np.log(measured["latency_ms"].astype(float)))
    x = conv_features(candidates)
    spread = np.std([tree.predict(x.to_numpy()) for tree in forest.estimators_], axis=0)
    return [int(i) for i in np.argsort(-spread, kind="stable")[:count]]



def simulated_picks(table: pd.DataFrame, count: int, seed: int = 20, batch: int = 5) -> list[int]:
    """The positions of the ``count`` conv rows of a fully measured ``table`` that adaptive
    profiling would measure: the seed sample (``seed`` rows), then the most uncertain ``batch``
    at a time, each batch chosen after "measuring" the ones before (their rows are looked up)."""
    picked = seed_order(table, min(seed, count))
    while len(picked) < min(count, len(table)):
        rest = [i for i in range(len(table)) if i not in set(picked)]
        more = most_uncertain(table.iloc[picked], table.iloc[rest], min(batch, count - len(picked)))
        picked += [rest[i] for i in more]
    return picked
