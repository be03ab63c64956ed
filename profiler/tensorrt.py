"""TensorRT 10 through its Python API, with buffers, stream and CUDA events from pycuda.

Build: ``Builder`` → ``create_network`` → ``OnnxParser.parse`` → builder config (workspace
limit, FP16 flag where TensorRT still has it) → ``build_serialized_network``; engines are cached
on disk, keyed by the ONNX file's hash, the TensorRT version, the GPU and the precision.
Run: ``deserialize_cuda_engine`` → ``create_execution_context`` → ``set_tensor_address`` for every
I/O tensor → ``execute_async_v3(stream)``, timed with CUDA events on that stream, replayed as a
CUDA graph when pycuda can capture one (µs-scale blocks are otherwise launch-bound).
Nothing here is imported unless ``--backend tensorrt`` is asked for.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from .._imports import lazy_import
from ..errors import DepthshrinkError
from .base import Backend, Runner, Workload, identity_onnx_workload
from .devices import GpuTarget, check_tensorrt_supports


class TensorRTRunner(Runner):
    def __init__(self, backend: "TensorRTBackend", plan: bytes, inputs: dict[str, np.ndarray]) -> None:
        trt, cuda = backend.trt, backend.cuda
        self.trt, self.cuda = trt, cuda
        self.engine = backend.runtime.deserialize_cuda_engine(plan)
        self.context = self.engine.create_execution_context()
        self.stream = cuda.Stream()
        self.buffers, self.outputs, self.inputs = {}, {}, []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            self.buffers[name] = cuda.mem_alloc(max(1, int(np.prod(shape)) * dtype.itemsize))
            self.context.set_tensor_address(name, int(self.buffers[name]))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append((name, dtype))
            else:
                self.outputs[name] = np.empty(shape, dtype)
        self._upload(inputs)
        self.start, self.end = cuda.Event(), cuda.Event()
        self.graph = self._capture_graph() if backend.cuda_graph else None

    def _upload(self, inputs: dict[str, np.ndarray]) -> None:
        for name, dtype in self.inputs:
            self.cuda.memcpy_htod(self.buffers[name], np.ascontiguousarray(inputs[name], dtype=dtype))

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.stream.handle):
            raise RuntimeError("TensorRT execute_async_v3 failed")

    def _capture_graph(self):
        self._enqueue()  # TensorRT needs one run before capture (it may allocate then)
        self.stream.synchronize()
        if not hasattr(self.stream, "begin_capture"):
            return None
        try:
            self.stream.begin_capture()
            self._enqueue()
            return self.stream.end_capture().instantiate()
        except Exception as exc:  # pycuda without graph support, or a non-capturable engine
            warnings.warn(f"timing without a CUDA graph: {exc}", stacklevel=2)
            return None

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        self._upload(inputs)
        self._enqueue()
        self.stream.synchronize()
        for name, host in self.outputs.items():
            self.cuda.memcpy_dtoh(host, self.buffers[name])
        return [host.astype(np.float32) for host in self.outputs.values()]

    def run_timed(self) -> float:
        self.start.record(self.stream)
        if self.graph is not None:
            self.graph.launch(self.stream)
        else:
            self._enqueue()
        self.end.record(self.stream)
        self.end.synchronize()
        return self.end.time_since(self.start)

    def close(self) -> None:
        for buffer in self.buffers.values():
            buffer.free()
        self.buffers = {}


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, gpu: GpuTarget, precision: str = "fp32", workspace_mb: int = 1024,
                 engine_cache: str | os.PathLike | None = None, cuda_graph: bool = True) -> None:
        self.trt = lazy_import("tensorrt")
        self.cuda = lazy_import("pycuda.driver")
        check_tensorrt_supports(self.trt.__version__, gpu, precision)
        self.gpu, self.precision, self.workspace_mb, self.cuda_graph = gpu, precision, workspace_mb, cuda_graph
        self.cuda.init()
        self.cuda_context = self.cuda.Device(gpu.index).make_context()
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        self.runtime = self.trt.Runtime(self.logger)
        self.cache = Path(engine_cache or Path.home() / ".cache" / "depthshrink" / "engines")
        self.cache.mkdir(parents=True, exist_ok=True)

    def build_engine(self, onnx_path: Path) -> bytes:
        data = Path(onnx_path).read_bytes()
        key = hashlib.sha256(data + f"|{self.trt.__version__}|{self.gpu.name}|{self.precision}".encode())
        cached = self.cache / f"{key.hexdigest()[:32]}.engine"
        if cached.exists():
            return cached.read_bytes()
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(data):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise DepthshrinkError(f"TensorRT cannot parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_mb << 20)
        if self.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise DepthshrinkError(f"TensorRT could not build an engine for {onnx_path}")
        plan = bytes(plan)
        tmp = cached.with_suffix(".tmp")
        tmp.write_bytes(plan)
        os.replace(tmp, cached)
        return plan

    def runner(self, workload: Workload) -> TensorRTRunner:
        return TensorRTRunner(self, self.build_engine(workload.onnx_path), workload.random_inputs())

    def metadata(self) -> dict:
        return {"tool": "tensorrt", "tool_version": self.trt.__version__, "threads": None}

    def empty_workload(self) -> Workload:
        return identity_onnx_workload()

    def close(self) -> None:
        self.cuda_context.pop()
