"""What a run folder holds: the base network (the shipped one, a user's, or the run's own), and
whether a training or a measurement in it is finished."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from ..errors import DepthshrinkError


def data_source(source: str) -> str:
    import warnings

    from ..training.data import FASHION_MNIST

    if source == "fashion-mnist" and not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        warnings.warn("FASHION-MNIST IS NOT INSTALLED (apt-get install dataset-fashion-mnist): this run "
                      "uses SYNTHETIC data, its accuracies say nothing about real images", stacklevel=3)
        return "synthetic"
    return source


SHIPPED_WEIGHTS = "shipped"  # [train] weights that mean the base under weights/
SHIPPED_BASE = Path(__file__).resolve().parents[1] / "weights" / "mobilenet_v2_small_x0.5_fashion_mnist.pt"


def shipped_base(model, source: str) -> Path | None:
    """The base network that ships under ``weights/`` (its JSON says how it was trained) for the
    model and data it was trained on (small-input MobileNetV2-0.5, 28x28 grey, 10 classes, Fashion-MNIST);
    None for another model or other data (another 28x28 grey 10-class set took it, and scored 14% there)."""
    from ..training.data import FASHION_MNIST, DataSpec, data_identity

    if (model.name, model.width_mult, model.resolution, model.in_channels, model.num_classes) != \
            ("mobilenet_v2_small", 0.5, 28, 1, 10):
        return None
    if data_identity(DataSpec(source))["source"] != str(FASHION_MNIST):
        return None
    if not SHIPPED_BASE.exists():
        raise DepthshrinkError(f"the shipped base {SHIPPED_BASE} is missing: set [train] weights = \"\" to train one")
    return SHIPPED_BASE


def read_result(result: Path) -> dict | None:
    """A network's ``result.json`` (None when it was not measured yet)."""
    return json.loads(result.read_text()) if result.exists() else None


def measured(result: dict | None, seeds: int) -> bool:
    """Whether a network's result (:func:`read_result`) holds as many seeds as are configured (more
    seeds added to a run are trained, then measured again)."""
    return result is not None and result.get("seeds", 1) == seeds


def finished(checkpoint: Path, epochs: int) -> bool:
    """Whether ``checkpoint`` exists and reached ``epochs``."""
    if not checkpoint.exists():
        return False
    from ..contracts.checkpoints import load_checkpoint
    return load_checkpoint(checkpoint).get("epoch", 0) >= epochs


def is_checkpoint(path: str) -> bool:
    """Whether ``path`` is a depthshrink ``train`` checkpoint (not a plain state_dict)."""
    return _is_checkpoint_version(path, Path(path).stat().st_mtime_ns) if Path(path).exists() else False


@functools.lru_cache(maxsize=8)
def _is_checkpoint_version(path: str, mtime_ns: int) -> bool:  # a replaced file is read again
    from ..contracts.checkpoints import CHECKPOINT_FORMAT, load_torch_file
    try:
        state = load_torch_file(path, "weights")
    except DepthshrinkError:  # unreadable: the train stage names the problem
        return False
    return isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT
