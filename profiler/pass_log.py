"""The single passes of a session with several passes, kept next to the LUT while it runs.

A row reaches the LUT only once its chunk's passes are all done (a MobileNetV2 table is one
chunk of about four minutes on a CPU). Each pass's timing of a row is appended here as it is
taken (one write, then fsync, as the LUT's rows), so a killed session resumes with the passes it
already ran and times only the rest (and keeps the cache-flush setting they were timed with,
when it was the session's to choose). The file (``LUT.passes.csv``) is removed once a session
ends; lines of another protocol or flush setting are ignored.
"""

from __future__ import annotations

import csv
import io
from dataclasses import astuple
from pathlib import Path

from ..lut.table import append_csv_line, cut_torn_line
from .timing import Timing, TimingProtocol

FIELDS = ["key", "protocol", "cache_flush", "latency_ms", "latency_p10_ms", "latency_p90_ms", "runs", "warmup_ms"]
TIMING = FIELDS[3:]


def _protocol_text(protocol: TimingProtocol) -> str:
    return f"warmup {protocol.warmup_ms:g} ms, runs {protocol.min_runs}-{protocol.max_runs}, " \
           f"time {protocol.min_time_ms:g} ms, passes {protocol.passes}"


class PassLog:
    """Pass timings by row key (the LUT row's identity, one text) and cache-flush setting
    (``None``: a backend without one), earlier sessions' included."""

    def __init__(self, lut_path: str | Path, protocol: TimingProtocol) -> None:
        self.path = Path(lut_path).with_suffix(".passes.csv")
        self.protocol = _protocol_text(protocol)
        self.earlier: dict[tuple[str, bool | None], list[Timing]] = {}
        self.cache_flush: bool | None = None  # the setting of the latest line, if any had one
        lines = csv.DictReader(io.StringIO(cut_torn_line(self.path).decode(errors="replace"))) \
            if self.path.exists() else []
        for line in lines:
            if line.get("protocol") != self.protocol or not line.get("key") or None in line.values():
                continue  # another protocol's, or not a line of this layout
            flush = {"1": True, "0": False}.get(line["cache_flush"])
            self.cache_flush = flush if flush is not None else self.cache_flush
            timing = Timing(*(float(line[f]) for f in TIMING[:3]), int(line["runs"]), float(line["warmup_ms"]))
            self.earlier.setdefault((line["key"], flush), []).append(timing)

    def taken(self, key: str, cache_flush: bool | None) -> list[Timing]:
        """The passes an earlier, killed session already ran for this row, with this flush setting."""
        return self.earlier.get((key, cache_flush), [])

    def record(self, key: str, cache_flush: bool | None, timing: Timing) -> None:
        if not self.path.exists():
            self.path.write_text(",".join(FIELDS) + "\n")
        flush = "" if cache_flush is None else int(cache_flush)
        append_csv_line(self.path, [key, self.protocol, flush, *astuple(timing)])

    def close(self) -> None:
        """The session ended: its rows are in the LUT, the passes are no longer needed."""
        self.path.unlink(missing_ok=True)
