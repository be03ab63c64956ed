"""``depthshrink finetune``: train the shrunk network (masks applied) from the base weights,
distilling from the original network."""

from __future__ import annotations

import argparse

from ..errors import DepthshrinkError
from .common import positive_float, positive_int
from .train import add_data_arguments, check_fits, load_data


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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--eval-images", type=positive_int,
                        help="held-out images for the accuracy printed at the end (default: all)")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..shrink.apply import apply_masks
    from ..shrink.evaluate import accuracy
    from ..shrink.masks import load_masks
    from ..shrink.rebuild import load_base_network
    from ..shrink.train import TrainConfig, train

    if not 0 <= args.distill <= 1:
        raise DepthshrinkError(f"--distill must be between 0 and 1, not {args.distill}")
    teacher, space = load_base_network(args.weights)
    masks = load_masks(args.masks).resolve(space)
    shrunk = apply_masks(teacher, space, masks)  # a copy: the teacher stays the original
    config = TrainConfig(args.epochs, args.batch_size, args.lr, weight_decay=args.weight_decay,
                         label_smoothing=args.label_smoothing, distill_weight=args.distill, seed=args.seed,
                         ema_decay=args.ema_decay, amp=not args.no_amp)
    spec = {"model": space.model, "masks": masks.to_dict(), "weights": args.weights}
    data = load_data(args, "train", space.model)
    check_fits(data, space.model)
    train(shrunk, data, config, args.out, teacher=teacher, resume=args.resume, progress=not args.no_progress,
          spec=spec, device=args.device)
    held_out = load_data(args, "held-out", space.model)
    if args.eval_images:
        from ..shrink.data import sample
        held_out = sample(held_out, args.eval_images)
    print(f"finetuned {len(masks.removed_activations)} removed activations, {len(masks.segments)} segments: "
          f"held-out accuracy {accuracy(shrunk, held_out):.2%} (original {accuracy(teacher, held_out):.2%}) "
          f"-> {args.out}/last.pt")
    return 0
