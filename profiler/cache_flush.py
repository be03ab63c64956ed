"""Whether ONNX Runtime blocks are timed after a cache flush, chosen on the machine (``auto``).

A block timed back to back alone finds its weights and input in the core's private cache. Inside
a network the other layers may have pushed them out (flush before each timed run) or not, when
the network's working set lives in the private cache too (no flush). Which holds depends on the
CPU and the network: on an AMD EPYC VM (512 KiB L2) the flush was right for a 28 px
MobileNetV2-0.5, on an Intel Xeon VM (2 MiB L2) it made the same table sum to twice the network.
So ``auto`` times the original network whole and each of its layers both ways (interleaved
passes of one pass's time in all), and keeps the setting whose sum of layers is closer to it.
The choice is recorded in the LUT (``cache_flush``) and kept when the table is extended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pandas as pd

from ..contracts.candidates import Candidate
from .base import CacheFlush, Workload
from .bundle import Bundle, Entry
from .timing import Timing, TimingProtocol, interleaved


@dataclass(frozen=True)
class FlushChoice:
    cache_flush: CacheFlush                # ON or OFF
    network_ms: float | None = None      # the original network, measured whole
    with_flush_ms: float | None = None   # fixed part + its layers + one call overhead, flushed
    without_flush_ms: float | None = None
    kept: bool = False                   # as the LUT's earlier rows of this setting were measured
    from_passes: bool = False            # kept from a killed session's logged passes (the LUT has no row yet)
    unrecorded_rows: int = 0             # earlier rows of this setting that do not record their flush

    def describe(self) -> str:
        return self._chosen() + (f"; the LUT's {self.unrecorded_rows} earlier rows of this setting do not record "
                                 "theirs: if they were timed the other way, µs-scale rows differ by up to ~2x"
                                 if self.unrecorded_rows else "")

    def _chosen(self) -> str:
        setting = f"cache flush {self.cache_flush.value}"
        if self.kept:
            return f"{setting}, as " + ("a killed session's logged passes of this setting" if self.from_passes
                                        else "the LUT's earlier timings of this setting")
        if self.network_ms is None:
            return f"{setting} (no whole network to choose by)"
        def error(value: float) -> str:
            return f"{100 * (value - self.network_ms) / self.network_ms:+.1f}%"
        return (f"{setting}: the original network measured "
                f"{self.network_ms:.4f} ms, its layers sum to {error(self.with_flush_ms)} with the flush, "
                f"{error(self.without_flush_ms)} without")


def choose_cache_flush(bundle: Bundle, backend, protocol: TimingProtocol,
                       workload: Callable[[Entry], Workload]) -> FlushChoice:
    """The setting (``backend.cache_flush``, left set) whose sum of the original network's layers
    comes closer to the network; on by default when the bundle holds no whole network.

    The network and each layer both ways are timed in ``protocol.passes`` interleaved passes of
    one pass's time in all (fastest kept), so a slow phase of the machine falls on all of them."""
    original = next((e for e in bundle.of_op("network") if e.key == "network_original"), None)
    if original is None or bundle.space is None:
        backend.cache_flush = CacheFlush.ON
        return FlushChoice(CacheFlush.ON)
    by_key = {e.key: e for e in bundle.entries}
    fixed = next(e.key for e in bundle.entries if e.op == "fixed")
    parts = [_key(bundle, start, end) for start, end in original.fields["segments"]] + [fixed]
    one_pass = protocol.one_pass()
    quick = replace(one_pass, passes=protocol.passes)  # one pass's time, spread over the passes

    def time_one(item: tuple[str, CacheFlush | None], one_pass: TimingProtocol) -> Timing:
        key, flush = item
        if flush is None:
            return backend.time(workload(original), one_pass)
        backend.cache_flush = flush
        return backend.time_in_network(workload(by_key[key]), one_pass)

    layers = [(key, flush) for key in dict.fromkeys(parts) for flush in (CacheFlush.ON, CacheFlush.OFF)]
    middle = len(layers) // 2  # the network twice a pass: at its start and half way
    items = [(original.key, None)] + layers[:middle] + [(original.key + "@middle", None)] + layers[middle:]
    timings = dict(zip(items, interleaved(items, time_one, quick)))
    network_ms = min(timings[(original.key, None)].latency_ms, timings[(original.key + "@middle", None)].latency_ms)
    overhead_ms = backend.call_overhead_ms(one_pass)
    sums = {flush: overhead_ms + sum(timings[(key, flush)].latency_ms for key in parts)
            for flush in (CacheFlush.ON, CacheFlush.OFF)}
    backend.cache_flush = min(sums, key=lambda flush: abs(sums[flush] - network_ms))
    return FlushChoice(backend.cache_flush, network_ms, sums[CacheFlush.ON], sums[CacheFlush.OFF])


def earlier_choice(frame: pd.DataFrame) -> CacheFlush | None:
    """The flush setting of a LUT's rows of one setting (the latest one recorded), if any."""
    recorded = pd.to_numeric(frame.get("cache_flush", pd.Series(dtype=float)), errors="coerce").dropna()
    return None if recorded.empty else CacheFlush.from_recorded(int(recorded.iloc[-1]))


def _key(bundle: Bundle, start: int, end: int) -> str:
    span = bundle.space.spans[(start, end)]
    return Candidate(span.shape, span.activation, span.residual_add).key
