"""The single passes of a session with several passes, kept next to the LUT while it runs.

A row reaches the LUT only once its chunk's passes are all done (a MobileNetV2 table is one
chunk of about four minutes on a CPU). Each pass's timing of a row is appended here as it is
taken (one write, then fsync, as the LUT's rows), so a killed session resumes with the passes it
already ran and times only the rest, and, when the flush was the session's to choose, keeps
the cache-flush setting they were timed with. A log is read for one setting (device, backend,
precision, batch, threads), protocol and host: other lines are left alone, and removed with
this setting's when its session ends (the file goes once it holds none).
"""

from __future__ import annotations

import csv
import io
import platform
from dataclasses import astuple
from pathlib import Path

from ..contracts.files import append_csv_line, cut_torn_line, write_text_atomic
from .base import CacheFlush
from .timing import Timing, TimingProtocol

FIELDS = ["key", "protocol", "host", "cache_flush", "latency_ms", "latency_p10_ms", "latency_p90_ms", "runs",
          "warmup_ms", "call_overhead_ms"]


def log_path(lut_path: str | Path) -> Path:
    """``cpu.csv`` → ``cpu.passes.csv``; a LUT named otherwise gets ``.passes.csv`` appended."""
    lut_path = Path(lut_path)
    stem = lut_path.name[:-len(".csv")] if lut_path.name.endswith(".csv") else lut_path.name
    return lut_path.with_name(stem + ".passes.csv")


def _protocol_text(protocol: TimingProtocol, timing_method: str | None = None) -> str:
    """How a pass was timed: the protocol, and the backend's way (a CUDA graph or plain calls)."""
    return f"warmup {protocol.warmup_ms:g} ms, runs {protocol.min_runs}-{protocol.max_runs}, " \
           f"time {protocol.min_time_ms:g} ms, passes {protocol.passes}" + (f", {timing_method}" if timing_method else "")


def _timing(line: dict) -> Timing | None:
    try:
        return Timing(float(line["latency_ms"]), float(line["latency_p10_ms"]), float(line["latency_p90_ms"]),
                      int(line["runs"]), float(line["warmup_ms"]))
    except (TypeError, ValueError):  # a line of another layout, or damaged: not used
        return None


class PassLog:
    """Pass timings of one setting by row key (the LUT row's identity as one text, which begins
    with ``setting``) and cache-flush setting (``None``: a backend without one)."""

    def __init__(self, lut_path: str | Path, protocol: TimingProtocol, setting: str,
                 timing_method: str | None = None) -> None:
        self.path, self.setting = log_path(lut_path), setting
        self.protocol, self.host = _protocol_text(protocol, timing_method), platform.node()
        # a log from before the method was recorded: its lines are ours where a backend times one way only
        self.protocols = {self.protocol} | ({_protocol_text(protocol)} if timing_method == "host-clock" else set())
        self.earlier: dict[tuple[str, CacheFlush | None], list[Timing]] = {}
        self.cache_flush: CacheFlush | None = None  # the flush of this setting's latest line, if any had one
        self.call_overhead_ms: float | None = None  # what its passes had subtracted (the latest line's)
        self.layout_checked = False  # the file's header, once before this session's first line
        for line in self._lines():
            timing = _timing(line)
            if (not self._ours(line) or line.get("protocol") not in self.protocols or line.get("host") != self.host
                    or timing is None):
                continue
            flush = CacheFlush.from_recorded(line.get("cache_flush") or "")
            self.cache_flush = flush if flush is not None else self.cache_flush
            try:
                self.call_overhead_ms = float(line.get("call_overhead_ms") or "")
            except ValueError:  # a log of an older layout: its passes are still used
                pass
            self.earlier.setdefault((line["key"], flush), []).append(timing)

    def _lines(self) -> list[dict]:
        if not self.path.exists():
            return []
        return list(csv.DictReader(io.StringIO(cut_torn_line(self.path).decode(errors="replace"))))

    def _ours(self, line: dict) -> bool:
        return str(line.get("key") or "").startswith(self.setting + "|")

    def taken(self, key: str, cache_flush: CacheFlush | None) -> list[Timing]:
        """The passes an earlier, killed session already ran for this row, with this flush setting."""
        return self.earlier.get((key, cache_flush), [])

    def record(self, key: str, cache_flush: CacheFlush | None, timing: Timing, call_overhead_ms: float) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.write_text(",".join(FIELDS) + "\n")
        elif not self.layout_checked and self._header() != FIELDS:  # an older layout: rewritten in this one first
            self._rewrite(self._lines())
        self.layout_checked = True
        flush = "" if cache_flush is None or cache_flush.recorded is None else cache_flush.recorded
        append_csv_line(self.path, [key, self.protocol, self.host, flush, *astuple(timing), call_overhead_ms])

    def close(self) -> None:
        """The session ended: its rows are in the LUT. This setting's lines go (the file, once
        it holds no other setting's)."""
        others = [line for line in self._lines() if not self._ours(line)]
        if not others:
            self.path.unlink(missing_ok=True)
            return
        self._rewrite(others)

    def _header(self) -> list[str]:
        with open(self.path, newline="", errors="replace") as handle:
            return next(csv.reader(handle), [])

    def _rewrite(self, lines: list[dict]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)
        write_text_atomic(self.path, buffer.getvalue())  # a crash keeps the old log or the new, whole
