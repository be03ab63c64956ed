"""Datasets without torchvision: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package
(idx files), a synthetic set for tests, and a deterministic held-out split of the training data
(for importance probes and model selection; the test split is kept for final numbers)."""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from ..errors import DepthshrinkError

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SPLITS = ("train", "held-out", "test")
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

    def found(name: str) -> Path | None:  # gzipped as distributed, or unpacked
        return next((root / n for n in (f"{name}.gz", name) if (root / n).exists()), None)

    images, labels = found(f"{prefix}-images-idx3-ubyte"), found(f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        raise DepthshrinkError(f"Fashion-MNIST is not in {root}: install it with 'apt-get install "
                               "dataset-fashion-mnist' (as root; 'make' does it), or point --data at "
                               "a folder with the four idx files (.gz or unpacked)")
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


@dataclass(frozen=True)
class DataSpec:
    """Where examples come from: ``fashion-mnist`` (Debian's package), ``synthetic``, or a folder
    (Fashion-MNIST idx files, CIFAR-10 python batches, or images in class folders)."""

    source: str = "fashion-mnist"
    subset: int | None = None   # use only this many training examples (a fixed random draw)


def data_identity(spec: DataSpec) -> dict:
    """What a checkpoint records of its training data: the source (a folder as its absolute path,
    ``fashion-mnist`` as Debian's folder) and the subset."""
    named = {"fashion-mnist": str(FASHION_MNIST), "synthetic": "synthetic"}
    source = named.get(spec.source) or str(Path(spec.source).resolve())
    return {"source": source, "subset": spec.subset}


def load_split(spec: DataSpec, split: str, info: dict | None = None) -> Dataset:
    """``split`` (train, held-out or test) of ``spec``'s data; ``info`` (a space's model) sizes
    images read from folders. The held-out split is a fixed 5,000 (or a tenth) of the training data."""
    if split not in SPLITS:
        raise DepthshrinkError(f"no split {split!r}: the splits are {', '.join(SPLITS)}")
    data = _dataset(spec.source, "test" if split == "test" else "train", info)
    if split in ("train", "held-out"):
        train_index, held_index = held_out_split(len(data), min(5_000, max(1, len(data) // 10)))
        data = Subset(data, (train_index if split == "train" else held_index).tolist())
    if spec.subset and split == "train":
        data = sample(data, spec.subset)
    return data


def _dataset(source: str, split: str, info: dict | None):
    from .folders import ImageFolder, cifar10, is_cifar10

    if source == "synthetic":
        return synthetic(12_000 if split == "train" else 2_000, seed=0 if split == "train" else 1)
    if source == "fashion-mnist":
        return fashion_mnist(split, FASHION_MNIST)
    root = Path(source)
    if not root.is_dir():
        raise DepthshrinkError(f"dataset folder {root} does not exist")
    if any(root.glob("*-idx[13]-ubyte*")):
        return fashion_mnist(split, root)
    if is_cifar10(root):
        return cifar10(root, split)
    if info is None:
        raise DepthshrinkError(f"{root}: image folders need the model's resolution")
    held = [n for n in ("val", "test") if (root / n).is_dir()]
    if held and not (root / "train").is_dir():  # the root's classes would take val/ as one, its images trained on
        raise DepthshrinkError(f"{root} has {held[0]}/ but no train/: put the training classes under {root}/train/")
    names = ["train"] if split == "train" else ["val", "test"]
    folder = next((root / n for n in names if (root / n).is_dir()), root if split == "train" else None)
    if folder is None:
        raise DepthshrinkError(f"{root} has no val/ or test/ folder for the test split")
    classes = ImageFolder(root / "train", info["height"], info["in_channels"]).classes \
        if split != "train" and (root / "train").is_dir() else None
    return ImageFolder(folder, info["height"], info["in_channels"], classes)


def _labels(data):
    """The label tensor of a (subset of a) TensorDataset or ImageFolder."""

    indices = None
    while hasattr(data, "indices"):
        indices = torch.as_tensor(data.indices) if indices is None else torch.as_tensor(data.indices)[indices]
        data = data.dataset
    labels = data.targets if hasattr(data, "targets") else data.tensors[1]
    return labels if indices is None else labels[indices]


def check_fits(data, info: dict) -> None:
    """Refuse data whose images or classes do not fit the network ``info`` (a space's model) describes."""
    image = tuple(data[0][0].shape)
    expected = (info["in_channels"], info["height"], info["width"])
    if image != expected:
        raise DepthshrinkError(f"the data's images are {image} but the network takes {expected}: "
                               "set --in-channels and --resolution to match")
    classes = int(_labels(data).max()) + 1
    if classes > info.get("num_classes", classes):
        raise DepthshrinkError(f"the data has {classes} classes but the model has {info['num_classes']} "
                               "outputs: set --num-classes")
