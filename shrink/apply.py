"""Apply masks: removed activations become identities, each merge segment gets all its padding
on its first conv, and residual skips inside a segment are cropped (or zero-padded) to match.

The result is trainable and computes exactly what :func:`depthshrink.merge` will produce.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..contracts.masks import Masks
from ..contracts.space import ChainSpace, ConvShape
from ..errors import DepthshrinkError
from ..models.ops import Kind, classify, training_differs
from ..models.trace import TracedChain, trace_chain

PLAN_KEY = "depthshrink_plan"


class Align2d(nn.Module):
    """Crop ``pixels`` from each border (zero-pad ``-pixels`` when negative)."""

    def __init__(self, pixels: int) -> None:
        super().__init__()
        self.pixels = pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pixels > 0:
            return x[:, :, self.pixels:-self.pixels, self.pixels:-self.pixels]
        return F.pad(x, (-self.pixels,) * 4)

    def extra_repr(self) -> str:
        return f"pixels={self.pixels}"


@dataclass(frozen=True)
class SegmentPlan:
    start: int
    end: int
    input_node: str   # fx node feeding the segment's first conv
    output_node: str  # last linear node of the segment (BN, folded residual add, …)
    shape: ConvShape  # the merged conv; ``padding`` is the segment's total padding


@dataclass(frozen=True)
class ShrinkPlan:
    space: ChainSpace
    masks: Masks
    segments: tuple[SegmentPlan, ...]


def example_input(space: ChainSpace, like: nn.Module | None = None) -> torch.Tensor:
    """A zero image of the space's input size, on the device and in the dtype of ``like``'s weights."""
    info = space.model
    weight = next(like.parameters(), None) if like is not None else None
    options = {"device": weight.device, "dtype": weight.dtype} if weight is not None else {}
    return torch.zeros(1, info["in_channels"], info["height"], info["width"], **options)


def retrace(model: nn.Module, space: ChainSpace) -> TracedChain:
    """Trace ``model`` as ``space`` was traced, and check that it is the same network."""
    info = space.model
    with warnings.catch_warnings():  # its barriers were reported when the space was traced
        warnings.simplefilter("ignore", UserWarning)
        traced = trace_chain(model, example_input(space, model), stem_convs=info.get("stem_convs", 1),
                             head_convs=info.get("head_convs", 1), strided_merge=space.strided_merge)
    here = traced.space.layers
    if len(here) != len(space.layers):
        raise DepthshrinkError(f"the space has {len(space.layers)} layers but this model's chain has "
                               f"{len(here)}: the space was built for another model")
    for ours, theirs in zip(here, space.layers):
        if (ours.module, ours.shape) != (theirs.module, theirs.shape):
            raise DepthshrinkError(f"layer {ours.index} is {theirs.module} {theirs.shape} in the space "
                                   f"but {ours.module} {ours.shape} in this model")
    return traced


def apply_masks(model: nn.Module, space: ChainSpace, masks: Masks) -> fx.GraphModule:
    """A trainable copy of ``model`` with ``masks`` applied (``model`` is left untouched)."""
    masks = masks.resolve(space)
    traced = retrace(copy.deepcopy(model), space)
    if training_differs(model):
        warnings.warn(f"{type(model).__name__} runs other code in training mode than in eval mode outside "
                      "its modules (inline stochastic depth or dropout?): the shrunk model runs the eval-mode "
                      "code in both modes (depthshrink.models.ops.register_pass_through keeps such a module "
                      "whole)", stacklevel=2)
    gm, graph = traced.graph_module, traced.graph_module.graph
    replaced = {}
    for position in masks.removed_activations:
        node = traced.sites[position].activation
        replaced[node] = node.args[0]
        node.replace_all_uses_with(node.args[0])
        graph.erase_node(node)
    for add, skip in traced.skips.items():  # a block's input may have been a removed activation (ResNet's)
        while skip in replaced:
            skip = replaced[skip]
        traced.skips[add] = skip
    segments = []
    for start, end in masks.segments:
        shape = space.merged_shape(start, end)
        _move_padding(traced, start, end, shape.padding)
        _align_skips(traced, space, start, end)
        segments.append(SegmentPlan(start, end, traced.convs[start].args[0].name,
                                    _segment_output(traced, space, start, end).name, shape))
    graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    gm.meta[PLAN_KEY] = ShrinkPlan(space, masks, tuple(segments))
    return gm


def _move_padding(traced: TracedChain, start: int, end: int, total: int) -> None:
    if end - start == 1:
        return
    for layer in range(start, end):
        conv = traced.graph_module.get_submodule(traced.convs[layer].target)
        padding = total if layer == start else 0
        conv.padding = (padding, padding)


def _margins(space: ChainSpace, start: int, end: int) -> dict[int, int]:
    """Extra border (pixels) of the tensor at each site of a segment once its padding is moved.

    The segment's input itself has none: the first conv pads it.
    """
    margins = {end: 0}
    for p in range(end - 1, start, -1):
        shape = space.layers[p].shape
        margins[p] = shape.padding + margins[p + 1] * shape.stride
    margins[start] = 0
    return margins


def _align_skips(traced: TracedChain, space: ChainSpace, start: int, end: int) -> None:
    margins = _margins(space, start, end)
    for block in space.residual_blocks:
        if not (start <= block.start and block.end <= end):
            continue
        pixels = margins[block.start] - margins[block.end]
        if pixels == 0:
            continue
        add = traced.sites[block.end].add
        skip = traced.skips[add]
        name = f"depthshrink_align_{block.start}_{block.end}"
        traced.graph_module.add_submodule(name, Align2d(pixels))
        with traced.graph_module.graph.inserting_before(add):
            aligned = traced.graph_module.graph.call_module(name, (skip,))
        add.replace_input_with(skip, aligned)


def _segment_output(traced: TracedChain, space: ChainSpace, start: int, end: int) -> fx.Node:
    """The last node after layer ``end-1`` that still belongs to the linear segment."""
    output = traced.convs[end - 1]
    for node in traced.sites[end].nodes:
        kind = classify(node, traced.graph_module)
        if kind in (Kind.BN, Kind.PASS):
            output = node
        elif kind is Kind.ADD and node in traced.skips and any(
                b.end == end and start <= b.start for b in space.residual_blocks):
            output = node
        else:
            break
    return output
