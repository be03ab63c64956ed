"""What the profiler times: every distinct conv configuration of a chain space, and the fixed part.

A configuration is one convolution with bias (the merged shape of a span, single layers
included), then the residual add that still follows it, if any, then the activation the
original network has there. Spans of equal configuration are timed once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .space import ChainSpace, ConvShape


@dataclass(frozen=True)
class Candidate:
    shape: ConvShape
    activation: str | None
    residual_add: bool

    @property
    def key(self) -> str:
        """A file-safe name, unique per configuration."""
        s = self.shape
        return (f"conv_c{s.in_channels}-{s.out_channels}_k{s.kernel_size}_s{s.stride}_g{s.groups}"
                f"_p{s.padding}_{s.height}x{s.width}_{self.activation or 'none'}"
                f"{'_add' if self.residual_add else ''}")

    @property
    def output_size(self) -> tuple[int, int]:
        s = self.shape
        return ((s.height + 2 * s.padding - s.kernel_size) // s.stride + 1,
                (s.width + 2 * s.padding - s.kernel_size) // s.stride + 1)

    def input_shapes(self, batch_size: int) -> dict[str, list[int]]:
        s = self.shape
        shapes = {"input": [batch_size, s.in_channels, s.height, s.width]}
        if self.residual_add:
            shapes["skip"] = [batch_size, s.out_channels, *self.output_size]
        return shapes

    def lut_fields(self) -> dict:
        return {"op": "conv", **asdict(self.shape), "activation": self.activation or "none",
                "residual_add": int(self.residual_add)}

    @classmethod
    def from_fields(cls, fields: dict) -> Candidate:
        shape = ConvShape(**{k: int(fields[k]) for k in ConvShape.__dataclass_fields__})
        activation = fields["activation"]
        return cls(shape, None if activation in (None, "none") else activation, bool(int(fields["residual_add"])))


def span_candidates(space: ChainSpace) -> dict[tuple[int, int], Candidate]:
    """The configuration each legal span is timed as."""
    return {key: Candidate(span.shape, span.activation, span.residual_add) for key, span in space.spans.items()}


def distinct_candidates(space: ChainSpace) -> list[Candidate]:
    """Every distinct configuration, in chain order (single layers first)."""
    by_span = span_candidates(space)
    ordered = sorted(by_span, key=lambda se: (se[1] - se[0], se[0]))
    return list(dict.fromkeys(by_span[se] for se in ordered))


def model_label(model_info: dict) -> str:
    """The name of one network configuration in the LUT's ``model`` column."""
    width = model_info.get("width_mult") or 1.0  # None: the builder's default width
    classes = model_info.get("num_classes")
    name = model_info.get("name") or model_info.get("class", "model")
    # convs kept out of the chain other than one at either end: another fixed part (its own row)
    ends = "".join(f",{end}{model_info[f'{end}_convs']}" for end in ("stem", "head")
                   if model_info.get(f"{end}_convs", 1) != 1)
    return f"{name}@{width:g}x" + (f",{classes}cls" if classes else "") + ends
