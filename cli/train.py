"""``depthshrink train``: train a base network (from scratch or ``--weights``) on a dataset."""

from __future__ import annotations

import argparse

from ..errors import DepthshrinkError
from .common import add_model_arguments, build_space, positive_float, positive_int


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", default="fashion-mnist",
                       help="fashion-mnist (Debian's package), synthetic, or a folder: Fashion-MNIST idx "
                            "files, CIFAR-10 python batches, or images in class folders (train/<class>/, "
                            "val/<class>/ for the test split)")
    group.add_argument("--subset", type=positive_int, help="use only N training examples (a fixed random draw)")


def load_data(args: argparse.Namespace, split: str, info: dict | None = None):
    """``split`` (train, held-out or test) of ``args.data``; ``info`` (a space's model) sizes images
    read from folders."""
    from torch.utils.data import Subset

    from ..shrink.data import held_out_split, sample

    data = _dataset(args.data, "test" if split == "test" else "train", info)
    if split in ("train", "held-out"):
        train_index, held_index = held_out_split(len(data), min(5_000, max(1, len(data) // 10)))
        data = Subset(data, (train_index if split == "train" else held_index).tolist())
    if getattr(args, "subset", None) and split == "train":
        data = sample(data, args.subset)
    return data


def _dataset(source: str, split: str, info: dict | None):
    from pathlib import Path

    from ..shrink.data import FASHION_MNIST, fashion_mnist, synthetic
    from ..shrink.folders import ImageFolder, cifar10, is_cifar10

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
    names = ["train"] if split == "train" else ["val", "test"]
    folder = next((root / n for n in names if (root / n).is_dir()), root if split == "train" else None)
    if folder is None:
        raise DepthshrinkError(f"{root} has no val/ or test/ folder for the test split")
    classes = ImageFolder(root / "train", info["height"], info["in_channels"]).classes \
        if split != "train" and (root / "train").is_dir() else None
    return ImageFolder(folder, info["height"], info["in_channels"], classes)


def _labels(data):
    """The label tensor of a (subset of a) TensorDataset or ImageFolder."""
    import torch

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_data_arguments(parser)
    parser.add_argument("--epochs", type=positive_int, default=2)
    parser.add_argument("--batch-size", type=positive_int, default=128, help="global batch (split among ranks)")
    parser.add_argument("--lr", type=positive_float, default=0.05)
    parser.add_argument("--weight-decay", type=float, default=4e-5)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA (it is on by default)")
    parser.add_argument("--device", default="auto",
                        help="auto (this process's GPU when CUDA is present, else the CPU), cpu, cuda or cuda:N")
    parser.add_argument("--ema-decay", type=float, default=0.0,
                        help="keep an exponential moving average of the weights (e.g. 0.999); it is what "
                             "the checkpoint deploys")
    parser.add_argument("--augment", action="store_true",
                        help="random 2-pixel shifts and left-right flips of the training images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="run folder: last.pt, metrics.jsonl")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..shrink.evaluate import accuracy
    from ..shrink.train import TrainConfig, train

    import torch

    torch.manual_seed(args.seed)  # the initial weights too
    model, space = build_space(args, adapt_weights=True)  # e.g. ImageNet weights for another dataset
    data = load_data(args, "train", space.model)
    check_fits(data, space.model)
    config = TrainConfig(args.epochs, args.batch_size, args.lr, weight_decay=args.weight_decay,
                         label_smoothing=args.label_smoothing, seed=args.seed, ema_decay=args.ema_decay,
                         amp=not args.no_amp, augment=args.augment)
    spec = {"model": space.model, "weights": args.weights}
    train(model, data, config, args.out, resume=args.resume, progress=not args.no_progress, spec=spec,
          device=args.device)
    held_out = accuracy(model, load_data(args, "held-out", space.model))
    print(f"trained {space.model['name']} for {args.epochs} epoch(s) on {len(data)} images: "
          f"held-out accuracy {held_out:.2%} -> {args.out}/last.pt")
    return 0
