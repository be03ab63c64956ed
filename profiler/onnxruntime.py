"""ONNX Runtime on the CPU: a fixed, recorded thread count, sequential execution, all graph
optimisations. Build (``SessionFromOnnx``) is kept apart from timing."""

from __future__ import annotations

import os

import numpy as np

from .._imports import lazy_import
from .timing import Timing, TimingProtocol, measure


def session_from_onnx(path: str | os.PathLike, threads: int = 1):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads."""
    ort = lazy_import("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(session, inputs: np.ndarray) -> np.ndarray:
    name = session.get_inputs()[0].name
    return session.run(None, {name: inputs})[0]


def time_onnx(path: str | os.PathLike, input_shape: tuple[int, ...], threads: int = 1,
              protocol: TimingProtocol = TimingProtocol()) -> Timing:
    """Median latency of one ONNX model on random input of ``input_shape``."""
    session = session_from_onnx(path, threads)
    inputs = np.random.default_rng(0).standard_normal(input_shape, dtype=np.float32)
    name = session.get_inputs()[0].name
    return measure(lambda: session.run(None, {name: inputs}), protocol)
