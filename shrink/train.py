"""The training loop behind ``train`` and ``finetune``: SGD with Nesterov momentum and a cosine
schedule, label smoothing, optional distillation from a teacher (soft targets), checkpoints
written atomically every epoch, an exact ``resume``, a JSON-lines metrics log, and DDP when
launched by ``torchrun`` (gloo on the CPU, nccl on GPUs).

Data parallelism splits each *global* batch among the ranks (rank r takes the r-th slice), so
N processes take exactly the steps one process would with the same global batch.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import DepthshrinkError

CHECKPOINT_FORMAT = "depthshrink.checkpoint/1"


@dataclass
class TrainConfig:
    epochs: int = 1
    batch_size: int = 128           # global: split among the ranks
    lr: float = 0.05                # for the global batch
    momentum: float = 0.9
    weight_decay: float = 1e-5
    label_smoothing: float = 0.1
    distill_weight: float = 0.0     # share of the loss on the teacher's soft targets
    seed: int = 0


class GlobalBatchSampler(Sampler[list[int]]):
    """Per epoch, a seeded permutation cut into global batches; this rank's slice of each."""

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if batch_size % world:
            raise DepthshrinkError(f"the batch size {batch_size} does not split among {world} processes")
        self.size, self.batch_size, self.seed, self.rank, self.world = size, batch_size, seed, rank, world
        self.epoch = 0

    def __len__(self) -> int:
        return self.size // self.batch_size  # the last partial batch is dropped

    def __iter__(self):
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        share = self.batch_size // self.world
        for step in range(len(self)):
            start = step * self.batch_size + self.rank * share
            yield order[start:start + share]


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if world > 1 else (0, 1)


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file, then rename: a crash never leaves a torn checkpoint."""
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise DepthshrinkError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise DepthshrinkError(f"{path} is not a depthshrink checkpoint")
    return state


def _loss(logits, labels, teacher_logits, config: TrainConfig):
    loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
    if teacher_logits is None or config.distill_weight == 0:
        return loss
    soft = -(F.softmax(teacher_logits, 1) * F.log_softmax(logits, 1)).sum(1).mean()
    return config.distill_weight * soft + (1 - config.distill_weight) * loss


def train(model: nn.Module, data: Dataset, config: TrainConfig, out: str | os.PathLike,
          teacher: nn.Module | None = None, resume: bool = False, progress: bool = True,
          spec: dict | None = None) -> nn.Module:
    """Train ``model`` in place; ``out`` gets ``last.pt`` (every epoch) and ``metrics.jsonl``.

    ``spec`` (plain data: how to rebuild the model) is stored in the checkpoint."""
    from tqdm import tqdm

    rank, world = _distributed()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    sampler = GlobalBatchSampler(len(data), config.batch_size, config.seed, rank, world)
    if len(sampler) == 0:
        raise DepthshrinkError(f"{len(data)} examples make no batch of {config.batch_size}")
    loader = DataLoader(data, batch_sampler=sampler)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)
    steps = config.epochs * len(sampler)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    start_epoch = 0
    if resume and (out / "last.pt").exists():
        state = load_checkpoint(out / "last.pt")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch = state["epoch"]
        torch.set_rng_state(state["rng"])
    wrapped = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    if teacher is not None:
        teacher.eval()
    for epoch in range(start_epoch, config.epochs):
        sampler.epoch = epoch
        wrapped.train()
        began, seen, total, correct = time.perf_counter(), 0, 0.0, 0
        for images, labels in tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress or rank):
            with torch.no_grad():
                teacher_logits = teacher(images) if teacher is not None else None
            logits = wrapped(images)
            loss = _loss(logits, labels, teacher_logits, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            seen += len(labels)
            total += loss.item() * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
        record = {"epoch": epoch + 1, "loss": total / seen, "train_accuracy": correct / seen,
                  "images_per_s": seen * world / (time.perf_counter() - began), "lr": schedule.get_last_lr()[0]}
        if rank == 0:
            save_checkpoint(out / "last.pt", {"format": CHECKPOINT_FORMAT, "epoch": epoch + 1,
                                              "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                              "schedule": schedule.state_dict(), "config": asdict(config),
                                              "rng": torch.get_rng_state(), "spec": spec or {}})
            with open(out / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
    return model
