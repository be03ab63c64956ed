"""``depthshrink importance``: score every candidate segment of a trained base network, writing
the importance CSV (``start, end, importance, method``) the search maximises.

Under ``torchrun`` the segments are shared among the ranks; an interrupted run continues where
it stopped when given the same ``--out``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from pathlib import Path

from ..errors import DepthshrinkError
from .common import non_negative_int, positive_float, positive_int
from .train import add_data_arguments, check_fits, load_data


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
    probe.add_argument("--probe-steps", type=positive_int, default=50)
    probe.add_argument("--probe-batch-size", type=positive_int, default=64)
    probe.add_argument("--probe-lr", type=positive_float, default=0.01)
    probe.add_argument("--distill", type=float, default=0.7, help="soft-target weight while probing")
    masks = parser.add_argument_group("masks")
    masks.add_argument("--epochs", type=positive_int, default=1, help="masks: epochs of joint training")
    masks.add_argument("--keep", type=non_negative_int,
                       help="masks: activations the hard top-k keeps (default: half of the removable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="importance CSV to write")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..shrink.rebuild import load_base_network

    out = Path(args.out)
    if not out.parent.is_dir():
        raise DepthshrinkError(f"cannot write {out}: folder {out.parent} does not exist")
    base, space = load_base_network(args.weights)
    train_data = load_data(args, "train", space.model)
    check_fits(train_data, space.model)
    held_out = load_data(args, "held-out", space.model)
    if args.held_out_images:
        from ..shrink.data import sample
        held_out = sample(held_out, args.held_out_images)
    frame = (_masks if args.method == "masks" else _measured)(args, base, space, train_data, held_out, out)
    if frame is None:
        return 0  # a rank other than 0
    _summary(frame, out)
    return 0


def _measured(args, base, space, train_data, held_out, out: Path):
    from ..search.segments import candidate_segments
    from ..shrink.importance import ImportanceConfig, Scorer, finished, importance_frame, score_share, write_importance

    if not 0 <= args.distill <= 1:
        raise DepthshrinkError(f"--distill must be between 0 and 1, not {args.distill}")
    config = ImportanceConfig(args.method, args.max_removed, args.bn_images, args.probe_steps,
                              args.probe_batch_size, args.probe_lr, args.distill, args.seed)
    segments = candidate_segments(space, args.max_removed)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    dist = _process_group(world)
    if rank == 0:
        done = len(finished(out))
        print(f"{args.method}: {len(segments)} segments of {space.model['name']} to score"
              + (f", shared among {world} processes" if world > 1 else "")
              + (f" ({done} done before)" if done else ""))
    settings = {**{k: v for k, v in asdict(config).items() if k != "max_removed"},
                "weights": _sha256(args.weights), "data": args.data, "subset": args.subset,
                "held_out_images": args.held_out_images}
    score_share(Scorer(base, space, train_data, held_out, config), segments, out, settings, rank, world,
                _progress(not args.no_progress and rank == 0), dist.barrier if dist else lambda: None)
    if dist:
        dist.barrier()  # every share is written
        dist.destroy_process_group()
        if rank != 0:
            return None
    frame = importance_frame(space, segments, finished(out), args.method)
    write_importance(frame, out)
    return frame


def _process_group(world: int):
    """torch.distributed with a gloo group (generous timeout: shares may take hours), or None."""
    if world == 1:
        return None
    import datetime

    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(days=2))
    return dist


def _sha256(path: str) -> str:
    import hashlib
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _masks(args, base, space, train_data, held_out, out: Path):
    from ..shrink.importance import write_importance
    from ..shrink.mask_training import MaskConfig, train_masks

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise DepthshrinkError("--method masks trains one model: run it without torchrun")
    config = MaskConfig(epochs=args.epochs, keep=args.keep, distill_weight=args.distill, bn_images=args.bn_images,
                        seed=args.seed)
    frame = train_masks(base, space, train_data, held_out, config, progress=not args.no_progress)
    write_importance(frame, out)
    return frame


def _progress(enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="segments")
        bar.update(1)
        if done == total:
            bar.close()
    return update


def _summary(frame, out: Path) -> None:
    ordered = frame.sort_values("importance", ascending=False)
    print(f"{len(frame)} segments scored ({frame['method'].iloc[0]}) -> {out}")
    if "reference_accuracy" in frame:
        print(f"reference held-out accuracy {frame['reference_accuracy'].iloc[0]:.2%}")
    for title, rows in (("least harmful", ordered.head(3)), ("most harmful", ordered.tail(3))):
        text = ", ".join(f"[{r.start}, {r.end}) {r.importance:+.2f}" for r in rows.itertuples())
        print(f"  {title}: {text}")
