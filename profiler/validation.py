"""Whole networks against the sum of their LUT rows: each network of a bundle timed (or taken
from the session's passes) and compared with its prediction, written to ``<lut>.validation.json``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..contracts.files import write_json_atomic
from ..contracts.setting import SETTING_COLUMNS
from ..errors import DepthshrinkError
from ..lut.lookup import span_latencies
from ..lut.table import LatencyTable
from .base import Backend
from .bundle import Bundle, Entry
from .recording import NetworkTimes, NetworkTiming, Settings, setting_of, timings, workload_of


def predict_network_ms(table: LatencyTable, bundle: Bundle, segments: list[list[int]]) -> tuple[float, int]:
    """(fixed part + Σ LUT(segment) + one call overhead, how many segments were predicted):
    the LUT's estimate of a whole network; configurations it lacks come from the predictor."""
    image = tuple(next(e for e in bundle.entries if e.op == "fixed").inputs["input"][1:])
    fixed = table.fixed_latency_ms(bundle.model_label, image)
    if fixed is None:
        raise DepthshrinkError(f"the LUT has no fixed-part row for {bundle.model_label} at {'x'.join(map(str, image))}")
    spans = {(start, end): bundle.space.spans[(start, end)] for start, end in segments}
    latencies, sources = span_latencies(table, spans)
    predicted = sum(source != "measured" for source in sources.values())
    return fixed + table.call_overhead_ms + sum(latencies[(start, end)] for start, end in segments), predicted


def validate(bundle: Bundle, backend: Backend, lut_path: str | Path, settings: Settings,
             modules: Callable[[Entry], object] | None = None,
             timed: dict[str, NetworkTiming] | None = None) -> list[dict]:
    """Compare each whole network of the bundle with the sum of its LUT entries. Networks timed
    among the rows (``timed``, see :func:`profile`) are not timed again; the others are, now."""
    table = LatencyTable.read(lut_path).select(**setting_of(backend, settings))
    among_rows = set(timed or {})
    now = NetworkTimes(backend, lambda entry: workload_of(bundle, entry, modules))
    for entry, timing, _ in timings([e for e in bundle.of_op("network") if e.key not in among_rows],
                                     now.time_one, settings):
        now.keep(entry, timing)
    timed = {**(timed or {}), **now.result()}
    results = []
    for entry in bundle.of_op("network"):
        timing, passes = timed[entry.key].timing, timed[entry.key].pass_ms
        predicted, predicted_segments = predict_network_ms(table, bundle, entry.fields["segments"])
        results.append({"model": bundle.model_label, "input": entry.inputs["input"][1:],
                        "network": entry.key.removeprefix("network_"),
                        "segments": len(entry.fields["segments"]), "predicted_segments": predicted_segments,
                        "measured_ms": timing.latency_ms,
                        "measured_p10_ms": timing.latency_p10_ms, "measured_p90_ms": timing.latency_p90_ms,
                        "fastest_pass_ms": min(passes), "slowest_pass_ms": max(passes),
                        "timed_among_rows": entry.key in among_rows, "predicted_ms": predicted,
                        "error_pct": 100 * (predicted - timing.latency_ms) / timing.latency_ms,
                        **{k: v for k, v in table.setting.items()}})
    out = Path(lut_path).with_suffix(".validation.json")
    try:
        previous = json.loads(out.read_text()) if out.exists() else []
    except json.JSONDecodeError:
        previous = []  # an unreadable earlier report is replaced
    def same(old: dict, new: dict) -> bool:  # one network at one input size (when recorded), one setting
        return all(old.get(k) == new.get(k) for k in ("model", "network", *SETTING_COLUMNS)) and \
            old.get("input") in (None, new["input"])

    keep = [r for r in previous if not any(same(r, new) for new in results)]
    write_json_atomic(out, keep + results)
    return results
