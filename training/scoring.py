"""Scoring every candidate segment of a base network, as ``depthshrink importance`` and the
pipeline run it: measured methods (zero-shot, probe; shared among torchrun ranks, resumable) or
DepthShrinker's learnable masks, written as the importance CSV the search maximises."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from ..contracts.files import check_file_target, refuse_overwriting
from ..errors import DepthshrinkError
from .data import DataSpec, check_fits, load_split, sample
from .ranks import check_seed

METHODS = ("zero-shot", "probe", "masks")


@dataclass(frozen=True)
class ImportanceOptions:
    method: str = "zero-shot"
    max_removed: int | None = None       # measure segments removing at most this many activations
    bn_images: int = 2048                # training images for re-estimating BatchNorm statistics
    held_out_images: int | None = None   # score on this many held-out images (None: all)
    probe_steps: int = 50
    probe_batch_size: int = 64
    probe_lr: float = 0.01
    distill: float = 0.7                 # soft-target weight while probing or training masks
    epochs: int = 1                      # masks: epochs of joint training
    keep: int | None = None              # masks: activations the hard top-k keeps (None: half)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise DepthshrinkError(f"no importance method {self.method!r}: use {', '.join(METHODS)}")
        if not 0 <= self.distill <= 1:
            raise DepthshrinkError(f"--distill must be between 0 and 1, not {self.distill}")
        check_seed(self.seed)


def score_importance(options: ImportanceOptions, weights: str | os.PathLike, data: DataSpec,
                     out: str | os.PathLike, progress: bool = True) -> pd.DataFrame | None:
    """Score the base network of checkpoint ``weights``; the importance CSV goes to ``out``. Under
    torchrun every rank scores its share and rank 0 writes the table (others return ``None``)."""
    from ..shrink.rebuild import load_base_network

    out = check_file_target(out)  # refused before the scoring, not after it
    refuse_overwriting({"--out": out}, {"--weights": weights})
    base, space = load_base_network(weights)
    train_data = load_split(data, "train", space.model)
    check_fits(train_data, space.model)
    held_out = load_split(data, "held-out", space.model)
    if options.held_out_images:
        held_out = sample(held_out, options.held_out_images)
    if options.method == "masks":
        return _masks(options, base, space, train_data, held_out, out, progress)
    return _measured(options, weights, data, base, space, train_data, held_out, out, progress)


def _measured(options, weights, data: DataSpec, base, space, train_data, held_out, out: Path, progress: bool):
    from ..search.segments import candidate_segments
    from .importance import ImportanceConfig, Scorer, importance_frame, recorded_scores, score_share, write_importance

    config = ImportanceConfig(options.method, options.max_removed, options.bn_images, options.probe_steps,
                              options.probe_batch_size, options.probe_lr, options.distill, options.seed)
    segments = candidate_segments(space, options.max_removed)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    dist = _process_group(world)
    if rank == 0:
        done = len(recorded_scores(out))
        print(f"{options.method}: {len(segments)} segments of {space.model['name']} to score"
              + (f", shared among {world} processes" if world > 1 else "")
              + (f" ({done} done before)" if done else ""))
    settings = {**{k: v for k, v in asdict(config).items() if k != "max_removed"},
                "weights": hashlib.sha256(Path(weights).read_bytes()).hexdigest(), "data": data.source,
                "subset": data.subset, "held_out_images": options.held_out_images}
    score_share(Scorer(base, space, train_data, held_out, config), segments, out, settings, rank, world,
                _progress(progress and rank == 0), dist.barrier if dist else lambda: None)
    if dist:
        dist.barrier()  # every share is written
        dist.destroy_process_group()
        if rank != 0:
            return None
    frame = importance_frame(space, segments, recorded_scores(out), options.method)
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


def _masks(options, base, space, train_data, held_out, out: Path, progress: bool):
    from .importance import write_importance
    from .mask_training import MaskConfig, train_masks

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise DepthshrinkError("--method masks trains one model: run it without torchrun")
    config = MaskConfig(epochs=options.epochs, keep=options.keep, distill_weight=options.distill,
                        bn_images=options.bn_images, seed=options.seed)
    frame = train_masks(base, space, train_data, held_out, config, progress=progress)
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
