"""Channels-last while training and evaluating: values unchanged, layouts restored."""

import torch

from depthshrink.models import build_model
from depthshrink.training.layout import channels_last


def test_channels_last_keeps_values_and_restores_layouts():
    model = build_model("tiny_mobilenet", in_channels=1).eval()
    x = torch.randn(4, 1, 32, 32)
    strides = [p.stride() for p in model.parameters()]
    with torch.no_grad():
        reference = model(x)
        with channels_last(model, None):
            assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
            assert [p.stride() for p in model.parameters()] != strides
            inside = model(x)
    assert torch.allclose(inside, reference, atol=1e-5)
    assert [p.stride() for p in model.parameters()] == strides
    assert model.state_dict().keys() == build_model("tiny_mobilenet", in_channels=1).state_dict().keys()


def test_layout_restored_after_an_error():
    model = build_model("tiny_mobilenet", in_channels=1)
    strides = [p.stride() for p in model.parameters()]
    try:
        with channels_last(model):
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    assert [p.stride() for p in model.parameters()] == strides


def test_a_model_trains_after_being_evaluated():
    from depthshrink.training.data import synthetic
    from depthshrink.training.evaluate import accuracy

    model = build_model("tiny_mobilenet", in_channels=1)
    data = synthetic(8, seed=0)
    accuracy(model, data)
    assert not any(p.is_inference() for p in model.parameters())
    model.train()
    images = torch.stack([data[i][0] for i in range(4)])
    model(images).sum().backward()  # no inference tensors left in the parameters
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
