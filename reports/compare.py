"""Which network is more accurate, said only where the gap exceeds two standard errors.

Accuracies over several finetuning seeds carry a standard error (``accuracy_se``); a gap between
two networks is called only when it exceeds twice their combined standard error
(sqrt(se_a² + se_b²)); otherwise it is "within noise". A network of one seed has no standard
error, so no gap to it is called. Each DP network is compared with DepthShrinker's choice at the
same budget, and each baseline with the DP network nearest to it in measured latency.
"""

from __future__ import annotations

import math

import pandas as pd


def timed_together(results: pd.DataFrame) -> bool | None:
    """Whether a run's networks were all timed in the same passes (their ``timed_at``); None when
    its results do not record it (an older version)."""
    stamps = results["timed_at"] if "timed_at" in results.columns else pd.Series(dtype=object)
    if stamps.isna().all():
        return None
    return bool(stamps.notna().all() and stamps.nunique() == 1)


def verdict(a: pd.Series, b: pd.Series) -> str:
    """``a`` against ``b``, in one line."""
    gap = 100 * (a["accuracy"] - b["accuracy"])
    head = (f"{a['network']} {100 * a['accuracy']:.2f}% ({a['latency_ms']:.3f} ms) vs {b['network']} "
            f"{100 * b['accuracy']:.2f}% ({b['latency_ms']:.3f} ms): {gap:+.2f} points")
    if pd.isna(a.get("accuracy_se")) or pd.isna(b.get("accuracy_se")):
        return head + ", no standard error (one seed): not called"
    se = 100 * math.hypot(float(a["accuracy_se"]), float(b["accuracy_se"]))
    if abs(gap) > 2 * se:
        return head + f", beyond 2 SE ({2 * se:.2f}): {a['network'] if gap > 0 else b['network']} is more accurate"
    return head + f", within 2 SE ({2 * se:.2f}): not called"


def comparisons(rows: pd.DataFrame) -> list[str]:
    """The calls for one run's networks of one measurement setting."""
    rows = rows[rows["accuracy"].notna() & rows["latency_ms"].notna()]
    dp = rows[rows["kind"] == "dp"]
    lines = []
    for _, network in dp.iterrows():
        rival = rows[(rows["kind"] == "depthshrinker") & (rows["budget"] == network["budget"])]
        if not rival.empty:
            lines.append(verdict(network, rival.iloc[0]))
    for _, baseline in rows[rows["kind"].isin(["width", "pruned"])].iterrows():
        if dp.empty:
            break
        nearest = dp.iloc[(dp["latency_ms"] - baseline["latency_ms"]).abs().argsort().iloc[0]]
        lines.append(verdict(nearest, baseline))
    return lines
