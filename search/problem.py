"""What the search works on: span latencies from a LUT, importance scores, the fixed part.

No torch: a chain space, LUT CSVs and an importance CSV are enough.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import pandas as pd

from ..contracts.candidates import model_label
from ..contracts.space import ChainSpace
from ..errors import DepthshrinkError
from ..lut.lookup import span_latencies
from ..lut.table import LatencyTable, check_covers, image_of
from .units import PICOSECONDS_PER_MS, picoseconds

IMPORTANCE_COLUMNS = ["start", "end", "importance"]


@dataclass
class SearchProblem:
    space: ChainSpace
    span_ms: dict[tuple[int, int], float]
    fixed_ms: float                 # stem, head, classifier
    overhead_ms: float              # one runtime call per network
    importance: dict[tuple[int, int], float]
    setting: dict = field(default_factory=dict)  # device, backend, precision, batch_size, threads
    span_source: dict[tuple[int, int], str] = field(default_factory=dict)

    @property
    def cut_positions(self) -> list[int]:
        """Inner positions where a kept activation can end a linear segment."""
        return [s.position for s in self.space.sites if s.activation is not None]

    def __post_init__(self) -> None:
        fixed = [s.position for s in self.space.sites if s.activation is not None and not s.removable]
        self.importance = {(a, b): v for (a, b), v in self.importance.items()
                           if not any(a < p < b for p in fixed)}

    @property
    def original_ms(self) -> float:
        """The network as it is: every activation kept, every layer its own conv (its layers added as
        the search adds them, :mod:`.units`, so a budget of 1.0x fits it)."""
        layers = picoseconds({(p, p + 1): self.span_ms[(p, p + 1)] for p in range(self.space.num_layers)})
        return self.fixed_ms + self.overhead_ms + sum(layers.values()) / PICOSECONDS_PER_MS


def read_importance(path: str | os.PathLike, space: ChainSpace) -> dict[tuple[int, int], float]:
    """``(start, end) -> importance`` from an importance CSV, checked against ``space``."""
    if os.path.isdir(path):
        raise DepthshrinkError(f"{path} is a folder, not an importance file: name the .csv in it")
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DepthshrinkError(f"importance file not found: {path}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DepthshrinkError(f"{path} is not a readable CSV: {exc}") from None
    missing = [c for c in IMPORTANCE_COLUMNS if c not in frame.columns]
    if missing:
        raise DepthshrinkError(f"{path} is not an importance table: no column {', '.join(missing)}")
    if "model" in frame.columns:
        models = set(frame["model"].dropna()) - {model_label(space.model)}
        if models:
            raise DepthshrinkError(f"{path} scores {', '.join(sorted(models))}, but the space is "
                                   f"{model_label(space.model)}")
    for column in IMPORTANCE_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce")
        if not values.map(math.isfinite).all() or (column != "importance" and (values % 1 != 0).any()):
            raise DepthshrinkError(f"{path}: column {column} must hold finite numbers"
                                   + (" (integers)" if column != "importance" else ""))
        frame[column] = values
    cuts = {0, space.num_layers} | {s.position for s in space.sites if s.activation is not None}
    bad = [(int(s), int(e)) for s, e in zip(frame["start"], frame["end"])
           if not (0 <= s < e <= space.num_layers and s in cuts and e in cuts)]
    if bad:
        shown = ", ".join(f"[{s}, {e})" for s, e in bad[:5])
        raise DepthshrinkError(f"{path} scores {len(bad)} segment(s) that do not exist in this space "
                               f"({space.num_layers} layers; a segment runs between activations): {shown}")
    repeated = frame[frame.duplicated(["start", "end"], keep=False)]
    if not repeated.empty:
        pairs = sorted({(int(s), int(e)) for s, e in zip(repeated["start"], repeated["end"])})
        raise DepthshrinkError(f"{path} scores {len(pairs)} segment(s) more than once, e.g. [{pairs[0][0]}, "
                               f"{pairs[0][1]}): keep one importance table's rows")
    inner = cuts - {0, space.num_layers}
    free = [(int(s), int(e)) for s, e, v in zip(frame["start"], frame["end"], frame["importance"])
            if v != 0 and not any(s < p < e for p in inner)]
    if free:
        raise DepthshrinkError(f"{path} gives a nonzero score to {len(free)} segment(s) that remove no activation, "
                               f"e.g. [{free[0][0]}, {free[0][1]}): such a segment changes nothing and scores 0")
    return {(int(s), int(e)): float(v) for s, e, v in zip(frame["start"], frame["end"], frame["importance"])}


def build_problem(space: ChainSpace, table: LatencyTable, importance: dict[tuple[int, int], float],
                  use_predictor: bool = True) -> SearchProblem:
    """Look every legal span up in ``table`` (one setting, see :meth:`LatencyTable.select`); a
    configuration the table lacks is predicted (and marked so) when ``use_predictor``."""
    label = model_label(space.model)
    span_ms, source = span_latencies(table, space.spans, use_predictor)
    fixed_ms = table.fixed_latency_ms(label, image_of(space.model))
    if None in span_ms.values() or fixed_ms is None or space.layers[0].shape.height not in table.network_heights:
        check_covers(table, space, label)  # raises, naming what does not match
    return SearchProblem(space, span_ms, fixed_ms, table.call_overhead_ms, importance, dict(table.setting), source)
