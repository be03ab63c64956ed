"""Where and among whom a training runs: the device of this process, the process group under
torchrun (NCCL on GPUs, gloo on the CPU), each rank's share of every global batch, its data
loader, and every rank's random generators for an exact resume."""

from __future__ import annotations

import os
import zlib

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import DepthshrinkError

MAX_SEED = 2**32 - 1  # a run's seed: numpy's legacy range, well inside what torch.manual_seed takes


def check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise DepthshrinkError(f"a seed must be an integer from 0 to {MAX_SEED}, not {seed!r}")


def stream_seed(seed: int, purpose: str, index: int) -> int:
    """The seed of one random stream of a run: ``purpose`` (``"shuffle"``, ``"rank"``) and its
    ``index`` (the epoch, the rank), drawn apart from every other seed's streams (``seed + index``
    gave seed 1 the data order of seed 0's next epoch)."""
    return int(np.random.SeedSequence([seed, zlib.crc32(purpose.encode()), index]).generate_state(1, np.uint64)[0]
               >> 1)


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
        generator = torch.Generator().manual_seed(stream_seed(self.seed, "shuffle", self.epoch))
        order = torch.randperm(self.size, generator=generator).tolist()
        share = self.batch_size // self.world
        for step in range(len(self)):
            start = step * self.batch_size + self.rank * share
            yield order[start:start + share]


def training_device(device: str | None = None) -> torch.device:
    """The device this process trains on: ``device`` as given (``cpu``, ``cuda``, ``cuda:1``), or,
    when ``None``/``auto``, the process's GPU (``LOCAL_RANK`` under torchrun) if CUDA is present."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise DepthshrinkError(f"--device {device}: give auto, cpu, cuda or cuda:N") from None
    if chosen.type not in ("cpu", "cuda"):
        raise DepthshrinkError(f"--device {device}: give auto, cpu, cuda or cuda:N")
    if chosen.type != "cuda":
        return chosen
    if not torch.cuda.is_available():
        raise DepthshrinkError(f"--device {device}: no CUDA GPU is visible here (train on the CPU with --device cpu)")
    if chosen.index is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise DepthshrinkError(f"--device {device} under torchrun would put every process on one GPU: "
                               "give --device cuda (each process takes its LOCAL_RANK's GPU)")
    index = chosen.index if chosen.index is not None else local_rank
    if index >= torch.cuda.device_count():
        raise DepthshrinkError(f"this process needs GPU {index} but {torch.cuda.device_count()} GPU(s) are visible: "
                               "start one process per GPU (torchrun --nproc_per_node), or train with --device cpu")
    return torch.device("cuda", index)


def first_rank() -> bool:
    """Whether this process is rank 0 of a torchrun launch, or runs alone: the one that prints results."""
    return int(os.environ.get("RANK", "0")) == 0


def distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size): one process, or a rank launched by torchrun. The process group is opened
    here once (NCCL on GPUs, after choosing this process's GPU; gloo on the CPU); the caller closes
    it with ``dist.destroy_process_group()`` before exit."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launched = "TORCHELASTIC_RUN_ID" in os.environ  # torchrun, even with one process (NCCL with one GPU)
    if (world > 1 or launched) and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)  # before the group: NCCL binds each rank to its GPU
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world


def batches(data: Dataset, sampler: GlobalBatchSampler, device: torch.device) -> DataLoader:
    """Batches on the CPU from the main process (in-memory data: workers would only copy it); on a
    GPU from worker processes into pinned memory, so copies overlap the steps."""
    if device.type != "cuda":
        return DataLoader(data, batch_sampler=sampler)
    workers = min(4, max(1, (os.cpu_count() or 2) // 2))
    return DataLoader(data, batch_sampler=sampler, num_workers=workers, pin_memory=True, persistent_workers=True)


def rng_states(world: int, device: torch.device) -> list[dict]:
    """The random generators of every rank (CPU, and this rank's GPU): a resume continues each."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if world == 1:
        return [state]
    states: list = [None] * world
    dist.all_gather_object(states, state)
    return states
