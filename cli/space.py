"""``depthshrink space``: trace a model and write its chain space."""

from __future__ import annotations

import argparse

from .common import add_model_arguments, build_space


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--out", required=True, help="chain space JSON to write")


def run(args: argparse.Namespace) -> int:
    _, space = build_space(args)
    space.to_json(args.out)
    removable = sum(site.removable for site in space.sites)
    barriers = sum(site.barrier is not None for site in space.sites)
    print(f"{args.model}: {space.num_layers} layers, {removable} removable activations, "
          f"{len(space.residual_blocks)} residual blocks, {barriers} barriers, "
          f"{len(space.spans)} legal spans -> {args.out}")
    return 0
