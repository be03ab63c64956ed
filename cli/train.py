"""``depthshrink train``: train a base network (from scratch or ``--weights``) on a dataset."""

from __future__ import annotations

import argparse

from .common import add_model_arguments, model_spec, positive_float, positive_int, seed


def add_data_arguments(parser: argparse.ArgumentParser, subset: bool = True) -> None:
    """--data, and --subset where training images are read (``evaluate`` reads the test or held-out split)."""
    group = parser.add_argument_group("data")
    group.add_argument("--data", default="fashion-mnist",
                       help="fashion-mnist (Debian's package), synthetic, or a folder: Fashion-MNIST idx "
                            "files, CIFAR-10 python batches, or images in class folders (train/<class>/, "
                            "val/<class>/ for the test split)")
    if subset:
        group.add_argument("--subset", type=positive_int, help="use only N training examples (a fixed random draw)")


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
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--out", required=True, help="run folder: last.pt, metrics.jsonl")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (a fresh start when there is none)")
    parser.add_argument("--no-progress", action="store_true")


def data_spec(args: argparse.Namespace):
    from ..training.data import DataSpec

    return DataSpec(args.data, getattr(args, "subset", None))


def run_options(args: argparse.Namespace):
    from ..training.runs import RunOptions

    return RunOptions(args.out, args.resume, not args.no_progress, args.device)


def run(args: argparse.Namespace) -> int:
    from ..training.ranks import first_rank
    from ..training.runs import train_network
    from ..training.train import TrainConfig

    config = TrainConfig(args.epochs, args.batch_size, args.lr, weight_decay=args.weight_decay,
                         label_smoothing=args.label_smoothing, seed=args.seed, ema_decay=args.ema_decay,
                         amp=not args.no_amp, augment=args.augment)
    trained = train_network(model_spec(args), data_spec(args), config, run_options(args))
    if first_rank():  # under torchrun every rank trains; one prints
        print(f"trained {args.model} for {args.epochs} epoch(s) on {trained.images} images: "
              f"held-out accuracy {trained.held_out_accuracy:.2%} -> {trained.checkpoint}")
    return 0
