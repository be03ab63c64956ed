"""Importance of each candidate segment: the held-out accuracy change (points) when every
activation strictly inside it is removed, everything else kept.

Two measured methods share one procedure, applied to the segment and, as the reference, to
the unchanged network (so the procedure's own effect cancels):

- ``zero-shot``: remove, re-estimate BatchNorm statistics on training images (forward passes
  only: without it the score misleads), evaluate. Seconds per segment.
- ``probe`` (Kim et al.): remove, finetune briefly with distillation from the original,
  evaluate. Under ``torchrun`` the segments left to score are dealt among the ranks; rows are
  appended to per-rank part files as they finish, so a re-run skips them.

Segments removing more than ``max_removed`` activations are not measured but completed
additively (:func:`..search.segments.complete_additively`). The third method, DepthShrinker's
learnable masks, lives in :mod:`.mask_training`.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..contracts.candidates import model_label
from ..contracts.files import append_csv_line, cut_torn_line
from ..contracts.masks import Masks
from ..contracts.space import ChainSpace, read_json, write_json_atomic
from ..errors import DepthshrinkError
from ..search.dp import fastest_splits
from ..search.segments import candidate_segments, complete_additively
from .data import sample
from .evaluate import accuracy
from .layout import channels_last

PART_COLUMNS = ["start", "end", "accuracy"]


@dataclass(frozen=True)
class ImportanceConfig:
    method: str = "zero-shot"          # zero-shot | probe
    max_removed: int | None = None     # score only segments removing at most this many activations
    bn_images: int = 2048              # training images for BatchNorm re-estimation
    probe_steps: int = 50              # probe: finetuning steps per segment
    probe_batch_size: int = 64
    probe_lr: float = 0.01
    distill_weight: float = 0.7
    seed: int = 0


def segment_masks(space: ChainSpace, start: int, end: int) -> Masks:
    """Masks that remove the activations inside ``[start, end)`` only, merging it in the fewest
    legal spans; ``start == end`` gives the unchanged network."""
    with_activation = [s.position for s in space.sites if s.activation is not None]
    previous = fastest_splits(space.num_layers, {k: 1.0 for k in space.spans})[1]
    pieces, b = [], end
    while b > start:
        a = int(previous[start, b])
        pieces.insert(0, (a, b))
        b = a
    segments = [(p, p + 1) for p in range(start)] + pieces + [(p, p + 1) for p in range(end, space.num_layers)]
    kept = [p for p in with_activation if not start < p < end]
    return Masks(kept, segments, model=dict(space.model))


def reestimate_batchnorm(model: nn.Module, images: Dataset, batch_size: int = 256) -> nn.Module:
    """Replace every BatchNorm's running statistics by the average of its per-batch statistics
    over ``images`` (PyTorch's cumulative mode: each batch weighs the same, so the images are cut into
    batches of at most ``batch_size`` that differ by one image at most: 257 images as 256 + 1 gave the
    last image half the weight)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    model.train()
    batches = torch.arange(len(images)).tensor_split(-(-len(images) // batch_size))
    with torch.no_grad():
        for batch, _ in DataLoader(images, batch_sampler=[b.tolist() for b in batches]):
            model(batch)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    return model.eval()


def _probe_finetune(model: nn.Module, teacher: nn.Module, data: Dataset, config: ImportanceConfig) -> None:
    from .train import TrainConfig, distillation_step

    loss_config = TrainConfig(distill_weight=config.distill_weight, label_smoothing=0.0)
    generator = torch.Generator().manual_seed(config.seed)
    order = torch.randint(0, len(data), (config.probe_steps * config.probe_batch_size,), generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.probe_lr, momentum=0.9, nesterov=True)
    model.train()
    for images, labels in DataLoader(data, batch_size=config.probe_batch_size, sampler=order.tolist()):
        distillation_step(model, teacher, images, labels, optimizer, loss_config)
    model.eval()


class Scorer:
    """Held-out accuracy of the base network with one segment's activations removed."""

    def __init__(self, base: nn.Module, space: ChainSpace, train_data: Dataset, held_out: Dataset,
                 config: ImportanceConfig) -> None:
        if config.method not in ("zero-shot", "probe"):
            raise DepthshrinkError(f"unknown importance method {config.method!r}: zero-shot or probe "
                                   "(masks has its own trainer)")
        self.base, self.space, self.config = base.eval(), space, config
        self.train_data, self.held_out = train_data, held_out
        self.bn_images = sample(train_data, config.bn_images, config.seed)
        # the teacher of the probes: the base network under the same BN re-estimation as every score
        self.teacher = reestimate_batchnorm(copy.deepcopy(base), self.bn_images) if config.method == "probe" else None

    def accuracy(self, start: int, end: int) -> float:
        from ..shrink.apply import apply_masks

        torch.manual_seed(self.config.seed)
        model = apply_masks(self.base, self.space, segment_masks(self.space, start, end))
        with channels_last(model, self.teacher):
            if self.config.method == "probe":
                _probe_finetune(model, self.teacher, self.train_data, self.config)
            reestimate_batchnorm(model, self.bn_images)
            return accuracy(model, self.held_out)


def part_path(out: Path, rank: int) -> Path:
    return out.with_name(f"{out.name}.parts") / f"rank{rank}.csv"


def recorded_scores(out: Path) -> dict[tuple[int, int], float]:
    """Accuracies already recorded in the part files of ``out`` (any rank, any earlier run)."""
    done = {}
    folder = out.with_name(f"{out.name}.parts")
    for path in sorted(folder.glob("rank*.csv")) if folder.is_dir() else []:
        lines = path.read_text().splitlines(keepends=True)
        complete = [line for line in lines if line.endswith("\n") and line.count(",") == 2]
        for line in complete:
            if line.strip() == ",".join(PART_COLUMNS):
                continue
            start, end, value = line.strip().split(",")
            done[(int(start), int(end))] = float(value)
    return done


def score_share(scorer: Scorer, segments: list[tuple[int, int]], out: Path, settings: dict, rank: int = 0,
                world: int = 1, progress: Callable[[int, int], None] | None = None,
                barrier: Callable[[], None] = lambda: None) -> None:
    """Score this rank's share of what is left of ``segments`` (the reference ``(0, 0)`` included),
    appending rows. ``settings`` (plain data: weights, data, method...) must equal those of any
    earlier rows; ``barrier`` (under torchrun) makes every rank deal from the same leftovers."""
    _check_settings(out, settings)
    left = [s for s in [(0, 0), *segments] if s not in recorded_scores(out)]
    barrier()  # every rank has read what is done before any rank appends
    mine = left[rank::world]
    path = part_path(out, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        cut_torn_line(path)
    if not path.exists() or path.stat().st_size == 0:
        append_csv_line(path, PART_COLUMNS)
    for index, (start, end) in enumerate(mine):
        append_csv_line(path, [start, end, repr(scorer.accuracy(start, end))])
        if progress:
            progress(index + 1, len(mine))


def _check_settings(out: Path, settings: dict) -> None:
    path = out.with_name(f"{out.name}.parts") / "settings.json"
    if path.exists() and read_json(path, "importance settings") != settings:
        raise DepthshrinkError(f"{path.parent} holds scores of a run with other settings: delete it, or "
                               "write to another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def importance_frame(space: ChainSpace, segments: list[tuple[int, int]], scores: dict[tuple[int, int], float],
                     method: str) -> pd.DataFrame:
    """The importance table: accuracy points gained (usually lost) against the reference, for the
    measured ``segments`` and, completed additively, every longer candidate segment."""
    missing = [s for s in [(0, 0), *segments] if s not in scores]
    if missing:
        raise DepthshrinkError(f"{len(missing)} segment(s) are not scored yet, e.g. {missing[:3]}: "
                               "run the command again to finish them")
    reference = scores[(0, 0)]
    points = {key: 100.0 * (scores[key] - reference) for key in segments}
    completed = complete_additively(space, points)
    left_out = len(candidate_segments(space)) - len(completed)
    if left_out:
        warnings.warn(f"{left_out} candidate segment(s) could not be completed from the measured ones: the "
                      "search cannot form them (raise --max-removed)", stacklevel=2)
    rows = [{"start": a, "end": b, "importance": round(value, 4), "method": method,
             "source": "measured" if (a, b) in points else "additive", "model": model_label(space.model),
             "accuracy": scores.get((a, b)), "reference_accuracy": reference}
            for (a, b), value in sorted(completed.items(), key=lambda item: (item[0][1] - item[0][0], item[0][0]))]
    return pd.DataFrame(rows)


def write_importance(frame: pd.DataFrame, out: Path) -> None:
    tmp = out.with_name(f".{out.name}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, out)
