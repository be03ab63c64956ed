"""Merged model vs activation-removed (shrunk) model: exact to float tolerance, on random weights
and random BN statistics, for several networks, resolutions and segmentations."""

import dataclasses
import warnings

import pytest
import torch
from helpers import HandNet, block_segments, masks_for, maximal_segments, randomize
from torch import nn
from tv_models import EfficientNet, UnknownStochasticDepth

import depthshrink
from depthshrink import DepthshrinkError
from depthshrink.contracts.space import ChainSpace
from depthshrink.models import build_model

CASES = [  # (model name or "hand", width, resolution)
    ("mobilenet_v2", 0.35, 45),
    ("mobilenet_v2", 1.0, 33),
    ("mobilenet_v2", 1.4, 64),
    ("mobilenet_v2_small", 0.5, 28),
    ("efficientnet_lite0", 1.0, 37),
    ("hand", None, 19),
    ("hand", None, 24),
]


def _model(name, width):
    model = HandNet() if name == "hand" else build_model(name, width_mult=width)
    return randomize(model, seed=1)


def _relative_error(a, b):
    return float((a - b).abs().max() / a.abs().max())


def _check(model, space, masks, tolerance):
    shrunk = depthshrink.apply_masks(model, space, masks).eval()
    merged = depthshrink.merge(shrunk)
    x = torch.randn(2, *[space.model[k] for k in ("in_channels", "height", "width")],
                    generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        error = _relative_error(shrunk(x), merged(x))
    assert error <= tolerance, f"merged differs from shrunk by {error:.2e}"
    convs = sum(isinstance(m, nn.Conv2d) for m in merged.modules())
    outside_chain = sum(isinstance(m, nn.Conv2d) for m in model.modules()) - space.num_layers  # stem, head, SE
    assert convs == len(masks.segments) + outside_chain
    assert not any(isinstance(m, nn.BatchNorm2d) for m in merged.modules())
    return shrunk, merged


def _space(model, resolution):
    return depthshrink.trace(model, torch.zeros(1, 3, resolution, resolution))


def _several(space):
    """The longest legal run of whole blocks (several consecutive blocks in one conv)."""
    blocks = block_segments(space)
    best = blocks[0]
    for i in range(len(blocks)):
        for j in range(i + 1, len(blocks)):
            if space.span_problem(blocks[i][0], blocks[j][1]) is None and \
                    blocks[j][1] - blocks[i][0] > best[1] - best[0]:
                best = (blocks[i][0], blocks[j][1])
    return best


@pytest.mark.parametrize("name,width,resolution", CASES)
def test_single_block_merge_is_exact(name, width, resolution):
    model = _model(name, width)
    space = _space(model, resolution)
    blocks = [b for b in block_segments(space) if b[1] - b[0] > 1]
    for block in (blocks[0], blocks[len(blocks) // 2], blocks[-1]):
        _check(model, space, masks_for(space, [block]), 1e-5)


@pytest.mark.parametrize("name,width,resolution", CASES)
def test_several_consecutive_blocks_merge_is_exact(name, width, resolution):
    model = _model(name, width)
    space = _space(model, resolution)
    span = _several(space)
    assert space.merged_shape(*span).kernel_size >= 5
    _check(model, space, masks_for(space, [span]), 1e-4)


@pytest.mark.parametrize("name,width,resolution", CASES)
def test_all_blocks_merge_is_exact(name, width, resolution):
    model = _model(name, width)
    space = _space(model, resolution)
    _check(model, space, masks_for(space, block_segments(space), remove_all=True), 1e-5)
    _check(model, space, masks_for(space, maximal_segments(space), remove_all=True), 1e-4)


def test_whole_chain_into_one_conv_with_strided_merge_any():
    model = randomize(build_model("tiny_mobilenet"), seed=2)
    space = depthshrink.trace(model, torch.zeros(1, 3, 15, 15), strided_merge="any")
    assert (0, space.num_layers) in space.spans
    masks = masks_for(space, [(0, space.num_layers)], remove_all=True)
    _, merged = _check(model, space, masks, 1e-4)
    conv = merged.get_submodule(f"merged_0_{space.num_layers}")
    assert conv.kernel_size[0] == space.merged_shape(0, space.num_layers).kernel_size > 9


def test_removed_activation_at_a_boundary_stays_unmerged():
    model = _model("mobilenet_v2", 0.35)
    space = _space(model, 32)
    masks = masks_for(space, [(5, 8)])
    masks.kept_activations.remove(3)  # linear but not merged
    shrunk, merged = _check(model, space, masks, 1e-5)
    assert not any(isinstance(m, nn.ReLU6) for name, m in shrunk.named_modules() if name == "features.2.conv.0.2")


def test_apply_masks_leaves_the_model_untouched_and_keeps_state_dict_keys():
    model = _model("mobilenet_v2", 0.35)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    space = _space(model, 32)
    shrunk = depthshrink.apply_masks(model, space, masks_for(space, maximal_segments(space), True))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.features[2].conv[1][0].padding == (1, 1)
    assert set(shrunk.state_dict()) == set(before)
    shrunk.load_state_dict(model.state_dict())  # base weights load into the trainable model as is


def test_shrunk_model_trains():
    model = _model("tiny_mobilenet", None)
    space = _space(model, 12)
    shrunk = depthshrink.apply_masks(model, space, masks_for(space, maximal_segments(space), True))
    shrunk.train()
    optimizer = torch.optim.SGD(shrunk.parameters(), lr=0.02)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 12, 12, generator=generator), torch.randint(0, 10, (8,), generator=generator)
    losses = []
    for _ in range(10):
        loss = nn.functional.cross_entropy(shrunk(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    _check(model, space, masks_for(space, maximal_segments(space), True), 1e-4)


@pytest.mark.parametrize("name,resolution", [("mobilenet_v3_small", 64), ("mobilenet_v3_large", 45)])
def test_squeeze_excitation_networks_merge_around_their_gates(name, resolution):
    model = randomize(build_model(name), seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # every SE gate is reported as a barrier
        space = _space(model, resolution)
    gated = [s.position for s in space.sites if s.barrier]
    assert gated and all("squeeze-and-excitation gate" in s.barrier or "users" in s.barrier
                         for s in space.sites if s.barrier)
    segments = maximal_segments(space)
    assert not any(s < p < e for s, e in segments for p in gated)
    _check(model, space, masks_for(space, segments, remove_all=True), 1e-4)
    blocks = [s.position for s in space.sites if s.activation is None] + [space.num_layers]
    assert len(block_segments(space)) > len(blocks)  # blocks with a gate cannot merge whole: cut there
    _check(model, space, masks_for(space, block_segments(space)), 1e-5)


def test_per_block_masks_cut_blocks_at_their_gates():
    """Every block merged whole crossed MobileNetV3's gates: profile-device (its validation networks)
    and DepthShrinker's top-k (a KeyError) failed on the zoo's own MobileNetV3."""
    import random

    from depthshrink.contracts.masks import per_block_masks
    from depthshrink.search.budget import Budget
    from depthshrink.search.problem import SearchProblem
    from depthshrink.search.run import solve_depthshrinker
    from depthshrink.search.segments import candidate_segments

    model = randomize(build_model("mobilenet_v3_small"), seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # every SE gate is reported as a barrier
        space = _space(model, 64)
    masks = per_block_masks(space)
    assert all(space.span_problem(s, e) is None for s, e in masks.segments)
    assert masks.segments[:4] == [(0, 1), (1, 2), (2, 5), (5, 8)]  # a doubly-used ReLU, then whole blocks
    _check(model, space, masks, 1e-4)
    rng = random.Random(0)
    span_ms = {key: 0.01 * rng.uniform(0.5, 1.0) for key in space.spans}  # a merged span costs one layer
    problem = SearchProblem(space, span_ms, 0.1, 0.01, {seg: -rng.random() for seg in candidate_segments(space)})
    result = solve_depthshrinker(problem, Budget(speedup=1.2))
    assert result.solution.latency_ms + 0.11 <= problem.original_ms / 1.2
    assert any((s.start, s.end) in masks.segments and s.end - s.start > 1 for s in result.solution.segments)


# -- issue 20: stochastic depth, and what merge refuses --------------------------------------------
def _quiet_space(model, resolution):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unknown ops are reported as barriers
        return _space(model, resolution)


def test_known_stochastic_depth_stays_a_module_that_still_drops_in_training():
    model = randomize(EfficientNet(0.25, stochastic_depth_prob=0.9, squeeze_excite=False), seed=6)
    space = _quiet_space(model, 32)
    masks = masks_for(space, block_segments(space), remove_all=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing runs differently in training outside modules
        shrunk = depthshrink.apply_masks(model, space, masks)
    called = [n.target for n in shrunk.graph.nodes if n.op == "call_module" and "stochastic_depth" in n.target]
    assert called == [f"features.{s}.stochastic_depth" for s in
                      ("1.0", "2.1", "3.1", "4.1", "4.2", "5.1", "5.2", "6.1", "6.2", "6.3")]
    x = torch.randn(8, 3, 32, 32)
    torch.manual_seed(0)
    shrunk.train()
    first, second = shrunk(x), shrunk(x)
    assert not torch.allclose(first, second)  # rows dropped at random while training
    optimizer = torch.optim.SGD(shrunk.parameters(), lr=0.01)
    shrunk(x).square().mean().backward()
    optimizer.step()  # finetuned in training mode, then merged in eval mode
    merged = depthshrink.merge(shrunk.eval(), tolerance=1e-5)
    with torch.no_grad():
        assert torch.equal(shrunk(x), shrunk(x)) and _relative_error(shrunk(x), merged(x)) <= 1e-5


@pytest.mark.filterwarnings("ignore:.*runs other code in training mode")
def test_merge_refuses_an_unknown_op_even_when_a_space_lets_a_span_cross_it():
    model = randomize(EfficientNet(0.25, stochastic_depth_layer=UnknownStochasticDepth, squeeze_excite=False), 7)
    space = _quiet_space(model, 32)
    assert "stochastic_depth" in space.site(8).barrier and "site 8" in space.site(5).barrier
    sites = [dataclasses.replace(s, barrier=None) if s.position in (5, 8) else s for s in space.sites]
    lax = ChainSpace(space.model, space.layers, sites, space.residual_blocks, space.fixed_modules)
    shrunk = depthshrink.apply_masks(model, lax, masks_for(lax, [(5, 9)], remove_all=True)).eval()
    with pytest.raises(DepthshrinkError, match="cannot merge through call_function stochastic_depth .*not linear"):
        depthshrink.merge(shrunk)


def test_apply_and_merge_a_model_of_another_dtype_keep_its_dtype():
    """The same code path as a model on a GPU (weights not on the CPU in float32): it used to fail
    tracing (a float32 example against the model's weights) and composing kernels."""
    import depthshrink
    from depthshrink.contracts.masks import per_block_masks
    from depthshrink.models import build_model

    model = randomize(build_model("tiny_mobilenet"))
    space = depthshrink.trace(model, torch.zeros(1, 3, 16, 16), model_info={"name": "tiny_mobilenet"})
    double = model.double()
    shrunk = depthshrink.apply_masks(double, space, per_block_masks(space)).eval()
    merged = depthshrink.merge(shrunk)
    assert all(p.dtype == torch.float64 for p in merged.parameters())
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        expected, got = shrunk(x), merged(x)
    assert float((got - expected).abs().max() / expected.abs().max()) < 1e-5


class _PostAddBlock(nn.Module):  # ResNet's basic block: the activation after the residual add
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels)
        self.c2, self.b2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(x + self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))


class _PostAddNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.pre = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(_PostAddBlock(8), _PostAddBlock(8))
        self.head = nn.Conv2d(8, 10, 1)

    def forward(self, x):
        return self.head(self.blocks(self.pre(self.stem(x)))).mean((2, 3))


def test_a_span_into_a_block_whose_input_was_a_removed_activation_merges_exactly():
    """relu(x + f(x)) blocks: removing the activation that feeds a block's skip left the skip pointing
    at the erased node, and apply_masks failed with a raw fx error on a span the space calls legal."""
    model = randomize(_PostAddNet(), seed=3)
    space = _space(model, 12)
    assert space.span_problem(0, 3) is None and [(b.start, b.end) for b in space.residual_blocks] == [(1, 3), (3, 5)]
    _check(model, space, masks_for(space, [(0, 3)], remove_all=True), 1e-5)
    _check(model, space, masks_for(space, [(0, 3), (3, 5)], remove_all=True), 1e-5)


@pytest.mark.parametrize("groups,multiplier", [(4, 1), (16, 2)])
def test_a_grouped_conv_alone_in_its_segment_merges_exactly(groups, multiplier):
    """A grouped conv (4 groups), or a depthwise one with a channel multiplier, in a segment of its
    own: merge composed it to a dense map and then stopped with an AssertionError, even with every
    activation kept."""
    def cbr(c_in, c_out, k=3, g=1):
        return [nn.Conv2d(c_in, c_out, k, 1, k // 2, groups=g, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

    from depthshrink.shrink.kernels import dense_weight, grouped_weight
    weight = torch.randn(16 * multiplier, 16 // groups, 3, 3, dtype=torch.float64)
    assert torch.equal(grouped_weight(dense_weight(weight, groups), groups), weight)
    wide = 16 * multiplier
    model = randomize(nn.Sequential(*cbr(3, 16), *cbr(16, 16, 1), *cbr(16, wide, 3, groups), *cbr(wide, 16, 1),
                                    *cbr(16, 32, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)), seed=2)
    space = _space(model, 16)
    kept = [s.position for s in space.sites if s.activation]
    every_layer = depthshrink.Masks(kept, [(p, p + 1) for p in range(space.num_layers)], model=space.model)
    _, merged = _check(model, space, every_layer, 1e-5)
    assert any(isinstance(m, nn.Conv2d) and m.groups == groups for m in merged.modules())
    _check(model, space, masks_for(space, [(0, 3)], remove_all=True), 1e-5)  # through it: one dense conv


class _PaddedStridedBlock(nn.Module):
    """x + b(relu(a(x))), where a grows the map by padding and a stride-2 b shrinks it back."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 1, 1)
        self.a, self.act = nn.Conv2d(8, 8, 3, 1, 2, groups=8), nn.ReLU()  # 5 -> 7 px
        self.b = nn.Conv2d(8, 8, 5, 2, 3, groups=8)  # 7 -> 5 px
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        return self.head(x + self.b(self.act(self.a(x)))).mean((2, 3))


def test_a_residual_block_that_strides_inside_is_no_block_a_span_folds():
    """The space called the span through such a block legal, with its add folded in; merge then failed with a
    raw ValueError (a stride-2 kernel cannot hold the stride-1 identity)."""
    model = randomize(_PaddedStridedBlock(), seed=4)
    space = _space(model, 5)
    assert space.residual_blocks == [] and space.span_problem(0, 2) is None
    _check(model, space, masks_for(space, [(0, 2)], remove_all=True), 1e-5)


def test_merge_refuses_a_result_that_differs_from_the_unmerged_network(monkeypatch):
    """The merge's own check, with a conv built one bias off."""
    from depthshrink.shrink import merge as merge_module

    model = randomize(HandNet(), seed=1).eval()
    space = depthshrink.trace(model, torch.zeros(1, 3, 19, 19))
    shrunk = depthshrink.apply_masks(model, space, masks_for(space, block_segments(space)[:1])).eval()
    built = merge_module._to_conv

    def one_bias_off(*args):
        conv = built(*args)
        with torch.no_grad():
            conv.bias += 1.0
        return conv

    monkeypatch.setattr(merge_module, "_to_conv", one_bias_off)
    with pytest.raises(DepthshrinkError, match="differs from the unmerged"):
        depthshrink.merge(shrunk)
