"""Find the searchable conv chain of any torch.fx-traceable network.

The *main path* runs backwards from the output: at a node with several tensor inputs it follows
the input of the output's shape with the most convolutions behind it (the residual branch of
``x + f(x)``, the trunk of an SE ``x * gate``). The convolutions on that path, minus the stem
and the head, are the chain. Between two chain convs the tracer accepts BN (right after the
conv), one activation, one residual add and pass-through modules; anything else, or a value with
a user off the chain, makes that site a *barrier* that no merge span may cross. A value may also
feed a residual add as its shortcut only when that add closes a residual block.

The graph is the one the model runs in eval mode (see :func:`.ops.symbolic_trace`), which is
what ``merge`` reproduces; pass-through modules stay whole, so they still act in training.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..contracts.space import ChainSpace, ConvShape, Layer, ResidualBlock, Site
from ..errors import DepthshrinkError
from .ops import Kind, activation_name, classify, describe, gate_of, in_mode, module_of, symbolic_trace


@dataclass
class SiteNodes:
    """The main-path nodes after layer ``position-1``'s conv, up to the next conv."""

    position: int
    nodes: list[fx.Node]
    batchnorm: fx.Node | None = None
    activation: fx.Node | None = None
    add: fx.Node | None = None
    barrier: str | None = None
    shortcuts: list[tuple[fx.Node, fx.Node]] | None = None  # (node, residual add it also feeds)


@dataclass
class TracedChain:
    """A chain space plus the fx nodes it came from (for graph surgery on ``graph_module``)."""

    graph_module: fx.GraphModule
    space: ChainSpace
    convs: list[fx.Node]
    sites: dict[int, SiteNodes]  # positions 1..L (L: what follows the last layer)
    skips: dict[fx.Node, fx.Node]  # residual add -> its skip input


def trace(model: nn.Module, example_input: torch.Tensor, *, model_info: dict | None = None,
          stem_convs: int = 1, head_convs: int = 1, strided_merge: str = "pointwise") -> ChainSpace:
    """The chain space of ``model`` for inputs shaped like ``example_input``.

    ``stem_convs``/``head_convs`` main-path convolutions at either end stay in the fixed part.
    ``strided_merge='pointwise'`` allows only 1×1 convs after a strided conv inside a span;
    ``'any'`` allows every kernel (the kernel then grows by ``stride·(k-1)``).
    """
    return trace_chain(model, example_input, model_info=model_info, stem_convs=stem_convs,
                       head_convs=head_convs, strided_merge=strided_merge).space


def trace_chain(model: nn.Module, example_input: torch.Tensor, *, model_info: dict | None = None,
                stem_convs: int = 1, head_convs: int = 1,
                strided_merge: str = "pointwise") -> TracedChain:
    """Like :func:`trace`, keeping the fx graph (its modules are ``model``'s own, not copies)."""
    gm = symbolic_trace(model)
    _propagate_shapes(gm, example_input)
    kinds = {node: classify(node, gm) for node in gm.graph.nodes}
    path = _main_path(gm, kinds)
    on_path = [n for n in path if kinds[n] is Kind.CONV]
    if len(on_path) < stem_convs + head_convs + 2:
        raise DepthshrinkError(
            f"{type(model).__name__} has {len(on_path)} convolutions on its main path; a chain needs "
            f"at least 2 besides {stem_convs} stem and {head_convs} head convolution(s)")
    convs = on_path[stem_convs:len(on_path) - head_convs]
    end = path.index(on_path[len(on_path) - head_convs]) if head_convs else len(path)
    sites, skips, blocks = _chain_sites(gm, path, convs, kinds, end)
    layers = _layers(gm, convs, sites)
    info = {"class": type(model).__name__, **_num_classes(gm), "in_channels": int(example_input.shape[1]),
            "height": int(example_input.shape[2]), "width": int(example_input.shape[3]),
            **(model_info or {}), "stem_convs": stem_convs, "head_convs": head_convs,
            "strided_merge": strided_merge}
    chain_modules = {layer.module for layer in layers} | {layer.batchnorm for layer in layers if layer.batchnorm}
    fixed = [n.target for n in gm.graph.nodes if n.op == "call_module" and n.target not in chain_modules
             and any(True for _ in gm.get_submodule(n.target).parameters(recurse=False))]

    def activation(site: SiteNodes) -> str | None:
        return activation_name(site.activation, gm) if site.activation is not None else None

    space_sites = [Site(p, activation(s), s.activation is not None, s.barrier)
                   for p, s in sorted(sites.items()) if p < len(convs)]
    space = ChainSpace(info, layers, space_sites, blocks, fixed, strided_merge, activation(sites[len(convs)]))
    return TracedChain(gm, space, convs, sites, skips)


def _chain_sites(gm: fx.GraphModule, path: list[fx.Node], convs: list[fx.Node], kinds: dict,
                 end: int) -> tuple[dict[int, SiteNodes], dict[fx.Node, fx.Node], list[ResidualBlock]]:
    """Parse what lies between consecutive chain convs (and after the last, up to ``end``)."""
    pos = {node: i for i, node in enumerate(path)}
    sites: dict[int, SiteNodes] = {}
    skips: dict[fx.Node, fx.Node] = {}
    blocks: list[ResidualBlock] = []
    for p in range(1, len(convs) + 1):
        stop = pos[convs[p]] if p < len(convs) else end
        site = SiteNodes(p, path[pos[convs[p - 1]] + 1:stop])
        _parse_site(site, convs[p - 1], path, pos, kinds, gm)
        if site.add is not None and site.barrier is None:
            skip, block = _residual_block(site, path, pos, convs, kinds, gm)
            if block is None:
                site.barrier = skip
            else:
                skips[site.add] = skip
                blocks.append(block)
        sites[p] = site
    _shortcut_barriers(gm, sites, skips)
    return sites, skips, blocks


def _shortcut_barriers(gm: fx.GraphModule, sites: dict[int, SiteNodes], skips: dict) -> None:
    """A node feeding a residual add as its shortcut may have that second user only when the add
    closes a residual block (spans then nest); otherwise no span may run past the node."""
    site_of = {node: p for p, site in sites.items() for node in site.nodes}
    for site in sites.values():
        for node, add in site.shortcuts or []:
            if add in skips:
                continue
            where = site_of.get(add)
            closes = f"the residual add at site {where}, which no span can fold" if where is not None \
                else "a residual add outside the chain"
            site.barrier = site.barrier or f"the output of {describe(node, gm)} also feeds {closes}"


def _num_classes(gm: fx.GraphModule) -> dict:
    outputs = next(n for n in reversed(gm.graph.nodes) if n.op == "output").all_input_nodes
    shape = _shape(outputs[0]) if len(outputs) == 1 else None
    return {"num_classes": int(shape[1])} if shape is not None and len(shape) == 2 else {}


def _propagate_shapes(gm: fx.GraphModule, example_input: torch.Tensor) -> None:
    printed = io.StringIO()  # ShapeProp prints a failing node's traceback before raising: ours is one line
    try:
        with in_mode(gm, training=False), torch.no_grad(), contextlib.redirect_stderr(printed):
            ShapeProp(gm).propagate(example_input)
        sys.stderr.write(printed.getvalue())  # what the model itself printed (its warnings), when it ran
    except RuntimeError as exc:
        cause = exc.__cause__ or exc
        raise DepthshrinkError(f"the model fails on an input of shape {tuple(example_input.shape)}: "
                               f"{str(cause).strip().splitlines()[0]}") from exc


def _shape(node: fx.Node) -> tuple | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _main_path(gm: fx.GraphModule, kinds: dict[fx.Node, Kind]) -> list[fx.Node]:
    convs_behind: dict[fx.Node, frozenset] = {}
    for node in gm.graph.nodes:
        behind = frozenset().union(*(convs_behind[a] for a in node.all_input_nodes))
        convs_behind[node] = behind | {node} if kinds[node] is Kind.CONV else behind

    def tensor_inputs(node: fx.Node) -> list[fx.Node]:
        return [a for a in node.all_input_nodes if a.op != "get_attr" and _shape(a) is not None]

    def main_input(node: fx.Node, inputs: list[fx.Node]) -> fx.Node:
        same = [a for a in inputs if _shape(a) == _shape(node)] or inputs
        # x * gate(x) on a 1x1 map: both inputs have the output's shape and the gate has more convs
        # behind it; the trunk is x (the gate stays off the chain at every resolution). Only at the
        # gate's own product: a residual add after an SE block follows the block as before
        own = gate_of(node)
        same = [a for a in same if own is None or gate_of(a) != own] or same
        return max(same, key=lambda a: len(convs_behind[a]))

    output = next(n for n in reversed(gm.graph.nodes) if n.op == "output")
    outputs = tensor_inputs(output)
    if not outputs:
        raise DepthshrinkError("the model returns no tensor")
    node: fx.Node | None = max(outputs, key=lambda a: len(convs_behind[a]))
    path = []
    while node is not None:
        path.append(node)
        inputs = tensor_inputs(node)
        node = main_input(node, inputs) if inputs else None
    return path[::-1]


def _parse_site(site: SiteNodes, conv: fx.Node, path: list[fx.Node], pos: dict, kinds: dict,
                gm: fx.GraphModule) -> None:
    def block(reason: str) -> None:
        site.barrier = site.barrier or reason

    for node in [conv] + site.nodes:  # the conv's own output too, when no BN or activation follows
        successor = path[pos[node] + 1] if pos[node] + 1 < len(path) else None
        shortcut = [u for u in node.users if u is not successor
                    and u in pos and kinds[u] is Kind.ADD and path[pos[u] - 1] is not node]
        site.shortcuts = (site.shortcuts or []) + [(node, u) for u in shortcut]
        extra = [u for u in node.users if u is not successor and u not in shortcut]
        gates = [gate_of(u) for u in extra if gate_of(u) is not None]
        if gates:
            block(f"the output of {describe(node, gm)} feeds the squeeze-and-excitation gate '{gates[0]}'")
        elif extra:
            block(f"the output of {describe(node, gm)} has {len(node.users)} users")
    for index, node in enumerate(site.nodes):
        kind = kinds[node]
        if kind is Kind.BN and index == 0:
            site.batchnorm = node
        elif kind is Kind.PASS:
            continue
        elif kind is Kind.ACT:
            if site.activation is not None:
                block("two activations in a row")
            site.activation = node
        elif kind is Kind.ADD:
            if site.add is not None or site.activation is not None:
                block("an activation or second add before a residual add")
            site.add = node
        elif gate_of(node) is not None:
            block(f"{describe(node, gm)} is inside the squeeze-and-excitation gate '{gate_of(node)}'")
        else:
            reason = f"{describe(node, gm)} is not a conv, BatchNorm, activation or residual add"
            owner = list((node.meta.get("nn_module_stack") or {None: None}).values())[-1]
            hint = (f"; if {getattr(owner[1], '__name__', owner[1])} is the identity in eval mode (stochastic "
                    "depth), declare it with depthshrink.models.ops.register_pass_through") if owner else ""
            warnings.warn(f"treating {describe(node, gm)} as a merge barrier at site {site.position}{hint}",
                          stacklevel=3)
            block(reason)


def _residual_block(site: SiteNodes, path: list[fx.Node], pos: dict, convs: list[fx.Node],
                    kinds: dict, gm: fx.GraphModule) -> tuple:
    """(skip node, block) for the site's residual add, or (reason, None) when it is no plain skip."""
    add = site.add
    skip = next(a for a in add.args if a is not path[pos[add] - 1])
    if skip not in pos:
        return "the residual add's shortcut has layers of its own", None
    if _shape(skip) != _shape(add):
        return "the residual add broadcasts", None
    between = [n for n in path[pos[skip] + 1:pos[add]] if kinds[n] is Kind.CONV]
    chain_index = {node: i for i, node in enumerate(convs)}
    if not between or any(n not in chain_index for n in between):
        return "the residual add skips over layers outside the chain", None
    if any(gm.get_submodule(n.target).stride != (1, 1) for n in between):  # the add is stride 1: no strided kernel folds it
        return "the residual block strides inside (its map keeps its size through padding)", None
    return skip, ResidualBlock(chain_index[between[0]], chain_index[between[-1]] + 1)


def _layer_problem(conv: nn.Conv2d, calls: int) -> str | None:
    if calls > 1:
        return "the module is called more than once"
    if conv.kernel_size[0] != conv.kernel_size[1] or conv.stride[0] != conv.stride[1]:
        return "non-square kernel or stride"
    if conv.dilation != (1, 1) or conv.padding_mode != "zeros":
        return "dilation or non-zero padding mode"
    if isinstance(conv.padding, str) or conv.padding[0] != conv.padding[1]:
        return "asymmetric or string padding"
    return None


def _layers(gm: fx.GraphModule, convs: list[fx.Node], sites: dict[int, SiteNodes]) -> list[Layer]:
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    layers = []
    for index, node in enumerate(convs):
        conv = module_of(node, gm)
        problem = _layer_problem(conv, calls[node.target])
        if problem:
            for p in (index, index + 1):
                if p in sites:
                    sites[p].barrier = sites[p].barrier or f"layer {index} ({node.target}): {problem}"
        _, _, height, width = _shape(node.args[0])
        padding = conv.padding[0] if not isinstance(conv.padding, str) else \
            (conv.kernel_size[0] - 1) // 2 if conv.padding == "same" else 0  # "same" is recorded as it pads
        shape = ConvShape(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0],
                          conv.groups, height, width, padding)
        bn = sites[index + 1].batchnorm
        layers.append(Layer(index, node.target, shape, bn.target if bn is not None else None))
    return layers
