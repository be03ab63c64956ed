"""What a network costs: parameters, FLOPs, and its latency and throughput measured in ONNX
Runtime on this CPU (exported with the batch size it is timed at), plus the CPU's measured
peak FLOP/s for hardware utilisation."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..profiler.timing import Timing, TimingProtocol, interleaved
from .onnx import export_onnx


@dataclass(frozen=True)
class Cost:
    parameters: int
    flops: int                     # per image: 2 x multiply-adds of convs and linear layers
    latency_ms: float              # batch 1, median
    latency_p10_ms: float
    latency_p90_ms: float
    throughput_batch_size: int
    throughput_ips: float          # images per second at that batch size
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``example`` (batch 1): 2 x multiply-adds of convs and linears."""
    total = 0

    def count(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += 2 * output.numel() * per_output
        elif isinstance(module, nn.Linear):
            total += 2 * output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    weight = next(model.parameters(), None)
    if weight is not None:  # the model's device and dtype (a GPU or half model)
        example = example.to(device=weight.device, dtype=weight.dtype)
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return total


def onnx_timings(runs: list[tuple[nn.Module, tuple[int, ...]]], threads: int, protocol: TimingProtocol) -> list[Timing]:
    """Each (model, input shape) exported and timed whole in ONNX Runtime; with several passes in
    ``protocol`` the models are timed in interleaved passes, so they see the same phases of a
    shared machine (see :mod:`depthshrink.profiler.timing`)."""
    from ..profiler.base import Workload
    from ..profiler.onnxruntime import OnnxRuntimeBackend

    with tempfile.TemporaryDirectory() as folder:
        workloads = []
        for i, (model, input_shape) in enumerate(runs):
            path = Path(folder) / f"network{i}.onnx"
            export_onnx(model, torch.zeros(input_shape), path)
            workloads.append(Workload(f"network{i}", {"input": list(input_shape)}, path))
        return interleaved(workloads, OnnxRuntimeBackend(threads).time, protocol)


def costs(models: list[nn.Module], image_shape: tuple[int, int, int], threads: int = 1,
          protocol: TimingProtocol = TimingProtocol(300, 20, 1000), throughput_batch_size: int = 64,
          time_runs: Callable[[list, TimingProtocol], list[Timing]] | None = None) -> list[Cost]:
    """The cost of each model; all latencies and throughputs are timed in the same passes, by
    ``time_runs`` ((model, input shape) pairs → their timings; default: ONNX Runtime with ``threads``)."""
    runs = [(model, (batch, *image_shape)) for model in models for batch in (1, throughput_batch_size)]
    timings = time_runs(runs, protocol) if time_runs else onnx_timings(runs, threads, protocol)
    return [Cost(parameters(model), flops(model, torch.zeros(1, *image_shape)), latency.latency_ms,
                 latency.latency_p10_ms, latency.latency_p90_ms, throughput_batch_size,
                 1000.0 * throughput_batch_size / batched.latency_ms, threads)
            for model, latency, batched in zip(models, timings[::2], timings[1::2])]


def peak_flops_per_s(threads: int = 1, size: int = 1024, protocol: TimingProtocol = TimingProtocol(300, 10, 1000)) -> float:
    """The CPU's achievable FLOP/s: a large single-precision matrix product in ONNX Runtime."""
    import onnx
    from onnx import TensorProto, helper

    from ..profiler.base import Workload
    from ..profiler.onnxruntime import OnnxRuntimeBackend

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "peak",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "matmul.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), os.fspath(path))
        timing = OnnxRuntimeBackend(threads).time(Workload("matmul", {"a": [size, size], "b": [size, size]}, path),
                                                  protocol)
    return 2.0 * size ** 3 / (timing.latency_ms / 1000.0)


# how the torch backend times (its rows' timing_method) → whether whole networks run as one CUDA graph
TORCH_TIMING_METHODS = {"host-clock": False, "cuda-events": False, "cuda-graph": True}


def time_network(model: nn.Module, input_shape: tuple[int, ...], setting: dict, protocol: TimingProtocol) -> Timing:
    """One whole network timed as a table of ``setting`` (its backend, precision and threads) times
    its whole networks: ONNX Runtime on this CPU, or PyTorch on this CPU or GPU."""
    from ..errors import DepthshrinkError
    from ..profiler.base import Workload

    backend_name = setting.get("backend")
    if backend_name == "onnxruntime":
        from ..profiler.base import CacheFlush
        from ..profiler.onnxruntime import OnnxRuntimeBackend

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "network.onnx"
            export_onnx(model, torch.zeros(input_shape), path)
            backend = OnnxRuntimeBackend(int(setting.get("threads") or 1), cache_flush=CacheFlush.OFF)
            return backend.time(Workload("network", {"input": list(input_shape)}, path), protocol)
    if backend_name == "torch":
        from ..contracts.setting import on_cpu
        from ..profiler.devices import resolve_gpu
        from ..profiler.pytorch import TorchBackend

        cpu = on_cpu(setting)
        method = setting.get("timing_method") or ("host-clock" if cpu else "cuda-graph")
        if method not in TORCH_TIMING_METHODS:  # e.g. the shipped H100 tables' one eager call per event pair
            raise DepthshrinkError(f"a table timed '{method}' cannot be verified: this version times whole networks "
                                   f"{' or '.join(sorted(TORCH_TIMING_METHODS))}; profile the device again")
        device = "cpu" if cpu else f"cuda:{resolve_gpu(str(setting['device'])).index}"
        backend = TorchBackend(device, int(setting["threads"]) if cpu and setting.get("threads") else None,
                               setting.get("precision") or "fp32", cuda_graph=TORCH_TIMING_METHODS[method])
        try:
            return backend.time(Workload("network", {"input": list(input_shape)}, build_module=lambda: model), protocol)
        finally:
            backend.close()
    raise DepthshrinkError(f"timing a whole network on the {backend_name} backend is not supported here: "
                           "verify with an onnxruntime or torch table")
