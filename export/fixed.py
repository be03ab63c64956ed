"""The fixed part of a network: everything the LUT's conv rows do not time.

A row times a span's conv (its BatchNorm folded in), the residual add that closes a block and
the activation after it. What else runs is the same in every network the search compares, so
it is timed once, as one graph: the stem and the head around the chain, and the ops inside the
chain at its barriers that no row covers (a squeeze-and-excitation gate and its product, an
unknown op, a residual add that closes no block). Those ops read tensors from inside the chain;
the graph takes them as inputs of their own (``gap_input0``, ...) and returns what they make.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import fx, nn

from ..contracts.space import ChainSpace
from ..errors import DepthshrinkError
from ..models.ops import Kind, classify
from ..shrink.apply import retrace


@dataclass
class FixedPart:
    """``module``: ``(image, chain output, *gap inputs) -> (chain input, network output, *gap outputs)``.
    ``gap_inputs``: the shape of each gap input without its batch axis, by input name."""

    module: fx.GraphModule
    gap_inputs: dict[str, tuple[int, ...]]

    def input_shapes(self, image: list[int], chain_output: list[int]) -> dict[str, list[int]]:
        """Every input's shape, in the module's order (batch from ``image``)."""
        return {"input": image, "chain_output": chain_output,
                **{name: [image[0], *shape] for name, shape in self.gap_inputs.items()}}


def fixed_part(model: nn.Module, space: ChainSpace) -> FixedPart:
    """The network without what its chain's rows time (see the module's docstring)."""
    traced = retrace(model, space)
    gm = traced.graph_module
    start = traced.convs[0].args[0]
    end = traced.convs[-1]
    for node in traced.sites[space.num_layers].nodes:
        if classify(node, gm) not in (Kind.BN, Kind.ACT, Kind.ADD, Kind.PASS):
            break
        end = node
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    covered = set(traced.convs) | set(traced.skips) | {
        node for site in traced.sites.values() for node in (site.batchnorm, site.activation) if node is not None}
    computed = ("call_module", "call_function", "call_method")
    gaps = [n for n in gm.graph.nodes if order[start] < order[n] < order[end] and n.op in computed
            and n not in covered and classify(n, gm) is not Kind.PASS]
    gap_set = set(gaps)
    read = list(dict.fromkeys(a for n in gaps for a in n.all_input_nodes  # parameters are copied, not read
                              if a not in gap_set and a.op in computed and order[start] < order[a] <= order[end]))

    graph = fx.Graph()
    image, chain_output = graph.placeholder("input"), graph.placeholder("chain_output")
    env: dict[fx.Node, fx.Node] = {node: graph.placeholder(f"gap_input{i}") for i, node in enumerate(read)}
    gap_inputs = {env[node].name: tuple(node.meta["tensor_meta"].shape[1:]) for node in read}

    def lookup(node: fx.Node) -> fx.Node:
        if node not in env:
            raise DepthshrinkError(f"the fixed part reads {node.name} from inside the chain; "
                                   "it cannot be timed apart")
        return env[node]

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            env[node] = image
        elif order[node] <= order[start] or node.op == "get_attr" or node in gap_set:
            env[node] = graph.node_copy(node, lookup)
        elif node is end:
            env[node] = chain_output
        elif order[node] > order[end] and node.op != "output":
            env[node] = graph.node_copy(node, lookup)
    result = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    made = [env[n] for n in gaps if any(u not in gap_set for u in n.users)]
    graph.output((env[start], lookup(result), *made))
    return FixedPart(fx.GraphModule(gm, graph), gap_inputs)
