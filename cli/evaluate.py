"""``depthshrink evaluate``: top-1 accuracy of a checkpoint or a merged model on a dataset split."""

from __future__ import annotations

import argparse

from .train import add_data_arguments, load_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint written by train or finetune")
    source.add_argument("--merged", help="a folder written by merge")
    add_data_arguments(parser)
    parser.add_argument("--split", choices=("test", "held-out"), default="test")


def run(args: argparse.Namespace) -> int:
    from ..shrink.evaluate import accuracy
    from ..shrink.rebuild import load_merged, network_from_checkpoint
    from ..shrink.train import load_checkpoint

    if args.merged:
        model, name = load_merged(args.merged), args.merged
    else:
        model, name = network_from_checkpoint(load_checkpoint(args.checkpoint), args.checkpoint), args.checkpoint
    value = accuracy(model, load_data(args, args.split))
    print(f"{name}: top-1 {value:.2%} on the {args.split} split of {args.data}")
    return 0
