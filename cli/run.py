"""``depthshrink run``: the whole pipeline under one run folder, resumable stage by stage."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="pipeline TOML (default: the embedded demo settings; see --print-config)")
    parser.add_argument("--out", default="out/run", help="run folder (default out/run); a re-run resumes it")
    parser.add_argument("--train-base", action="store_true",
                        help="train the base network from scratch ([train] weights = \"\") instead of starting "
                             "from the one that ships under weights/")
    parser.add_argument("--print-config", action="store_true", help="print the resolved settings as TOML and stop")


def run(args: argparse.Namespace) -> int:
    from ..pipeline.config import PipelineConfig

    config = PipelineConfig.read(args.config) if args.config else PipelineConfig()
    if args.train_base:
        config.train.weights = ""
    if args.print_config:
        print(config.to_toml(), end="")
        return 0
    from ..pipeline.stages import Pipeline

    report = Pipeline(config, args.out).run_all()
    print(f"\nreport: {report}")
    return 0
