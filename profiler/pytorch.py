"""PyTorch eager: ``inference_mode``, host clock on the CPU, CUDA events on a GPU."""

from __future__ import annotations

import numpy as np

from .base import Backend, Runner, Workload
from .timing import host_timed


class TorchRunner(Runner):
    def __init__(self, module, inputs: dict[str, np.ndarray], device, dtype) -> None:
        import torch

        self.torch = torch
        self.module = module.eval().to(device=device, dtype=dtype)
        self.device = device
        self.tensors = [torch.from_numpy(a).to(device=device, dtype=dtype) for a in inputs.values()]
        if device.type == "cuda":
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        self._host = host_timed(self._call)

    def _call(self):
        with self.torch.inference_mode():
            return self.module(*self.tensors)

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        tensors = [self.torch.from_numpy(a).to(self.device, dtype=self.tensors[0].dtype) for a in inputs.values()]
        with self.torch.inference_mode():
            outputs = self.module(*tensors)
        outputs = outputs if isinstance(outputs, (tuple, list)) else [outputs]
        return [o.float().cpu().numpy() for o in outputs]

    def run_timed(self) -> float:
        if self.device.type != "cuda":
            return self._host()
        stream = self.torch.cuda.current_stream(self.device)
        self.start.record(stream)
        self._call()
        self.end.record(stream)
        self.end.synchronize()
        return self.start.elapsed_time(self.end)


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, device: str = "cpu", threads: int | None = None, precision: str = "fp32") -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.precision = precision
        if precision == "fp16" and self.device.type != "cuda":
            from ..errors import DepthshrinkError
            raise DepthshrinkError("--precision fp16 needs a GPU with the torch backend")
        self._threads_before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads() if self.device.type == "cpu" else None

    def runner(self, workload: Workload) -> TorchRunner:
        if workload.build_module is None:
            from ..errors import DepthshrinkError
            raise DepthshrinkError(f"the torch backend needs the PyTorch model for '{workload.key}': "
                                   "profile with --model instead of --bundle")
        dtype = self.torch.float16 if self.precision == "fp16" else self.torch.float32
        return TorchRunner(workload.build_module(), workload.random_inputs(), self.device, dtype)

    def metadata(self) -> dict:
        return {"tool": "torch", "tool_version": self.torch.__version__, "threads": self.threads}

    def empty_workload(self) -> Workload:
        return Workload("empty", {"input": [1, 1, 1, 1]}, build_module=self.torch.nn.Identity)

    def close(self) -> None:
        self.torch.set_num_threads(self._threads_before)  # a process-wide setting: give it back
