"""``depthshrink export-bundle``: the ONNX files and manifest a device needs to build a LUT."""

from __future__ import annotations

import argparse

from ..errors import DepthshrinkError
from .common import add_corpus_arguments, add_model_arguments, build_space, corpus_spec, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, required=False)
    add_corpus_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, required=True)
    parser.add_argument("--out", required=True, help="bundle folder to write")
    parser.add_argument("--no-networks", action="store_true",
                        help="leave out the whole networks used by profile-device --validate")


def run(args: argparse.Namespace) -> int:
    from ..export.bundles import export_bundle, export_corpus

    spec = corpus_spec(args)
    if spec is not None and args.no_networks:
        raise DepthshrinkError("--no-networks: a corpus holds no whole networks")
    if spec is not None:
        bundle = export_corpus(spec, args.batch_size, args.out)
        print(f"corpus of {len(bundle.entries)} conv configurations for {spec.resolution} px networks, "
              f"batch {args.batch_size} -> {args.out}")
        return 0
    model, space = build_space(args)
    bundle = export_bundle(model, space, args.batch_size, args.out, networks=not args.no_networks)
    counts = {op: len(bundle.of_op(op)) for op in ("conv", "fixed", "network")}
    print(f"{bundle.model_label} batch {args.batch_size}: {counts['conv']} conv configurations, "
          f"{counts['fixed']} fixed part, {counts['network']} whole networks -> {args.out}")
    return 0
