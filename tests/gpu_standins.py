"""Strict stand-ins for ``tensorrt``, ``pycuda.driver`` and ``cuda.bindings.runtime``, which cannot
be installed here, for the TensorRT backend's tests.

They implement the slice of each API the backend uses, with the names and return conventions of
the real ones (TensorRT 10, pycuda 2026.1, cuda-python 12.6+), and refuse what the real ones
refuse: memory, streams and engines without a current CUDA context, popping an empty context
stack, an execution with an unset tensor address, a synchronising call inside a stream capture,
unknown tensor names, a garbage plan. An "engine" runs its ONNX file in ONNX Runtime on the host
copies of device memory (so outputs are real), and advances a simulated GPU clock per stream:
``KERNEL_MS`` per execution plus ``LAUNCH_MS`` per host launch (one per enqueue, one per graph).
"""

from __future__ import annotations

import itertools
import json
import sys
import types

import numpy as np

KERNEL_MS = 0.010
LAUNCH_MS = 0.004


class LogicError(RuntimeError):
    pass


class _Driver:
    """pycuda.driver's state: the context stack, memory and stream clocks."""

    def __init__(self, gpus: list[tuple[str, tuple[int, int]]]) -> None:
        self.gpus, self.stack, self.retained, self.created = gpus, [], {}, 0
        self.memory: dict[int, bytearray] = {}
        self.clock: dict[int, float] = {}
        self.capturing: dict[int, list] = {}
        self.addresses = itertools.count(0x10000, 0x10000)
        self.initialised = False

    def require_context(self, what: str) -> None:
        if not self.initialised:
            raise LogicError(f"cuInit has not been called before {what}")
        if not self.stack:
            raise LogicError(f"explicit_context_dependent failed: invalid device context - no currently "
                             f"active context? ({what})")


def make_pycuda(gpus: list[tuple[str, tuple[int, int]]]) -> tuple[types.ModuleType, _Driver]:
    state = _Driver(gpus)
    driver = types.ModuleType("pycuda.driver")
    driver.LogicError = LogicError

    def init(flags: int = 0) -> None:
        state.initialised = True

    class Context:
        def __init__(self, index: int, primary: bool) -> None:
            self.index, self.primary = index, primary

        def push(self) -> None:
            state.stack.append(self)

        @staticmethod
        def pop() -> None:
            if not state.stack:
                raise LogicError("cannot pop non-current context")
            state.stack.pop()

        def detach(self) -> None:
            if self.primary:
                state.retained[self.index] -= 1

    class Device:
        def __init__(self, index: int) -> None:
            if not state.initialised:
                raise LogicError("cuInit has not been called")
            if not 0 <= index < len(gpus):
                raise LogicError(f"cuDeviceGet failed: invalid device ordinal {index}")
            self.index = index

        @staticmethod
        def count() -> int:
            if not state.initialised:
                raise LogicError("cuInit has not been called")
            return len(gpus)

        def name(self) -> str:
            return gpus[self.index][0]

        def compute_capability(self) -> tuple[int, int]:
            return gpus[self.index][1]

        def retain_primary_context(self) -> Context:  # retained, not made current
            state.retained[self.index] = state.retained.get(self.index, 0) + 1
            return Context(self.index, primary=True)

        def make_context(self, flags: int = 0) -> Context:  # a new, non-primary context, pushed
            state.created += 1
            context = Context(self.index, primary=False)
            context.push()
            return context

    class DeviceAllocation:
        def __init__(self, size: int) -> None:
            self.address, self.size = next(state.addresses), size
            state.memory[self.address] = bytearray(size)

        def __int__(self) -> int:
            return self.address

        __index__ = __int__

        def free(self) -> None:
            state.memory.pop(self.address, None)

    def mem_alloc(size: int) -> DeviceAllocation:
        state.require_context("mem_alloc")
        return DeviceAllocation(int(size))

    def _check_not_capturing(what: str) -> None:
        if state.capturing:
            raise LogicError(f"{what}: operation not permitted when stream is capturing")

    def memcpy_htod(dest, src: np.ndarray) -> None:
        state.require_context("memcpy_htod")
        _check_not_capturing("memcpy_htod")
        data = np.ascontiguousarray(src).tobytes()
        if len(data) > state.memory[int(dest)].__len__():
            raise LogicError("cuMemcpyHtoD failed: invalid argument (copy larger than the allocation)")
        state.memory[int(dest)][:len(data)] = data

    def memcpy_dtoh(dest: np.ndarray, src) -> None:
        state.require_context("memcpy_dtoh")
        _check_not_capturing("memcpy_dtoh")
        dest.reshape(-1).view(np.uint8)[:] = np.frombuffer(bytes(state.memory[int(src)][:dest.nbytes]), np.uint8)

    class Stream:
        def __init__(self, flags: int = 0) -> None:
            state.require_context("Stream")
            self.handle = next(state.addresses)
            state.clock[self.handle] = 0.0

        def synchronize(self) -> None:
            if self.handle in state.capturing:
                raise LogicError("cuStreamSynchronize failed: operation not permitted when stream is capturing")

    class Event:
        def __init__(self, flags: int = 0) -> None:
            state.require_context("Event")
            self.time_ms = None

        def record(self, stream=None) -> Event:
            self.time_ms = state.clock[stream.handle]
            return self

        def synchronize(self) -> Event:
            return self

        def time_since(self, start: Event) -> float:
            return self.time_ms - start.time_ms

    for name, value in dict(init=init, Context=Context, Device=Device, mem_alloc=mem_alloc, memcpy_htod=memcpy_htod,
                            memcpy_dtoh=memcpy_dtoh, Stream=Stream, Event=Event).items():
        setattr(driver, name, value)
    return driver, state


def make_cuda_runtime(state: _Driver) -> types.ModuleType:
    """``cuda.bindings.runtime``: every call returns a tuple, the error first."""
    rt = types.ModuleType("cuda.bindings.runtime")
    rt.cudaError_t = types.SimpleNamespace(cudaSuccess=0, cudaErrorStreamCaptureInvalidated=901)
    rt.cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeGlobal=0, cudaStreamCaptureModeThreadLocal=1)
    graphs: dict[int, list] = {}
    ids = itertools.count(1)

    def begin(stream: int, mode: int):
        state.capturing[int(stream)] = []
        return (0,)

    def end(stream: int):
        work = state.capturing.pop(int(stream))
        graph = next(ids)
        graphs[graph] = work
        return 0, graph

    def instantiate(graph: int, flags: int):
        executable = next(ids)
        graphs[executable] = list(graphs[graph])
        return 0, executable

    def launch(executable: int, stream: int):
        state.clock[int(stream)] += LAUNCH_MS
        for run in graphs[executable]:
            run(int(stream))
        return (0,)

    def destroy(handle: int):
        graphs.pop(handle)
        return (0,)

    for name, value in dict(cudaStreamBeginCapture=begin, cudaStreamEndCapture=end, cudaGraphInstantiate=instantiate,
                            cudaGraphLaunch=launch, cudaGraphExecDestroy=destroy, cudaGraphDestroy=destroy).items():
        setattr(rt, name, value)
    return rt


def make_tensorrt(state: _Driver, version: str = "10.8.0") -> types.ModuleType:
    import onnx
    import onnxruntime as ort

    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.float32, trt.float16 = "FLOAT", "HALF"
    trt.nptype = lambda dtype: {"FLOAT": np.float32, "HALF": np.float16}[dtype]
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")

    class TensorFormat:
        LINEAR, HWC8 = 0, 3

        def __init__(self, value: int) -> None:
            raise TypeError("TensorFormat is an enum")

    trt.TensorFormat = TensorFormat
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16", TF32="TF32")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, severity=2: None})
    trt.built = []  # what each build was asked for, for the tests

    class Tensor:
        def __init__(self, name: str, shape: list[int]) -> None:
            self.name, self.shape, self.dtype, self._formats = name, tuple(shape), trt.float32, 1 << TensorFormat.LINEAR

        @property
        def allowed_formats(self) -> int:
            return self._formats

        @allowed_formats.setter
        def allowed_formats(self, value: int) -> None:
            if not isinstance(value, int) or value <= 0:
                raise TypeError("allowed_formats is a bit mask of TensorFormat")
            self._formats = value

    class Network:
        def __init__(self) -> None:
            self.inputs, self.outputs, self.onnx = [], [], None

        num_inputs = property(lambda self: len(self.inputs))
        num_outputs = property(lambda self: len(self.outputs))
        get_input = lambda self, i: self.inputs[i]
        get_output = lambda self, i: self.outputs[i]

    def _shape(value) -> list[int]:
        return [d.dim_value for d in value.type.tensor_type.shape.dim]

    class OnnxParser:
        def __init__(self, network: Network, logger) -> None:
            self.network, self.errors = network, []

        def parse(self, model: bytes, path=None) -> bool:
            try:
                graph = onnx.load_from_string(model).graph
            except Exception as exc:
                self.errors = [f"ModelImporter: {exc}"]
                return False
            self.network.onnx = model
            self.network.inputs = [Tensor(v.name, _shape(v)) for v in graph.input]
            self.network.outputs = [Tensor(v.name, _shape(v)) for v in graph.output]
            return True

        num_errors = property(lambda self: len(self.errors))
        get_error = lambda self, i: self.errors[i]

    class Config:
        def __init__(self) -> None:
            self.flags, self.pools = {trt.BuilderFlag.TF32}, {}  # TF32 is on by default in TensorRT

        def set_flag(self, flag) -> None:
            self.flags.add(flag)

        def clear_flag(self, flag) -> None:
            self.flags.discard(flag)

        def get_flag(self, flag) -> bool:
            return flag in self.flags

        def set_memory_pool_limit(self, pool, size: int) -> None:
            if pool != trt.MemoryPoolType.WORKSPACE or not isinstance(size, int):
                raise TypeError("set_memory_pool_limit(pool: MemoryPoolType, pool_size: int)")
            self.pools[pool] = size

    class Builder:
        def __init__(self, logger) -> None:
            pass

        def create_network(self, flags: int = 0) -> Network:
            if not isinstance(flags, int):
                raise TypeError("create_network(flags: int)")
            return Network()

        def create_builder_config(self) -> Config:
            return Config()

        def build_serialized_network(self, network: Network, config: Config):
            if any(t.dtype == trt.float16 for t in network.inputs + network.outputs) and \
                    trt.BuilderFlag.FP16 not in config.flags:
                return None  # half I/O without the FP16 flag: no tactic
            io = {t.name: {"dtype": t.dtype, "format": 3 if t.allowed_formats == 1 << 3 else 0, "shape": list(t.shape)}
                  for t in network.inputs + network.outputs}
            header = {"io": io, "inputs": [t.name for t in network.inputs], "flags": sorted(config.flags)}
            trt.built.append(header)
            return json.dumps(header).encode() + b"\n" + network.onnx

    class Engine:
        def __init__(self, header: dict, model: bytes) -> None:
            self.io, self.input_names, self.model = header["io"], header["inputs"], model
            self.names = list(self.io)

        num_io_tensors = property(lambda self: len(self.names))
        get_tensor_name = lambda self, i: self.names[i]
        get_tensor_shape = lambda self, name: tuple(self.io[name]["shape"])
        get_tensor_dtype = lambda self, name: self.io[name]["dtype"]
        get_tensor_format = lambda self, name: self.io[name]["format"]

        def get_tensor_mode(self, name: str) -> str:
            return trt.TensorIOMode.INPUT if name in self.input_names else trt.TensorIOMode.OUTPUT

        def create_execution_context(self):
            state.require_context("create_execution_context")
            return ExecutionContext(self)

    class ExecutionContext:
        def __init__(self, engine: Engine) -> None:
            self.engine, self.addresses = engine, {}
            self.session = ort.InferenceSession(engine.model, providers=["CPUExecutionProvider"])

        def set_tensor_address(self, name: str, address: int) -> bool:
            if name not in self.engine.io:
                return False
            self.addresses[name] = int(address)
            return True

        def _read(self, name: str) -> np.ndarray:
            spec = self.engine.io[name]
            n, c, h, w = spec["shape"]
            dtype = trt.nptype(spec["dtype"])
            if spec["format"] == 3:
                stored = np.frombuffer(bytes(state.memory[self.addresses[name]]), dtype)[:n * h * w * -(-c // 8) * 8]
                array = stored.reshape(n, h, w, -1)[..., :c].transpose(0, 3, 1, 2)
            else:
                array = np.frombuffer(bytes(state.memory[self.addresses[name]]), dtype)[:n * c * h * w].reshape(n, c, h, w)
            return array.astype(np.float32)

        def _write(self, name: str, value: np.ndarray) -> None:
            spec = self.engine.io[name]
            value = value.astype(trt.nptype(spec["dtype"]))
            if spec["format"] == 3:
                n, c, h, w = value.shape
                stored = np.zeros((n, h, w, -(-c // 8) * 8), value.dtype)
                stored[..., :c] = value.transpose(0, 2, 3, 1)
                value = stored
            data = value.tobytes()
            state.memory[self.addresses[name]][:len(data)] = data

        def _run(self, stream: int) -> None:
            feeds = {name: self._read(name) for name in self.engine.input_names}
            names = [n for n in self.engine.names if n not in self.engine.input_names]
            for name, value in zip(names, self.session.run(names, feeds)):
                self._write(name, value)
            state.clock[stream] += KERNEL_MS

        def execute_async_v3(self, stream_handle: int) -> bool:
            if set(self.addresses) != set(self.engine.io):
                return False  # TensorRT: "Address is not set for input/output tensor"
            if stream_handle in state.capturing:
                state.capturing[stream_handle].append(self._run)
                return True
            state.clock[stream_handle] += LAUNCH_MS
            self._run(stream_handle)
            return True

    class Runtime:
        def __init__(self, logger) -> None:
            pass

        def deserialize_cuda_engine(self, plan: bytes):
            state.require_context("deserialize_cuda_engine")
            try:
                header, model = bytes(plan).split(b"\n", 1)
                return Engine(json.loads(header), model)
            except ValueError:
                return None  # TensorRT logs the error and returns None

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt


def install(monkeypatch, gpus=(("NVIDIA H100 80GB HBM3", (9, 0)),), cuda_python: bool = True,
            version: str = "10.8.0") -> _Driver:
    """Put the stand-ins in ``sys.modules`` for one test; the driver state is returned."""
    driver, state = make_pycuda(list(gpus))
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = driver
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.setitem(sys.modules, "tensorrt", make_tensorrt(state, version))
    if cuda_python:
        runtime = make_cuda_runtime(state)
        bindings = types.ModuleType("cuda.bindings")
        bindings.runtime = runtime
        monkeypatch.setitem(sys.modules, "cuda", types.ModuleType("cuda"))
        monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", runtime)
    else:
        for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime"):
            monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    return state
