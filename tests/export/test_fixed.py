"""The fixed part times everything a network runs that the LUT's conv rows do not."""

import numpy as np
import pytest
import torch

import depthshrink
from depthshrink.export.bundles import export_bundle
from depthshrink.export.fixed import fixed_part
from depthshrink.models import build_model
from depthshrink.profiler.onnxruntime import session_from_onnx


def _space(name: str, resolution: int):
    model = build_model(name).eval()
    return model, depthshrink.trace(model, torch.zeros(1, 3, resolution, resolution), model_info={"name": name})


def _called(module: torch.fx.GraphModule) -> set[str]:
    return {n.target for n in module.graph.nodes if n.op == "call_module"}


@pytest.mark.parametrize("name,resolution,gaps", [("mobilenet_v3_small", 64, 9), ("mobilenet_v2", 64, 0),
                                                  ("efficientnet_lite0", 64, 0)])
def test_every_module_with_weights_is_timed_by_a_row_or_the_fixed_part(name, resolution, gaps):
    """MobileNetV3's squeeze-and-excitation gates sit inside the chain at barriers: no row timed
    them and the fixed part (stem and head only) did not either, so a LUT summed MobileNetV3-Small at
    64 px about 19% short of its measured latency (`profile-device ... --validate`, docs/profiling.md)."""
    model, space = _space(name, resolution)
    fixed = fixed_part(model, space)
    rows = {layer.module for layer in space.layers} | {layer.batchnorm for layer in space.layers if layer.batchnorm}
    weighted = {n for n, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))}
    assert weighted <= rows | _called(fixed.module)
    assert not rows & _called(fixed.module)  # and nothing is timed twice
    assert len(fixed.gap_inputs) == gaps


def test_the_fixed_part_computes_the_gates_from_the_tensors_the_chain_gives_them():
    model, space = _space("mobilenet_v3_small", 64)
    fixed = fixed_part(model, space)
    inputs = fixed.input_shapes([2, 3, 64, 64], [2, 96, 2, 2])
    assert inputs["gap_input0"][0] == 2 and len(inputs) == 2 + len(fixed.gap_inputs)
    tensors = [torch.randn(*shape) for shape in inputs.values()]
    with torch.no_grad():
        outputs = fixed.module(*tensors)
    assert len(outputs) == 2 + len(fixed.gap_inputs)  # one product per gate
    for gate_input, product in zip(tensors[2:], outputs[2:]):
        assert product.shape == gate_input.shape
        # x * hardsigmoid(...) lies between 0 and x, elementwise
        assert torch.all(product.abs() <= gate_input.abs() + 1e-6)


def test_the_bundle_exports_the_fixed_part_with_its_gap_inputs_and_onnx_runtime_runs_it(tmp_path):
    model, space = _space("mobilenet_v3_small", 64)
    bundle = export_bundle(model, space, 1, tmp_path, networks=False, progress=False)
    entry = next(e for e in bundle.entries if e.op == "fixed")
    assert list(entry.inputs)[:2] == ["input", "chain_output"] and len(entry.inputs) == 11
    session = session_from_onnx(tmp_path / entry.file)
    assert [i.name for i in session.get_inputs()] == list(entry.inputs)
    feeds = {name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)
             for name, shape in entry.inputs.items()}
    assert len(session.run(None, feeds)) == 11


class _LayerScale(torch.nn.Module):
    """``gamma * x`` inside the chain: a parameter read by an op no row times."""

    def __init__(self) -> None:
        super().__init__()
        def cbr(i, o, k=3, s=1):
            return torch.nn.Sequential(torch.nn.Conv2d(i, o, k, s, k // 2, bias=False), torch.nn.BatchNorm2d(o),
                                       torch.nn.ReLU())
        self.stem, self.a, self.b, self.c, self.head = cbr(3, 8, s=2), cbr(8, 8), cbr(8, 8), cbr(8, 8), cbr(8, 16, 1)
        self.gamma = torch.nn.Parameter(torch.ones(8, 1, 1))

    def forward(self, x):
        x = self.a(self.stem(x))
        x = self.gamma * x  # gamma read here, inside the chain (first, it would be read before the stem)
        return self.head(self.c(self.b(x))).mean((2, 3))


def test_a_parameter_read_inside_the_chain_is_copied_not_made_an_input(tmp_path):
    """The parameter became a gap input the graph never used: ONNX dropped it, the manifest kept it,
    and ONNX Runtime refused the fixed part ("Invalid input name: gap_input0")."""
    import warnings

    model = _LayerScale().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the product is a barrier
        space = depthshrink.trace(model, torch.zeros(1, 3, 32, 32), model_info={"name": "layerscale"})
    entry = next(e for e in export_bundle(model, space, 2, tmp_path, networks=False, progress=False).entries
                 if e.op == "fixed")
    session = session_from_onnx(tmp_path / entry.file)
    assert [i.name for i in session.get_inputs()] == list(entry.inputs) == ["input", "chain_output", "gap_input0"]
    assert entry.inputs["gap_input0"] == [2, 8, 16, 16]
    feeds = {name: np.zeros(shape, np.float32) for name, shape in entry.inputs.items()}
    assert len(session.run(None, feeds)) == 3
