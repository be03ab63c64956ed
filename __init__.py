"""depthshrink: remove activations of compact CNNs, merge the convs around them, measured on the device.

The stable Python API::

    space = depthshrink.trace(model, example_input)       # chain space; space.to_json(path)
    masks = depthshrink.load_masks("masks.json")
    shrunk = depthshrink.apply_masks(model, space, masks)  # trainable, computes what merge will
    merged = depthshrink.merge(shrunk.eval())              # dense, eval mode
"""

from .errors import DepthshrinkError
from .models.space import ChainSpace
from .models.trace import trace
from .shrink.apply import apply_masks
from .shrink.masks import Masks, load_masks
from .shrink.merge import merge

__all__ = ["ChainSpace", "DepthshrinkError", "Masks", "apply_masks", "load_masks", "merge", "trace"]
__version__ = "0.1.0"
