"""ONNX export: a file whole or not at all."""

import pytest
import torch
from torch import nn

from depthshrink.export.onnx import export_onnx


def test_an_export_that_fails_half_way_leaves_no_file(tmp_path, monkeypatch):
    """A killed export left a torn .onnx in place, which a later bundle export kept as done."""
    path = tmp_path / "model.onnx"
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    export_onnx(model, torch.zeros(1, 3, 8, 8), path)
    whole = path.read_bytes()

    def torn(model, inputs, target, **kwargs):
        with open(target, "wb") as handle:
            handle.write(whole[:10])
        raise KeyboardInterrupt  # as a Ctrl-C half way

    monkeypatch.setattr(torch.onnx, "export", torn)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(model, torch.zeros(1, 3, 8, 8), tmp_path / "other.onnx")
    assert list(tmp_path.iterdir()) == [path] and path.read_bytes() == whole
