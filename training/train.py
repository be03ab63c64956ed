"""The training loop behind ``train`` and ``finetune``: SGD with Nesterov momentum and a cosine
schedule, label smoothing, optional distillation from a teacher (soft targets), checkpoints
written atomically every epoch, an exact ``resume``, a JSON-lines metrics log, and DDP when
launched by ``torchrun`` (gloo on the CPU, nccl on GPUs).

Data parallelism splits each *global* batch among the ranks (rank r takes the r-th slice), so
N processes take exactly the steps one process would with the same global batch.
"""

from __future__ import annotations

import copy
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
from torch.utils.data import Dataset

from ..contracts.checkpoints import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from ..errors import DepthshrinkError
from .data import augment
from .ranks import GlobalBatchSampler, batches, check_seed, distributed, rng_states, stream_seed, training_device


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
    ema_decay: float = 0.0          # > 0: keep an exponential moving average of the weights (saved as "ema")
    amp: bool = True                # mixed precision (float16 autocast, loss scaling) on CUDA only
    augment: bool = False           # random shifts (2 px) and left-right flips of the training images

    def __post_init__(self) -> None:
        if not 0 <= self.ema_decay < 1:
            raise DepthshrinkError(f"the EMA decay must be in [0, 1), not {self.ema_decay}")
        for name, low, high in (("label_smoothing", 0, 1), ("distill_weight", 0, 1), ("weight_decay", 0, math.inf),
                                ("momentum", 0, 1)):
            value = getattr(self, name)
            # refused here, not by torch after the first batch (or never: an infinite decay trains to chance)
            if not (low <= value <= high and math.isfinite(value)):
                bound = f"{high})" if high == math.inf else f"{high}]"
                raise DepthshrinkError(f"the {name.replace('_', ' ')} must be in [{low}, {bound}, not {value}")
        check_seed(self.seed)
        for name in ("epochs", "batch_size"):  # 0 divided the schedule or the sampler by zero
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int) \
                    or getattr(self, name) < 1:
                raise DepthshrinkError(f"the {name.replace('_', ' ')} must be a positive integer, not "
                                       f"{getattr(self, name)}")
        if not 0 < self.lr < math.inf:
            raise DepthshrinkError(f"the learning rate must be a positive number, not {self.lr}")


def distillation_loss(logits, labels, teacher_logits, config: TrainConfig):
    loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
    if teacher_logits is None or config.distill_weight == 0:
        return loss
    soft = -(F.softmax(teacher_logits, 1) * F.log_softmax(logits, 1)).sum(1).mean()
    return config.distill_weight * soft + (1 - config.distill_weight) * loss


@dataclass
class _Step:
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    ema: torch.optim.swa_utils.AveragedModel | None


def distillation_step(model: nn.Module, teacher: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.Tensor:
    """One plain SGD step on the distillation loss (the short loops of importance estimation)."""
    with torch.no_grad():
        teacher_logits = teacher(images)
    loss = distillation_loss(model(images), labels, teacher_logits, config)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def train(model: nn.Module, data: Dataset, config: TrainConfig, out: str | os.PathLike,
          teacher: nn.Module | None = None, resume: bool = False, progress: bool = True,
          spec: dict | None = None, device: str | None = None) -> nn.Module:
    """Train ``model``'s weights in place (its device, dtype and modules stay as they are: the
    work runs on a copy on ``device``, see :func:`training_device`); ``out`` gets ``last.pt``
    (every epoch) and ``metrics.jsonl``. ``teacher`` is read, never changed.

    ``spec`` (plain data: how to rebuild the model) is stored in the checkpoint. Under torchrun,
    BatchNorm statistics are synchronised on GPUs (SyncBatchNorm, on the copy) but per process on
    the CPU, and dropout and ``augment`` draw per process (seeded ``seed + rank``): only networks
    and runs without them match a single process exactly.
    """
    chosen = training_device(device)
    work = copy.deepcopy(model).to(chosen, memory_format=torch.channels_last)
    guide = None if teacher is None else copy.deepcopy(teacher).to(chosen, memory_format=torch.channels_last).eval()
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = benchmark or chosen.type == "cuda"  # fixed shapes: let cuDNN pick
    try:
        trained = _train(work, data, config, Path(out), guide, resume, progress, spec, chosen)
    finally:
        torch.backends.cudnn.benchmark = benchmark
    with torch.no_grad():  # copied into the caller's own tensors: their device and layout are kept
        model.load_state_dict(trained.state_dict())
    return model


def _train(model: nn.Module, data: Dataset, config: TrainConfig, out: Path, teacher: nn.Module | None,
           resume: bool, progress: bool, spec: dict | None, device: torch.device) -> nn.Module:
    rank, world = distributed(device)
    sampler = GlobalBatchSampler(len(data), config.batch_size, config.seed, rank, world)
    if len(sampler) == 0:
        raise DepthshrinkError(f"{len(data)} examples make no batch of {config.batch_size}")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(stream_seed(config.seed, "rank", rank))
    if device.type == "cuda":
        torch.cuda.manual_seed(stream_seed(config.seed, "rank", rank))
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)
    steps = config.epochs * len(sampler)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    step = _Step(optimizer, schedule, torch.amp.GradScaler("cuda") if config.amp and device.type == "cuda" else None,
                 _ema(model, config.ema_decay))
    start = _resume(out, model, step, config, spec or {}, rank, device, len(data)) if resume else _fresh(out)
    wrapped = model
    if world > 1:
        if device.type == "cuda":
            wrapped = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # model is the caller's copy
        wrapped = nn.parallel.DistributedDataParallel(wrapped, device_ids=[device] if device.type == "cuda" else None)
    loader = batches(data, sampler, device)
    for epoch in range(start, config.epochs):
        sampler.epoch = epoch
        record = _epoch(wrapped, teacher, loader, step, config, device, progress and rank == 0,
                        f"epoch {epoch + 1}/{config.epochs}", world)
        rng = rng_states(world, device)  # every rank's generators, gathered on every rank
        if rank == 0:  # the log line first: a resume drops lines the checkpoint has not reached
            with open(out / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps({"epoch": epoch + 1, **record}) + "\n")
            save_checkpoint(out / "last.pt", _checkpoint(epoch + 1, model, step, config, spec, rng, len(data)))
    if step.ema is not None:  # what the caller evaluates and deploys
        model.load_state_dict(step.ema.module.state_dict())
    if world > 1:  # every rank ends with rank 0's buffers (BN running statistics)
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)
    return model


def _ema(model: nn.Module, decay: float):
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _checkpoint(epoch: int, model: nn.Module, step: _Step, config: TrainConfig, spec: dict | None,
                rng: list[dict], examples: int) -> dict:
    state = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "model": _on_cpu(model.state_dict()),
             "optimizer": step.optimizer.state_dict(), "schedule": step.schedule.state_dict(),
             "config": asdict(config), "rng": rng[0]["cpu"], "rng_per_rank": rng, "spec": spec or {},
             "examples": examples}
    if step.ema is not None:
        state.update(ema=_on_cpu(step.ema.module.state_dict()), ema_updates=int(step.ema.n_averaged))
    if step.scaler is not None:
        state["scaler"] = step.scaler.state_dict()
    return state


def _on_cpu(state: dict) -> dict:
    """A state_dict in plain contiguous CPU tensors (a checkpoint loads anywhere)."""
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _fresh(out: Path) -> int:
    if (out / "last.pt").exists():  # another run's checkpoint: kept, not replaced after one epoch
        raise DepthshrinkError(f"{out} holds a run already (last.pt): continue it with --resume, or give "
                               "another --out (or delete it)")
    (out / "metrics.jsonl").unlink(missing_ok=True)  # a new run: no stale lines
    return 0


def _resume(out: Path, model: nn.Module, step: _Step, config: TrainConfig, spec: dict, rank: int,
            device: torch.device, examples: int) -> int:
    """Load ``out/last.pt``; the epoch to continue from (0 when there is none)."""
    from ..shrink.rebuild import load_into

    if not (out / "last.pt").exists():
        return _fresh(out)
    state = load_checkpoint(out / "last.pt")
    saved = state.get("spec") or {}
    if "data" in spec and saved.get("data", spec["data"]) != spec["data"]:  # older checkpoints name no data
        raise DepthshrinkError(f"{out}/last.pt was trained on {_data_named(saved['data'])}, this run has "
                               f"{_data_named(spec['data'])}: resume with the same --data and --subset, or use a new --out")
    spec = {k: v for k, v in spec.items() if k != "data" or k in saved}
    if state.get("config") != asdict(config) or _paths_resolved(saved) != _paths_resolved(spec):
        raise DepthshrinkError(f"{out}/last.pt was written by a run with other settings or another model: "
                               "resume with the same command, or use a new --out")
    if state.get("examples", examples) != examples:  # its steps per epoch set the learning-rate schedule
        raise DepthshrinkError(f"{out}/last.pt was trained on {state['examples']} examples, this run has {examples}: "
                               "resume with the same --data and --subset, or use a new --out")
    load_into(model, state["model"], str(out / "last.pt"))
    step.optimizer.load_state_dict(state["optimizer"])
    step.schedule.load_state_dict(state["schedule"])
    restore_generators(state.get("rng_per_rank") or [{"cpu": state["rng"]}], rank, device)  # older: rank 0's CPU one
    if step.ema is not None:
        step.ema.module.load_state_dict(state["ema"])
        step.ema.n_averaged.fill_(state["ema_updates"])
    if step.scaler is not None and "scaler" in state:
        step.scaler.load_state_dict(state["scaler"])
    metrics = out / "metrics.jsonl"
    if rank == 0 and metrics.exists():  # lines past the checkpoint were lost with the killed run (rank 0 writes
        # the log: another rank rewriting it too could read it emptied mid-write, and write it back empty)
        kept = [line for line in metrics.read_text().splitlines() if _epoch_of(line) <= state["epoch"]]
        metrics.write_text("".join(line + "\n" for line in kept))
    return state["epoch"]


def _data_named(data: dict) -> str:
    return data["source"] + (f" (a subset of {data['subset']})" if data.get("subset") else "")


def _paths_resolved(spec: dict) -> dict:
    """A run's spec with the checkpoints it started from as absolute paths: ``--out run`` and ``--out
    /abs/run`` (or ``./x.pt`` and ``x.pt``) name one file, and a killed run resumes under either."""
    return {k: str(Path(v).resolve()) if k in ("weights", "base") and isinstance(v, str) and v else v
            for k, v in spec.items()}


def restore_generators(ranks: list[dict], rank: int, device: torch.device) -> None:
    """This rank's random generators as the checkpoint saved them. A rank the saved run did not have (a resume
    on more processes) keeps its own stream, seeded as a fresh run seeds it: taking rank 0's state gave it rank
    0's random draws."""
    if rank >= len(ranks):
        return
    torch.set_rng_state(ranks[rank]["cpu"])
    if device.type == "cuda" and "cuda" in ranks[rank]:
        torch.cuda.set_rng_state(ranks[rank]["cuda"], device)


def _epoch_of(line: str) -> float:
    """The epoch of a metrics line; a line torn by a kill is past every checkpoint."""
    try:
        return json.loads(line)["epoch"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


def _epoch(wrapped, teacher, loader, step: _Step, config, device, progress, label, world) -> dict:
    from tqdm import tqdm

    wrapped.train()
    began = time.perf_counter()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # examples, loss, correct: summed where they are
    for images, labels in tqdm(loader, desc=label, disable=not progress):
        images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        labels = labels.to(device, non_blocking=True)
        if config.augment:
            images = augment(images)
        with torch.autocast(device.type, dtype=torch.float16, enabled=step.scaler is not None):
            with torch.no_grad():
                teacher_logits = teacher(images) if teacher is not None else None
            logits = wrapped(images)
            loss = distillation_loss(logits.float(), labels, teacher_logits if teacher_logits is None
                                     else teacher_logits.float(), config)
        step.optimizer.zero_grad(set_to_none=True)
        if step.scaler is None:
            loss.backward()
            step.optimizer.step()
        else:
            step.scaler.scale(loss).backward()
            step.scaler.step(step.optimizer)
            step.scaler.update()
        step.schedule.step()
        if step.ema is not None:
            step.ema.update_parameters(wrapped.module if world > 1 else wrapped)
        with torch.no_grad():  # no .item(): a GPU is never made to wait for the host mid-epoch
            count = torch.full((), float(len(labels)), dtype=torch.float64, device=device)
            sums += torch.stack([count, loss.detach().double() * count, (logits.argmax(1) == labels).sum().double()])
    if world > 1:
        dist.all_reduce(sums)  # on the device: NCCL refuses CPU tensors
    seen, total, correct = sums.tolist()
    return {"loss": total / seen, "train_accuracy": correct / seen,
            "images_per_s": seen / (time.perf_counter() - began), "lr": step.schedule.get_last_lr()[0]}
