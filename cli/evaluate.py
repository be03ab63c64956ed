"""``depthshrink evaluate``: top-1 accuracy of a checkpoint on a dataset split."""

from __future__ import annotations

import argparse

from ..errors import DepthshrinkError
from .train import add_data_arguments, load_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by train")
    add_data_arguments(parser)
    parser.add_argument("--split", choices=("test", "held-out"), default="test")


def run(args: argparse.Namespace) -> int:
    from ..models import build_model
    from ..shrink.evaluate import accuracy
    from ..shrink.train import load_checkpoint

    state = load_checkpoint(args.checkpoint)
    info = state.get("spec", {}).get("model")
    if not info:
        raise DepthshrinkError(f"{args.checkpoint} does not say which model it holds")
    model = build_model(info["name"], width_mult=info.get("width_mult"), in_channels=info.get("in_channels"),
                        num_classes=info.get("num_classes"))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise DepthshrinkError(f"{args.checkpoint} does not fit {info['name']}: {str(exc).splitlines()[0]}") from None
    value = accuracy(model, load_data(args, args.split))
    print(f"{info['name']} ({args.checkpoint}): top-1 {value:.2%} on the {args.split} split of {args.data}")
    return 0
