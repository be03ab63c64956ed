"""The profiler: configurations, backend conformance, a session, device checks, the torch-free device side."""

import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import tiny_space as _tiny_space

import depthshrink
from depthshrink import DepthshrinkError
from depthshrink.cli.main import main
from depthshrink.contracts.candidates import Candidate, distinct_candidates, span_candidates
from depthshrink.contracts.space import ConvShape
from depthshrink.export.bundles import CandidateBlock, export_bundle, module_builder
from depthshrink.export.onnx import export_onnx
from depthshrink.lut.table import read_lut
from depthshrink.profiler.base import Workload
from depthshrink.profiler.devices import GpuTarget, check_tensorrt_supports, resolve_gpu
from depthshrink.profiler.session import Settings, profile
from depthshrink.profiler.timing import TimingProtocol
from depthshrink.profiler.validation import validate

FAST = TimingProtocol(warmup_ms=5, min_runs=5, min_time_ms=5)
BLOCKS = [
    Candidate(ConvShape(4, 8, 3, 1, 1, 9, 9, 1), "relu6", False),
    Candidate(ConvShape(8, 8, 5, 2, 8, 9, 9, 2), None, False),
    Candidate(ConvShape(6, 6, 3, 1, 1, 7, 7, 1), "hardswish", True),
]


def test_distinct_candidates_cover_every_span():
    model, space = _tiny_space()
    candidates = distinct_candidates(space)
    assert len({c.key for c in candidates}) == len(candidates)
    assert set(span_candidates(space).values()) == set(candidates)
    assert len(candidates) < len(space.spans)  # shapes shared between spans are timed once
    adds = [c for (s, e), c in span_candidates(space).items() if space.adds_residual_after(s, e)]
    assert adds and all(c.residual_add for c in adds)
    assert BLOCKS[2].input_shapes(2) == {"input": [2, 6, 7, 7], "skip": [2, 6, 7, 7]}


def _backends():
    from depthshrink.profiler.onnxruntime import OnnxRuntimeBackend
    from depthshrink.profiler.pytorch import TorchBackend

    params = [pytest.param(lambda: OnnxRuntimeBackend(1), id="onnxruntime"),
              pytest.param(lambda: TorchBackend("cpu", 1), id="torch-cpu"),
              pytest.param(lambda: TorchBackend("cuda:0"), id="torch-cuda", marks=pytest.mark.cuda)]

    def tensorrt():
        import importlib.util

        from depthshrink.profiler.devices import resolve_gpu
        from depthshrink.profiler.tensorrt import TensorRTBackend
        return TensorRTBackend(resolve_gpu("0"), cuda_graph=importlib.util.find_spec("cuda.bindings") is not None)

    params.append(pytest.param(tensorrt, id="tensorrt", marks=[pytest.mark.cuda, pytest.mark.tensorrt]))
    return params


@pytest.mark.parametrize("make_backend", _backends())
def test_every_backend_computes_what_pytorch_does(tmp_path, make_backend):
    backend = make_backend()
    try:
        for index, candidate in enumerate(BLOCKS):
            torch.manual_seed(index)
            block = CandidateBlock(candidate).eval()
            shapes = candidate.input_shapes(2)
            path = tmp_path / f"{candidate.key}.onnx"
            export_onnx(block, tuple(torch.randn(*s) for s in shapes.values()), path, list(shapes))
            workload = Workload(candidate.key, shapes, path, lambda block=block: block)
            inputs = workload.random_inputs(seed=index)
            with torch.no_grad():
                expected = block(*(torch.from_numpy(a) for a in inputs.values())).numpy()
            with backend.runner(workload) as runner:
                got = runner.infer(inputs)[0]
            assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
            timing = backend.time(workload, FAST)
            assert np.isfinite(timing.latency_ms) and timing.latency_ms > 0 and timing.runs >= 5
            assert timing.latency_p10_ms <= timing.latency_ms <= timing.latency_p90_ms
        assert backend.call_overhead_ms(FAST) > 0
    finally:
        backend.close()


def test_bundles_of_two_batch_sizes_share_a_folder(tmp_path):
    from depthshrink.profiler.bundle import load_bundle

    model, space = _tiny_space()
    export_bundle(model, space, 1, tmp_path, networks=False, progress=False)
    export_bundle(model, space, 4, tmp_path, networks=False, progress=False)
    bundle = load_bundle(tmp_path)
    assert bundle.batch_size == 4
    import onnx
    for entry in bundle.entries:
        graph_input = onnx.load(bundle.path(entry)).graph.input[0]
        assert graph_input.type.tensor_type.shape.dim[0].dim_value == 4


def test_a_bundle_exported_again_and_killed_half_way_is_no_bundle(tmp_path, monkeypatch):
    """The fixed part and networks were rewritten before the manifest: a re-export killed between them
    left the old manifest naming files of the new export."""
    import depthshrink.export.bundles as bundles
    from depthshrink.profiler.bundle import load_bundle

    model, space = _tiny_space()
    export_bundle(model, space, 1, tmp_path, networks=False, progress=False)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bundles, "export_onnx", killed)
    with pytest.raises(KeyboardInterrupt):
        export_bundle(model, space, 1, tmp_path, networks=False, progress=False)
    with pytest.raises(DepthshrinkError, match="is not a profiling bundle"):
        load_bundle(tmp_path)


def test_session_measures_once_resumes_and_validates(tmp_path):
    from depthshrink.profiler.onnxruntime import OnnxRuntimeBackend

    model, space = _tiny_space()
    bundle = export_bundle(model, space, 1, tmp_path / "bundle", progress=False)
    backend, lut = OnnxRuntimeBackend(1), tmp_path / "lut.csv"
    settings = Settings("cpu-test", 1, FAST, progress=False)
    first = profile(bundle, backend, lut, settings)
    assert len(first.measured) == len(distinct_candidates(space)) + 1 and first.skipped == 0
    again = profile(bundle, backend, lut, settings, module_builder(model, space))
    assert again.measured.empty and again.skipped == len(first.measured)
    frame = read_lut(lut)
    assert set(frame["op"]) == {"conv", "fixed"}
    assert frame.loc[frame["op"] == "fixed", "model"].item() == "tiny_mobilenet@1x,1000cls"
    assert (frame["call_overhead_ms"] > 0).all() and (frame["tool"] == "onnxruntime").all()
    results = validate(bundle, backend, lut, settings)
    assert [r["network"] for r in results] == ["original", "merged_blocks"]
    assert all(r["predicted_ms"] > 0 and np.isfinite(r["error_pct"]) for r in results)
    assert (tmp_path / "lut.validation.json").exists()


def test_gpu_selection_and_tensorrt_compatibility():
    gpus = [("Tesla V100-SXM2-16GB", (7, 0)), ("NVIDIA H200", (9, 0))]
    assert resolve_gpu("v100", gpus) == GpuTarget(0, "Tesla V100-SXM2-16GB", "v100", (7, 0))
    assert resolve_gpu("1", gpus).label == "nvidia-h200"
    with pytest.raises(DepthshrinkError, match="the visible GPU\\(s\\) are 'NVIDIA H200'; none is a v100"):
        resolve_gpu("v100", gpus[1:])
    with pytest.raises(DepthshrinkError, match="no CUDA GPU is visible"):
        resolve_gpu("v100", [])
    with pytest.raises(DepthshrinkError, match="none is a l4"):
        resolve_gpu("l4", [("NVIDIA L40S", (8, 9))])  # whole name tokens, not substrings
    with pytest.raises(DepthshrinkError, match="none is a a10"):
        resolve_gpu("a10", [("NVIDIA A100-SXM4-80GB", (8, 0))])
    assert resolve_gpu("rtx 4090", [("NVIDIA GeForce RTX 4090", (8, 9))]).label == "rtx-4090"
    v100 = resolve_gpu("v100", gpus)
    check_tensorrt_supports("10.4.0", v100, "fp16")
    with pytest.raises(DepthshrinkError, match="Volta support was removed in TensorRT 10.5"):
        check_tensorrt_supports("10.5.0", v100, "fp32")
    with pytest.raises(DepthshrinkError, match="precision from the ONNX model"):
        check_tensorrt_supports("11.1.0", resolve_gpu("h200", gpus), "fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
@pytest.mark.parametrize("args,message", [
    (["--gpu", "v100", "--backend", "torch"], "--gpu v100: no CUDA GPU is visible"),
    (["--gpu", "v100"], "pip install 'depthshrink[tensorrt]'"),
    (["--cpu", "--backend", "tensorrt"], "the tensorrt backend needs --gpu"),
    (["--cpu", "--bundle", "nowhere"], "nowhere is not a profiling bundle"),
    (["--cpu", "--model", "tiny_mobilenet", "--resolution", "16", "--lut", "/no/such/dir/lut.csv"],
     "folder /no/such/dir does not exist"),
])
def test_bad_input_is_one_clear_line(tmp_path, capsys, args, message):
    full = ["profile-device", *args, "--batch-size", "1", "--no-progress"]
    if "--lut" not in args:
        full += ["--lut", str(tmp_path / "lut.csv")]
    if "--model" not in args and "--bundle" not in args:
        full += ["--model", "tiny_mobilenet", "--resolution", "16"]
    assert main(full) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_corrupt_lut_is_refused_and_left_alone(tmp_path, capsys):
    lut = tmp_path / "lut.csv"
    lut.write_text("name,value\nx,1\n")
    assert main(["profile-device", "--cpu", "--model", "tiny_mobilenet", "--resolution", "16",
                 "--batch-size", "1", "--lut", str(lut), "--no-progress"]) == 1
    assert "not a depthshrink LUT" in capsys.readouterr().err
    assert lut.read_text() == "name,value\nx,1\n"


def test_a_lut_for_another_resolution_or_model_is_named(tmp_path):
    from depthshrink.lut.table import LatencyTable, check_covers
    from depthshrink.profiler.onnxruntime import OnnxRuntimeBackend

    model, space = _tiny_space()
    bundle = export_bundle(model, space, 1, tmp_path / "bundle", networks=False, progress=False)
    profile(bundle, OnnxRuntimeBackend(1), tmp_path / "lut.csv", Settings("cpu-test", 1, FAST, progress=False))
    table = LatencyTable.read(tmp_path / "lut.csv").select()
    check_covers(table, space, bundle.model_label)  # complete: no error
    other = depthshrink.trace(model, torch.zeros(1, 3, 24, 24))
    with pytest.raises(DepthshrinkError, match="not measured for this input size: the chain starts at 12x12, "
                                               "the LUT has feature maps of 8, 4"):
        check_covers(table, other, bundle.model_label)
    with pytest.raises(DepthshrinkError, match="no fixed-part row for mobilenet_v2@1x"):
        check_covers(table, space, "mobilenet_v2@1x,1000cls")


def test_the_device_side_runs_without_torch(tmp_path):
    """A box with ONNX Runtime (or TensorRT), numpy and pandas but no PyTorch profiles a bundle."""
    model, space = _tiny_space()
    export_bundle(model, space, 1, tmp_path / "bundle", networks=False, progress=False)
    script = ("import sys\n"
              "sys.modules['torch'] = None\n"
              "from depthshrink.cli.main import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    result = subprocess.run([sys.executable, "-c", script, "profile-device", "--cpu", "--bundle",
                             str(tmp_path / "bundle"), "--batch-size", "1", "--lut", str(tmp_path / "lut.csv"),
                             "--warmup-ms", "5", "--min-time-ms", "5", "--no-progress"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    frame = read_lut(tmp_path / "lut.csv")
    assert len(frame) == len(distinct_candidates(space)) + 1
    assert (frame["op"] == "conv").sum() == len(distinct_candidates(space))  # rows a search can use


def test_a_manifest_edited_by_hand_is_refused_in_one_line(tmp_path):
    """A KeyError, ValueError, TypeError or StopIteration for a manifest edited by hand; in_channels "abc" went
    into the LUT (which no command could read after); a batch edited to 8 wrote rows of batch-1 timings."""
    import json

    from depthshrink.profiler.bundle import MANIFEST, load_bundle

    model, space = _tiny_space()
    export_bundle(model, space, 1, tmp_path / "bundle", networks=True, progress=False)
    good = json.loads((tmp_path / "bundle" / MANIFEST).read_text())
    conv = next(i for i, e in enumerate(good["entries"]) if e["op"] == "conv")
    network = next(i for i, e in enumerate(good["entries"]) if e["op"] == "network")

    def entry(index, **change):
        entries = [dict(e) for e in good["entries"]]
        entries[index].update(change)
        return {"entries": entries}

    for change, said in (({"model_label": None}, "model_label (a text) are needed"),
                         ({"batch_size": "one"}, "batch_size must be a positive integer, not 'one'"),
                         ({"entries": None}, "entries must be a non-empty list"),
                         ({"batch_size": 8}, "are not of batch 8, the manifest's"),
                         (entry(conv, in_channels="abc"), "must be integers"),
                         (entry(conv, inputs={}), "inputs must map names to shapes"),
                         (entry(network, segments=[[0, "x"]]), "segments must be [start, end] pairs"),
                         ({"entries": [e for e in good["entries"] if e["op"] != "fixed"]}, "needs its fixed entry")):
        (tmp_path / "bundle" / MANIFEST).write_text(json.dumps({**good, **change}))
        with pytest.raises(DepthshrinkError, match=re.escape(said)):
            load_bundle(tmp_path / "bundle")
