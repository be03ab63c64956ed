"""The timing protocol's passes: interleaving, each pass's share of the time, the fastest kept."""

import pytest

from depthshrink.profiler.timing import Timing, TimingProtocol, interleaved, measure


def test_one_pass_gets_its_share_of_the_time():
    protocol = TimingProtocol(warmup_ms=300, min_runs=10, min_time_ms=900, passes=3)
    assert protocol.one_pass() == TimingProtocol(warmup_ms=100, min_runs=4, min_time_ms=300, passes=1)
    with pytest.raises(ValueError, match="at least one pass"):
        TimingProtocol(passes=0)


def test_passes_interleave_and_keep_each_items_fastest():
    speeds = {"a": [2.0, 1.0, 3.0], "b": [5.0, 6.0, 4.0]}  # each item's median in passes 1, 2, 3
    calls, progress = [], []

    def time_one(item: str, protocol: TimingProtocol) -> Timing:
        assert protocol.passes == 1 and protocol.min_time_ms == 100
        median = speeds[item][sum(1 for c in calls if c == item)]
        calls.append(item)
        return Timing(median, 0.9 * median, 1.2 * median, runs=7, warmup_ms=10)

    timings = interleaved(["a", "b"], time_one, TimingProtocol(warmup_ms=30, min_time_ms=300, passes=3),
                          progress.append)
    assert calls == ["a", "b"] * 3 and progress == calls
    assert [t.latency_ms for t in timings] == [1.0, 4.0]
    assert timings[0] == Timing(1.0, 0.9, 1.2, runs=21, warmup_ms=30)  # the fastest pass, all runs counted


def test_passes_an_item_already_has_are_not_run_again():
    """A resumed session: "a" has two of three passes, "b" all three (one extra is ignored), "c" none."""
    earlier = {"a": [Timing(0.5, 0.4, 0.6, 3, 5.0)] * 2, "b": [Timing(9.0, 8.0, 10.0, 3, 5.0)] * 4}
    calls = []

    def time_one(item: str, protocol: TimingProtocol) -> Timing:
        calls.append(item)
        return Timing(1.0, 0.9, 1.1, 3, 5.0)

    timings = interleaved(["a", "b", "c"], time_one, TimingProtocol(passes=3), None,
                          lambda item: earlier.get(item, []))
    assert calls == ["c", "c", "a", "c"]  # pass 1: c; pass 2: c; pass 3: a, c
    assert [t.latency_ms for t in timings] == [0.5, 9.0, 1.0] and timings[0].runs == 9 and timings[1].runs == 9


def test_a_single_pass_is_the_plain_protocol():
    protocol = TimingProtocol(warmup_ms=50, min_time_ms=200)
    seen = []
    timings = interleaved([1, 2], lambda item, p: seen.append(p) or Timing(item, item, item, 5, 1.0), protocol)
    assert seen == [protocol, protocol] and [t.latency_ms for t in timings] == [1, 2]


def test_measure_runs_the_passes_of_one_workload_back_to_back():
    durations = iter([5.0] * 4 + [1.0] * 4 + [3.0] * 4)  # three passes of four runs (no warm-up)
    timing = measure(lambda: next(durations), TimingProtocol(warmup_ms=0, min_runs=12, min_time_ms=0, passes=3))
    assert timing.latency_ms == 1.0 and timing.runs == 12


def test_networks_are_costed_in_the_same_interleaved_passes(monkeypatch):
    """Latency (batch 1) and throughput (batch 4) of two networks: 4 workloads, 3 passes, in turn."""
    from torch import nn

    from depthshrink.export.networks import costs
    from depthshrink.profiler.onnxruntime import OnnxRuntimeBackend

    timed = []
    original = OnnxRuntimeBackend.time

    def spy(self, workload, protocol):
        timed.append((workload.key, workload.inputs["input"][0]))
        return original(self, workload, protocol)

    monkeypatch.setattr(OnnxRuntimeBackend, "time", spy)
    small, large = nn.Conv2d(1, 4, 3, padding=1), nn.Sequential(nn.Conv2d(1, 64, 3, padding=1), nn.Conv2d(64, 64, 3))
    result = costs([small, large], (1, 16, 16), protocol=TimingProtocol(3, 3, 6, passes=3), throughput_batch_size=4)
    assert timed == [("network0", 1), ("network1", 4), ("network2", 1), ("network3", 4)] * 3
    assert [c.parameters for c in result] == [40, 640 + 36928]
    assert result[0].latency_ms < result[1].latency_ms and result[0].throughput_ips > result[1].throughput_ips


def test_a_noisy_profile_never_gives_the_layout_conversions_a_whole_block():
    """Under load a µs conv node can sit under the profiler's own floor while the reorders do not:
    the layout share came out 1.0 and the block's row 0 ms, which the LUT then refused
    (seen once in `test_a_resumed_session_runs_only_the_passes_it_lacks` on a loaded machine)."""
    from depthshrink.profiler.onnxruntime import MAX_LAYOUT_SHARE, _layout_share

    def node(op: str, dur_us: float, ts: int) -> dict:
        return {"cat": "Node", "name": f"{op}_kernel_time", "dur": dur_us, "ts": ts, "args": {"op_name": op}}

    events = [e for ts in range(10) for e in (node("ReorderInput", 9.0, ts), node("Conv", 2.0, ts),
                                              node("ReorderOutput", 8.0, ts))]
    assert _layout_share(events, floor_us=3.0) == MAX_LAYOUT_SHARE < 1.0
    assert _layout_share(events, floor_us=0.0) == pytest.approx(17 / 19)  # a plain profile: the share as measured
