"""Timing entries of a bundle for a profiling session and writing their rows: the passes (one
pass with a re-measure of noisy entries, or the fastest of several interleaved passes over chunks
of entries), the LUT row of each entry, and whole networks timed among the rows."""

from __future__ import annotations

import datetime
import math
import platform
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ..contracts.setting import SETTING_COLUMNS
from ..lut.table import CORPUS as CORPUS_LABEL
from ..lut.table import row_key
from ..lut.writer import LutWriter
from .base import Backend, CacheFlush, Workload
from .bundle import Bundle, Entry
from .pass_log import PassLog
from .timing import Timing, TimingProtocol, interleaved

Item = TypeVar("Item")


@dataclass
class Settings:
    device: str
    batch_size: int
    protocol: TimingProtocol = field(default_factory=TimingProtocol)
    noisy_spread: float = 0.25   # (p90 - p10) / median above this: re-measure once (with one pass)
    progress: bool = True
    pass_chunk: int = 150        # passes interleave over this many entries at a time (rows are written
                                 # per chunk; a killed session keeps its passes, see .pass_log)

    def __post_init__(self) -> None:
        if self.pass_chunk < 1:
            raise ValueError(f"pass_chunk must be at least 1, not {self.pass_chunk}")


@dataclass(frozen=True)
class NetworkTiming:
    """A whole network timed among the rows: its fastest pass (per chunk, the median over chunks)
    and every pass's median, whose range shows how far the machine's speed moved meanwhile."""
    timing: Timing
    pass_ms: tuple[float, ...]

    @classmethod
    def of(cls, per_chunk: list[Timing], pass_ms: list[float]) -> NetworkTiming:
        ordered = sorted(per_chunk, key=lambda t: t.latency_ms)
        return cls(ordered[(len(ordered) - 1) // 2], tuple(pass_ms))


def _timed(measure_once: Callable[[], Timing], settings: Settings) -> tuple[Timing, bool]:
    """Measure; when the spread is high, measure once more and keep the steadier of the two."""
    timing = measure_once()
    if timing.spread <= settings.noisy_spread:
        return timing, False
    return min(timing, measure_once(), key=lambda t: t.spread), True


def timings(items: Sequence[Item], time_one: Callable[[Item, TimingProtocol], Timing], settings: Settings,
             after_each: Callable[[Item], None] | None = None, riders: Sequence[Item] = (),
             earlier: Callable[[Item], Sequence[Timing]] | None = None) -> Iterator[tuple[Item, Timing, bool]]:
    """(item, timing, re-measured) for every item: one pass with a re-measure of noisy entries, or
    the fastest of ``settings.protocol.passes`` passes interleaved over chunks of items (yielded
    once a chunk's passes ran; ``earlier`` passes of an item are not run again). ``riders``
    (several passes only) are timed in every chunk too, spread evenly over it, and yielded with
    it: once per chunk."""
    protocol = settings.protocol
    if protocol.passes == 1:
        for item in items:
            timing, remeasured = _timed(lambda item=item: time_one(item, protocol), settings)
            if after_each is not None:
                after_each(item)
            yield item, timing, remeasured
        return
    for chunk in chunks(items, settings.pass_chunk):
        spread = list(chunk)
        for i, rider in reversed(list(enumerate(riders))):
            spread.insert((2 * i + 1) * len(chunk) // (2 * len(riders)), rider)
        for item, timing in zip(spread, interleaved(spread, time_one, protocol, after_each, earlier)):
            yield item, timing, False


def chunks(items: Sequence[Item], size: int) -> list[Sequence[Item]]:
    """``items`` in chunks of at most ``size``, of even sizes: no short one left to run alone."""
    count = math.ceil(len(items) / size)
    if count == 0:
        return []
    bounds = [len(items) * i // count for i in range(count + 1)]
    return [items[start:end] for start, end in zip(bounds, bounds[1:])]


def setting_of(backend: Backend, settings: Settings) -> dict:
    """The LUT columns that tell one measuring setting from another."""
    return {"device": settings.device, "backend": backend.name, "precision": backend.precision,
            "batch_size": settings.batch_size, "threads": backend.metadata().get("threads")}


def pass_log_of(lut_path: str | Path, backend: Backend, settings: Settings) -> PassLog:
    """The pass log of this setting (its row keys begin with the setting's columns)."""
    setting = "|".join(row_key(setting_of(backend, settings))[:len(SETTING_COLUMNS)])
    return PassLog(lut_path, settings.protocol, setting, backend.metadata().get("timing_method"))


def row_of(entry: Entry, bundle: Bundle, backend: Backend, settings: Settings) -> dict:
    base = setting_of(backend, settings)
    if entry.op == "conv":
        corpus = bundle.model_label == CORPUS_LABEL  # its rows are marked: they only train the predictor
        return {**base, **entry.fields, "op": "conv", "model": CORPUS_LABEL if corpus else None}
    blank = {k: None for k in ("in_channels", "out_channels", "kernel_size", "stride", "groups",
                               "padding", "activation", "residual_add")}
    image = entry.inputs["input"]
    return {**base, **blank, "op": "fixed", "model": bundle.model_label, "in_channels": image[1],
            "height": image[2], "width": image[3]}


def _timing_columns(timing: Timing, overhead_ms: float) -> dict:
    return {"latency_ms": round(timing.latency_ms, 6), "latency_p10_ms": round(timing.latency_p10_ms, 6),
            "latency_p90_ms": round(timing.latency_p90_ms, 6), "runs": timing.runs,
            "warmup_ms": round(timing.warmup_ms, 1), "call_overhead_ms": round(overhead_ms, 6)}


class NetworkTimes:
    """Whole networks timed in passes (:func:`_timings`): every pass's median and each chunk's
    fastest, by entry key."""

    def __init__(self, backend: Backend, workload: Callable[[Entry], Workload]) -> None:
        self.backend, self.workload = backend, workload
        self.per_chunk: dict[str, list[Timing]] = {}
        self.pass_ms: dict[str, list[float]] = {}

    def time_one(self, entry: Entry, protocol: TimingProtocol) -> Timing:
        timing = self.backend.time(self.workload(entry), protocol)
        self.pass_ms.setdefault(entry.key, []).append(timing.latency_ms)
        return timing

    def keep(self, entry: Entry, timing: Timing) -> None:
        self.per_chunk.setdefault(entry.key, []).append(timing)

    def result(self) -> dict[str, NetworkTiming]:
        return {key: NetworkTiming.of(timings, self.pass_ms[key]) for key, timings in self.per_chunk.items()}


class Recorder:
    """Times entries for one session and appends their rows (with several passes, each pass also to
    the :class:`.PassLog`, so a killed session resumes with them); whole networks riding along in
    the passes (``riders``) are kept aside (:class:`NetworkTimes`)."""

    def __init__(self, bundle: Bundle, backend: Backend, settings: Settings, writer: LutWriter,
                 modules: Callable[[Entry], object] | None) -> None:
        self.bundle, self.backend, self.settings, self.writer, self.modules = bundle, backend, settings, writer, modules
        self.log = pass_log_of(writer.path, backend, settings)
        if self.log.call_overhead_ms is not None:  # a killed session's passes had this subtracted: so do ours
            backend.adopt_call_overhead(self.log.call_overhead_ms)
        self.overhead_ms = backend.call_overhead_ms(settings.protocol)
        self.meta = {**backend.metadata(), "source": "measured", "host": platform.node()}
        protocol = settings.protocol
        self.protocol_columns = {"min_time_ms": protocol.min_time_ms, "passes": protocol.passes}
        self.rows: list[dict] = []
        self.networks = NetworkTimes(backend, lambda entry: workload_of(bundle, entry, modules))

    def time_one(self, entry: Entry, protocol: TimingProtocol) -> Timing:
        if entry.op == "network":
            return self.networks.time_one(entry, protocol)
        timing = self.backend.time_in_network(workload_of(self.bundle, entry, self.modules), protocol)
        if self.settings.protocol.passes > 1:
            self.log.record(self.key(entry), self.cache_flush, timing, self.overhead_ms)
        return timing

    def measure(self, entries: list[Entry], after_each: Callable[[Entry], None] | None = None,
                riders: Sequence[Entry] = ()) -> None:
        for entry, timing, remeasured in timings(entries, self.time_one, self.settings, after_each, riders,
                                                  self.earlier):
            if entry.op == "network":
                self.networks.keep(entry, timing)
                continue
            row = {**row_of(entry, self.bundle, self.backend, self.settings),
                   **_timing_columns(timing, self.overhead_ms), **self.meta, **self.protocol_columns,
                   "remeasured": int(remeasured),
                   "noisy": int(timing.spread > self.settings.noisy_spread),
                   "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
            self.writer.append(row)
            self.rows.append(row)

    def key(self, entry: Entry) -> str:
        return "|".join(row_key(row_of(entry, self.bundle, self.backend, self.settings)))

    def earlier(self, entry: Entry) -> list[Timing]:
        return [] if entry.op == "network" else self.log.taken(self.key(entry), self.cache_flush)

    @property
    def cache_flush(self) -> CacheFlush | None:
        return self.backend.cache_flush


def workload_of(bundle: Bundle, entry: Entry, modules: Callable[[Entry], object] | None) -> Workload:
    build = (lambda: modules(entry)) if modules is not None else None
    return Workload(entry.key, entry.inputs, bundle.path(entry), build)
