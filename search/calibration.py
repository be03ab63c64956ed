"""The table's systematic error, corrected before the search.

A LUT predicts a network as its fixed part + one call overhead + the sum of its spans' rows. Timed
alone, rows miss what a network does between them (caches warm or cold, layout reorders, launch
gaps), so the sum is off by a few to 30% (the validation of ``profile-device --validate``). Two
whole networks are measured with every table (``original``: every layer its own conv;
``merged_blocks``: every block one conv), and they fit the correction exactly:

    measured = scale × (sum of the chain's rows) + fixed part + overhead + offset_ms

``scale`` corrects a bias proportional to the work of the rows, ``offset_ms`` what a network pays
once. Scaling every span by the same positive factor keeps the search exact. The correction is
checked on networks it was not fitted on by ``search --verify`` and ``bench/kept_budgets.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..contracts.setting import SETTING_COLUMNS
from ..lut.merging import validation_entries
from .problem import SearchProblem

FITTED_ON = ("original", "merged_blocks")
SCALE_RANGE = (0.5, 2.0)  # outside it the two networks disagree too much to trust a correction


@dataclass(frozen=True)
class Calibration:
    scale: float = 1.0
    offset_ms: float = 0.0
    fitted_on: tuple[str, ...] = ()
    source: str = ""
    note: str = ""

    @property
    def applied(self) -> bool:
        return bool(self.fitted_on)

    def to_dict(self) -> dict:
        return {**asdict(self), "fitted_on": list(self.fitted_on),
                "model": "measured = scale * sum(chain rows) + fixed + overhead + offset_ms"}


def fit_calibration(validation: list[dict], outside_ms: float, source: str = "") -> Calibration:
    """The correction from a table's validation entries of one network and setting (``outside_ms``:
    that table's fixed part + call overhead, which ``predicted_ms`` includes)."""
    by_name: dict = {}
    for entry in validation:  # several tables: the first one's entry, as the first one's rows win
        by_name.setdefault(entry.get("network"), entry)
    if not all(name in by_name for name in FITTED_ON):
        return Calibration(note="no validation of the original and the merged-blocks network: not corrected "
                                "(profile with --validate)")
    (m_o, r_o), (m_m, r_m) = [(float(by_name[n]["measured_ms"]), float(by_name[n]["predicted_ms"]) - outside_ms)
                              for n in FITTED_ON]
    if abs(r_o - r_m) < 1e-9:
        return Calibration(note="the validation networks have the same predicted chain: not corrected")
    scale = (m_o - m_m) / (r_o - r_m)
    if not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]:
        return Calibration(note=f"the validation networks disagree (scale {scale:.2f} outside "
                                f"{SCALE_RANGE[0]}-{SCALE_RANGE[1]}): not corrected")
    return Calibration(scale, m_o - outside_ms - scale * r_o, FITTED_ON, source)


def read_validation(lut_path: str | Path, model: str, image: list[int], setting: dict) -> list[dict]:
    """The entries of ``<lut>.validation.json`` for one network at one input size in one setting."""
    entries = validation_entries(lut_path)

    def ours(entry: dict) -> bool:
        same_setting = all(str(entry.get(k)) == str(setting[k]) for k in SETTING_COLUMNS if setting.get(k) is not None)
        return entry.get("model") == model and entry.get("input") in (None, list(image)) and same_setting

    return [entry for entry in entries if ours(entry)]


def calibrated(problem: SearchProblem, calibration: Calibration) -> SearchProblem:
    """The problem with every span latency scaled and the offset paid once per network."""
    if not calibration.applied:
        return problem
    spans = {key: calibration.scale * value for key, value in problem.span_ms.items()}
    return replace(problem, span_ms=spans, overhead_ms=problem.overhead_ms + calibration.offset_ms)
