"""depthshrink: remove activations of compact CNNs, merge the convs around them, measured on the device.

The stable Python API::

    space = depthshrink.trace(model, example_input)       # chain space; space.to_json(path)
    masks = depthshrink.load_masks("masks.json")
    shrunk = depthshrink.apply_masks(model, space, masks)  # trainable, computes what merge will
    merged = depthshrink.merge(shrunk.eval())              # dense, eval mode

Names that need PyTorch are imported on first use, so the device side of profiling (a bundle,
ONNX Runtime or TensorRT, pandas) runs where torch is not installed.
"""

from importlib import import_module

from .contracts.masks import Masks, load_masks
from .contracts.space import ChainSpace
from .errors import DepthshrinkError

_LAZY = {"trace": "models.trace", "apply_masks": "shrink.apply", "merge": "shrink.merge"}

__all__ = ["ChainSpace", "DepthshrinkError", "Masks", "apply_masks", "load_masks", "merge", "trace"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'depthshrink' has no attribute {name!r}")
