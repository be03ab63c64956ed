"""Lazy imports of heavy optional dependencies, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import DepthshrinkError

# module name -> (pip extra of this package, what to install by hand)
_EXTRAS = {
    "tensorrt": ("tensorrt", "tensorrt (TensorRT 10, from NVIDIA)"),
    "pycuda": ("tensorrt", "pycuda (needs a CUDA toolkit to build)"),
    "cuda": ("tensorrt", "cuda-python (CUDA graphs for TensorRT timing; or profile with --no-cuda-graph)"),
    "onnxruntime": (None, "onnxruntime"),
    "matplotlib": (None, "matplotlib"),
    "sklearn": (None, "scikit-learn"),
    "onnx": (None, "onnx"),
    "torch_pruning": (None, "torch-pruning"),
}


def lazy_import(name: str) -> ModuleType:
    """Import ``name`` or raise a :class:`DepthshrinkError` saying what to install."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        top = name.split(".")[0]
        extra, package = _EXTRAS.get(top, (None, top))
        how = f"pip install 'depthshrink[{extra}]'" if extra else f"pip install {package}"
        raise DepthshrinkError(f"this needs the optional package {package}: {how} ({exc})") from exc
