"""Which backend times a table, from what the user asked for (``--cpu``/``--gpu``, ``--backend``,
precision, threads, cache flush, TensorRT options): every check runs when the choice is made, the
backend itself (a GPU context, a thread count) is built only when timing starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ..errors import DepthshrinkError
from .base import Backend, CacheFlush

BACKENDS = ("onnxruntime", "torch", "tensorrt")


@dataclass(frozen=True)
class BackendOptions:
    gpu: str | None = None              # None: this machine's CPU; else a GPU by index or name (v100, 0)
    backend: str | None = None          # default: onnxruntime on the CPU, tensorrt on a GPU
    precision: str = "fp32"
    threads: int = 1                    # CPU threads (recorded)
    cache_flush: CacheFlush = CacheFlush.AUTO   # onnxruntime only
    cuda_graph: bool = True             # GPU: replay a window of calls as one CUDA graph
    engine_cache: str | None = None     # TensorRT
    workspace_mb: int = 1024
    device_label: str | None = None     # the LUT's device column (default: from the hardware)

    @property
    def backend_name(self) -> str:
        return self.backend or ("onnxruntime" if self.gpu is None else "tensorrt")


def backend_factory(options: BackendOptions) -> tuple[Callable[[], Backend], str]:
    """(a function that builds the backend, the device label)."""
    from .devices import cpu_label, resolve_gpu

    name = options.backend_name
    if name not in BACKENDS:
        raise DepthshrinkError(f"no backend {name!r}: use {', '.join(BACKENDS)}")
    if name != "onnxruntime" and options.cache_flush is not CacheFlush.AUTO:
        raise DepthshrinkError("--cache-flush applies to the onnxruntime backend")
    if options.gpu is None:
        if name == "tensorrt":
            raise DepthshrinkError("the tensorrt backend needs --gpu")
        if options.precision != "fp32":
            raise DepthshrinkError(f"--precision {options.precision} needs --gpu")
        label = options.device_label or cpu_label()
        if name == "onnxruntime":
            from .onnxruntime import OnnxRuntimeBackend
            return partial(OnnxRuntimeBackend, options.threads, options.cache_flush), label
        from .pytorch import TorchBackend
        return partial(TorchBackend, "cpu", options.threads), label
    if name == "onnxruntime":
        raise DepthshrinkError("the onnxruntime backend profiles the CPU: use --cpu, or "
                               "--backend tensorrt/torch with --gpu")
    if name == "tensorrt":
        from .._imports import lazy_import
        lazy_import("tensorrt")  # name the missing extra before looking for GPUs
        lazy_import("pycuda.driver")
        if options.cuda_graph:
            lazy_import("cuda.bindings.runtime")
    gpu = resolve_gpu(options.gpu)
    label = options.device_label or gpu.label
    if name == "torch":
        from .pytorch import TorchBackend
        return partial(TorchBackend, f"cuda:{gpu.index}", precision=options.precision,
                       cuda_graph=options.cuda_graph), label
    from .tensorrt import TensorRTBackend
    return partial(TensorRTBackend, gpu, options.precision, options.workspace_mb, options.engine_cache,
                   options.cuda_graph), label
