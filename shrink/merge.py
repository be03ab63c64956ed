"""Merge a shrunk network: every segment becomes one conv (+bias), every BN is folded.

Graph surgery only; the tensor math lives in :mod:`depthshrink.shrink.kernels`.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from ..errors import DepthshrinkError
from ..models.ops import Kind, classify, describe
from . import kernels
from .apply import PLAN_KEY, Align2d, SegmentPlan, ShrinkPlan


def merge(shrunk: fx.GraphModule, tolerance: float = 1e-4) -> fx.GraphModule:
    """A dense copy of ``shrunk`` (from :func:`apply_masks`), in eval mode: one conv per segment,
    on the device and in the dtype of ``shrunk`` (the kernels are composed in float64 on the CPU).

    Refuses (``DepthshrinkError``) when the merged model's output differs from ``shrunk``'s by
    more than ``tolerance`` (max |Δ| / max |output|, random input, float32 on the CPU).
    """
    plan: ShrinkPlan | None = getattr(shrunk, "meta", {}).get(PLAN_KEY)
    if plan is None:
        raise DepthshrinkError("merge() takes the model returned by apply_masks()")
    weight = next(shrunk.parameters(), None)
    device, dtype = (weight.device, weight.dtype) if weight is not None else (torch.device("cpu"), torch.float32)
    reference = copy.deepcopy(shrunk).to(device="cpu", dtype=torch.float32)
    gm = copy.deepcopy(reference)
    nodes = {node.name: node for node in gm.graph.nodes}
    for segment in plan.segments:
        if segment.end - segment.start == 1 and not _plain(gm.get_submodule(
                plan.space.layers[segment.start].module)):
            continue  # dilated or otherwise unusual: left as it is (its BN is still folded below)
        # a segment's input may be the previous segment's output, replaced by its merged conv
        nodes[segment.output_node] = _merge_segment(gm, nodes[segment.input_node],
                                                    nodes[segment.output_node], segment)
    _fold_remaining_batchnorms(gm)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    gm.meta[PLAN_KEY] = plan
    _verify(reference.eval(), gm.eval(), plan, tolerance)
    return gm.to(device=device, dtype=dtype)


def _plain(conv: nn.Conv2d) -> bool:
    return (conv.dilation == (1, 1) and conv.kernel_size[0] == conv.kernel_size[1]
            and conv.stride[0] == conv.stride[1] and not isinstance(conv.padding, str)
            and conv.padding[0] == conv.padding[1] and conv.padding_mode == "zeros")


def _verify(reference: nn.Module, merged: nn.Module, plan: ShrinkPlan, tolerance: float) -> None:
    info = plan.space.model
    x = torch.randn(2, info["in_channels"], info["height"], info["width"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference(x), merged(x)
    error = float((got - expected).abs().max() / expected.abs().max().clamp_min(1e-30))
    if not error <= tolerance:
        raise DepthshrinkError(f"the merged model differs from the unmerged one by {error:.2e} "
                               f"(max |diff| / max |output|, tolerance {tolerance:.0e}): refusing it")


def _check_batchnorm(bn: nn.BatchNorm2d, name: str) -> None:
    if bn.running_mean is None or bn.running_var is None:
        raise DepthshrinkError(f"BatchNorm '{name}' has no running statistics "
                               "(track_running_stats=False): it cannot be folded into a conv")
    if bn.training:
        raise DepthshrinkError(f"BatchNorm '{name}' is in training mode: call model.eval() before merge()")


def _node_map(gm: fx.GraphModule, node: fx.Node, maps: dict) -> kernels.LinearMap:
    kind = classify(node, gm)
    module = gm.get_submodule(node.target) if node.op == "call_module" else None
    if kind is Kind.CONV:
        source = kernels.shifted(maps[node.args[0]], -module.padding[0])
        return kernels.then_conv(source, module.weight.detach(), _detached(module.bias),
                                 module.stride[0], module.groups)
    if kind is Kind.BN:
        _check_batchnorm(module, node.target)
        scale, shift = kernels.batchnorm_affine(module.running_mean.double(), module.running_var.double(),
                                                _detached(module.weight), _detached(module.bias), module.eps)
        return kernels.then_affine(maps[node.args[0]], scale, shift)
    if kind is Kind.PASS:
        return maps[node.args[0]]
    if isinstance(module, Align2d):
        return kernels.shifted(maps[node.args[0]], module.pixels)
    if kind is Kind.ADD and all(a in maps for a in node.args):
        return kernels.added(maps[node.args[0]], maps[node.args[1]])
    raise DepthshrinkError(f"cannot merge through {describe(node, gm)}: it is not linear")


def _detached(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach().double()


def _merge_segment(gm: fx.GraphModule, source: fx.Node, output: fx.Node,
                   segment: SegmentPlan) -> fx.Node:
    order = list(gm.graph.nodes)
    shape = segment.shape
    maps = {source: kernels.identity_map(shape.in_channels, shape.padding)}
    for node in order[order.index(source) + 1:order.index(output) + 1]:
        if any(a in maps for a in node.all_input_nodes):
            maps[node] = _node_map(gm, node, maps)
    if output not in maps:
        raise DepthshrinkError(f"segment [{segment.start}, {segment.end}) does not connect its input "
                               "to its output")
    for node in maps:
        if node not in (source, output) and any(user not in maps for user in node.users):
            raise DepthshrinkError(f"cannot merge [{segment.start}, {segment.end}): the output of "
                                   f"{describe(node, gm)} is also used outside the segment")
    conv = _to_conv(maps[output], shape, segment)
    name = f"merged_{segment.start}_{segment.end}"
    gm.add_submodule(name, conv)
    with gm.graph.inserting_after(output):
        merged = gm.graph.call_module(name, (source,))
    output.replace_all_uses_with(merged)
    gm.graph.eliminate_dead_code()
    return merged


def _to_conv(linear: kernels.LinearMap, shape, segment: SegmentPlan) -> nn.Conv2d:
    if linear.stride != shape.stride or linear.kernel_size != shape.kernel_size:
        raise AssertionError(f"segment [{segment.start}, {segment.end}) composed to kernel "
                             f"{linear.kernel_size}/stride {linear.stride}, expected "
                             f"{shape.kernel_size}/{shape.stride}")
    if shape.groups > 1 and linear.diagonal:
        weight = linear.weight  # depthwise, stored compactly
    else:  # dense, or a grouped conv's (a depthwise one with a channel multiplier) block-diagonal map
        weight = kernels.grouped_weight(kernels.densified(linear).weight, shape.groups)
    conv = nn.Conv2d(shape.in_channels, shape.out_channels, shape.kernel_size, shape.stride,
                     shape.padding, groups=shape.groups, bias=True)
    with torch.no_grad():
        conv.weight.copy_(weight.float())
        conv.bias.copy_(linear.bias.float())
    return conv


def _fold_remaining_batchnorms(gm: fx.GraphModule) -> None:
    """Fold every ``conv → BN`` pair outside the chain (stem, head) too."""
    for node in list(gm.graph.nodes):
        if classify(node, gm) is not Kind.BN:
            continue
        conv_node = node.args[0]
        if classify(conv_node, gm) is not Kind.CONV or len(conv_node.users) != 1:
            continue
        bn, conv = gm.get_submodule(node.target), gm.get_submodule(conv_node.target)
        _check_batchnorm(bn, node.target)
        weight, bias = kernels.fold_batchnorm(conv.weight.detach().double(), _detached(conv.bias),
                                              bn.running_mean.double(), bn.running_var.double(),
                                              _detached(bn.weight), _detached(bn.bias), bn.eps)
        folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                           conv.padding, conv.dilation, conv.groups, True, conv.padding_mode)
        with torch.no_grad():
            folded.weight.copy_(weight.float())
            folded.bias.copy_(bias.float())
        gm.add_submodule(conv_node.target, folded)
        node.replace_all_uses_with(conv_node)
        gm.graph.erase_node(node)
