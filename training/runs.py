"""Training runs as the CLI and the pipeline start them: a base network from its description, a
shrunk one from a base checkpoint and masks, and the accuracy of a checkpoint or merged model."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..contracts.files import check_folder
from ..models.build import ModelSpec, build_space
from .data import DataSpec, check_fits, data_identity, load_split, sample
from .evaluate import accuracy
from .train import TrainConfig, train


@dataclass(frozen=True)
class RunOptions:
    """How a run goes, apart from what it trains (resumable, shown, where)."""

    out: str | os.PathLike
    resume: bool = False
    progress: bool = True
    device: str | None = None   # None/auto: this process's GPU when CUDA is present, else the CPU


@dataclass(frozen=True)
class TrainedRun:
    checkpoint: Path
    images: int
    held_out_accuracy: float
    reference_accuracy: float | None = None   # finetuning: the original network's, on the same images


def train_network(model: ModelSpec, data: DataSpec, config: TrainConfig, run: RunOptions) -> TrainedRun:
    """Train a base network (from scratch, or from ``model.weights`` adapted to this dataset)."""
    check_folder(run.out, "the training")
    torch.manual_seed(config.seed)  # the initial weights too
    network, space = build_space(model, adapt_weights=True)
    examples = load_split(data, "train", space.model)
    check_fits(examples, space.model)
    spec = {"model": space.model, "weights": model.weights, "data": data_identity(data)}
    train(network, examples, config, run.out, resume=run.resume, progress=run.progress, spec=spec, device=run.device)
    held_out = accuracy(network, load_split(data, "held-out", space.model))
    return TrainedRun(Path(run.out) / "last.pt", len(examples), held_out)


def finetune_network(masks_path: str | os.PathLike, weights: str | os.PathLike, data: DataSpec, config: TrainConfig,
                     run: RunOptions, eval_images: int | None = None) -> TrainedRun:
    """Finetune the base network of checkpoint ``weights`` with ``masks`` applied, distilling from
    the original (``config.distill_weight``)."""
    from ..contracts.masks import load_masks
    from ..shrink.apply import apply_masks
    from ..shrink.rebuild import load_base_network

    check_folder(run.out, "the finetuning")
    masks = load_masks(masks_path)
    teacher, space = load_base_network(weights, masks.model)  # traced as the masks' space was
    masks = masks.resolve(space)
    shrunk = apply_masks(teacher, space, masks)  # a copy: the teacher stays the original
    examples = load_split(data, "train", space.model)
    check_fits(examples, space.model)
    spec = {"model": space.model, "masks": masks.to_dict(), "weights": str(weights), "data": data_identity(data)}
    train(shrunk, examples, config, run.out, teacher=teacher, resume=run.resume, progress=run.progress, spec=spec,
          device=run.device)
    held_out = load_split(data, "held-out", space.model)
    if eval_images:
        held_out = sample(held_out, eval_images)
    return TrainedRun(Path(run.out) / "last.pt", len(examples), accuracy(shrunk, held_out), accuracy(teacher, held_out))


def evaluate_file(data: DataSpec, split: str, checkpoint: str | os.PathLike | None = None,
                  merged: str | os.PathLike | None = None) -> float:
    """Top-1 accuracy of a checkpoint (train or finetune) or a merged folder on ``split``."""
    import json

    from ..contracts.checkpoints import load_checkpoint
    from ..shrink.rebuild import load_merged, network_from_checkpoint

    if merged is not None:
        model = load_merged(merged)
        info = json.loads((Path(merged) / "merged.json").read_text())["model"]
    else:
        state = load_checkpoint(checkpoint)
        model, info = network_from_checkpoint(state, str(checkpoint)), state["spec"]["model"]
    examples = load_split(data, split, info)
    check_fits(examples, info)
    return accuracy(model, examples)
