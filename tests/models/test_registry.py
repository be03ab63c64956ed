"""The model zoo: key compatibility with torchvision/timm, the registry's refusals."""

import pytest
import torch

from depthshrink import DepthshrinkError
from depthshrink.models import build_model, list_models


def test_mobilenet_v2_matches_torchvision_layout():
    model = build_model("mobilenet_v2")
    state = model.state_dict()
    # torchvision.models.mobilenet_v2(): 314 state_dict entries, 3,504,872 parameters
    assert len(state) == 314
    assert sum(p.numel() for p in model.parameters()) == 3_504_872
    for key in ("features.0.0.weight", "features.0.1.running_var", "features.1.conv.0.0.weight",
                "features.1.conv.1.weight", "features.1.conv.2.num_batches_tracked",
                "features.2.conv.0.0.weight", "features.2.conv.1.0.weight", "features.2.conv.2.weight",
                "features.2.conv.3.bias", "features.18.0.weight", "classifier.1.weight"):
        assert key in state
    assert state["features.18.0.weight"].shape == (1280, 320, 1, 1)


def test_efficientnet_lite0_matches_timm_layout():
    model = build_model("efficientnet_lite0")
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 4_652_008  # timm efficientnet_lite0
    for key in ("conv_stem.weight", "bn1.running_mean", "blocks.0.0.conv_dw.weight", "blocks.0.0.conv_pw.weight",
                "blocks.1.0.conv_pw.weight", "blocks.1.0.conv_dw.weight", "blocks.1.0.conv_pwl.weight",
                "blocks.5.3.bn3.bias", "conv_head.weight", "bn2.weight", "classifier.weight"):
        assert key in state


def test_options_and_small_input_variant():
    model = build_model("mobilenet_v2_small", width_mult=0.5, in_channels=1, num_classes=10)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert model.features[0][0].stride == (1, 1) and model.features[2].conv[1][0].stride == (1, 1)
    assert model.features[4].conv[1][0].stride == (2, 2)


def test_registry_refusals():
    assert "tiny_mobilenet" in list_models() and list_models() == sorted(list_models())
    with pytest.raises(DepthshrinkError, match="known models: efficientnet_lite0, .*mobilenet_v2"):
        build_model("resnet50")
    with pytest.raises(DepthshrinkError, match="takes no width_mult"):
        build_model("torch.nn:ReLU", width_mult=0.5)
    with pytest.raises(DepthshrinkError, match="cannot import 'no_such_module'"):
        build_model("no_such_module:factory")
    assert type(build_model("depthshrink.models.mobilenetv2:MobileNetV2", width_mult=0.35)).__name__ == "MobileNetV2"


@pytest.mark.parametrize("name,entries,params", [("mobilenet_v3_large", 312, 5_483_032),
                                                 ("mobilenet_v3_small", 244, 2_542_856)])
def test_mobilenet_v3_matches_torchvision_layout(name, entries, params):
    model = build_model(name)
    state = model.state_dict()
    assert len(state) == entries and sum(p.numel() for p in model.parameters()) == params
    assert "features.4.block.2.fc1.weight" in state or "features.1.block.1.fc1.weight" in state
    assert "classifier.3.weight" in state and state["features.0.1.running_var"].shape == (16,)


def test_a_factory_without_a_width_is_rebuilt_from_its_space():
    """``train --model helpers:HandNet`` recorded width 1.0, which HandNet does not take: every later
    command (importance, finetune, merge, evaluate) failed with "HandNet takes no width_mult"."""
    from depthshrink.contracts.candidates import model_label
    from depthshrink.models.build import ModelSpec, build_space
    from depthshrink.shrink.rebuild import build_from_spec

    model, space = build_space(ModelSpec("helpers:HandNet", resolution=21, in_channels=1))
    rebuilt, again = build_from_spec(space.model)
    assert type(rebuilt).__name__ == "HandNet" and len(again.layers) == len(space.layers)
    assert model_label(space.model) == model_label(again.model) == "helpers:HandNet@1x,7cls"
    # a factory that takes no options at all: it traced to 1 channel and 7 classes, which the rebuild passed
    # back ("grey_hand_net takes no in_channels, num_classes": trained, never evaluated or finetuned)
    _, grey = build_space(ModelSpec("helpers:grey_hand_net", resolution=21))
    rebuilt, again = build_from_spec(grey.model)
    assert type(rebuilt).__name__ == "HandNet" and again.to_dict() == grey.to_dict()
    _, zoo = build_space(ModelSpec("tiny_mobilenet", resolution=16))  # a zoo network's label is unchanged
    assert model_label(zoo.model).startswith("tiny_mobilenet@1x")


def test_masks_of_a_space_traced_at_the_default_width_fit_a_base_given_width_1():
    """``space`` without --width-mult records width None, ``train --width-mult 1.0`` records 1.0: the
    same network, but finetune refused the masks ("width_mult is None in the masks but 1.0")."""
    from depthshrink.contracts.masks import per_block_masks
    from depthshrink.models.build import ModelSpec, build_space

    _, default = build_space(ModelSpec("tiny_mobilenet", resolution=16))
    _, given = build_space(ModelSpec("tiny_mobilenet", resolution=16, width_mult=1.0))
    assert default.model["width_mult"] is None and given.model["width_mult"] == 1.0  # None: the default, 1x
    per_block_masks(default).resolve(given)
    per_block_masks(given).resolve(default)
    _, other = build_space(ModelSpec("tiny_mobilenet", resolution=16, width_mult=0.5))
    with pytest.raises(DepthshrinkError, match="width_mult is 0.5 in the masks but None"):
        per_block_masks(other).resolve(default)


def test_a_factory_whose_default_width_is_not_1_is_labelled_with_it(tmp_path, monkeypatch):
    """A factory defaulting to width 0.5, traced without --width-mult, was labelled 1x: profiled into a table
    beside the 1x network, the two shared one fixed row and one validation."""
    from depthshrink.contracts.candidates import model_label
    from depthshrink.models.build import ModelSpec, build_space

    (tmp_path / "halfnet.py").write_text(
        "from depthshrink.models import build_model\n"
        "def net(width_mult=0.5):\n"
        "    return build_model('tiny_mobilenet', width_mult=width_mult)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _, default = build_space(ModelSpec("halfnet:net", resolution=16))
    _, given = build_space(ModelSpec("halfnet:net", resolution=16, width_mult=1.0))
    assert model_label(default.model) == "halfnet:net@0.5x,1000cls" != model_label(given.model)
    assert default.layers[0].shape == build_space(ModelSpec("halfnet:net", resolution=16, width_mult=0.5))[1].layers[0].shape


def test_the_input_channels_are_the_first_conv_run_not_the_first_registered(tmp_path, monkeypatch):
    """A model that registers its body before its stem was traced with the body's 16 input channels and
    refused ("the model fails on an input of shape (1, 16, 32, 32)"), and took no --in-channels to fix it."""
    from depthshrink.models.build import ModelSpec, build_space

    (tmp_path / "order.py").write_text(
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.body = nn.Sequential(nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), nn.ReLU(),\n"
        "                                  nn.Conv2d(32, 16, 1), nn.BatchNorm2d(16), nn.ReLU())\n"
        "        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())\n"
        "        self.head = nn.Conv2d(16, 10, 1)\n"
        "    def forward(self, x):\n"
        "        return self.head(self.body(self.stem(x))).mean((2, 3))\n"
        "def net():\n"
        "    return Net()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _, space = build_space(ModelSpec("order:net", resolution=32))
    assert space.model["in_channels"] == 3 and space.layers[0].shape.in_channels == 16


def test_weights_from_a_train_checkpoint_are_its_averaged_ones_and_a_shrunk_one_is_refused(tmp_path):
    """``--weights`` of a checkpoint trained with --ema-decay loaded the raw weights (everything else
    uses the average); a finetune checkpoint (same keys, padding moved) loaded without a word."""
    from depthshrink.models.build import load_weights

    model = build_model("tiny_mobilenet")
    raw, averaged = model.state_dict(), {k: v + 1 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"model": raw, "ema": averaged, "spec": {"model": {"name": "tiny_mobilenet"}}}, tmp_path / "base.pt")
    load_weights(model, str(tmp_path / "base.pt"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in averaged.items())
    torch.save({"model": raw, "spec": {"model": {}, "masks": {"segments": []}}}, tmp_path / "ft.pt")
    with pytest.raises(DepthshrinkError, match="is a finetune checkpoint"):
        load_weights(model, str(tmp_path / "ft.pt"))
