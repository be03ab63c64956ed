"""Datasets a user brings on disk, without torchvision: ImageFolder-style folders (ImageNet
layout, read with PIL on demand) and CIFAR-10's python batches (read with a restricted
unpickler that builds numpy arrays and nothing else)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from ..errors import DepthshrinkError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"}
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class ImageFolder(Dataset):
    """``root/<class>/<image>``: classes sorted by name (hidden folders skipped), or ``classes``
    given (the training split's, so that a test split numbers them alike); images resized to
    ``size`` x ``size``, converted to ``channels`` (1: grey, 3: RGB), normalised to mean 0.5, std 0.5."""

    def __init__(self, root: str | os.PathLike, size: int, channels: int = 3, classes: list[str] | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DepthshrinkError(f"image folder {root} does not exist")
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if classes is not None and set(found) - set(classes):
            raise DepthshrinkError(f"{root} has classes the training split lacks: {sorted(set(found) - set(classes))}")
        self.classes = list(classes) if classes is not None else found
        self.samples = [(path, label) for label, name in enumerate(self.classes) if (root / name).is_dir()
                        for path in sorted((root / name).rglob("*")) if path.suffix.lower() in IMAGE_SUFFIXES]
        if not self.samples:
            raise DepthshrinkError(f"{root} has no images in class folders (expected {root}/<class>/<image>)")
        self.targets = torch.tensor([label for _, label in self.samples])
        self.size, self.mode = size, {1: "L", 3: "RGB"}.get(channels)
        if self.mode is None:
            raise DepthshrinkError(f"image folders give 1 (grey) or 3 (RGB) channels, not {channels}")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert(self.mode).resize((self.size, self.size), Image.BILINEAR))
        except OSError as exc:
            raise DepthshrinkError(f"cannot read image {path}: {exc}") from None
        tensor = torch.from_numpy(pixels.astype(np.float32) / 255.0)
        tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
        return (tensor - 0.5) / 0.5, label


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, numbers and numpy arrays; refuses every other class."""

    ALLOWED = {(f"numpy.{core}.{module}", name) for core in ("core", "_core")
               for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))}
    ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as handle:
            batch = _ArraysOnly(handle, encoding="bytes").load()
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as exc:
        raise DepthshrinkError(f"{path} is not a CIFAR-10 python batch: {exc}") from None
    return images, labels


def is_cifar10(root: str | os.PathLike) -> bool:
    return (Path(root) / "data_batch_1").exists() or (Path(root) / "test_batch").exists()


def cifar10(root: str | os.PathLike, split: str = "train") -> TensorDataset:
    """CIFAR-10's python batches (``data_batch_1..5``, ``test_batch``), normalised per channel."""
    root = Path(root)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        raise DepthshrinkError(f"{root} lacks CIFAR-10 batch file(s) {', '.join(missing)}")
    parts = [_cifar_batch(root / n) for n in names]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0)
    mean, std = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return TensorDataset((images - mean) / std, torch.from_numpy(np.concatenate([p[1] for p in parts])))
