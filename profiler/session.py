"""One profiling session: time every configuration of a bundle that the LUT lacks, in interleaved
passes (see :mod:`.timing`; with one pass, noisy entries are re-measured once), append the rows
once timed, then (optionally) check that the sum of LUT entries predicts whole-network latency.

With several passes the whole networks to validate against ride along in the same passes, so
they are timed in the same phases of the machine as the rows they are compared with."""

from __future__ import annotations

import datetime
import json
import math
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pandas as pd
from tqdm import tqdm

from ..contracts.candidates import Candidate
from ..contracts.files import FileLock
from ..errors import DepthshrinkError
from ..lut.predictor import MIN_ROWS, LatencyPredictor, cross_validate
from ..lut.sampling import most_uncertain, seed_order
from ..lut.table import SETTING_COLUMNS, LatencyTable, LutWriter, row_key
from ..lut.transfer import priors_for
from ..models.space import write_json_atomic
from .base import Backend, CacheFlush, Workload
from .bundle import CORPUS_LABEL, Bundle, Entry
from .cache_flush import FlushChoice, choose_cache_flush, earlier_choice
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


@dataclass
class ProfileReport:
    measured: pd.DataFrame
    skipped: int
    seconds: float
    cache_flush: FlushChoice | None = None   # when the session chose it (onnxruntime, auto)
    networks: dict[str, NetworkTiming] = field(default_factory=dict)  # timed in the passes, by entry key


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


def _timings(items: Sequence[Item], time_one: Callable[[Item, TimingProtocol], Timing], settings: Settings,
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
    for chunk in _chunks(items, settings.pass_chunk):
        spread = list(chunk)
        for i, rider in reversed(list(enumerate(riders))):
            spread.insert((2 * i + 1) * len(chunk) // (2 * len(riders)), rider)
        for item, timing in zip(spread, interleaved(spread, time_one, protocol, after_each, earlier)):
            yield item, timing, False


def _chunks(items: Sequence[Item], size: int) -> list[Sequence[Item]]:
    """``items`` in chunks of at most ``size``, of even sizes: no short one left to run alone."""
    count = math.ceil(len(items) / size)
    if count == 0:
        return []
    bounds = [len(items) * i // count for i in range(count + 1)]
    return [items[start:end] for start, end in zip(bounds, bounds[1:])]


def _setting(backend: Backend, settings: Settings) -> dict:
    """The LUT columns that tell one measuring setting from another."""
    return {"device": settings.device, "backend": backend.name, "precision": backend.precision,
            "batch_size": settings.batch_size, "threads": backend.metadata().get("threads")}


def _pass_log(lut_path: str | Path, backend: Backend, settings: Settings) -> PassLog:
    """The pass log of this setting (its row keys begin with the setting's columns)."""
    setting = "|".join(row_key(_setting(backend, settings))[:len(SETTING_COLUMNS)])
    return PassLog(lut_path, settings.protocol, setting)


def _row(entry: Entry, bundle: Bundle, backend: Backend, settings: Settings) -> dict:
    base = _setting(backend, settings)
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


class _NetworkTimes:
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


class _Recorder:
    """Times entries for one session and appends their rows (with several passes, each pass also to
    the :class:`.PassLog`, so a killed session resumes with them); whole networks riding along in
    the passes (``riders``) are kept aside (:class:`_NetworkTimes`)."""

    def __init__(self, bundle: Bundle, backend: Backend, settings: Settings, writer: LutWriter,
                 modules: Callable[[Entry], object] | None) -> None:
        self.bundle, self.backend, self.settings, self.writer, self.modules = bundle, backend, settings, writer, modules
        self.log = _pass_log(writer.path, backend, settings)
        if self.log.call_overhead_ms is not None:  # a killed session's passes had this subtracted: so do ours
            backend.adopt_call_overhead(self.log.call_overhead_ms)
        self.overhead_ms = backend.call_overhead_ms(settings.protocol)
        self.meta = {**backend.metadata(), "source": "measured", "host": platform.node()}
        self.rows: list[dict] = []
        self.networks = _NetworkTimes(backend, lambda entry: _workload(bundle, entry, modules))

    def time_one(self, entry: Entry, protocol: TimingProtocol) -> Timing:
        if entry.op == "network":
            return self.networks.time_one(entry, protocol)
        timing = self.backend.time_in_network(_workload(self.bundle, entry, self.modules), protocol)
        if self.settings.protocol.passes > 1:
            self.log.record(self.key(entry), self.cache_flush, timing, self.overhead_ms)
        return timing

    def measure(self, entries: list[Entry], after_each: Callable[[Entry], None] | None = None,
                riders: Sequence[Entry] = ()) -> None:
        for entry, timing, remeasured in _timings(entries, self.time_one, self.settings, after_each, riders,
                                                  self.earlier):
            if entry.op == "network":
                self.networks.keep(entry, timing)
                continue
            row = {**_row(entry, self.bundle, self.backend, self.settings),
                   **_timing_columns(timing, self.overhead_ms), **self.meta, "remeasured": int(remeasured),
                   "noisy": int(timing.spread > self.settings.noisy_spread),
                   "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
            self.writer.append(row)
            self.rows.append(row)

    def key(self, entry: Entry) -> str:
        return "|".join(row_key(_row(entry, self.bundle, self.backend, self.settings)))

    def earlier(self, entry: Entry) -> list[Timing]:
        return [] if entry.op == "network" else self.log.taken(self.key(entry), self.cache_flush)

    @property
    def cache_flush(self) -> CacheFlush | None:
        return self.backend.cache_flush


def profile(bundle: Bundle, backend: Backend, lut_path: str | Path, settings: Settings,
            modules: Callable[[Entry], object] | None = None, budget_fraction: float | None = None,
            target_within_10pct: float = 0.95, networks: bool = False) -> ProfileReport:
    """Measure what ``lut_path`` lacks for this bundle; rows are appended as they are timed (with
    several passes, chunk by chunk).

    With ``budget_fraction``, at most that share of the conv configurations is measured
    (adaptively, see :mod:`.adaptive`); the predictor fills in the rest when the table is used.
    With ``networks`` (and several passes), the bundle's whole networks are timed in every chunk's
    passes too (adaptively: in the seed sample's), reported in ``ProfileReport.networks`` for :func:`validate`;
    not when some rows come from earlier sessions (an extended table, a killed session's logged
    passes): the networks would not meet those rows' passes, :func:`validate` times them alone.

    The LUT is locked for the session: a second process profiling into it is refused with a line.
    """
    with FileLock(lut_path, "a profiling session"):
        return _profile(bundle, backend, lut_path, settings, modules, budget_fraction, target_within_10pct,
                        networks)


def _profile(bundle: Bundle, backend: Backend, lut_path: str | Path, settings: Settings,
             modules: Callable[[Entry], object] | None, budget_fraction: float | None,
             target_within_10pct: float, networks: bool) -> ProfileReport:
    writer = LutWriter(lut_path)
    done = writer.existing_keys()
    todo = [e for e in bundle.entries if e.op in ("conv", "fixed")]
    pending = [e for e in todo if row_key(_row(e, bundle, backend, settings)) not in done]
    began = time.perf_counter()
    flush = _cache_flush(bundle, backend, lut_path, settings, modules) if pending else None
    if not pending:
        _pass_log(lut_path, backend, settings).close()  # left by a session killed after its last rows
        return ProfileReport(pd.DataFrame(), len(todo), time.perf_counter() - began)
    recorder = _Recorder(bundle, backend, settings, writer, modules)
    passes = settings.protocol.passes
    logged = sum(min(len(recorder.earlier(e)), passes) for e in pending)  # a killed session's passes
    fresh = len(pending) == len(todo) and logged == 0
    riders = bundle.of_op("network") if networks and passes > 1 and fresh else []
    if budget_fraction is None:
        timings = (len(pending) + len(riders) * len(_chunks(pending, settings.pass_chunk))) * passes - logged
        with tqdm(total=timings, unit="cfg", disable=not settings.progress,
                  desc=f"profile {backend.name}" + (f" ({passes} passes)" if passes > 1 else "")) as bar:
            recorder.measure(pending, lambda entry: (bar.set_postfix_str(entry.key[:48]), bar.update()), riders)
    else:
        total = sum(e.op == "conv" for e in todo)
        # never fewer rows than the predictor needs to fit (or every configuration, if fewer)
        wanted = max(math.ceil(budget_fraction * total), min(MIN_ROWS, total))
        limit = wanted - (total - sum(e.op == "conv" for e in pending))
        setting = _setting(backend, settings)

        def measured() -> pd.DataFrame:  # every row of this setting, earlier runs included
            return LatencyTable.read(lut_path).select(**setting).frame

        _adaptive(pending, limit, recorder, measured, target_within_10pct, settings, riders)
    recorder.log.close()
    return ProfileReport(pd.DataFrame(recorder.rows), len(todo) - len(pending), time.perf_counter() - began, flush,
                  recorder.networks.result())


def _cache_flush(bundle: Bundle, backend: Backend, lut_path: str | Path, settings: Settings,
                 modules: Callable[[Entry], object] | None) -> FlushChoice | None:
    """With ``cache_flush`` left to the session (onnxruntime, auto): the setting the table's
    earlier rows (or a killed session's passes) were measured with, or else the one the original
    network calls for."""
    if backend.cache_flush is not CacheFlush.AUTO:
        return None
    try:
        earlier = earlier_choice(LatencyTable.read(lut_path).select(**_setting(backend, settings)).frame)
    except DepthshrinkError:  # no rows of this setting yet
        earlier = None
    if earlier is None and settings.protocol.passes > 1:
        earlier = _pass_log(lut_path, backend, settings).cache_flush
    if earlier is not None:
        backend.cache_flush = earlier
        return FlushChoice(earlier, kept=True)
    return choose_cache_flush(bundle, backend, settings.protocol, lambda e: _workload(bundle, e, modules))


def _adaptive(pending: list[Entry], limit: int, recorder: _Recorder,
              measured: Callable[[], pd.DataFrame], target: float, settings: Settings,
              riders: Sequence[Entry] = (), batch: int = 5) -> None:
    """Seed sample, then the most uncertain configurations, ``limit`` conv rows at most (the passes
    of the protocol interleave within the seed sample, with the ``riders``, and within each later
    batch)."""
    recorder.measure([e for e in pending if e.op != "conv"])
    left = [e for e in pending if e.op == "conv"]
    if limit <= 0 or not left:
        return
    passes = settings.protocol.passes
    seed = seed_order(_fields(left, settings.batch_size), min(limit, max(2 * MIN_ROWS, limit // 2)))
    timings = (limit + len(riders) * len(_chunks(seed, settings.pass_chunk))) * passes \
        - sum(min(len(recorder.earlier(left[i])), passes) for i in seed)  # a resumed seed's logged passes
    bar = tqdm(total=timings, desc="profile (adaptive" + (f", {passes} passes)" if passes > 1 else ")"),
               unit="cfg", disable=not settings.progress)
    taken = checked = 0

    def take(positions: list[int], riders: Sequence[Entry] = ()) -> None:
        nonlocal taken
        entries = [left[i] for i in positions]
        for entry in entries:
            left.remove(entry)
        recorder.measure(entries, lambda entry: (bar.set_postfix_str(entry.key[:48]), bar.update()), riders)
        taken += len(entries)

    take(seed, riders)
    while left and taken < limit:
        frame = measured()
        if taken - checked >= 2 * batch:  # held-out accuracy every few rows: it costs seconds
            checked = taken
            if cross_validate(frame, priors=priors_for(frame))[0].within_10pct >= target:
                break
        take(most_uncertain(frame[frame["op"] == "conv"], _fields(left, settings.batch_size),
                            min(batch, limit - taken)))
    bar.close()


def _fields(entries: list[Entry], batch_size: int) -> pd.DataFrame:
    return pd.DataFrame([{**e.fields, "batch_size": batch_size} for e in entries])


def _workload(bundle: Bundle, entry: Entry, modules: Callable[[Entry], object] | None) -> Workload:
    build = (lambda: modules(entry)) if modules is not None else None
    return Workload(entry.key, entry.inputs, bundle.path(entry), build)


def predict_network_ms(table: LatencyTable, bundle: Bundle, segments: list[list[int]]) -> tuple[float, int]:
    """(fixed part + Σ LUT(segment) + one call overhead, how many segments were predicted):
    the LUT's estimate of a whole network; configurations it lacks come from the predictor."""
    image = tuple(next(e for e in bundle.entries if e.op == "fixed").inputs["input"][1:])
    fixed = table.fixed_latency_ms(bundle.model_label, image)
    if fixed is None:
        raise DepthshrinkError(f"the LUT has no fixed-part row for {bundle.model_label} at {'x'.join(map(str, image))}")
    spans = [bundle.space.spans[(start, end)] for start, end in segments]
    latencies = [table.conv_latency_ms(s.shape, s.activation, s.residual_add) for s in spans]
    missing = [i for i, value in enumerate(latencies) if value is None]
    if missing:
        rows = pd.DataFrame([{**Candidate(spans[i].shape, spans[i].activation, spans[i].residual_add).lut_fields(),
                              "batch_size": bundle.batch_size} for i in missing])
        for i, value in zip(missing, LatencyPredictor(table.frame, priors=priors_for(table.frame)).predict(rows)[0]):
            latencies[i] = float(value)
    return fixed + table.call_overhead_ms + sum(latencies), len(missing)


def validate(bundle: Bundle, backend: Backend, lut_path: str | Path, settings: Settings,
             modules: Callable[[Entry], object] | None = None,
             timed: dict[str, NetworkTiming] | None = None) -> list[dict]:
    """Compare each whole network of the bundle with the sum of its LUT entries. Networks timed
    among the rows (``timed``, see :func:`profile`) are not timed again; the others are, now."""
    table = LatencyTable.read(lut_path).select(**_setting(backend, settings))
    among_rows = set(timed or {})
    now = _NetworkTimes(backend, lambda entry: _workload(bundle, entry, modules))
    for entry, timing, _ in _timings([e for e in bundle.of_op("network") if e.key not in among_rows],
                                     now.time_one, settings):
        now.keep(entry, timing)
    timed = {**(timed or {}), **now.result()}
    results = []
    for entry in bundle.of_op("network"):
        timing, passes = timed[entry.key].timing, timed[entry.key].pass_ms
        predicted, predicted_segments = predict_network_ms(table, bundle, entry.fields["segments"])
        results.append({"model": bundle.model_label, "input": entry.inputs["input"][1:],
                        "network": entry.key.removeprefix("network_"),
                        "segments": len(entry.fields["segments"]), "predicted_segments": predicted_segments,
                        "measured_ms": timing.latency_ms,
                        "measured_p10_ms": timing.latency_p10_ms, "measured_p90_ms": timing.latency_p90_ms,
                        "fastest_pass_ms": min(passes), "slowest_pass_ms": max(passes),
                        "timed_among_rows": entry.key in among_rows, "predicted_ms": predicted,
                        "error_pct": 100 * (predicted - timing.latency_ms) / timing.latency_ms,
                        **{k: v for k, v in table.setting.items()}})
    out = Path(lut_path).with_suffix(".validation.json")
    try:
        previous = json.loads(out.read_text()) if out.exists() else []
    except json.JSONDecodeError:
        previous = []  # an unreadable earlier report is replaced
    def same(old: dict, new: dict) -> bool:  # one network at one input size (when recorded), one setting
        return all(old.get(k) == new.get(k) for k in ("model", "network", *SETTING_COLUMNS)) and \
            old.get("input") in (None, new["input"])

    keep = [r for r in previous if not any(same(r, new) for new in results)]
    write_json_atomic(out, keep + results)
    return results
