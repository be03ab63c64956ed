"""Datasets without torchvision: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package
(idx files), a synthetic set for tests, and a deterministic held-out split of the training data
(for importance probes and model selection; the test split is kept for final numbers)."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from ..errors import DepthshrinkError

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An idx file (gzip or plain) as a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
        if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
            raise DepthshrinkError(f"{path} is not an idx file")
        ndim = data[3]
        dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
        array = np.frombuffer(data, dtype=_IDX_TYPES[data[2]], offset=4 + 4 * ndim)
    except (OSError, EOFError, struct.error, ValueError) as exc:
        raise DepthshrinkError(f"{path} is corrupt: {exc}") from None
    if array.size != int(np.prod(dims)):
        raise DepthshrinkError(f"{path} is truncated: {array.size} values for shape {dims}")
    return array.reshape(dims)


def fashion_mnist(split: str = "train", root: str | os.PathLike = FASHION_MNIST) -> TensorDataset:
    """Normalised ``[N, 1, 28, 28]`` images and labels of one split (``train``: 60k, ``test``: 10k)."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise DepthshrinkError(f"Fashion-MNIST has splits train and test, not {split!r}")
    root = Path(root)
    images, labels = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
    if not images.exists() or not labels.exists():
        raise DepthshrinkError(f"Fashion-MNIST is not in {root}: install it with 'apt-get install "
                               "dataset-fashion-mnist' (as root; 'make' does it), or point --data at "
                               "a folder with the four idx .gz files")
    x = torch.from_numpy(read_idx(images).astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(read_idx(labels).astype(np.int64))
    if len(x) != len(y):
        raise DepthshrinkError(f"{root}: {len(x)} images but {len(y)} labels")
    return TensorDataset((x - FASHION_MEAN) / FASHION_STD, y)


def augment(images: torch.Tensor, shift: int = 2) -> torch.Tensor:
    """A batch ``[N, C, H, W]`` randomly shifted by up to ``shift`` pixels each way (edges
    replicated) and flipped left-right with probability 1/2, per image, drawn from torch's global
    generator (which a checkpoint saves, so a resumed run draws the same)."""
    count, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (shift,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * shift + 1, (2, count, 1), device=images.device)
    rows = (dy + torch.arange(height, device=images.device))[:, :, None]
    cols = (dx + torch.arange(width, device=images.device))[:, None, :]
    flip = torch.rand(count, 1, 1, device=images.device) < 0.5
    cols = torch.where(flip, 2 * shift + width - 1 - cols, cols)
    batch = torch.arange(count, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last if images.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format)


def synthetic(size: int, shape: tuple[int, int, int] = (1, 28, 28), classes: int = 10,
              seed: int = 0) -> TensorDataset:
    """Learnable stand-in data for tests: one fixed random pattern per class (the same for every
    ``seed``, so draws with other seeds are test sets of the same task), plus noise."""
    patterns = torch.randn(classes, *shape, generator=torch.Generator().manual_seed(1234))
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (size,), generator=generator)
    images = patterns[labels] + 0.8 * torch.randn(size, *shape, generator=generator)
    return TensorDataset(images, labels)


def sample(data: Dataset, count: int, seed: int = 0) -> Dataset:
    """A fixed random ``count`` of ``data`` (in their order): not the first ones, which in a
    folder of images sorted by class would be one class."""
    if count >= len(data):
        return data
    pick = np.sort(np.random.default_rng(seed).choice(len(data), count, replace=False))
    return Subset(data, pick.tolist())


def held_out_split(size: int, held_out: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices): a fixed random ``held_out`` of ``size`` examples."""
    if not 0 < held_out < size:
        raise DepthshrinkError(f"cannot hold out {held_out} of {size} examples")
    order = np.random.default_rng(seed).permutation(size)
    return np.sort(order[held_out:]), np.sort(order[:held_out])
