"""ONNX Runtime on the CPU: a fixed, recorded thread count, sequential execution, all graph
optimisations, inputs and outputs bound once (IOBinding) so no copy falls inside the timing."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .._imports import lazy_import
from .base import Backend, CacheFlush, Runner, Workload, identity_onnx_workload
from .timing import Timing, TimingProtocol, host_timed, measure

LAYOUT_OPS = ("ReorderInput", "ReorderOutput")
PROFILED_PASS = TimingProtocol(warmup_ms=20, min_runs=20, min_time_ms=100, max_runs=500)
# a block does work of its own: a profile whose conv nodes all sit under the profiler's floor (a noisy
# pass over a µs block) would otherwise give the conversions all of it, and the row a latency of 0
MAX_LAYOUT_SHARE = 0.9


def session_from_onnx(path: str | os.PathLike, threads: int = 1, profile_prefix: str | None = None):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (profiling node times when
    ``profile_prefix`` is given)."""
    ort = lazy_import("onnxruntime")
    options = ort.SessionOptions()
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(session, inputs: np.ndarray) -> np.ndarray:
    name = session.get_inputs()[0].name
    return session.run(None, {name: inputs})[0]


class OnnxRuntimeRunner(Runner):
    """A session with inputs and outputs bound once; ``flush_bytes`` > 0 streams that much memory
    through the caches before each timed run (outside the timed window)."""

    def __init__(self, session, inputs: dict[str, np.ndarray], flush_bytes: int = 0) -> None:
        ort = lazy_import("onnxruntime")
        self.session = session
        self._inputs = inputs  # keep the arrays alive while bound
        outputs = session.run(None, inputs)
        self._outputs = [np.empty_like(o) for o in outputs]
        self.binding = session.io_binding()
        for name, array in inputs.items():
            self.binding.bind_cpu_input(name, array)
        for meta, array in zip(session.get_outputs(), self._outputs):
            self.binding.bind_ortvalue_output(meta.name, ort.OrtValue.ortvalue_from_numpy(array))
        self._flush = np.ones(flush_bytes // 4, dtype=np.float32) if flush_bytes else None
        self._timed = host_timed(lambda: session.run_with_iobinding(self.binding))

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, inputs)

    def run_timed(self) -> float:
        if self._flush is not None:
            self._flush += 1.0
        return self._timed()


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime on the CPU.

    Whole networks are timed back to back. A block timed back to back alone would find its
    weights and input in the core's private cache on every run, where inside a network the
    other layers have pushed them out to the shared cache: before each timed run of a block,
    twice the private L2 is streamed through the caches, outside the timed window. (Streaming
    the whole network's footprint instead, i.e. timing from DRAM, overestimated MobileNetV2 at
    224 px by 63% here: inside a network the shared cache still holds much of it.) The flush
    is a machine's choice, ``CacheFlush.OFF`` turns it off: on an Intel Xeon VM (2 MiB L2)
    it made µs-scale blocks of a 28 px network twice as slow as inside the network. ``AUTO``
    leaves the choice to the profiling session (see :mod:`.cache_flush`); until then it flushes.
    """

    name = "onnxruntime"

    def __init__(self, threads: int = 1, cache_flush: CacheFlush = CacheFlush.ON) -> None:
        self.ort = lazy_import("onnxruntime")
        self.threads, self.cache_flush = threads, cache_flush
        self._profiler_floor_us: float | None = None
        self._layout_shares: dict[tuple[str, str], float] = {}  # per graph: one profiled pass, however many timings

    def runner(self, workload: Workload, flush_bytes: int = 0) -> OnnxRuntimeRunner:
        return OnnxRuntimeRunner(session_from_onnx(workload.onnx_path, self.threads), workload.random_inputs(),
                                 flush_bytes)

    def metadata(self) -> dict:
        return {"tool": "onnxruntime", "tool_version": self.ort.__version__, "threads": self.threads,
                "cache_flush": self.cache_flush.recorded, "timing_method": "host-clock", "layout": "nchw"}

    def time_in_network(self, workload: Workload, protocol: TimingProtocol) -> Timing:
        """The latency a block adds inside a whole network.

        Alone, a conv is wrapped in layout conversions (``ReorderInput``/``ReorderOutput`` to and
        from the blocked NCHWc layout) that a whole network runs once, not per layer. The block is
        timed end to end (host clock, caches refilled, less the per-call overhead); a short
        profiled pass then tells which share of its kernel time went to those conversions, and
        that share is taken out. (Profiled times alone mislead for µs-scale blocks: the profiler
        adds its own µs to every node.)
        """
        with self.runner(workload, 2 * _l2_bytes() if self.cache_flush is not CacheFlush.OFF else 0) as runner:
            timing = measure(runner.run_timed, protocol).minus(self.call_overhead_ms(protocol))
        graph = (str(workload.onnx_path), str(sorted(workload.inputs.items())))  # keys repeat across bundles
        if graph not in self._layout_shares:
            self._layout_shares[graph] = _layout_share(self._profile(workload), self._profiler_floor())
        return timing.scaled(1.0 - self._layout_shares[graph])

    def _profile(self, workload: Workload) -> list[dict]:
        with tempfile.TemporaryDirectory(prefix="depthshrink-ort-") as folder:
            session = session_from_onnx(workload.onnx_path, self.threads, str(Path(folder) / "run"))
            runner = OnnxRuntimeRunner(session, workload.random_inputs())
            measure(runner.run_timed, PROFILED_PASS)
            with open(session.end_profiling()) as handle:
                return json.load(handle)

    def _profiler_floor(self) -> float:
        """What the profiler reports for a node that does nothing (µs): its own cost per node."""
        if self._profiler_floor_us is None:
            events = self._profile(identity_onnx_workload("Relu"))
            durations = [e["dur"] for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
            self._profiler_floor_us = float(np.median(durations)) if durations else 0.0
        return self._profiler_floor_us

    def empty_workload(self) -> Workload:
        return identity_onnx_workload()


def _l2_bytes() -> int:
    """The first core's L2 size from sysfs (2 MiB when unknown)."""
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip().upper()
        return int(text.rstrip("KMB")) * {"K": 1 << 10, "M": 1 << 20}.get(text.rstrip("B")[-1], 1)
    except (OSError, ValueError, IndexError):
        return 2 << 20


def _layout_share(events: list[dict], floor_us: float = 0.0) -> float:
    """Share of a profile's kernel time spent in layout conversions, each node's time less the
    profiler's own ``floor_us`` (the first fifth of the runs, warm-up, is skipped)."""
    runs = [e["ts"] for e in events if e.get("name") == "model_run"]
    after = runs[len(runs) // 5] if runs else 0
    layout = total = 0.0
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] >= after:
            work = max(event["dur"] - floor_us, 0.0)
            total += work
            if event.get("args", {}).get("op_name") in LAYOUT_OPS:
                layout += work
    return min(layout / total, MAX_LAYOUT_SHARE) if total > 0 else 0.0
