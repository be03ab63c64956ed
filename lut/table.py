"""The latency lookup table: a CSV file, one row per measured configuration.

Rows are appended one at a time (:mod:`.writer`), so a crash or Ctrl-C loses at most the row being
measured; a torn last line is dropped with a warning when the file is next read. pandas reads the
file as is.

Example::

    >>> table = LatencyTable.read("lut.csv").select(device="cpu-xeon", backend="onnxruntime")
    >>> table.conv_latency_ms(shape, activation="relu6", residual_add=False)
    0.153
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..contracts.setting import SETTING_COLUMNS
from ..contracts.space import ChainSpace, ConvShape
from ..errors import DepthshrinkError

# what identifies a configuration: one row per key and table
KEY_COLUMNS = ["device", "backend", "precision", "batch_size", "threads", "op", "model", "in_channels",
               "out_channels", "kernel_size", "stride", "groups", "height", "width", "padding",
               "activation", "residual_add"]
COLUMNS = KEY_COLUMNS + [
    "latency_ms", "latency_p10_ms", "latency_p90_ms", "runs", "warmup_ms", "call_overhead_ms",
    "remeasured", "noisy", "source", "tool", "tool_version", "host", "measured_at", "cache_flush",
    "timing_method", "layout", "min_time_ms", "passes"]
# later additions: a LUT without them is still extended (left empty there). min_time_ms and passes
# are the timing protocol's time per row and passes (a row with remeasured = 1 was timed once more)
OPTIONAL = ["cache_flush", "timing_method", "layout", "min_time_ms", "passes"]
REQUIRED = ["device", "backend", "precision", "batch_size", "op", "in_channels", "out_channels",
            "kernel_size", "stride", "groups", "height", "width", "activation", "latency_ms"]
SHAPE_COLUMNS = ["in_channels", "out_channels", "kernel_size", "stride", "groups", "height", "width",
                 "padding"]
NONE = "none"  # the activation column for "no activation"
CORPUS = "corpus"  # the model column of conv rows from a device corpus: they train the predictor only


def is_corpus(frame: pd.DataFrame) -> pd.Series:
    """Which rows come from a device corpus (never looked up as a network's own measurements)."""
    if "model" not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame["model"].astype(str) == CORPUS


def own_conv(frame: pd.DataFrame) -> pd.DataFrame:
    """A table's own conv rows (a corpus's left out)."""
    return frame[(frame["op"] == "conv") & ~is_corpus(frame)]


def activation_names(values: pd.Series) -> pd.Series:
    """A LUT's activation cells with one spelling for "no activation": an empty or missing cell (a
    table written by another tool) is ``none``, as the lookup and the latency models both read it."""
    return values.fillna(NONE).astype(str).replace("", NONE)


def has_activation(values: pd.Series) -> pd.Series:
    """1.0 where an activation cell names an activation, else 0.0 (see :func:`activation_names`)."""
    return (activation_names(values) != NONE).astype(float)


def row_key(row: dict) -> tuple:
    """The identity of a row, with every value as its CSV text."""
    return tuple("" if row.get(c) is None or (isinstance(row.get(c), float) and pd.isna(row.get(c)))
                 else cell_text(row[c]) for c in KEY_COLUMNS)


def repeated_rows(frame: pd.DataFrame):
    """A mask of the rows whose configuration an earlier row holds (the first row of one wins)."""
    return pd.Series([row_key(r) for r in frame.to_dict("records")]).duplicated().to_numpy()


def cell_text(value) -> str:
    """A cell as the CSV writes it: 1 for True and for 1.0, so one value has one spelling."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_lut(path: str | os.PathLike) -> pd.DataFrame:
    """Every row of a LUT file, typed; a torn last line is ignored with a warning."""
    path = Path(path)
    if not path.exists():
        raise DepthshrinkError(f"LUT file not found: {path}")
    if not path.is_file():
        raise DepthshrinkError(f"{path} is a folder, not a LUT file: name a .csv in it")
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        warnings.warn(f"{path}: ignoring a torn last line (an interrupted write)", stacklevel=2)
        data = data[:data.rfind(b"\n") + 1]
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype={"activation": str, "model": str},
                            keep_default_na=False, na_values={c: [""] for c in COLUMNS if c not in
                                                              ("activation", "model")})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DepthshrinkError(f"{path} is not a readable CSV: {exc}") from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DepthshrinkError(f"{path} is not a depthshrink LUT: no column {', '.join(missing)}")
    for column in COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.NA
    conv = frame[frame["op"] == "conv"]
    for rows, column in [(conv, c) for c in SHAPE_COLUMNS[:-1]] + [(frame, "batch_size")]:
        values = pd.to_numeric(rows[column], errors="coerce")  # 31.5 channels were read as 31
        if values.isna().any() or (values <= 0).any() or (values % 1 != 0).any():
            where = "every conv row" if column != "batch_size" else "every row"
            raise DepthshrinkError(f"{path}: column {column} must be a positive integer in {where}")
    latency = pd.to_numeric(frame["latency_ms"], errors="coerce")
    if latency.isna().any() or (latency <= 0).any() or (latency == float("inf")).any():
        raise DepthshrinkError(f"{path}: latency_ms must be a positive, finite number in every row")
    return frame


class NoRowsOfSetting(DepthshrinkError):
    """A table has no rows of the setting asked for (a new device, say)."""


@dataclass
class LatencyTable:
    """The rows of one device/backend/precision/batch/threads setting, for lookups."""

    frame: pd.DataFrame
    setting: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the networks' own conv rows; a corpus's only train the predictor
        conv = self._own_conv = own_conv(self.frame)
        padding = pd.to_numeric(conv["padding"], errors="coerce")
        # a table without padding: assume the usual "same" padding of odd kernels
        padding = padding.fillna((conv["kernel_size"].astype(int) - 1) // 2)
        columns = [conv[c].astype(int) if c != "padding" else padding.astype(int) for c in SHAPE_COLUMNS]
        keys = zip(*columns, activation_names(conv["activation"]),
                   pd.to_numeric(conv["residual_add"], errors="coerce").fillna(0).astype(int))
        self._conv_index: dict = {}
        for key, latency in zip(keys, conv["latency_ms"].astype(float)):
            self._conv_index.setdefault(key, latency)  # the first row of a configuration wins, as in merge

    @classmethod
    def read(cls, *paths: str | os.PathLike) -> LatencyTable:
        """The rows of several LUT files; of a configuration in more than one, the first file's row (as the
        lookups and ``lut merge`` take it: ``--lut A.csv A.csv`` trained the predictor on every row twice)."""
        frame = pd.concat([read_lut(p) for p in paths], ignore_index=True)
        return cls(frame[~repeated_rows(frame)].reset_index(drop=True))

    def select(self, **wanted) -> LatencyTable:
        """Keep one setting; a filter left ``None`` must have a single value in the table."""
        frame = self.frame
        setting = {}
        for column in SETTING_COLUMNS:  # every filter given first: --backend alone may pick one device
            value = wanted.get(column)
            if value is not None:
                present = sorted({cell_text(v) for v in frame[column].dropna()})
                wanted_text = _normalise(cell_text(value))
                frame = frame[frame[column].map(lambda v, w=wanted_text: not pd.isna(v) and _normalise(cell_text(v)) == w)]
                if frame.empty:
                    raise NoRowsOfSetting(f"the LUT has no rows for {column}={value} "
                                           f"(it has: {', '.join(present) or 'none'})")
        for column in SETTING_COLUMNS:
            kept = sorted({cell_text(v) for v in frame[column].dropna()})  # as the table spells it (its validation's)
            if len(kept) > 1:
                raise DepthshrinkError(f"the LUT mixes {column} values {', '.join(kept)}: "
                                       f"choose one with --{column.replace('_', '-')}")
            chosen = kept[0] if kept else None
            setting[column] = int(chosen) if column in ("batch_size", "threads") and chosen is not None else chosen
        methods = sorted({str(v) for v in frame["timing_method"].dropna()} - {""})
        flushes = sorted({cell_text(v) for v in own_conv(frame)["cache_flush"].dropna()} - {""})
        for what, values in (("timed in several ways", methods), ("timed with and without a cache flush", flushes)):
            if len(values) > 1:  # two tables merged, say
                raise DepthshrinkError(f"the LUT's rows of this setting were {what} ({', '.join(values)}): a table "
                                       "must be timed one way; profile the others into another LUT")
        setting.update({"timing_method": methods[0]} if methods else {})  # how search --verify times networks
        return LatencyTable(frame, setting)

    def conv_latency_ms(self, shape: ConvShape, activation: str | None, residual_add: bool) -> float | None:
        """The measured latency of one conv configuration, or ``None`` when absent."""
        key = (*(getattr(shape, c) for c in SHAPE_COLUMNS), activation or NONE, int(residual_add))
        return self._conv_index.get(key)

    @property
    def network_heights(self) -> list[int]:
        """The feature-map sizes of the networks' own conv rows (a corpus's left out), largest first."""
        return sorted({int(h) for h in self._own_conv["height"].dropna()}, reverse=True)

    def fixed_latency_ms(self, model: str, image: tuple[int, int, int] | None = None) -> float | None:
        """The fixed part of network ``model`` for input ``image`` (channels, height, width): one
        network at two resolutions has two fixed rows (``None``: the model's only row)."""
        rows = self.frame[(self.frame["op"] == "fixed") & (self.frame["model"] == model)]
        if image is not None:
            for column, value in zip(("in_channels", "height", "width"), image):
                rows = rows[pd.to_numeric(rows[column], errors="coerce") == value]
        elif len(rows) > 1:
            raise DepthshrinkError(f"the LUT has fixed-part rows of {model} for several input sizes: "
                                   "name the input size")
        return None if rows.empty else float(rows["latency_ms"].iloc[0])

    @property
    def call_overhead_ms(self) -> float:
        values = pd.to_numeric(self.frame["call_overhead_ms"], errors="coerce").dropna()
        return float(values.median()) if not values.empty else 0.0


def _normalise(text: str) -> str:
    return text.strip().lower()


def image_of(model_info: dict) -> tuple[int, int, int]:
    """(channels, height, width) of a network's input, from a chain space's ``model``."""
    return int(model_info["in_channels"]), int(model_info["height"]), int(model_info["width"])


def missing_configurations(table: LatencyTable, space: ChainSpace) -> list[str]:
    """Keys of the span configurations of ``space`` that ``table`` has no row for."""
    from ..contracts.candidates import span_candidates

    return sorted({c.key for c in span_candidates(space).values()
                   if table.conv_latency_ms(c.shape, c.activation, c.residual_add) is None})


def check_covers(table: LatencyTable, space: ChainSpace, model: str) -> None:
    """Raise, naming the mismatch, unless ``table`` has every configuration of ``space``."""
    missing = missing_configurations(table, space)
    fixed = table.fixed_latency_ms(model, image_of(space.model))
    if not missing and fixed is not None:
        return
    first = space.layers[0].shape
    sizes = table.network_heights
    where = ", ".join(f"{k}={v}" for k, v in table.setting.items() if v is not None)
    if missing and first.height not in sizes:
        raise DepthshrinkError(f"the LUT ({where}) was not measured for this input size: the chain starts "
                               f"at {first.height}x{first.width}, the LUT has feature maps of "
                               f"{', '.join(map(str, sizes[:6])) or 'none'}; profile this resolution")
    if missing:
        raise DepthshrinkError(f"the LUT ({where}) lacks {len(missing)} of this space's configurations, "
                               f"e.g. {', '.join(missing[:3])}; run profile-device for {model}")
    fixed_rows = table.frame[table.frame["op"] == "fixed"]
    models = sorted({f"{m} at {c:g}x{h:g}x{w:g}" for m, c, h, w in
                     fixed_rows[["model", "in_channels", "height", "width"]].itertuples(index=False)})
    channels, height, width = image_of(space.model)
    raise DepthshrinkError(f"the LUT ({where}) has no fixed-part row for {model} at {channels}x{height}x{width} "
                           f"(it has: {', '.join(models) or 'none'})")
