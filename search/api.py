"""The search as the CLI and the pipeline call it: tables and budgets in, masks out.

One table (with its budget) is a single-device search (:mod:`.run`); several are one network for
every device (:mod:`.multi`). Each table's systematic error is corrected first when its
validation is at hand (:mod:`.calibration`). No torch here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..contracts.files import write_atomic
from ..contracts.masks import Masks
from ..contracts.setting import SETTING_COLUMNS
from ..contracts.space import ChainSpace
from ..errors import DepthshrinkError
from ..lut.table import LatencyTable, image_of
from .budget import Budget
from .calibration import Calibration, calibrated, fit_calibration, read_validation
from .problem import SearchProblem, build_problem
from .run import SearchResult, solve_depthshrinker, solve_dp
from .units import ceil_ps

METHODS = ("dp", "depthshrinker")


@dataclass
class DeviceProblem:
    """One device's search problem (calibrated), its budget, and where its rows came from."""

    problem: SearchProblem
    budget: Budget
    calibration: Calibration
    luts: tuple[str, ...]

    @property
    def budget_ms(self) -> float:
        return self.budget.resolve_ms(self.problem.original_ms)


def device_problem(space: ChainSpace, luts: list[str | os.PathLike], budget: Budget,
                   importance: dict[tuple[int, int], float], filters: dict | None = None,
                   use_predictor: bool = True, calibrate: bool = True) -> DeviceProblem:
    """The problem of one device from its LUT file(s) (a device corpus among them trains the
    predictor), corrected by the table's validation unless ``calibrate`` is off."""
    from ..contracts.candidates import model_label

    table = LatencyTable.read(*luts).select(**(filters or {}))
    problem = build_problem(space, table, importance, use_predictor)
    calibration = Calibration(note="not corrected (--no-calibration)")
    if calibrate:
        label, image = model_label(space.model), list(image_of(space.model))
        entries = [e for lut in luts for e in read_validation(lut, label, image, table.setting)]
        calibration = fit_calibration(entries, problem.fixed_ms + problem.overhead_ms,
                                      ", ".join(str(Path(lut).with_suffix(".validation.json")) for lut in luts))
    return DeviceProblem(calibrated(problem, calibration), budget, calibration, tuple(map(str, luts)))


def solver(method: str):
    """The single-device solver of ``method``."""
    if method not in METHODS:
        raise DepthshrinkError(f"no search method {method!r}: use {' or '.join(METHODS)}")
    return solve_dp if method == "dp" else solve_depthshrinker


def single_masks(result: SearchResult, device: DeviceProblem) -> Masks:
    """The masks of a single-device search, with the table's correction stated."""
    masks = result.masks
    extra = dict(masks.extra)
    extra["latency_calibration"] = device.calibration.to_dict()
    return Masks(masks.kept_activations, masks.segments, masks.removed_activations, masks.model, extra)


def multi_masks(result, devices: list[DeviceProblem], space: ChainSpace) -> Masks:
    """The masks of a multi-device search: one network (kept activations, one split), with each
    device's budget and predicted latency (``devices``); the top-level setting fields are the
    first device's, as a single-device masks file has them."""
    rows = []
    for plan, device in zip(result.devices, devices):
        rows.append({**{k: device.problem.setting.get(k) for k in SETTING_COLUMNS}, "label": plan.label,
                     "latency_budget_ms": round(plan.budget_ms, 6), "predicted_latency_ms": round(plan.latency_ms, 6),
                     "original_latency_ms": round(plan.original_ms, 6), "fastest_latency_ms": round(plan.fastest_ms, 6),
                     "segment_latency_ms": [round(v, 6) for v in plan.span_latency_ms],
                     "latency_calibration": device.calibration.to_dict(),
                     "alone": None if plan.alone is None else {
                         "objective": plan.alone.objective, "kept_activations": list(plan.alone.kept_activations),
                         "latency_ms": [round(v, 6) for v in plan.alone.latency_ms]}})
    first = rows[0]
    extra = {**{k: first[k] for k in SETTING_COLUMNS}, "method": "dp",
             "latency_budget_ms": first["latency_budget_ms"], "predicted_latency_ms": first["predicted_latency_ms"],
             "original_latency_ms": first["original_latency_ms"], "objective": result.objective,
             "latency_discretisation": {"rounding": result.rounding}, "note": result.note,
             "segment_latency_ms": first["segment_latency_ms"], "devices": rows}
    return Masks(list(result.kept_activations), [tuple(s) for s in result.spans], list(result.removed_activations),
                 dict(space.model), extra)


def write_frontier(result: SearchResult, problem: SearchProblem, path: str | os.PathLike) -> None:
    """Every point of a single-device frontier (latency, importance, kept activations), as CSV."""
    outside = problem.fixed_ms + problem.overhead_ms
    rows = [{"latency_ms": ceil_ps(s.latency_ms + outside), "importance": s.importance,
             "kept_activations": " ".join(map(str, s.cuts)), "segments": len(s.spans),
             "chosen": int((s.cuts, s.spans) == (result.solution.cuts, result.solution.spans))}
            for s in result.frontier]
    write_atomic(path, lambda tmp: pd.DataFrame(rows).to_csv(tmp, index=False))


def write_surface(result, path: str | os.PathLike) -> None:
    """A multi-device search's non-dominated networks (one latency column a device), as CSV."""
    write_atomic(path, lambda tmp: pd.DataFrame(result.surface_rows()).to_csv(tmp, index=False))
