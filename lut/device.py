"""A small description of the device a latency table was measured on: what the GPU latency
model (:mod:`.gpu_features`) needs to turn a conv's work into times (pure data, no fitting).

The description comes from the table's ``device`` column (a known GPU's datasheet values, below),
from the driver when profiling on a GPU (:func:`from_driver`), or is given explicitly. Peak
figures are dense (no structured sparsity), boost clock:

- H100 SXM5 80 GB (the driver's "NVIDIA H100 80GB HBM3"): 132 SMs, FP32 66.9 TFLOP/s, TF32
  tensor 494.7 TFLOP/s, HBM3 3.35 TB/s (NVIDIA H100 datasheet and Hopper whitepaper, 2022-23);
- H100 PCIe 80 GB: 114 SMs, FP32 51.2, TF32 378, HBM2e 2.0 TB/s (same sources);
- H200 SXM 141 GB: the H100 SXM5's SMs and clocks, HBM3e 4.8 TB/s (H200 datasheet, 2024);
- A100 SXM4 80 GB / 40 GB: 108 SMs, FP32 19.5, TF32 156, 2.04 / 1.56 TB/s (A100 datasheet, 2021);
- V100 SXM2: 80 SMs, FP32 15.7, no TF32 (fp32 math only: its tensor cores take fp16), 0.9 TB/s
  (V100 datasheet, 2018).

A GPU that is none of these gets :data:`GENERIC_GPU` (an A100-like guess, ``source="assumed"``):
the latency model fits its own time per unit of each kind of work, so only the SM count (the
number of waves) and the ratio of compute to bandwidth shape its features.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..errors import DepthshrinkError


@dataclass(frozen=True)
class DeviceSpec:
    """What a latency model needs to know of a device; ``kind`` is ``"cpu"`` or ``"gpu"``."""

    name: str
    kind: str
    sm_count: int | None = None
    peak_flops: float | None = None              # FP32 FLOP/s on the ordinary (non-tensor) cores
    tensor_flops: float | None = None            # TF32 tensor-core FLOP/s (dense); None: none
    bandwidth_bytes_per_s: float | None = None   # DRAM (HBM/GDDR) bandwidth
    launch_floor_ms: float | None = None         # known per-kernel launch cost; None: fitted
    source: str = "datasheet"                    # datasheet, driver, given, assumed

    def __post_init__(self) -> None:
        if self.kind not in ("cpu", "gpu"):
            raise DepthshrinkError(f"device kind must be cpu or gpu, not {self.kind!r}")
        if self.kind == "gpu":
            for field, value in (("sm_count", self.sm_count), ("peak_flops", self.peak_flops),
                                 ("bandwidth_bytes_per_s", self.bandwidth_bytes_per_s)):
                if value is None or value <= 0:
                    raise DepthshrinkError(f"GPU description {self.name}: {field} must be a positive number")

    @property
    def matmul_flops(self) -> float:
        """The rate a conv's GEMM can reach: TF32 tensor cores where the GPU has them."""
        return float(self.tensor_flops or self.peak_flops)


T = 1e12
# (tokens that must all appear in the device label, description); the first match wins
KNOWN_GPUS: list[tuple[tuple[str, ...], DeviceSpec]] = [
    (("h200",), DeviceSpec("h200", "gpu", 132, 66.9 * T, 494.7 * T, 4.8e12)),
    (("h100", "pcie"), DeviceSpec("h100-pcie", "gpu", 114, 51.2 * T, 378.0 * T, 2.0e12)),
    (("h100",), DeviceSpec("h100-sxm5", "gpu", 132, 66.9 * T, 494.7 * T, 3.35e12)),
    (("a100", "40gb"), DeviceSpec("a100-40gb", "gpu", 108, 19.5 * T, 156.0 * T, 1.555e12)),
    (("a100",), DeviceSpec("a100-80gb", "gpu", 108, 19.5 * T, 156.0 * T, 2.039e12)),
    (("v100",), DeviceSpec("v100", "gpu", 80, 15.7 * T, None, 0.9e12)),
]
GENERIC_GPU = DeviceSpec("generic-gpu", "gpu", 108, 19.5 * T, 156.0 * T, 2.0e12, source="assumed")


def _tokens(label: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", label.lower()) if t]


def is_cpu_label(device: str) -> bool:
    """Tables measured on a CPU are labelled ``cpu-<model>`` (:func:`depthshrink.profiler.devices.cpu_label`)."""
    return _tokens(device)[:1] == ["cpu"]


def spec_for_device(device: str | None) -> DeviceSpec:
    """The description of a LUT's ``device`` label: a CPU, a known GPU, or :data:`GENERIC_GPU`."""
    label = str(device or "")
    if is_cpu_label(label):
        return DeviceSpec(label, "cpu")
    tokens = _tokens(label)
    for needed, spec in KNOWN_GPUS:
        if all(any(t.startswith(n) or n in t for t in tokens) for n in needed):
            return replace(spec, name=label)
    return replace(GENERIC_GPU, name=label or GENERIC_GPU.name)


def given_spec(name: str, sm_count: int, peak_flops: float, bandwidth_bytes_per_s: float,
               tensor_flops: float | None = None) -> DeviceSpec:
    """A GPU described by hand (e.g. one no datasheet here covers)."""
    return DeviceSpec(name, "gpu", int(sm_count), float(peak_flops), tensor_flops, float(bandwidth_bytes_per_s),
                      source="given")


def from_driver(index: int = 0) -> DeviceSpec:
    """The visible GPU ``index`` as the driver reports it: its SM count from the driver, its peaks
    from the datasheet table when its name is known there, else estimated from the driver's SM
    count with the generic per-SM rates (``source="driver"``)."""
    import torch  # only ever called on a GPU box, where torch is there

    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        raise DepthshrinkError(f"no CUDA GPU {index} is visible: describe the device by hand instead")
    properties = torch.cuda.get_device_properties(index)
    known = spec_for_device(properties.name)
    sms = int(properties.multi_processor_count)
    if known.source == "assumed":  # scale the generic per-SM rates to this GPU's SMs
        share = sms / GENERIC_GPU.sm_count
        return replace(GENERIC_GPU, name=properties.name, sm_count=sms, peak_flops=GENERIC_GPU.peak_flops * share,
                       tensor_flops=GENERIC_GPU.matmul_flops * share, source="driver")
    return replace(known, name=properties.name, sm_count=sms, source="driver")
