"""Markers that skip GPU/TensorRT tests on a CPU box, and shared fixtures."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from helpers import HandNet, randomize


def pytest_collection_modifyitems(config, items):
    has_cuda = torch.cuda.is_available()
    has_trt = has_cuda and importlib.util.find_spec("tensorrt") is not None \
        and importlib.util.find_spec("pycuda") is not None
    for item in items:
        if "cuda" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "tensorrt" in item.keywords and not has_trt:
            item.add_marker(pytest.mark.skip(reason="needs TensorRT and pycuda on a CUDA GPU"))


@pytest.fixture
def hand_net():
    return randomize(HandNet(), seed=3)


