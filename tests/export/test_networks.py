"""Whole networks timed the way a table of their setting was timed."""

import pytest
import torch

from depthshrink import DepthshrinkError
from depthshrink.export.networks import time_network
from depthshrink.profiler.timing import TimingProtocol

QUICK = TimingProtocol(warmup_ms=5.0, min_runs=3, min_time_ms=20.0)


def test_a_torch_table_on_this_cpu_times_the_network_on_the_host_clock():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    timing = time_network(model, (1, 3, 16, 16), {"backend": "torch", "device": "cpu-x", "threads": 1,
                                                  "precision": "fp32", "timing_method": "host-clock"}, QUICK)
    assert timing.latency_ms > 0


@pytest.mark.parametrize("method", ["cuda-events-1-call", "tensorrt-cuda-graph", "stopwatch"])
def test_a_table_timed_in_a_way_this_version_cannot_repeat_is_refused(method):
    # the shipped H100 tables were timed one eager call per event pair: verifying them with a CUDA
    # graph would compare two protocols (it did before)
    setting = {"backend": "torch", "device": "cuda:0", "precision": "fp32", "timing_method": method}
    with pytest.raises(DepthshrinkError, match=f"a table timed '{method}' cannot be verified"):
        time_network(torch.nn.Identity(), (1, 3, 8, 8), setting, QUICK)
