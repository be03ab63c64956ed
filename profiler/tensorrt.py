"""TensorRT 10 through its Python API; device memory, stream and CUDA events from pycuda, in the
GPU's primary context (the one PyTorch and the CUDA runtime use too).

NOT YET RUN ON A GPU: TensorRT cannot be installed where this was written. Every name below was
checked against TensorRT's, pycuda's and cuda-python's sources (see docs/gpu.md), and the tests
drive it through a strict stand-in that refuses what those APIs refuse.

Build (:meth:`TensorRTBackend.build_engine`): ``Builder`` → ``create_network(0)`` → ``OnnxParser.parse``
→ builder config (workspace; TF32 cleared for ``fp32``, its own precision ``tf32``; ``FP16`` and
channels-last half I/O for ``fp16``, so a block pays no reformat of its own) →
``build_serialized_network``. Engines are cached on disk under a key of everything that shapes
them (ONNX bytes, TensorRT version, GPU and compute capability, precision, flags, workspace).
Time (:class:`TensorRTRunner`): ``set_tensor_address`` for every I/O tensor, then a window of
back-to-back ``execute_async_v3`` calls between one pair of events, divided by their count, so
launch costs are amortised as inside a network; by default the window is one CUDA graph captured
through cuda-python (released pycuda has no stream capture). Nothing here is imported unless
``--backend tensorrt`` is asked for.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from .._imports import lazy_import
from ..errors import DepthshrinkError
from .base import Backend, Runner, Workload, identity_onnx_workload
from .devices import GpuTarget, check_tensorrt_supports
from .timing import GPU_PRECISIONS, calls_per_window


class TensorRTRunner(Runner):
    """One engine with its buffers bound, timed in windows of ``calls`` enqueues."""

    def __init__(self, backend: TensorRTBackend, plan: bytes, inputs: dict[str, np.ndarray], key: str) -> None:
        self.trt, self.cuda, self.graphs, self.key = backend.trt, backend.cuda, backend.graphs, key
        self.buffers, self.outputs, self.inputs, self.graph = {}, {}, [], None
        self.engine = self.context = None
        try:
            self._build(backend, plan, inputs)
        except BaseException:
            self.close()  # the device memory of a runner that could not be built
            raise

    def _build(self, backend: TensorRTBackend, plan: bytes, inputs: dict[str, np.ndarray]) -> None:
        trt, cuda, key = self.trt, self.cuda, self.key
        self.engine = backend.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise DepthshrinkError(f"TensorRT could not deserialize the engine of {key} "
                                   "(a cached engine of another TensorRT or GPU? clear --engine-cache)")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise DepthshrinkError(f"TensorRT could not create an execution context for {key} (out of GPU memory?)")
        self.stream = cuda.Stream()  # not the default stream: TensorRT asks for its own
        self.hwc8 = set()  # tensors in channels-last blocks of 8 channels (fp16 I/O)
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            if len(shape) == 4 and self.engine.get_tensor_format(name) == trt.TensorFormat.HWC8:
                self.hwc8.add(name)
            stored = _hwc8_shape(shape) if name in self.hwc8 else shape
            self.buffers[name] = cuda.mem_alloc(max(1, int(np.prod(stored)) * dtype.itemsize))
            if not self.context.set_tensor_address(name, int(self.buffers[name])):
                raise RuntimeError(f"TensorRT refused the address of tensor {name}")
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append((name, dtype))
            else:
                self.outputs[name] = (shape, np.empty(stored, dtype))
        self._upload(inputs)
        self.start, self.end = cuda.Event(), cuda.Event()
        self._enqueue()  # the first run may allocate: never inside a capture or a timing
        self.stream.synchronize()
        self.calls = calls_per_window(self._window_ms(1))
        if backend.cuda_graph:
            self.graph = self.graphs.capture(self.stream.handle, self._enqueues, key)

    def _upload(self, inputs: dict[str, np.ndarray]) -> None:
        for name, dtype in self.inputs:
            array = np.asarray(inputs[name], dtype=dtype)
            self.cuda.memcpy_htod(self.buffers[name], to_hwc8(array) if name in self.hwc8 else
                                  np.ascontiguousarray(array))

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.stream.handle):
            raise RuntimeError(f"TensorRT execute_async_v3 failed for {self.key}")

    def _enqueues(self) -> bool:
        return all(self.context.execute_async_v3(self.stream.handle) for _ in range(self.calls))

    def _window_ms(self, calls: int) -> float:
        self.start.record(self.stream)
        for _ in range(calls):
            self._enqueue()
        self.end.record(self.stream)
        self.end.synchronize()
        return self.end.time_since(self.start) / calls

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        self._upload(inputs)
        self._enqueue()
        self.stream.synchronize()
        results = []
        for name, (shape, host) in self.outputs.items():
            self.cuda.memcpy_dtoh(host, self.buffers[name])
            results.append((from_hwc8(host, shape[1]) if name in self.hwc8 else host).astype(np.float32))
        return results

    def run_timed(self) -> float:
        if self.graph is None:
            return self._window_ms(self.calls)
        self.start.record(self.stream)
        self.graphs.launch(self.graph, self.stream.handle)
        self.end.record(self.stream)
        self.end.synchronize()
        return self.end.time_since(self.start) / self.calls

    def close(self) -> None:
        if self.graph is not None:
            self.graphs.destroy(self.graph)
            self.graph = None
        for buffer in self.buffers.values():
            buffer.free()
        self.buffers = {}
        self.context = self.engine = None  # engine and context go before the CUDA context is released
        self.stream = self.start = self.end = None


def _hwc8_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The stored shape of an NCHW tensor in TensorRT's HWC8 format: N, H, W, C rounded up to 8."""
    n, c, h, w = shape
    return (n, h, w, -(-c // 8) * 8)


def to_hwc8(array: np.ndarray) -> np.ndarray:
    """NCHW → HWC8 (channels last, zero-padded to a multiple of 8), contiguous."""
    stored = np.zeros(_hwc8_shape(array.shape), array.dtype)
    stored[..., :array.shape[1]] = array.transpose(0, 2, 3, 1)
    return stored


def from_hwc8(stored: np.ndarray, channels: int) -> np.ndarray:
    """HWC8 → NCHW with ``channels`` channels."""
    return np.ascontiguousarray(stored[..., :channels].transpose(0, 3, 1, 2))


class CudaGraphs:
    """CUDA graphs of enqueued work through cuda-python's runtime bindings (``cuda.bindings.runtime``,
    cuda-python 12.6.1 and later): begin/end capture on a stream, instantiate, launch, destroy."""

    def __init__(self) -> None:
        self.rt = lazy_import("cuda.bindings.runtime")

    def _check(self, result: tuple, what: str):
        error, *values = result
        if error != self.rt.cudaError_t.cudaSuccess:
            raise DepthshrinkError(f"CUDA's {what} failed ({error}): profile with --no-cuda-graph to time without "
                                   "CUDA graphs")
        return values[0] if values else None

    def capture(self, stream: int, enqueue, key: str):
        rt = self.rt
        self._check(rt.cudaStreamBeginCapture(stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal),
                    "cudaStreamBeginCapture")
        enqueued = enqueue()
        graph = self._check(rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        if not enqueued:
            self._check(rt.cudaGraphDestroy(graph), "cudaGraphDestroy")
            raise DepthshrinkError(f"the TensorRT engine of {key} cannot be captured as a CUDA graph: "
                                   "profile with --no-cuda-graph")
        executable = self._check(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        self._check(rt.cudaGraphDestroy(graph), "cudaGraphDestroy")
        return executable

    def launch(self, executable, stream: int) -> None:
        self._check(self.rt.cudaGraphLaunch(executable, stream), "cudaGraphLaunch")

    def destroy(self, executable) -> None:
        self._check(self.rt.cudaGraphExecDestroy(executable), "cudaGraphExecDestroy")


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, gpu: GpuTarget, precision: str = "fp32", workspace_mb: int = 1024,
                 engine_cache: str | os.PathLike | None = None, cuda_graph: bool = True) -> None:
        if precision not in GPU_PRECISIONS:
            raise DepthshrinkError(f"the tensorrt backend builds precisions {', '.join(GPU_PRECISIONS)}, not {precision}")
        self.trt = lazy_import("tensorrt")
        self.cuda = lazy_import("pycuda.driver")
        check_tensorrt_supports(self.trt.__version__, gpu, precision)
        self.graphs = CudaGraphs() if cuda_graph else None  # names cuda-python when it is missing
        self.gpu, self.precision, self.workspace_mb, self.cuda_graph = gpu, precision, workspace_mb, cuda_graph
        self.cache = Path(engine_cache or Path.home() / ".cache" / "depthshrink" / "engines")
        self.cache.mkdir(parents=True, exist_ok=True)
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        self._context = None  # the GPU's primary context, retained and pushed on first use

    def _activate(self) -> None:
        if self._context is None:
            self.cuda.init()
            context = self.cuda.Device(self.gpu.index).retain_primary_context()
            context.push()
            self._context = context
            self.runtime = self.trt.Runtime(self.logger)

    def _config(self, builder):
        trt = self.trt
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_mb << 20)
        if self.precision == "fp32":
            config.clear_flag(trt.BuilderFlag.TF32)  # on by default: an fp32 row must not be TF32
        if self.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        return config

    def _half_io(self, network) -> None:
        """fp16: every 4-D I/O tensor in half precision, channels-last (HWC8), as inside a network."""
        trt = self.trt
        tensors = [network.get_input(i) for i in range(network.num_inputs)]
        tensors += [network.get_output(i) for i in range(network.num_outputs)]
        for tensor in tensors:
            if len(tensor.shape) == 4:
                tensor.dtype = trt.float16
                tensor.allowed_formats = 1 << int(trt.TensorFormat.HWC8)

    def cache_key(self, onnx_bytes: bytes) -> str:
        setting = (f"|trt {self.trt.__version__}|{self.gpu.name}|sm {self.gpu.capability[0]}.{self.gpu.capability[1]}"
                   f"|{self.precision}|{self.layout}|workspace {self.workspace_mb} MiB")
        return hashlib.sha256(onnx_bytes + setting.encode()).hexdigest()[:32]

    def build_engine(self, onnx_path: Path) -> bytes:
        data = Path(onnx_path).read_bytes()
        cached = self.cache / f"{self.cache_key(data)}.engine"
        if cached.exists():
            return cached.read_bytes()
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)  # explicit batch: the only kind in TensorRT 10
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(data):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise DepthshrinkError(f"TensorRT cannot parse {onnx_path}: {errors}")
        if self.precision == "fp16":
            self._half_io(network)
        plan = builder.build_serialized_network(network, self._config(builder))
        if plan is None:
            raise DepthshrinkError(f"TensorRT could not build an engine for {onnx_path}")
        plan = bytes(plan)
        fd, tmp = tempfile.mkstemp(prefix=f".{cached.name}.", dir=self.cache)  # one per process: no collision
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(plan)
            os.replace(tmp, cached)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return plan

    @property
    def layout(self) -> str:
        return "hwc8" if self.precision == "fp16" else "linear"

    def runner(self, workload: Workload) -> TensorRTRunner:
        self._activate()
        return TensorRTRunner(self, self.build_engine(workload.onnx_path), workload.random_inputs(), workload.key)

    def metadata(self) -> dict:
        return {"tool": "tensorrt", "tool_version": self.trt.__version__, "threads": None,
                "timing_method": "tensorrt-cuda-graph" if self.cuda_graph else "tensorrt-enqueue",
                "layout": self.layout}

    def empty_workload(self) -> Workload:
        return identity_onnx_workload()

    def close(self) -> None:
        """Give the primary context back (runners, engines and buffers are freed before)."""
        if self._context is not None:
            self.runtime = None
            self._context.pop()
            self._context.detach()
            self._context = None
