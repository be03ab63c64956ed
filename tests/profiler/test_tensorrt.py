"""The TensorRT backend through strict stand-ins of tensorrt, pycuda and cuda-python
(:mod:`gpu_standins`); the same conformance test runs against the real ones on a GPU box
(tests/profiler/test_profiler.py, marked tensorrt)."""

import numpy as np
import pytest
import torch
from gpu_standins import KERNEL_MS, LAUNCH_MS, install

from depthshrink import DepthshrinkError
from depthshrink.cli.main import main
from depthshrink.contracts.candidates import Candidate
from depthshrink.contracts.space import ConvShape
from depthshrink.export.bundles import CandidateBlock
from depthshrink.export.onnx import export_onnx
from depthshrink.lut.table import read_lut
from depthshrink.profiler.base import Workload
from depthshrink.profiler.devices import GpuTarget, resolve_gpu
from depthshrink.profiler.timing import TimingProtocol

H100 = GpuTarget(0, "NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3", (9, 0))
FAST = TimingProtocol(warmup_ms=1, min_runs=5, min_time_ms=1)
BLOCK = Candidate(ConvShape(6, 12, 3, 1, 1, 7, 7, 1), "relu6", True)  # two inputs: conv + residual add


def _workload(tmp_path):
    torch.manual_seed(0)
    block = CandidateBlock(BLOCK).eval()
    shapes = BLOCK.input_shapes(2)
    path = tmp_path / "block.onnx"
    export_onnx(block, tuple(torch.randn(*s) for s in shapes.values()), path, list(shapes))
    return block, Workload(BLOCK.key, shapes, path, lambda: block)


@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-5), ("tf32", 1e-5), ("fp16", 2e-2)])
def test_tensorrt_backend_computes_what_pytorch_does_and_releases_the_context(tmp_path, monkeypatch, precision,
                                                                           tolerance):
    from depthshrink.profiler.tensorrt import TensorRTBackend

    state = install(monkeypatch)
    trt = __import__("sys").modules["tensorrt"]
    block, workload = _workload(tmp_path)
    backend = TensorRTBackend(H100, precision, engine_cache=tmp_path / "engines")
    assert state.stack == []  # nothing is held before timing starts
    inputs = workload.random_inputs(seed=1)
    with torch.no_grad():
        expected = block(*(torch.from_numpy(a) for a in inputs.values())).numpy()
    with backend.runner(workload) as runner:
        got = runner.infer(inputs)[0]
        assert runner.calls == int(np.ceil(0.5 / (KERNEL_MS + LAUNCH_MS)))  # a window of ~0.5 ms of calls
    assert np.abs(got - expected).max() <= tolerance * np.abs(expected).max()
    timing = backend.time(workload, FAST)
    # one graph launch per window of calls: the launch cost is amortised, the kernel's remains
    assert KERNEL_MS < timing.latency_ms < KERNEL_MS + LAUNCH_MS / 10
    flags = trt.built[0]["flags"]
    assert ("TF32" in flags) == (precision != "fp32") and ("FP16" in flags) == (precision == "fp16")
    assert {io["format"] for io in trt.built[0]["io"].values()} == ({3} if precision == "fp16" else {0})
    assert backend.metadata()["timing_method"] == "tensorrt-cuda-graph"
    backend.close()
    assert state.stack == [] and state.retained == {0: 0} and state.created == 0  # the primary context, released


def test_tensorrt_without_cuda_graphs_amortises_enqueues(tmp_path, monkeypatch):
    from depthshrink.profiler.tensorrt import TensorRTBackend

    install(monkeypatch, cuda_python=False)
    with pytest.raises(DepthshrinkError, match="cuda-python"):
        TensorRTBackend(H100, "fp32", engine_cache=tmp_path)
    _, workload = _workload(tmp_path)
    backend = TensorRTBackend(H100, "fp32", engine_cache=tmp_path, cuda_graph=False)
    try:
        timing = backend.time(workload, FAST)
        assert timing.latency_ms == pytest.approx(KERNEL_MS + LAUNCH_MS)  # every enqueue launches
        assert backend.metadata()["timing_method"] == "tensorrt-enqueue"
    finally:
        backend.close()


def test_engine_cache_key_holds_everything_that_shapes_an_engine(tmp_path, monkeypatch):
    from depthshrink.profiler.tensorrt import TensorRTBackend

    install(monkeypatch)
    keys = {TensorRTBackend(gpu, precision, workspace, tmp_path).cache_key(b"onnx")
            for gpu in (H100, GpuTarget(0, H100.name, H100.label, (8, 0)))
            for precision in ("fp32", "tf32", "fp16") for workspace in (512, 1024)}
    assert len(keys) == 12
    _, workload = _workload(tmp_path)
    backend = TensorRTBackend(H100, "fp32", engine_cache=tmp_path / "engines")
    try:
        first = backend.build_engine(workload.onnx_path)
        assert backend.build_engine(workload.onnx_path) == first  # from the cache
        assert [p.suffix for p in (tmp_path / "engines").iterdir()] == [".engine"]  # no temporary left
        (tmp_path / "engines" / f"{backend.cache_key(workload.onnx_path.read_bytes())}.engine").write_bytes(b"junk")
        with pytest.raises(DepthshrinkError, match="could not deserialize"):
            backend.runner(workload)
    finally:
        backend.close()


def test_a_gpu_that_only_pycuda_sees_is_found(monkeypatch):
    """A CPU build of torch beside TensorRT and pycuda: the GPU list comes from pycuda."""
    install(monkeypatch, gpus=[("Tesla V100-SXM2-16GB", (7, 0))])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    gpu = resolve_gpu("v100")
    assert (gpu.index, gpu.capability) == (0, (7, 0))
    assert resolve_gpu("0").name == "Tesla V100-SXM2-16GB"


def test_profile_device_with_tensorrt_end_to_end(tmp_path, monkeypatch, capsys):
    state = install(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    lut = tmp_path / "lut.csv"
    args = ["profile-device", "--gpu", "h100", "--backend", "tensorrt", "--model", "tiny_mobilenet", "--resolution",
            "16", "--batch-size", "1", "--lut", str(lut), "--engine-cache", str(tmp_path / "engines"),
            "--warmup-ms", "1", "--min-time-ms", "1", "--min-runs", "3", "--passes", "2", "--validate",
            "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    frame = read_lut(lut)
    assert set(frame["timing_method"]) == {"tensorrt-cuda-graph"} and set(frame["precision"]) == {"fp32"}
    assert set(frame["device"]) == {"h100"} and (frame["latency_ms"] > 0).all()
    assert "sum of LUT entries vs measured whole network" in capsys.readouterr().out
    assert state.stack == []


def test_an_early_error_leaves_no_cuda_context_behind(tmp_path, monkeypatch, capsys):
    """pycuda aborts the process ("context stack was not empty") when a pushed context is left."""
    state = install(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = ["profile-device", "--gpu", "0", "--backend", "tensorrt", "--model", "tiny_mobilenet", "--resolution",
            "1", "--batch-size", "1", "--lut", str(tmp_path / "lut.csv")]
    assert main(args) == 1
    assert "too small" in capsys.readouterr().err
    assert state.stack == [] and state.created == 0


def test_torch_runner_leaves_the_callers_module_as_it_was():
    """The torch backend's module for the fixed part shares its submodules with the traced model:
    moving it in place (here to float64; on a GPU to CUDA) broke the next trace."""
    import depthshrink
    from depthshrink.export.bundles import module_builder
    from depthshrink.models import build_model
    from depthshrink.profiler.bundle import Entry
    from depthshrink.profiler.pytorch import TorchRunner

    model = build_model("tiny_mobilenet").eval()
    space = depthshrink.trace(model, torch.zeros(1, 3, 16, 16), model_info={"name": "tiny_mobilenet"})
    build = module_builder(model, space)
    fixed = Entry("fixed", "fixed", "fixed.onnx", {"input": [1, 3, 16, 16], "chain_output": [1, 24, 8, 8]})
    inputs = {name: np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
              for name, shape in fixed.inputs.items()}
    TorchRunner(build(fixed), inputs, torch.device("cpu"), torch.float64).close()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    build(fixed)  # traced again
    network = Entry("network_original", "network", "n.onnx", {"input": [1, 3, 16, 16]})
    TorchRunner(build(network), {"input": inputs["input"]}, torch.device("cpu"), torch.float64).close()
    assert all(p.dtype == torch.float32 for p in model.parameters())
