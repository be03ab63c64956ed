"""``depthshrink evaluate``: top-1 accuracy of a checkpoint or a merged model on a dataset split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .train import add_data_arguments, check_fits, load_data


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
        info = json.loads((Path(args.merged) / "merged.json").read_text())["model"]
    else:
        state = load_checkpoint(args.checkpoint)
        model, name, info = network_from_checkpoint(state, args.checkpoint), args.checkpoint, state["spec"]["model"]
    data = load_data(args, args.split, info)
    check_fits(data, info)
    value = accuracy(model, data)
    print(f"{name}: top-1 {value:.2%} on the {args.split} split of {args.data}")
    return 0
