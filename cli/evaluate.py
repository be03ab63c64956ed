"""``depthshrink evaluate``: top-1 accuracy of a checkpoint or a merged model on a dataset split."""

from __future__ import annotations

import argparse

from .train import add_data_arguments, data_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint written by train or finetune")
    source.add_argument("--merged", help="a folder written by merge")
    add_data_arguments(parser, subset=False)  # --subset draws training images, which evaluate never reads
    parser.add_argument("--split", choices=("test", "held-out"), default="test")


def run(args: argparse.Namespace) -> int:
    from ..training.runs import evaluate_file

    value = evaluate_file(data_spec(args), args.split, args.checkpoint, args.merged)
    print(f"{args.merged or args.checkpoint}: top-1 {value:.2%} on the {args.split} split of {args.data}")
    return 0
