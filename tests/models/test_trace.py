"""Chain tracing: structure of the zoo networks and of a hand-written one, barriers, refusals."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from helpers import HandNet, masks_for, maximal_segments, randomize
from torch import nn
from tv_models import EfficientNet, MixedNet, StochasticDepth, UnknownStochasticDepth

import depthshrink
from depthshrink import DepthshrinkError
from depthshrink.contracts.masks import Masks
from depthshrink.contracts.space import ChainSpace
from depthshrink.models import build_model, ops


def _trace(model, resolution=32, **kwargs):
    return depthshrink.trace(model.eval(), torch.zeros(1, 3, resolution, resolution), **kwargs)


def test_mobilenet_v2_chain_matches_kim_et_al_positions():
    space = _trace(build_model("mobilenet_v2"), 224)
    assert space.num_layers == 50  # 17 inverted-residual blocks without stem and head
    assert space.layers[0].module == "features.1.conv.0.0"
    assert space.layers[-1].module == "features.17.conv.2"
    assert space.layers[0].batchnorm == "features.1.conv.0.1"
    assert [(b.start, b.end) for b in space.residual_blocks] == [
        (5, 8), (11, 14), (14, 17), (20, 23), (23, 26), (26, 29), (32, 35), (35, 38), (41, 44), (44, 47)]
    activations = [s.position for s in space.sites if s.activation == "relu6"]
    assert len(activations) == 1 + 2 * 16 and all(s.barrier is None for s in space.sites)
    no_activation = [s.position for s in space.sites if s.activation is None]
    assert no_activation == list(range(2, 50, 3))  # after every linear projection
    assert space.fixed_modules == ["features.0.0", "features.0.1", "features.18.0", "features.18.1",
                                   "classifier.1"]
    layer = space.layers[3]  # block 1's stride-2 depthwise conv
    assert (layer.shape.kernel_size, layer.shape.stride, layer.shape.groups, layer.shape.height) == (3, 2, 96, 112)


def test_mobilenet_v2_spans_follow_the_rules():
    space = _trace(build_model("mobilenet_v2"), 224)
    assert len(space.spans) == 196
    assert all((p, p + 1) in space.spans for p in range(50))
    whole_block = space.span(5, 8)
    assert whole_block.residual and whole_block.shape.kernel_size == 3
    assert (whole_block.shape.in_channels, whole_block.shape.out_channels, whole_block.shape.groups) == (24, 24, 1)
    assert "cuts the residual block [5, 8)" in space.span_problem(6, 9)
    assert "follows the stride-2 conv at layer 3" in space.span_problem(3, 8)
    assert space.span(3, 5).shape.stride == 2  # dw s2 → project 1x1 → next expand 1x1 is fine
    widest = max(space.spans.values(), key=lambda s: s.shape.kernel_size)
    assert widest.shape.kernel_size == 1 + 2 * 7 == space.span(20, 41).shape.kernel_size
    assert space.merged_shape(0, 2).groups == 1 and space.span(0, 1).shape.groups == 32
    any_stride = _trace(build_model("mobilenet_v2"), 224, strided_merge="any")
    assert any_stride.span(0, 50).shape.stride == 16 and len(any_stride.spans) > len(space.spans)


def test_efficientnet_lite0_and_hand_written_chains():
    lite = _trace(build_model("efficientnet_lite0"), 224)
    assert lite.num_layers == 47 and len(lite.residual_blocks) == 9
    assert {layer.shape.kernel_size for layer in lite.layers} == {1, 3, 5}
    assert lite.layers[0].module == "blocks.0.0.conv_dw" and lite.layers[0].batchnorm == "blocks.0.0.bn1"
    hand = _trace(HandNet(), 24)
    assert hand.num_layers == 15 and len(hand.residual_blocks) == 4
    assert [s.activation for s in hand.sites[:3]] == ["relu6", "relu", None]
    assert hand.layers[0].module == "blocks.0.expand.0" and hand.layers[1].batchnorm == "blocks.0.body.0.1"
    assert hand.fixed_modules[:2] == ["stem.0", "stem.1"]


def test_space_json_round_trip(tmp_path):
    space = _trace(build_model("efficientnet_lite0"), 64)
    space.to_json(tmp_path / "space.json")
    again = ChainSpace.from_json(tmp_path / "space.json")
    assert again.to_dict() == space.to_dict()
    data = again.to_dict()
    assert data["format"] == "depthshrink.space/1"
    assert set(data["spans"][0]) >= {"start", "end", "in_channels", "out_channels", "kernel_size", "stride",
                                     "groups", "height", "width", "residual"}
    assert set(data["layers"][0]) >= {"module", "in_channels", "out_channels", "kernel_size", "stride",
                                      "groups", "height", "width"}
    assert set(data["sites"][0]) >= {"position", "activation", "removable"}


class TwoUsers(HandNet):
    """The first block's depthwise conv output also feeds the classifier."""

    def forward(self, x):
        x = F.relu6(self.stem(x))
        block = self.blocks[0]
        h = F.relu6(block.expand(x))
        dw = block.body[0][0](h)
        x = x + block.project(torch.relu(block.body[0][1](dw)))
        for block in self.blocks[1:]:
            x = block(x)
        x = self.act(self.head(x))
        return self.fc(x.mean((2, 3))) + dw.mean()


class WithPool(HandNet):
    """A max-pool in the middle of the chain: an op the tracer does not know."""

    def forward(self, x):
        x = F.relu6(self.stem(x))
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index == 1:
                x = F.max_pool2d(x, 3, 1, 1)
        return self.fc(self.act(self.head(x)).mean((2, 3)))


def test_conv_output_with_two_users_is_a_barrier_and_refused():
    model = randomize(TwoUsers())
    space = _trace(model, 16)
    assert "has 2 users" in space.site(2).barrier
    with pytest.raises(DepthshrinkError, match="has 2 users"):
        depthshrink.apply_masks(model, space, masks_for(space, [(0, 3)]))


def test_unknown_op_is_a_barrier_with_a_warning():
    with pytest.warns(UserWarning, match="max_pool2d"):
        space = _trace(WithPool(), 16)
    barrier = space.site(6)
    assert "max_pool2d" in barrier.barrier
    with pytest.raises(DepthshrinkError, match="crosses a barrier at site 6"):
        depthshrink.apply_masks(WithPool(), space, masks_for(space, [(3, 9)]))


def test_span_cutting_a_residual_block_is_refused():
    model = randomize(build_model("mobilenet_v2", width_mult=0.35))
    space = _trace(model, 32)
    with pytest.raises(DepthshrinkError, match=r"cuts the residual block \[5, 8\)"):
        depthshrink.apply_masks(model, space, masks_for(space, [(6, 9)]))


def test_batchnorm_in_training_mode_or_without_running_stats_is_refused():
    model = randomize(HandNet())
    space = _trace(model, 16)
    shrunk = depthshrink.apply_masks(model, space, masks_for(space, [(0, 3)]))
    with pytest.raises(DepthshrinkError, match="training mode"):
        depthshrink.merge(shrunk.train())
    stats_free = randomize(HandNet(bn_running_stats=False))
    space = _trace(stats_free, 16)
    shrunk = depthshrink.apply_masks(stats_free, space, masks_for(space, [(3, 6)])).eval()
    with pytest.raises(DepthshrinkError, match="no running statistics"):
        depthshrink.merge(shrunk)


def test_masks_for_another_model_are_refused():
    small = _trace(build_model("mobilenet_v2", width_mult=0.35), 32)
    lite = _trace(build_model("efficientnet_lite0"), 32)
    with pytest.raises(DepthshrinkError, match="class is 'MobileNetV2' in the masks but 'EfficientNetLite'"):
        masks_for(small, [(5, 8)]).resolve(lite)
    handwritten = masks_for(small, [(5, 8)])
    handwritten.model = {}  # a hand-written file names no model: the layer count still must fit
    with pytest.raises(DepthshrinkError, match="segments cover 50 layers but the space has 47"):
        handwritten.resolve(lite)
    masks = masks_for(small, [(5, 8)])
    masks.model["class"] = "EfficientNetLite"
    with pytest.raises(DepthshrinkError, match="class is 'EfficientNetLite' in the masks"):
        masks.resolve(small)
    every_activation = [s.position for s in small.sites if s.activation]
    linear_inside = Masks(every_activation, [(p, p + 1) for p in range(5)] + [(5, 8)]
                          + [(p, p + 1) for p in range(8, 50)])
    with pytest.raises(DepthshrinkError, match=r"keeps the activation at site\(s\) \[6, 7\]"):
        linear_inside.resolve(small)
    with pytest.raises(DepthshrinkError, match="site 2, which has no activation"):
        Masks([2], [(p, p + 1) for p in range(50)]).resolve(small)


def test_model_is_not_modified_by_tracing():
    model = build_model("tiny_mobilenet").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        depthshrink.trace(model, torch.randn(4, 3, 16, 16))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_untraceable_model_is_refused():
    class Dynamic(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else x

    with pytest.raises(DepthshrinkError, match="torch.fx cannot trace Dynamic"):
        _trace(Dynamic(), 8)


class Dilated(HandNet):
    """A dilated depthwise conv inside the chain: merged around, never through."""

    def __init__(self):
        super().__init__()
        body = self.blocks[1].body[0]
        body[0] = nn.Conv2d(24, 24, 5, 1, 4, dilation=2, groups=24, bias=False)


def test_unusual_convs_are_barriers_and_kept_as_they_are():
    model = randomize(Dilated())
    space = _trace(model, 16)
    assert "dilation" in space.site(4).barrier and "dilation" in space.site(5).barrier
    merged = depthshrink.merge(depthshrink.apply_masks(model, space, masks_for(space, maximal_segments(space), True)).eval())
    assert merged.get_submodule("blocks.1.body.0.0").dilation == (2, 2)


def test_a_layer_no_lut_row_describes_is_refused_for_timing_and_same_padding_is_recorded_as_it_pads(tmp_path):
    """The dilated 5x5 (map 16 -> 16) was recorded as an undilated 5x5 with padding 4 (16 -> 20) and timed as
    that; padding="same" was recorded as 0 (16 -> 14)."""
    from depthshrink.export.bundles import export_bundle, module_builder

    model = randomize(Dilated())
    space = _trace(model, 16)
    for export in (lambda: export_bundle(model, space, 1, tmp_path / "bundle"), lambda: module_builder(model, space)):
        with pytest.raises(DepthshrinkError, match=r"\(blocks.1.body.0.0\) has a dilation: latency tables time"):
            export()
    assert not (tmp_path / "bundle").exists()
    same = Dilated()
    same.blocks[1].body[0][0] = nn.Conv2d(24, 24, 5, 1, "same", groups=24, bias=False)
    layer = next(x for x in _trace(randomize(same), 16).layers if x.module == "blocks.1.body.0.0")
    assert layer.shape.padding == 2 and layer.shape.kernel_size == 5


# -- issue 20: the tracer lists only spans the merger can build ---------------------------------------
def _quiet_trace(model, resolution):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # SE gates and unknown ops are reported as barriers
        return depthshrink.trace(model, torch.zeros(1, 3, resolution, resolution))


@pytest.mark.parametrize("layer", [StochasticDepth, UnknownStochasticDepth])
@pytest.mark.filterwarnings("ignore:.*runs other code in training mode")
def test_torchvision_efficientnet_b0_lists_no_span_that_merge_refuses(layer):
    model = randomize(EfficientNet(stochastic_depth_layer=layer), seed=4)
    space = _quiet_trace(model, 64)
    assert space.num_layers == 47 and (4, 7) not in space.spans  # the span
    if layer is StochasticDepth:  # a pass-through: the 9 skips of B0 are residual blocks
        assert len(space.residual_blocks) == 9
        assert [(b.start, b.end) for b in space.residual_blocks][:2] == [(5, 8), (11, 14)]
        assert not any("stochastic_depth" in (s.barrier or "") for s in space.sites)
    else:  # an unknown op before each add: the add and the shortcut's source are barriers
        assert space.residual_blocks == []
        assert "stochastic_depth (in 'features.2.1.stochastic_depth', UnknownStochasticDepth)" in space.site(8).barrier
        assert space.site(5).barrier == ("the output of 'features.2.0.block.3.1' (BatchNorm2d) also feeds the "
                                         "residual add at site 8, which no span can fold")
    merged = depthshrink.merge(depthshrink.apply_masks(model, space, masks_for(space, maximal_segments(space), True))
                               .eval(), tolerance=1e-5)
    assert sum(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1 for m in merged.modules()) > 5


def test_a_model_in_training_mode_traces_and_shrinks_as_in_eval_mode():
    model = randomize(MixedNet(), seed=5).train()  # inline and unknown stochastic depth, both train-only
    space = _quiet_trace(model, 16)
    assert model.training and space.to_dict() == _quiet_trace(model.eval(), 16).to_dict()
    with pytest.warns(UserWarning, match="runs other code in training mode"):
        shrunk = depthshrink.apply_masks(model.train(), space, masks_for(space, []))
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        expected, first, second = model.eval()(x), shrunk.eval()(x), shrunk(x)
    assert torch.equal(first, second) and torch.allclose(first, expected, rtol=0, atol=1e-6)


def test_a_registered_pass_through_module_is_kept_whole(monkeypatch):
    monkeypatch.setattr(ops, "_registered_pass", [])
    model = EfficientNet(0.25, stochastic_depth_layer=UnknownStochasticDepth, squeeze_excite=False)
    assert _quiet_trace(model, 32).residual_blocks == []
    assert ops.register_pass_through(UnknownStochasticDepth) is UnknownStochasticDepth
    assert len(_quiet_trace(model, 32).residual_blocks) == 10
    with pytest.raises(TypeError, match="nn.Module subclass"):
        ops.register_pass_through(len)


class ConvTwoUsers(HandNet):
    """The first block's expand conv (no BN after it) also feeds the classifier."""

    def __init__(self):
        super().__init__()
        self.blocks[0].expand = nn.Conv2d(8, 16, 1)

    def forward(self, x):
        x = F.relu6(self.stem(x))
        block = self.blocks[0]
        expanded = block.expand(x)
        x = x + block.project(torch.relu(block.body(expanded)))
        for block in self.blocks[1:]:
            x = block(x)
        return self.fc(self.act(self.head(x)).mean((2, 3))) + expanded.mean()


def test_a_conv_output_with_two_users_is_a_barrier_even_straight_before_the_next_conv():
    model = randomize(ConvTwoUsers())
    space = _trace(model, 16)
    assert space.site(1).barrier == "the output of 'blocks.0.expand' (Conv2d) has 2 users"
    assert (0, 2) not in space.spans
    depthshrink.merge(depthshrink.apply_masks(model, space, masks_for(space, maximal_segments(space), True)).eval())


def test_a_squeeze_and_excitation_gate_is_a_barrier_without_a_warning_to_declare_it_linear():
    """MobileNetV3's SE gates are nonlinear by nature: tracing warned ~20 times that each might be
    "the identity in eval mode" and should be declared a pass-through, which would merge across a gate."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        space = depthshrink.trace(build_model("mobilenet_v3_small").eval(), torch.zeros(1, 3, 32, 32))
    gates = [s for s in space.sites if s.barrier and "squeeze-and-excitation gate" in s.barrier]
    assert [s.position for s in gates] == [1, 10, 13, 16, 19, 22, 25, 28, 31]  # the nine SE blocks' inputs
    assert gates[6].barrier == ("the output of 'features.9.block.1.2' (Hardswish) feeds the squeeze-and-excitation "
                                "gate 'features.9.block.2'")
    assert sum(s.barrier is not None for s in space.sites) == 9


class _SEResidual(nn.Module):
    """x + se(bn(conv(relu(bn(conv(x)))))), three times: a residual add whose branch ends in a gate."""

    def __init__(self) -> None:
        super().__init__()
        from depthshrink.models.mobilenetv3 import SqueezeExcitation

        def block():
            return nn.ModuleDict({"body": nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                                                        nn.ReLU(), nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16)),
                                  "se": SqueezeExcitation(16, 4)})
        self.stem, self.head = nn.Conv2d(3, 16, 3, 2, 1), nn.Conv2d(16, 32, 1)
        self.blocks = nn.ModuleList(block() for _ in range(3))

    def forward(self, x):
        x = torch.relu(self.stem(x))
        for block in self.blocks:
            x = x + block["se"](block["body"](x))
        return self.head(x).mean((2, 3))


def test_a_residual_add_after_a_gate_follows_the_block_not_the_shortcut():
    """The 1x1-map rule (below) first dropped every input made inside a gate at any node: here the add's
    branch, so the chain lost every block conv ("2 convolutions on its main path")."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        space = depthshrink.trace(_SEResidual().eval(), torch.zeros(1, 3, 32, 32))
    assert [layer.module for layer in space.layers] == [f"blocks.{b}.body.{i}" for b in range(3) for i in (0, 3)]


def test_a_gate_on_a_1x1_map_stays_off_the_chain():
    """At 32 px the last three SE blocks run on 1x1 maps, where x and gate(x) have one shape and the
    gate has more convs behind it: the chain took the gate's fc1/fc2 as layers (38 at 32 px, 32 at 64)."""
    model = build_model("mobilenet_v3_small").eval()
    small, large = (depthshrink.trace(model, torch.zeros(1, 3, r, r)) for r in (32, 64))
    assert small.num_layers == large.num_layers == 32
    assert [layer.module for layer in small.layers] == [layer.module for layer in large.layers]
    assert not any("fc" in layer.module for layer in small.layers)
    assert {"features.11.block.2.fc1", "features.11.block.2.fc2"} <= set(small.fixed_modules)


class _Warns(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 1),
                                  nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 4, 1))

    def forward(self, x):
        return self.body(x).mean((2, 3))


def test_what_a_model_prints_while_traced_is_still_shown(capsys, monkeypatch):
    """The one-line refusal of a model failing on its input hid everything printed during shape
    propagation, the model's own warnings too, when it ran."""
    original = nn.Conv2d.forward

    def noisy(self, x):
        print("a message from the model", file=__import__("sys").stderr)
        return original(self, x)

    monkeypatch.setattr(nn.Conv2d, "forward", noisy)
    depthshrink.trace(_Warns().eval(), torch.zeros(1, 3, 8, 8))
    assert "a message from the model" in capsys.readouterr().err
