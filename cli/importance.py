"""``depthshrink importance``: score every candidate segment of a trained base network, writing
the importance CSV (``start, end, importance, method``) the search maximises.

Under ``torchrun`` the segments are shared among the ranks; an interrupted run continues where
it stopped when given the same ``--out``.
"""

from __future__ import annotations

import argparse

from ..errors import DepthshrinkError
from .common import non_negative_int, positive_float, positive_int, seed
from .train import add_data_arguments, data_spec

# the options each method does not use: given, they are refused (not silently ignored)
IGNORED = {"zero-shot": ("probe_steps", "probe_batch_size", "probe_lr", "distill", "epochs", "keep"),
           "probe": ("epochs", "keep"),
           "masks": ("max_removed", "probe_steps", "probe_batch_size", "probe_lr")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", choices=("zero-shot", "probe", "masks"), default="zero-shot",
                        help="zero-shot: BN re-estimated, no training (seconds per segment); probe: brief "
                             "finetuning per segment (Kim et al.); masks: DepthShrinker's learnable masks")
    parser.add_argument("--weights", required=True, help="the base network's checkpoint (from train)")
    add_data_arguments(parser)
    parser.add_argument("--max-removed", type=positive_int,
                        help="measure only segments that remove at most this many activations; longer "
                             "ones are completed additively (source=additive)")
    parser.add_argument("--bn-images", type=positive_int, default=2048,
                        help="training images for re-estimating BatchNorm statistics")
    parser.add_argument("--held-out-images", type=positive_int,
                        help="score on N held-out images only (a fixed random draw; default: all)")
    probe = parser.add_argument_group("probe")
    probe.add_argument("--probe-steps", type=positive_int, help="default 50")
    probe.add_argument("--probe-batch-size", type=positive_int, help="default 64")
    probe.add_argument("--probe-lr", type=positive_float, help="default 0.01")
    probe.add_argument("--distill", type=float, help="soft-target weight while probing or training masks (default 0.7)")
    masks = parser.add_argument_group("masks")
    masks.add_argument("--epochs", type=positive_int, help="masks: epochs of joint training (default 1)")
    masks.add_argument("--keep", type=non_negative_int,
                       help="masks: activations the hard top-k keeps (default: half of the removable)")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--out", required=True, help="importance CSV to write")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..training.scoring import ImportanceOptions, score_importance

    ignored = [f"--{name.replace('_', '-')}" for name in IGNORED[args.method] if getattr(args, name) is not None]
    if ignored:
        raise DepthshrinkError(f"{', '.join(ignored)}: not used by --method {args.method}")
    given = {name: getattr(args, name) for name in ("max_removed", "bn_images", "held_out_images", "probe_steps",
                                                    "probe_batch_size", "probe_lr", "distill", "epochs", "keep")}
    options = ImportanceOptions(args.method, seed=args.seed, **{k: v for k, v in given.items() if v is not None})
    frame = score_importance(options, args.weights, data_spec(args), args.out, progress=not args.no_progress)
    if frame is not None:  # rank 0 (or one process)
        _summary(frame, args.out)
    return 0


def _summary(frame, out) -> None:
    ordered = frame.sort_values("importance", ascending=False)
    print(f"{len(frame)} segments scored ({frame['method'].iloc[0]}) -> {out}")
    if "reference_accuracy" in frame:
        print(f"reference held-out accuracy {frame['reference_accuracy'].iloc[0]:.2%}")
    for title, rows in (("least harmful", ordered.head(3)), ("most harmful", ordered.tail(3))):
        text = ", ".join(f"[{r.start}, {r.end}) {r.importance:+.2f}" for r in rows.itertuples())
        print(f"  {title}: {text}")
