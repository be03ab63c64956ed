"""PyTorch: ``inference_mode``; the host clock on the CPU; CUDA events on a GPU.

On a GPU a row is timed the way a deployment runs it: ``cudnn.benchmark`` on, activations in
channels-last, TF32 off for ``fp32`` (its own precision, ``tf32``), and the calls replayed as one
CUDA graph (``cuda_graph=False`` times them eagerly). One timing is a window of back-to-back calls
between one pair of events, divided by their count: a µs-scale block then pays neither the graph's
launch nor, eagerly, one Python dispatch gap per event pair, but exactly what it adds inside a
network. The runner works on a copy of the module: the caller's module (which may share its
submodules with a traced model) keeps its device and dtype.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np

from ..errors import DepthshrinkError
from .base import Backend, Runner, Workload
from .timing import GPU_PRECISIONS, calls_per_window, host_timed


class TorchRunner(Runner):
    """A copy of ``module`` on ``device`` in ``dtype`` with its inputs bound; on a GPU, its calls
    captured as one CUDA graph (``cuda_graph``) or timed eagerly."""

    def __init__(self, module, inputs: dict[str, np.ndarray], device, dtype, channels_last: bool = False,
                 cuda_graph: bool = False) -> None:
        import torch

        self.torch, self.device, self.dtype = torch, device, dtype
        self.format = torch.channels_last if channels_last else torch.contiguous_format
        self.module = copy.deepcopy(module).eval().to(device=device, dtype=dtype, memory_format=self.format)
        self.tensors = self._bind(inputs)
        self.calls, self.graph = 1, None
        if device.type != "cuda":
            self._host = host_timed(self._call)
            return
        self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        self._warm_up()
        self.calls = calls_per_window(self._eager_ms(1))
        if cuda_graph:
            self.graph = self._capture()

    def _bind(self, inputs: dict[str, np.ndarray]) -> list:
        tensors = [self.torch.from_numpy(a).to(device=self.device, dtype=self.dtype) for a in inputs.values()]
        return [t.contiguous(memory_format=self.format) if t.dim() == 4 else t for t in tensors]

    def _call(self):
        with self.torch.inference_mode():
            return self.module(*self.tensors)

    def _warm_up(self) -> None:
        """cuDNN picks its algorithms (``benchmark``) on the first calls, off the capture stream."""
        torch = self.torch
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._call()
        torch.cuda.current_stream(self.device).wait_stream(side)
        torch.cuda.synchronize(self.device)

    def _capture(self):
        torch = self.torch
        graph = torch.cuda.CUDAGraph()
        try:
            with warnings.catch_warnings(), torch.cuda.graph(graph):
                warnings.filterwarnings("ignore", "The CUDA Graph is empty")  # the call-overhead workload
                for _ in range(self.calls):  # outputs are not kept: the graph's pool reuses them
                    self._call()
        except RuntimeError as exc:
            raise DepthshrinkError(f"cannot capture this workload as a CUDA graph ({str(exc).splitlines()[0]}): "
                                   "profile with --no-cuda-graph") from None
        return graph

    def _eager_ms(self, calls: int) -> float:
        stream = self.torch.cuda.current_stream(self.device)
        self.start.record(stream)
        for _ in range(calls):
            self._call()
        self.end.record(stream)
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / calls

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        tensors = self._bind(inputs)
        with self.torch.inference_mode():
            outputs = self.module(*tensors)
        outputs = outputs if isinstance(outputs, (tuple, list)) else [outputs]
        return [o.float().cpu().numpy() for o in outputs]

    def run_timed(self) -> float:
        if self.device.type != "cuda":
            return self._host()
        if self.graph is None:
            return self._eager_ms(self.calls)
        stream = self.torch.cuda.current_stream(self.device)
        self.start.record(stream)
        self.graph.replay()
        self.end.record(stream)
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / self.calls

    def close(self) -> None:
        self.graph = self.module = self.tensors = None


class TorchBackend(Backend):
    """PyTorch on the CPU (``threads``) or a GPU (``precision``, ``cuda_graph``)."""

    name = "torch"

    def __init__(self, device: str = "cpu", threads: int | None = None, precision: str = "fp32",
                 cuda_graph: bool = True) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.precision = precision
        gpu = self.device.type == "cuda"
        if precision not in GPU_PRECISIONS:
            raise DepthshrinkError(f"the torch backend times precisions {', '.join(GPU_PRECISIONS)}, not {precision}")
        if precision != "fp32" and not gpu:
            raise DepthshrinkError(f"--precision {precision} needs a GPU with the torch backend")
        self.cuda_graph = cuda_graph and gpu
        self._threads_before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads() if not gpu else None
        self._flags_before = _gpu_flags(torch) if gpu else None
        self._device_before = torch.cuda.current_device() if gpu else None
        if gpu:  # process-wide switches, given back by close()
            torch.cuda.set_device(self.device)  # graphs are captured on the current device
            _set_gpu_flags(torch, benchmark=True, tf32=precision == "tf32")

    def runner(self, workload: Workload) -> TorchRunner:
        if workload.build_module is None:
            raise DepthshrinkError(f"the torch backend needs the PyTorch model for '{workload.key}': "
                                   "profile with --model instead of --bundle")
        dtype = self.torch.float16 if self.precision == "fp16" else self.torch.float32
        return TorchRunner(workload.build_module(), workload.random_inputs(), self.device, dtype,
                           channels_last=self.device.type == "cuda", cuda_graph=self.cuda_graph)

    def metadata(self) -> dict:
        if self.device.type != "cuda":
            method, layout = "host-clock", "nchw"
        else:
            method, layout = ("cuda-graph" if self.cuda_graph else "cuda-events"), "nhwc"
        return {"tool": "torch", "tool_version": self.torch.__version__, "threads": self.threads,
                "timing_method": method, "layout": layout}

    def empty_workload(self) -> Workload:
        return Workload("empty", {"input": [1, 1, 1, 1]}, build_module=self.torch.nn.Identity)

    def close(self) -> None:
        self.torch.set_num_threads(self._threads_before)  # a process-wide setting: give it back
        if self._flags_before is not None:
            _set_gpu_flags(self.torch, *self._flags_before)
            self.torch.cuda.set_device(self._device_before)


def _gpu_flags(torch) -> tuple[bool, bool, bool]:
    return torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def _set_gpu_flags(torch, benchmark: bool, tf32: bool, matmul_tf32: bool | None = None) -> None:
    torch.backends.cudnn.benchmark = benchmark
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32 if matmul_tf32 is None else matmul_tf32
