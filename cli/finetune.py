"""``depthshrink finetune``: train the shrunk network (masks applied) from the base weights,
distilling from the original network."""

from __future__ import annotations

import argparse

from ..errors import DepthshrinkError
from .common import positive_float, positive_int, seed
from .train import add_data_arguments, data_spec, run_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--masks", required=True, help="masks JSON (from search, or written by hand)")
    parser.add_argument("--weights", required=True, help="the base network's checkpoint (from train)")
    add_data_arguments(parser)
    parser.add_argument("--epochs", type=positive_int, default=1)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--lr", type=positive_float, default=0.02)
    parser.add_argument("--weight-decay", type=float, default=4e-5)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--distill", type=float, default=0.7,
                        help="weight of the original network's soft targets (DepthShrinker 0.7, Kim et al. 0.3)")
    parser.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA (it is on by default)")
    parser.add_argument("--device", default="auto",
                        help="auto (this process's GPU when CUDA is present, else the CPU), cpu, cuda or cuda:N")
    parser.add_argument("--ema-decay", type=float, default=0.0,
                        help="keep an exponential moving average of the weights (e.g. 0.999); it is what "
                             "the checkpoint deploys")
    parser.add_argument("--augment", action="store_true",
                        help="random 2-pixel shifts and left-right flips of the training images")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--eval-images", type=positive_int,
                        help="held-out images for the accuracy printed at the end (default: all)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..training.ranks import first_rank
    from ..training.runs import finetune_network
    from ..training.train import TrainConfig

    if not 0 <= args.distill <= 1:
        raise DepthshrinkError(f"--distill must be between 0 and 1, not {args.distill}")
    config = TrainConfig(args.epochs, args.batch_size, args.lr, weight_decay=args.weight_decay,
                         label_smoothing=args.label_smoothing, distill_weight=args.distill, seed=args.seed,
                         ema_decay=args.ema_decay, amp=not args.no_amp, augment=args.augment)
    trained = finetune_network(args.masks, args.weights, data_spec(args), config, run_options(args), args.eval_images)
    if first_rank():  # under torchrun every rank trains; one prints
        print(f"finetuned on {trained.images} images: held-out accuracy {trained.held_out_accuracy:.2%} "
              f"(original {trained.reference_accuracy:.2%}) -> {trained.checkpoint}")
    return 0
