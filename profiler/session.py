"""One profiling session: time every configuration of a bundle that the LUT lacks, in interleaved
passes (see :mod:`.timing` and :mod:`.recording`), append the rows once timed; with a budget, an
adaptive sample of them (:mod:`depthshrink.lut.sampling`; the predictor fills in the rest when the
table is used).

With several passes the whole networks to validate against (:mod:`.validation`) ride along in
the same passes, so they are timed in the same phases of the machine as the rows they are
compared with."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from ..contracts.files import FileLock
from ..errors import DepthshrinkError
from ..lut.predictor import MIN_ROWS, cross_validate
from ..lut.sampling import most_uncertain, seed_order
from ..lut.table import LatencyTable, NoRowsOfSetting, read_lut, row_key
from ..lut.transfer import priors_for
from ..lut.writer import LutWriter
from .base import Backend, CacheFlush
from .bundle import Bundle, Entry
from .cache_flush import FlushChoice, choose_cache_flush, earlier_choice
from .recording import NetworkTiming, Recorder, Settings, chunks, pass_log_of, row_of, setting_of, workload_of

__all__ = ["ProfileReport", "Settings", "profile"]


@dataclass
class ProfileReport:
    measured: pd.DataFrame
    skipped: int
    seconds: float
    cache_flush: FlushChoice | None = None   # when the session chose it (onnxruntime, auto)
    networks: dict[str, NetworkTiming] = field(default_factory=dict)  # timed in the passes, by entry key


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
    _check_timed_alike(lut_path, backend, settings)
    done = writer.existing_keys()
    todo = [e for e in bundle.entries if e.op in ("conv", "fixed")]
    _check_fixed_row_current(bundle, lut_path, backend, settings, done)
    pending = [e for e in todo if row_key(row_of(e, bundle, backend, settings)) not in done]
    began = time.perf_counter()
    flush = _cache_flush(bundle, backend, lut_path, settings, modules) if pending else None
    if not pending:
        pass_log_of(lut_path, backend, settings).close()  # left by a session killed after its last rows
        return ProfileReport(pd.DataFrame(), len(todo), time.perf_counter() - began)
    recorder = Recorder(bundle, backend, settings, writer, modules)
    passes = settings.protocol.passes
    logged = sum(min(len(recorder.earlier(e)), passes) for e in pending)  # a killed session's passes
    fresh = len(pending) == len(todo) and logged == 0
    riders = bundle.of_op("network") if networks and passes > 1 and fresh else []
    if budget_fraction is None:
        timings = (len(pending) + len(riders) * len(chunks(pending, settings.pass_chunk))) * passes - logged
        with tqdm(total=timings, unit="cfg", disable=not settings.progress,
                  desc=f"profile {backend.name}" + (f" ({passes} passes)" if passes > 1 else "")) as bar:
            recorder.measure(pending, lambda entry: (bar.set_postfix_str(entry.key[:48]), bar.update()), riders)
    else:
        total = sum(e.op == "conv" for e in todo)
        # never fewer rows than the predictor needs to fit (or every configuration, if fewer)
        wanted = max(math.ceil(budget_fraction * total), min(MIN_ROWS, total))
        limit = wanted - (total - sum(e.op == "conv" for e in pending))
        setting = setting_of(backend, settings)

        def measured() -> pd.DataFrame:  # every row of this setting, earlier runs included
            return LatencyTable.read(lut_path).select(**setting).frame

        _adaptive(pending, limit, recorder, measured, target_within_10pct, settings, riders)
    recorder.log.close()
    return ProfileReport(pd.DataFrame(recorder.rows), len(todo) - len(pending), time.perf_counter() - began, flush,
                  recorder.networks.result())


FIXED_PART_TIMES_GAPS = "2026-12-06T18:48:00+00:00"  # since then the fixed part times ops at barriers (SE gates)


def _check_fixed_row_current(bundle: Bundle, lut_path: str | Path, backend: Backend, settings: Settings,
                             done: set[tuple]) -> None:
    """Refuse to extend a table whose fixed-part row of a network with ops at its barriers (the fixed
    entry's inputs beyond the image and the chain's output) was measured before the fixed part timed
    them: that row lacks them, and extending keeps it. ``done``: the keys of the table's rows."""
    entry = next((e for e in bundle.entries if e.op == "fixed"), None)
    key = None if entry is None or len(entry.inputs) <= 2 else row_key(row_of(entry, bundle, backend, settings))
    if key not in done:  # no such network, no op at its barriers, or its fixed row still to measure
        return
    frame = read_lut(lut_path)
    rows = frame[[row_key(row) == key for row in frame.to_dict("records")]]
    old = rows[rows["measured_at"].astype(str) < FIXED_PART_TIMES_GAPS] if "measured_at" in rows else rows.iloc[:0]
    if not old.empty:
        raise DepthshrinkError(f"{lut_path}'s fixed-part row of {bundle.model_label} was measured "
                               f"{old['measured_at'].iloc[0]}, before the fixed part timed the ops at the chain's barriers "
                               f"(squeeze-and-excitation gates): profile into a new LUT, or delete that row")


def _check_timed_alike(lut_path: str | Path, backend: Backend, settings: Settings) -> None:
    """Refuse to extend a table whose rows of this setting were timed another way (a CUDA graph
    against eager calls, or the other cache flush): one table, one way of timing. (``auto`` takes
    the table's flush, see :func:`_cache_flush`.)"""
    try:
        table = LatencyTable.read(lut_path)
    except DepthshrinkError:
        return  # nothing readable yet: the writer says what
    try:
        rows = table.select(**setting_of(backend, settings))
    except NoRowsOfSetting:
        return  # a setting new to the table (timed in several ways already: refused by select)
    spelled = sorted(set(rows.frame["device"].astype(str)) - {settings.device})
    if spelled:  # found without case, the rows would be measured again under a second spelling
        raise DepthshrinkError(f"{lut_path} names this device {spelled[0]}, this session {settings.device}: "
                               f"give --device-label {spelled[0]} to extend it")
    recorded, ours = rows.setting.get("timing_method"), backend.metadata().get("timing_method")
    if recorded and ours and recorded != ours:
        raise DepthshrinkError(f"{lut_path}'s rows of this setting were timed as {recorded}, this session times them as "
                               f"{ours}: write to another LUT (or time them as {recorded})")
    flush, earlier = backend.cache_flush, earlier_choice(rows.frame)
    if flush in (CacheFlush.ON, CacheFlush.OFF) and earlier is not None and earlier is not flush:
        doing = "flushes" if flush is CacheFlush.ON else "does not flush"
        raise DepthshrinkError(f"{lut_path}'s rows of this setting were timed with the cache flush {earlier.value}, "
                               f"this session {doing}: write to another LUT (or give --cache-flush "
                               f"{earlier.value}, or auto)")


def _cache_flush(bundle: Bundle, backend: Backend, lut_path: str | Path, settings: Settings,
                 modules: Callable[[Entry], object] | None) -> FlushChoice | None:
    """With ``cache_flush`` left to the session (onnxruntime, auto): the setting the table's
    earlier rows (or a killed session's passes) were measured with, or else the one the original
    network calls for."""
    if backend.cache_flush is not CacheFlush.AUTO:
        return None
    try:
        rows = LatencyTable.read(lut_path).select(**setting_of(backend, settings)).frame
    except DepthshrinkError:  # no rows of this setting yet
        rows = None
    earlier, logged = None if rows is None else earlier_choice(rows), False
    if earlier is None and settings.protocol.passes > 1:
        earlier = pass_log_of(lut_path, backend, settings).cache_flush
        logged = earlier is not None
    if earlier is not None:
        backend.cache_flush = earlier
        return FlushChoice(earlier, kept=True, from_passes=logged)
    choice = choose_cache_flush(bundle, backend, settings.protocol, lambda e: workload_of(bundle, e, modules))
    return replace(choice, unrecorded_rows=0 if rows is None else len(rows))  # a LUT from before the column


def _adaptive(pending: list[Entry], limit: int, recorder: Recorder,
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
    seed = seed_order(_entry_rows(left, settings.batch_size), min(limit, max(2 * MIN_ROWS, limit // 2)))
    timings = (limit + len(riders) * len(chunks(seed, settings.pass_chunk))) * passes \
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
        take(most_uncertain(frame[frame["op"] == "conv"], _entry_rows(left, settings.batch_size),
                            min(batch, limit - taken)))
    bar.close()


def _entry_rows(entries: list[Entry], batch_size: int) -> pd.DataFrame:
    return pd.DataFrame([{**e.fields, "batch_size": batch_size} for e in entries])
