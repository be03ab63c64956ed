"""Which device a table is measured on: CPU labels, GPU selection by name or index, and the
TensorRT/GPU compatibility checks that must fail loudly rather than measure the wrong thing."""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass

from ..errors import DepthshrinkError


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_label() -> str:
    """``cpu-<model name>`` from /proc/cpuinfo, or ``cpu-<machine>``."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1]
                    name = re.sub(r"\((r|tm)\)|cpu|@.*|processor", "", name, flags=re.I)
                    return "cpu-" + slug(name)
    except OSError:
        pass
    return "cpu-" + slug(platform.machine() or "unknown")


@dataclass(frozen=True)
class GpuTarget:
    index: int
    name: str                     # as the driver reports it, e.g. "Tesla V100-SXM2-16GB"
    label: str                    # the LUT's device column, e.g. "v100"
    capability: tuple[int, int]   # compute capability


def _visible_gpus() -> list[tuple[str, tuple[int, int]]]:
    """(name, compute capability) of each GPU that PyTorch sees, or else that pycuda sees: a GPU box
    may hold a CPU build of torch (what ``make`` installs) beside TensorRT and pycuda, or no torch."""
    import importlib

    try:
        import torch
        if torch.cuda.is_available():
            return [(torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i)))
                    for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    try:
        cuda = importlib.import_module("pycuda.driver")
    except ImportError:
        return []
    try:
        cuda.init()
    except Exception:  # pycuda.driver.Error (no driver, no device): nothing visible
        return []
    return [(cuda.Device(i).name(), tuple(cuda.Device(i).compute_capability())) for i in range(cuda.Device.count())]


def resolve_gpu(spec: str, visible: list[tuple[str, tuple[int, int]]] | None = None) -> GpuTarget:
    """``--gpu 0`` picks by index; ``--gpu v100`` checks that a visible GPU's name says so."""
    gpus = _visible_gpus() if visible is None else visible
    if not gpus:
        raise DepthshrinkError(f"--gpu {spec}: no CUDA GPU is visible on this machine")
    if spec.isdigit():
        index = int(spec)
        if index >= len(gpus):
            raise DepthshrinkError(f"--gpu {spec}: only {len(gpus)} GPU(s) are visible")
        return GpuTarget(index, gpus[index][0], slug(gpus[index][0]), tuple(gpus[index][1]))
    wanted = slug(spec).split("-")
    for index, (name, capability) in enumerate(gpus):
        tokens = slug(name).split("-")
        if any(tokens[i:i + len(wanted)] == wanted for i in range(len(tokens))):
            return GpuTarget(index, name, slug(spec), tuple(capability))
    names = ", ".join(f"'{name}'" for name, _ in gpus)
    raise DepthshrinkError(f"--gpu {spec}: the visible GPU(s) are {names}; none is a {spec} "
                           "(give an index, e.g. --gpu 0, to profile what is there)")


def check_tensorrt_supports(version: str, gpu: GpuTarget, precision: str) -> None:
    """Refuse combinations TensorRT itself does not support (from its release notes)."""
    major, minor = (int(p) for p in version.split(".")[:2])
    if gpu.capability < (7, 5) and (major, minor) >= (10, 5):
        raise DepthshrinkError(
            f"TensorRT {version} does not support {gpu.name} (compute capability "
            f"{gpu.capability[0]}.{gpu.capability[1]}): Volta support was removed in TensorRT 10.5; "
            "install TensorRT 10.0-10.4, e.g. pip install 'tensorrt-cu12>=10.0,<10.5'")
    if major >= 11 and precision != "fp32":
        raise DepthshrinkError(f"TensorRT {version} takes precision from the ONNX model's types "
                               "(its FP16 builder flag is gone): profile with --precision fp32")
