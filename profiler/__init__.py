"""Latency measurement: a timing protocol shared by every backend, one module per backend."""

from .timing import Timing, TimingProtocol, measure

__all__ = ["Timing", "TimingProtocol", "measure"]
