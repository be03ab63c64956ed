"""The chain space: layers, activation sites, residual blocks and every legal merge span.

Pure data (no torch): the search, the profiler and outside checks read it from
``space.json`` (format ``depthshrink.space/1``, see the design brief).

Positions: layers are 0..L-1 in execution order; site ``p`` (1..L-1) sits between layer
``p-1`` and layer ``p``. A span ``[start, end)`` merges layers ``start..end-1`` into one conv.

Example::

    >>> space = ChainSpace.from_json("space.json")
    >>> span = space.span(1, 4)          # the merged conv of layers 1, 2, 3
    >>> span.kernel_size, span.stride
    (3, 2)
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from ..contracts.files import read_json, write_json_atomic
from ..errors import DepthshrinkError

SPACE_FORMAT = "depthshrink.space/1"
STRIDED_MERGE_MODES = ("pointwise", "any")


@dataclass(frozen=True)
class ConvShape:
    """What the latency of one convolution depends on (input spatial size included)."""

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    groups: int
    height: int
    width: int
    padding: int = 0

    @property
    def is_depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.in_channels == self.out_channels


def whole_number(value, least: int = 1) -> bool:
    """Whether ``value``, as JSON gave it, is an integer (not a bool) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _conv_shape(layer: dict) -> ConvShape:
    """A layer's shape from a space file: every field given, whole, positive (padding: at least 0)."""
    fields = list(ConvShape.__dataclass_fields__)
    if any(name not in layer for name in fields):
        raise KeyError(next(name for name in fields if name not in layer))
    bad = [name for name in fields if not whole_number(layer[name], 0 if name == "padding" else 1)]
    if bad:
        raise TypeError(f"layer {layer.get('index')}: {', '.join(bad)} must be whole numbers")
    return ConvShape(**{name: layer[name] for name in fields})


@dataclass(frozen=True)
class Layer:
    index: int
    module: str
    shape: ConvShape
    batchnorm: str | None = None

    def to_dict(self) -> dict:
        return {"index": self.index, "module": self.module, **asdict(self.shape),
                "batchnorm": self.batchnorm}


@dataclass(frozen=True)
class Site:
    """The place between layer ``position-1`` and layer ``position``."""

    position: int
    activation: str | None
    removable: bool
    barrier: str | None = None  # why no span may cross this site, or None


@dataclass(frozen=True)
class ResidualBlock:
    """Layers ``[start, end)`` whose output is added to the input of layer ``start``."""

    start: int
    end: int


@dataclass(frozen=True)
class Span:
    """One legal merge: layers ``start..end-1`` as one conv.

    ``residual``: a whole residual block is folded in. ``residual_add``: a block ends at ``end``
    but starts before ``start``, so its add still runs after this conv. ``activation``: what the
    original network applies after layer ``end-1`` (timed with the conv; ``None`` for none).
    """

    start: int
    end: int
    shape: ConvShape
    residual: bool
    residual_add: bool = False
    activation: str | None = None

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, **asdict(self.shape), "residual": self.residual,
                "residual_add": self.residual_add, "activation": self.activation}


@dataclass
class ChainSpace:
    """The searchable chain of one network at one input size."""

    model: dict
    layers: list[Layer]
    sites: list[Site]
    residual_blocks: list[ResidualBlock] = field(default_factory=list)
    fixed_modules: list[str] = field(default_factory=list)
    strided_merge: str = "pointwise"
    output_activation: str | None = None  # applied after the last layer, inside the chain

    def __post_init__(self) -> None:
        if self.strided_merge not in STRIDED_MERGE_MODES:
            raise DepthshrinkError(f"strided_merge must be one of {STRIDED_MERGE_MODES}, "
                                   f"got {self.strided_merge!r}")
        self._spans: dict[tuple[int, int], Span] | None = None

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def site(self, position: int) -> Site:
        if not 1 <= position < self.num_layers:
            raise DepthshrinkError(f"site {position} does not exist: sites are 1..{self.num_layers - 1}")
        return self.sites[position - 1]

    # -- span legality -------------------------------------------------------------------------
    def span_problem(self, start: int, end: int) -> str | None:
        """Why ``[start, end)`` cannot be merged into one conv, or ``None`` when it can."""
        if not 0 <= start < end <= self.num_layers:
            return f"span [{start}, {end}) is outside layers 0..{self.num_layers - 1}"
        for p in range(start + 1, end):
            reason = self.sites[p - 1].barrier
            if reason:
                return f"span [{start}, {end}) crosses a barrier at site {p}: {reason}"
        for block in self.residual_blocks:
            overlaps = block.start < end and start < block.end
            nested = (start <= block.start and block.end <= end) or \
                     (block.start <= start and end <= block.end)
            if overlaps and not nested:
                return (f"span [{start}, {end}) cuts the residual block [{block.start}, {block.end}): "
                        "a span must stay inside one residual block or cover whole blocks")
        if self.strided_merge == "pointwise":
            for i in range(start, end - 1):
                if self.layers[i].shape.stride > 1:
                    for j in range(i + 1, end):
                        if self.layers[j].shape.kernel_size > 1:
                            return (f"span [{start}, {end}): the {self.layers[j].shape.kernel_size}x"
                                    f"{self.layers[j].shape.kernel_size} conv at layer {j} follows the "
                                    f"stride-{self.layers[i].shape.stride} conv at layer {i} "
                                    "(strided_merge='pointwise' allows only 1x1 convs after a stride)")
        return None

    def merged_shape(self, start: int, end: int) -> ConvShape:
        """Shape of the single conv that ``[start, end)`` merges into (legality not checked)."""
        first = self.layers[start].shape
        if end - start == 1:
            return first
        kernel, stride, padding = first.kernel_size, first.stride, first.padding
        for layer in self.layers[start + 1:end]:
            kernel += (layer.shape.kernel_size - 1) * stride
            padding += layer.shape.padding * stride
            stride *= layer.shape.stride
        last = self.layers[end - 1].shape
        depthwise = all(layer.shape.is_depthwise for layer in self.layers[start:end])
        return ConvShape(first.in_channels, last.out_channels, kernel, stride,
                         first.in_channels if depthwise else 1, first.height, first.width, padding)

    def folds_residual(self, start: int, end: int) -> bool:
        return any(start <= b.start and b.end <= end for b in self.residual_blocks)

    def adds_residual_after(self, start: int, end: int) -> bool:
        return any(b.end == end and b.start < start for b in self.residual_blocks)

    def activation_after(self, end: int) -> str | None:
        return self.output_activation if end == self.num_layers else self.sites[end - 1].activation

    @property
    def spans(self) -> dict[tuple[int, int], Span]:
        """Every legal span (single layers included), keyed by ``(start, end)``."""
        if self._spans is None:
            self._spans = {
                (s, e): Span(s, e, self.merged_shape(s, e), self.folds_residual(s, e),
                             self.adds_residual_after(s, e), self.activation_after(e))
                for s in range(self.num_layers) for e in range(s + 1, self.num_layers + 1)
                if self.span_problem(s, e) is None
            }
        return self._spans

    def span(self, start: int, end: int) -> Span:
        problem = self.span_problem(start, end)
        if problem:
            raise DepthshrinkError(problem)
        return self.spans[(start, end)]

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": SPACE_FORMAT,
            "model": self.model,
            "strided_merge": self.strided_merge,
            "layers": [layer.to_dict() for layer in self.layers],
            "sites": [asdict(site) for site in self.sites],
            "residual_blocks": [[b.start, b.end] for b in self.residual_blocks],
            "spans": [span.to_dict() for span in self.spans.values()],
            "fixed_modules": self.fixed_modules,
            "output_activation": self.output_activation,
        }

    def to_json(self, path: str | os.PathLike) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> ChainSpace:
        if data.get("format") != SPACE_FORMAT:
            raise DepthshrinkError(f"not a chain space: format is {data.get('format')!r}, "
                                   f"expected {SPACE_FORMAT!r}")
        model = data["model"]
        if not isinstance(model, dict) or not all(whole_number(model.get(k), 1) for k in ("in_channels", "height", "width")):
            raise TypeError("its model must be an object with whole in_channels, height and width")
        layers = [Layer(d["index"], d["module"], _conv_shape(d), d.get("batchnorm")) for d in data["layers"]]
        sites = [Site(d["position"], d["activation"], d["removable"], d.get("barrier"))
                 for d in data["sites"]]
        blocks = [ResidualBlock(a, b) for a, b in data.get("residual_blocks", [])]
        return cls(model, layers, sites, blocks, data.get("fixed_modules", []),
                   data.get("strided_merge", "pointwise"), data.get("output_activation"))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> ChainSpace:
        try:
            return cls.from_dict(read_json(path, "chain space"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a hand-edited file lacking a field
            raise DepthshrinkError(f"{path} is not a complete chain space ({type(exc).__name__}: {exc}): "
                                   "trace it again with 'depthshrink space'") from None
