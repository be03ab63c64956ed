"""Masks files (format ``depthshrink.masks/1``): which activations stay, and the merge segments.

A file written by hand needs only ``format``, ``kept_activations`` and ``segments``; every
other removable activation is then removed. Checked against a chain space before any use.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from ..errors import DepthshrinkError
from .space import ChainSpace, read_json, write_json_atomic

MASKS_FORMAT = "depthshrink.masks/1"
# keys of ``model`` that must agree between a masks file and the chain space it is used with
MODEL_KEYS = ("name", "class", "width_mult", "in_channels", "height", "width", "resolution")


@dataclass
class Masks:
    kept_activations: list[int]
    segments: list[tuple[int, int]]
    removed_activations: list[int] | None = None
    model: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # every other field of the file, kept as is

    @classmethod
    def from_dict(cls, data: dict) -> Masks:
        if data.get("format") != MASKS_FORMAT:
            raise DepthshrinkError(f"not a masks file: format is {data.get('format')!r}, "
                                   f"expected {MASKS_FORMAT!r}")
        for key in ("kept_activations", "segments"):
            if key not in data:
                raise DepthshrinkError(f"masks file has no '{key}'")
        try:
            segments = [(_position(s), _position(e)) for s, e in data["segments"]]
            kept = sorted(_position(p) for p in data["kept_activations"])
            removed = data.get("removed_activations")
            removed = None if removed is None else sorted(_position(p) for p in removed)
        except (TypeError, ValueError) as exc:
            raise DepthshrinkError(f"masks file: segments must be [start, end] pairs and "
                                   f"activations integers ({exc})") from None
        model = data.get("model") or {}
        if not isinstance(model, dict):
            raise DepthshrinkError(f"masks file: its model must be an object, not {type(model).__name__}")
        known = {"format", "kept_activations", "removed_activations", "segments", "model"}
        return cls(kept, segments, removed, dict(model),
                   {k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict:
        return {"format": MASKS_FORMAT, "model": self.model, **self.extra,
                "kept_activations": self.kept_activations,
                "removed_activations": self.removed_activations,
                "segments": [list(s) for s in self.segments]}

    def to_json(self, path: str | os.PathLike) -> None:
        write_json_atomic(path, self.to_dict())

    def resolve(self, space: ChainSpace) -> Masks:
        """Check against ``space`` and fill in ``removed_activations``; raises on any mismatch."""
        _check_model(self.model, space.model)
        _check_segments(self.segments, space)
        with_activation = {s.position for s in space.sites if s.activation is not None}
        kept = set(self.kept_activations)
        removed = with_activation - kept if self.removed_activations is None else set(self.removed_activations)
        for position in sorted(kept | removed):
            if position not in with_activation:
                raise DepthshrinkError(f"masks name site {position}, which has no activation in this "
                                       f"space (sites with one: {sorted(with_activation)})")
        fixed = {s.position for s in space.sites if s.activation is not None and not s.removable}
        if removed & fixed:
            raise DepthshrinkError(f"sites {sorted(removed & fixed)} are not removable in this space")
        if kept & removed:
            raise DepthshrinkError(f"sites {sorted(kept & removed)} are both kept and removed")
        if kept | removed != with_activation:
            raise DepthshrinkError(f"masks say nothing of sites {sorted(with_activation - kept - removed)}")
        for start, end in self.segments:
            inside = sorted(p for p in kept if start < p < end)
            if inside:
                raise DepthshrinkError(f"segment [{start}, {end}) keeps the activation at site(s) "
                                       f"{inside}: a merged segment must be linear")
        return Masks(sorted(kept), list(self.segments), sorted(removed), dict(self.model), dict(self.extra))


def _check_model(masks_model: dict, space_model: dict) -> None:
    def value(model: dict, key: str):  # no width given is the builder's default, 1x (as model_label reads it)
        return 1.0 if key == "width_mult" and model[key] is None else model[key]

    for key in MODEL_KEYS:
        if key in masks_model and key in space_model and value(masks_model, key) != value(space_model, key):
            raise DepthshrinkError(f"masks are for another model: {key} is {masks_model[key]!r} in the "
                                   f"masks but {space_model[key]!r} in the space")


def _check_segments(segments: list[tuple[int, int]], space: ChainSpace) -> None:
    expected = 0
    for start, end in segments:
        if start != expected or end <= start:
            raise DepthshrinkError(f"segments must cover layers 0..{space.num_layers - 1} in order: "
                                   f"[{start}, {end}) follows a segment ending at {expected}")
        expected = end
    if expected != space.num_layers:
        raise DepthshrinkError(f"segments cover {expected} layers but the space has {space.num_layers}: "
                               "are the masks for another model or resolution?")
    for start, end in segments:
        problem = space.span_problem(start, end)
        if problem:
            raise DepthshrinkError(problem)


def load_masks(path: str | os.PathLike) -> Masks:
    """Read a masks file (it is checked against a space when applied)."""
    return Masks.from_dict(read_json(path, "masks"))


def per_block_masks(space: ChainSpace) -> Masks:
    """Every activation removed, one segment per block of the original network.

    Blocks end where the original network has no activation (after a linear projection, as in
    inverted-residual networks); this is DepthShrinker's fully linearised variant. A block that
    holds a merge barrier (MobileNetV3's squeeze-excitation gate) is cut there: from each start,
    the longest span that can merge.
    """
    cuts = [s.position for s in space.sites if s.activation is None] + [space.num_layers]
    segments, start = [], 0
    for cut in cuts:
        while start < cut:
            end = next(e for e in range(cut, start, -1) if e == start + 1 or space.span_problem(start, e) is None)
            segments.append((start, end))
            start = end
    return Masks([], segments, model=dict(space.model))


def _position(value) -> int:
    """A layer position as JSON holds it: an integer (12.9 was read as 12, "12" as 12)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value):
        raise ValueError(f"{value!r} is not an integer")
    return int(value)
