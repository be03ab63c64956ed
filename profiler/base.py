"""The contract every backend follows: build a runner for one workload, then time it.

A backend module holds one class derived from :class:`Backend`; building (session, engine,
module) is kept apart from timing (:meth:`Runner.run_timed`), which returns the milliseconds of
one run measured the backend's way (host clock on a CPU, CUDA events on a GPU).
"""

from __future__ import annotations

import abc
import atexit
import functools
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from .._imports import lazy_import
from .timing import Timing, TimingProtocol, measure


@dataclass
class Workload:
    """One thing to time: an ONNX file and/or a way to build the same computation in PyTorch."""

    key: str
    inputs: dict[str, list[int]]
    onnx_path: Path | None = None
    build_module: Callable[[], object] | None = field(default=None, repr=False)

    def random_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {name: rng.standard_normal(shape, dtype=np.float32) for name, shape in self.inputs.items()}


class CacheFlush(Enum):
    """Whether a block is timed after the caches are flushed (ONNX Runtime, see :mod:`.cache_flush`):
    ``AUTO`` leaves it to the profiling session, which settles on ``ON`` or ``OFF``."""

    ON = "on"
    OFF = "off"
    AUTO = "auto"

    @property
    def recorded(self) -> int | None:
        """The LUT's ``cache_flush`` column: 1, 0, or empty while undecided."""
        return {CacheFlush.ON: 1, CacheFlush.OFF: 0}.get(self)

    @classmethod
    def from_recorded(cls, value) -> CacheFlush | None:
        """From a LUT's or a pass log's column (1/0, as numbers or text); ``None`` when empty."""
        text = str(value).strip()
        if text in ("1", "1.0", "True"):
            return cls.ON
        if text in ("0", "0.0", "False"):
            return cls.OFF
        return None


class Runner(abc.ABC):
    """A built workload with its inputs bound."""

    @abc.abstractmethod
    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs for ``inputs`` (float32), for checks against PyTorch."""

    @abc.abstractmethod
    def run_timed(self) -> float:
        """Run once on the bound inputs; the milliseconds it took."""

    def close(self) -> None:
        """Free what the runner holds."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Backend(abc.ABC):
    name: str
    precision: str = "fp32"
    cache_flush: CacheFlush | None = None  # None: the backend has no such setting

    @abc.abstractmethod
    def runner(self, workload: Workload) -> Runner:
        """Build ``workload`` and bind random inputs."""

    @abc.abstractmethod
    def metadata(self) -> dict:
        """LUT columns describing this backend: ``tool``, ``tool_version``, ``threads``, …"""

    @abc.abstractmethod
    def empty_workload(self) -> Workload:
        """The cheapest possible call: its latency is the per-call overhead."""

    def time(self, workload: Workload, protocol: TimingProtocol) -> Timing:
        """End-to-end latency of one call, as a user of the runtime sees it."""
        with self.runner(workload) as runner:
            return measure(runner.run_timed, protocol)

    def call_overhead_ms(self, protocol: TimingProtocol) -> float:
        """Latency of the cheapest call (measured once): paid once per network, not per layer."""
        if getattr(self, "_call_overhead_ms", None) is None:
            self._call_overhead_ms = self.time(self.empty_workload(), protocol).latency_ms
        return self._call_overhead_ms

    def adopt_call_overhead(self, overhead_ms: float) -> None:
        """Use ``overhead_ms`` as the per-call overhead instead of measuring it (a resumed session
        keeps the overhead its logged passes had subtracted)."""
        self._call_overhead_ms = overhead_ms

    def time_in_network(self, workload: Workload, protocol: TimingProtocol) -> Timing:
        """What ``workload`` adds to a whole network's latency: by default its end-to-end time
        less the per-call overhead."""
        return self.time(workload, protocol).minus(self.call_overhead_ms(protocol))

    def close(self) -> None:
        """Release the device (a GPU context, say)."""


@functools.cache
def identity_onnx_workload(op: str = "Identity") -> Workload:
    """A one-node ONNX graph on one float (``Identity`` by default): the per-call overhead of a
    runtime. (ONNX Runtime removes Identity nodes, so that graph runs no node at all.) Written once
    per process into a temporary folder removed at exit."""
    onnx = lazy_import("onnx")
    helper = onnx.helper
    shape = [1, 1, 1, 1]
    graph = helper.make_graph([helper.make_node(op, ["input"], ["output"])], "empty",
                              [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, shape)])
    folder = tempfile.mkdtemp(prefix="depthshrink-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = Path(folder) / f"{op.lower()}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return Workload(op.lower(), {"input": shape}, path)
