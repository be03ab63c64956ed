"""The merged model exported to ONNX computes in ONNX Runtime what it computes in PyTorch."""

import pytest
import torch
from helpers import HandNet, block_segments, masks_for, maximal_segments, randomize

import depthshrink
from depthshrink.export.onnx import export_onnx, onnx_relative_error
from depthshrink.models import build_model


@pytest.mark.parametrize("name,resolution,segments", [
    ("mobilenet_v2_small", 28, block_segments),
    ("mobilenet_v2", 45, maximal_segments),
    ("hand", 21, maximal_segments),
])
def test_merged_onnx_matches_pytorch(tmp_path, name, resolution, segments):
    model = randomize(HandNet() if name == "hand" else build_model(name, width_mult=0.5), seed=4)
    space = depthshrink.trace(model, torch.zeros(1, 3, resolution, resolution))
    merged = depthshrink.merge(depthshrink.apply_masks(model, space, masks_for(space, segments(space), True)).eval())
    x = torch.randn(3, 3, resolution, resolution)
    export_onnx(merged, x, tmp_path / "merged.onnx")
    assert onnx_relative_error(merged, tmp_path / "merged.onnx", x) <= 1e-4
    import onnx

    graph = onnx.load(tmp_path / "merged.onnx").graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("Conv") == len(segments(space)) + 2 and "BatchNormalization" not in ops
